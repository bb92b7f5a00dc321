"""Who is at the other end of a connection, in libvirt's identity attributes.

libvirtd describes each client by a virIdentity: for a unix socket the peer's
user, group and process (SO_PEERCRED), for TLS the client certificate's
distinguished name, after SASL the user name.  The access policy matches on
these attributes (server/access_policy.py).
"""

from __future__ import annotations

import contextlib
import grp
import pwd
import socket
import struct
from typing import Any

import trio

from .tls import format_dn

_UCRED = struct.Struct("3i")  # pid, uid, gid


def _socket_of(stream: Any) -> Any:
    """The socket under a stream (trio's socket or a plain one); None if there is none."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return stream if isinstance(stream, socket.socket) else None


def identity_attributes(stream: Any, transport: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The identity of the client on ``stream`` (``extra``: attributes learnt later, e.g. from SASL)."""
    attrs = {"transport": transport}
    if isinstance(stream, trio.SSLStream):
        cert = stream.getpeercert()
        if cert:
            attrs["x509_dname"] = format_dn(cert.get("subject", ()))
    sock = _socket_of(stream)
    if sock is not None and sock.family == socket.AF_UNIX:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid, uid, gid = _UCRED.unpack(raw)
        attrs.update(process_id=str(pid), unix_user_id=str(uid), unix_group_id=str(gid))
        with contextlib.suppress(KeyError):  # a uid/gid without a name
            attrs["user_name"] = pwd.getpwuid(uid).pw_name
        with contextlib.suppress(KeyError):
            attrs["group_name"] = grp.getgrgid(gid).gr_name
    if extra:
        attrs.update(extra)
    return attrs
