"""Listeners and the server's life: accept, serve, shut down on SIGINT/SIGTERM.

Shutdown order: stop accepting (listeners close, unix socket files go away),
stop reading from every client, let calls in flight finish and their replies
flush, close the connections, return (exit status 0).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import ssl
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import trio
from virtwire.protocol.errors import libvirtError

from .config import ServerConfig
from .driver.base import Driver
from .service import Service
from .tls import accept_tls, server_context

log = logging.getLogger(__name__)

def _peer(family: int, address: object) -> str:
    if family == socket.AF_UNIX:
        return ""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "?"


def _listening(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock


async def _tcp_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for HOST:PORT (every address it resolves to; host "": every
    address of the machine, as libvirtd without listen_addr), as plain sockets.

    trio opens them (address resolution, dual stack, SO_REUSEADDR); the accept
    loop below then works on the plain socket.
    """
    out = []
    for listener in await trio.open_tcp_listeners(port, host=host or None):
        out.append(_listening(socket.socket(fileno=listener.socket.detach())))
    return out


def _unix_socket(path: Path, mode: int, group: int | None) -> socket.socket:
    """Bind a unix socket, replacing a stale socket file (never any other file)."""
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, group)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return _listening(sock)


# An accepted client socket (non-blocking) and its peer address, in text.
Handler = Callable[[socket.socket, str], Awaitable[None]]


def _close(sock: socket.socket) -> None:
    trio.lowlevel.notify_closing(sock)
    sock.close()


class Listeners:
    """The open listening sockets, each with the handler its connections get."""

    def __init__(self) -> None:
        self.entries: list[tuple[socket.socket, Handler]] = []
        self.unix_paths: list[Path] = []

    async def open(self, config: ServerConfig, service: Service) -> None:
        if config.activation is not None:
            self._adopt(config, service)
            return
        for endpoint in config.tcp:
            for sock in await _tcp_sockets(endpoint.host, endpoint.port):
                self.entries.append((sock, partial(self._serve_tcp, service)))
        if config.tls:
            tls_handler = self._tls_handler(config, service)
            for endpoint in config.tls:
                for sock in await _tcp_sockets(endpoint.host, endpoint.port):
                    self.entries.append((sock, tls_handler))
        for path, readonly in [(p, False) for p in config.unix] + [(p, True) for p in config.unix_ro]:
            mode = config.unix_ro_mode if readonly else config.unix_rw_mode
            sock = _unix_socket(path, mode, config.unix_group)
            self.unix_paths.append(path)
            self.entries.append((sock, partial(self._serve_unix, service, str(path), readonly)))

    def _tls_handler(self, config: ServerConfig, service: Service) -> Handler:
        try:
            ctx = server_context(
                config.tls_credentials(),
                config.tls_priority,
                sanity_check=config.tls_sanity_check,
                verify_client=config.tls_verify_client,
            )
        except (libvirtError, OSError, ssl.SSLError) as exc:
            raise SystemExit(f"virtwire serve: TLS: {exc}") from None
        allowed = config.tls_allowed_dn if config.tls_verify_client else []
        return partial(self._serve_tls, service, ctx, allowed)

    def _adopt(self, config: ServerConfig, service: Service) -> None:
        """Serve the sockets systemd passed (their files belong to the socket units)."""
        act = config.activation
        assert act is not None
        for sock in act.tcp:
            self.entries.append((sock, partial(self._serve_tcp, service)))
        if act.tls:
            tls_handler = self._tls_handler(config, service)
            self.entries += [(sock, tls_handler) for sock in act.tls]
        for sock, readonly in [(s, False) for s in act.unix] + [(s, True) for s in act.unix_ro]:
            name = str(sock.getsockname())
            self.entries.append((sock, partial(self._serve_unix, service, name, readonly)))
        if act.admin:
            log.warning("the activated admin socket is not served: virtwire has no admin server")

    def close(self) -> None:
        """Close every listening socket (again: a no-op)."""
        for sock, _ in self.entries:
            if sock.fileno() != -1:
                _close(sock)

    @staticmethod
    async def _serve_tcp(service: Service, sock: socket.socket, peer: str) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await service.serve_stream(sock, transport="tcp", peer=peer, readonly_socket=False)

    @staticmethod
    async def _serve_tls(
        service: Service, ctx: object, allowed: list[str], sock: socket.socket, peer: str
    ) -> None:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))  # sets TCP_NODELAY
        service.handshake_started()
        try:
            tls_stream = await accept_tls(stream, ctx, allowed, peer)  # type: ignore[arg-type]
        except Exception:
            log.exception("TLS client %s: handshake failed", peer)
            await trio.aclose_forcefully(stream)
            return
        finally:
            service.handshake_done()
        if tls_stream is not None:
            await service.serve_stream(tls_stream, transport="tls", peer=peer, readonly_socket=False)

    @staticmethod
    async def _serve_unix(
        service: Service, path: str, readonly: bool, sock: socket.socket, peer: str
    ) -> None:
        await service.serve_stream(sock, transport="unix", peer=f"unix:{path}", readonly_socket=readonly)

    def remove_socket_files(self) -> None:
        for path in self.unix_paths:
            try:
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
            except OSError:
                pass


# Accept errors that mean "out of resources for now" (as trio.serve_listeners treats them).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_BACKOFF = 0.1
# Connections taken per wakeup before letting other tasks run.
_ACCEPT_BATCH = 16
# The peer went away between connect and accept: nothing to serve, keep accepting.
_ACCEPT_PEER_GONE = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}


async def _serve_accepted(service: Service, handler: Handler, sock: socket.socket, peer: str) -> None:
    try:
        await handler(sock, peer)
    finally:
        service.client_gone()


async def accept_loop(
    listening: socket.socket, handler: Handler, connections: trio.Nursery, service: Service
) -> None:
    """Accept until cancelled; each client is served in ``connections``.

    Plain non-blocking accept() on the listening socket, waiting only when no
    client is queued: cheaper per connection than trio's SocketListener, whose
    accept also yields to the scheduler once per client.  Our handlers always
    close their socket.  At the client limits nothing is accepted (libvirtd
    suspends its services): the next client waits in the listen backlog and is
    served once a slot frees.
    """
    family = listening.family
    while True:
        await service.wait_until_may_accept()
        await trio.lowlevel.wait_readable(listening)
        for _ in range(_ACCEPT_BATCH):
            if not service.may_accept():
                break
            try:
                sock, address = listening.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _ACCEPT_PEER_GONE:
                    continue
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                log.error("accept failed (%s); pausing %.1fs", exc, _ACCEPT_BACKOFF)
                await trio.sleep(_ACCEPT_BACKOFF)
                break
            sock.setblocking(False)
            service.client_accepted()
            connections.start_soon(_serve_accepted, service, handler, sock, _peer(family, address))


async def _force_on_second_signal(signals: AsyncIterator[int], service: Service) -> None:
    """While clients finish their calls, a second signal drops them at once."""
    async with trio.open_nursery() as nursery:

        async def until_idle() -> None:
            await service.all_closed.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(until_idle)
        async for signum in signals:
            log.warning(
                "%s again: dropping %d clients now", signal.Signals(signum).name, len(service.connections)
            )
            service.abort_all("server shutting down")
            break


async def serve(
    config: ServerConfig,
    driver: Driver,
    *,
    on_ready: Callable[[Listeners], None] | None = None,
    on_stopping: Callable[[], object] | None = None,
) -> None:
    """Run a server until SIGINT/SIGTERM (or cancellation), then shut down cleanly.

    ``on_ready`` runs once every listener accepts, ``on_stopping`` when a signal
    starts the shutdown (the CLI tells systemd READY=1 and STOPPING=1 there).
    """
    service = Service(config, driver)
    listeners = Listeners()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            await listeners.open(config, service)
        except OSError as exc:
            listeners.close()
            listeners.remove_socket_files()
            if exc.errno == errno.EADDRINUSE:
                raise SystemExit(f"virtwire serve: address already in use: {exc}") from None
            raise SystemExit(f"virtwire serve: cannot listen: {exc}") from None
        try:
            async with trio.open_nursery() as background:
                driver.nursery = background
                try:
                    async with trio.open_nursery() as connections:
                        async with trio.open_nursery() as accepting:
                            for listening, handler in listeners.entries:
                                accept = partial(accept_loop, listening, handler, connections, service)
                                accepting.start_soon(accept)
                            if on_ready is not None:
                                on_ready(listeners)
                            async for signum in signals:
                                log.info("%s: shutting down", signal.Signals(signum).name)
                                if on_stopping is not None:
                                    on_stopping()
                                accepting.cancel_scope.cancel()
                                break
                        listeners.close()
                        listeners.remove_socket_files()
                        service.begin_shutdown()
                        connections.start_soon(_force_on_second_signal, signals, service)
                finally:
                    # Every client is gone: what the driver still runs has no one to report to.
                    background.cancel_scope.cancel()
                    driver.nursery = None
        finally:
            listeners.close()
            listeners.remove_socket_files()
    log.info("stopped")
