"""trio streams to the daemon: tcp, unix, tls (with libvirt's 0x01 byte) and tunnels (ssh, ext).

Failures become the same libvirtErrors as the sync transport's.
"""

from __future__ import annotations

import socket
import ssl

import trio
from virtwire.client import cmdsocket, errfactory
from virtwire.client import tls as tlsmod
from virtwire.client.uri import Target, Transport
from virtwire.protocol.errors import libvirtError


async def connect(target: Target) -> tuple[trio.abc.Stream, cmdsocket.CommandProcess | None]:
    """The stream, and for a tunnel its program (to stop when the stream closes)."""
    if target.tunnel is not None:
        sock, tunnel = cmdsocket.spawn(target.tunnel.argv)
        return trio.SocketStream(trio.socket.from_stdlib_socket(sock)), tunnel
    return await _connect(target), None


async def _connect(target: Target) -> trio.abc.Stream:
    if target.transport is Transport.UNIX:
        try:
            return await trio.open_unix_socket(target.socket_path)
        except OSError as exc:
            raise errfactory.system_errno(
                f"Failed to connect socket to '{target.socket_path}'", exc
            ) from None
    ctx = None
    if target.transport is Transport.TLS:
        assert target.tls is not None
        ctx = tlsmod.tls_context(target, target.tls)  # before connecting, as libvirt
    try:
        stream: trio.abc.Stream = await trio.open_tcp_stream(target.host, target.port)
    except socket.gaierror as exc:
        raise errfactory.system(
            f"Unable to resolve address '{target.host}' service '{target.port}': {exc.strerror}"
        ) from None
    except OSError as exc:
        cause: OSError = exc
        # trio wraps per-address failures; libvirt reports the errno.
        if exc.errno is None and isinstance(exc.__cause__, OSError):
            cause = exc.__cause__
        if cause.errno is None:
            for sub in getattr(exc.__cause__, "exceptions", ()):
                if isinstance(sub, OSError) and sub.errno is not None:
                    cause = sub
                    break
        raise errfactory.system_errno(f"unable to connect to server at '{target.address}'", cause) from None
    if ctx is not None:
        tls = trio.SSLStream(stream, ctx, server_hostname=target.host)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            await stream.aclose()
            if isinstance(exc.__cause__, ssl.SSLError):
                raise tlsmod.tls_handshake_error(exc.__cause__) from None
            raise errfactory.system("Cannot recv data: Connection reset by peer", 104) from None
        try:
            data = bytes(await tls.receive_some(1))
        except trio.BrokenResourceError:
            data = b""
        if data != tlsmod.TLS_CONFIRMATION:
            await tls.aclose()
            err: libvirtError = tlsmod.tls_confirmation_error(bytes(data))
            raise err
        return tls
    return stream
