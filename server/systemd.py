"""systemd integration without libsystemd: socket activation and sd_notify.

Socket activation (sd_listen_fds): the service manager passes listening sockets
as file descriptors 3, 4, ... and says so in LISTEN_PID (our pid), LISTEN_FDS
(how many) and LISTEN_FDNAMES (their names, ':'-separated; a socket unit's name
unless it sets FileDescriptorName=).  As libvirtd does, each name selects a
service: ``libvirtd.socket`` the read-write unix socket, ``libvirtd-ro.socket``
the read-only one, ``libvirtd-admin.socket`` the admin socket,
``libvirtd-tcp.socket`` and ``libvirtd-tls.socket`` the TCP and TLS listeners.
The same names with the prefix ``virtwire`` (our own units) work too.  With
activation only the passed sockets are served; a name we do not know is an
error, as libvirtd's "Some activation file descriptors are unclaimed".

sd_notify: one datagram with ``READY=1`` once the listeners accept and
``STOPPING=1`` when shutdown starts, to the unix socket in NOTIFY_SOCKET
(a leading '@' names an abstract socket).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Mapping, MutableMapping

from .config import ActivatedSockets

log = logging.getLogger(__name__)

LISTEN_FDS_START = 3
UNIT_PREFIXES = ("libvirtd", "virtwire")
# Unit name suffix → the ActivatedSockets field it fills.
ROLES = {
    ".socket": "unix",
    "-ro.socket": "unix_ro",
    "-admin.socket": "admin",
    "-tcp.socket": "tcp",
    "-tls.socket": "tls",
}


class ActivationError(Exception):
    """The passed sockets cannot be served (the message says why)."""


def role_of(name: str) -> str | None:
    """The ActivatedSockets field a descriptor name selects, or None."""
    for prefix in UNIT_PREFIXES:
        if name.startswith(prefix):
            return ROLES.get(name[len(prefix) :])
    return None


def _listening_socket(fd: int, name: str) -> socket.socket:
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        raise ActivationError(f"activation file descriptor {fd} ({name}) is not a socket")
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ActivationError(f"activation file descriptor {fd} ({name}) is not a listening stream socket")
    os.set_inheritable(fd, False)
    sock.setblocking(False)
    return sock


def activated_sockets(environ: MutableMapping[str, str] | None = None) -> ActivatedSockets | None:
    """The sockets systemd passed to this process, by role; None without activation.

    As sd_listen_fds: only when LISTEN_PID is our pid; the LISTEN_* variables
    are then removed so children do not take the sockets for theirs.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    if not (pid.isdigit() and int(pid) == os.getpid() and count.isdigit()):
        return None
    nfds = int(count)
    names_text = env.get("LISTEN_FDNAMES")
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    if nfds == 0:
        return None
    if names_text is None:
        raise ActivationError("Missing LISTEN_FDNAMES env from systemd socket activation")
    names = names_text.split(":")
    if len(names) != nfds:
        raise ActivationError(f"Expecting {nfds} FD names but got {len(names)}")
    unknown = [name for name in names if role_of(name) is None]
    if unknown:
        raise ActivationError(
            f"Some activation file descriptors are unclaimed: {', '.join(unknown)}"
            f" (virtwire serves {', '.join(p + s for p in UNIT_PREFIXES[:1] for s in ROLES)})"
        )
    sockets = ActivatedSockets()
    for offset, name in enumerate(names):
        role = role_of(name)
        assert role is not None
        getattr(sockets, role).append(_listening_socket(LISTEN_FDS_START + offset, name))
    return sockets


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1") to NOTIFY_SOCKET; False when not asked or it failed."""
    env = os.environ if environ is None else environ
    path = env.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", path, exc)
        return False
    return True


def close_all(sockets: ActivatedSockets) -> None:
    for group in (sockets.unix, sockets.unix_ro, sockets.admin, sockets.tcp, sockets.tls):
        for sock in group:
            with contextlib.suppress(OSError):
                sock.close()
