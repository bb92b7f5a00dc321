"""Blocking sockets for the sync client: tcp, unix, tls (tls.py, with libvirt's
0x01 byte), and a tunnel program's socketpair (ssh, ext).

Every failure becomes the libvirtError libvirt's client raises for the same
situation (virnetsocket.c / virnettlscontext.c wording, errno in int1).
"""

from __future__ import annotations

import socket
from typing import Protocol

from virtwire.client import cmdsocket, errfactory
from virtwire.client.uri import Target, Transport


class Socket(Protocol):
    """What the sync connection needs of its socket."""

    def fileno(self) -> int: ...
    def recv(self, size: int, /) -> bytes: ...
    def sendall(self, data: bytes, /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


def connect(target: Target) -> Socket:
    """An open, blocking socket to the daemon, ready for the first RPC."""
    if target.tunnel is not None:
        return cmdsocket.spawn_socket(target.tunnel.argv)
    if target.transport is Transport.UNIX:
        return connect_unix(target.socket_path)
    if target.transport is Transport.TLS:
        # Imported for TLS connections only: ssl (and logging) cost every other
        # client program's start for nothing.
        from virtwire.client import tls

        assert target.tls is not None
        # libvirt loads its credentials before it connects.
        ctx = tls.tls_context(target, target.tls)
        return tls.start_tls(connect_tcp(target.host, target.port), target, ctx)
    return connect_tcp(target.host, target.port)


def connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise errfactory.system_errno(f"Failed to connect socket to '{path}'", exc) from None
    return sock


def connect_tcp(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise errfactory.system(
            f"Unable to resolve address '{host}' service '{port}': {exc.strerror}"
        ) from None
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    assert last is not None
    raise errfactory.system_errno(f"unable to connect to server at '{host}:{port}'", last) from None
