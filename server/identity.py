"""Who is on the other end of a connection, as far as the server knows.

One record per connection (``ConnectionContext.identity``), filled in as
libvirtd fills its virIdentity: the transport and the socket's read-only flag
at accept, the unix peer's uid/gid/pid from SO_PEERCRED, the TLS client
certificate's distinguished name after the handshake, and the SASL user name
once SASL authentication succeeds.  Access-control checks read it; nothing here
decides anything.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import trio

from .tls import format_dn

_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


@dataclass(slots=True)
class Identity:
    transport: str  # "tcp", "tls" or "unix"
    readonly: bool  # came in on a read-only socket
    unix_user_id: int | None = None
    unix_group_id: int | None = None
    process_id: int | None = None
    x509_dname: str | None = None
    sasl_user_name: str | None = None


def _peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of a unix socket's peer; None elsewhere."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def identify(stream: trio.abc.Stream | socket.socket, transport: str, readonly: bool) -> Identity:
    """The identity of a freshly accepted (and, for TLS, handshaken) client."""
    identity = Identity(transport, readonly)
    sock = stream if isinstance(stream, socket.socket) else getattr(stream, "socket", None)
    if isinstance(sock, socket.socket):
        cred = _peer_credentials(sock)
        if cred is not None:
            identity.process_id, identity.unix_user_id, identity.unix_group_id = cred
    if isinstance(stream, trio.SSLStream):
        cert = stream.getpeercert()
        if cert:
            identity.x509_dname = format_dn(cert.get("subject", ()))
    return identity
