"""Listeners and the server's life: accept, serve, shut down on SIGINT/SIGTERM.

Shutdown order: stop accepting (listeners close, unix socket files go away),
stop reading from every client, let calls in flight finish and their replies
flush, close the connections, return (exit status 0).
"""

from __future__ import annotations

import contextlib
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

from .admin.clientinfo import peer_uid
from .admin.daemon import Daemon, ThreadPoolSettings
from .admin.program import admin_program
from .config import ServerConfig
from .driver.base import Driver
from .logsettings import DEFAULT_LOG_LEVEL, LogSettings
from .metrics import Metrics, MetricsServer
from .parking import Parker
from .parking import available as parking_available
from .service import Service
from .tls import ServerTlsFiles, accept_tls, server_context

log = logging.getLogger(__name__)

# libvirtd's worker pool defaults (min_workers, max_workers, prio_workers; admin_*).
LIBVIRTD_POOL = (5, 20, 5)
ADMIN_POOL = (5, 20, 0)

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


# Serves an accepted client socket (non-blocking), given its peer address in text.
# The accept loop counted the client (Service.client_accepted): the handler owns
# that count and gives it back (client_gone) once the client is gone.  TCP and
# unix handlers are plain functions returning serve_stream's coroutine, so an idle
# client's task holds no coroutine frames of theirs.
Handler = Callable[[socket.socket, str], Awaitable[None]]


def _close(sock: socket.socket) -> None:
    trio.lowlevel.notify_closing(sock)
    sock.close()


class Listeners:
    """The open listening sockets, each with the handler its connections get."""

    def __init__(self) -> None:
        self.entries: list[tuple[socket.socket, Handler]] = []
        self.admin_entries: list[tuple[socket.socket, Handler]] = []  # served by the admin server
        self.unix_paths: list[Path] = []
        self.tls_context: ssl.SSLContext | None = None
        self.tls_files: ServerTlsFiles | None = None
        self.metrics_url: str | None = None  # where --metrics serves, once it does

    async def open(self, config: ServerConfig, service: Service, admin: Service | None = None) -> None:
        if config.activation is not None:
            self._adopt(config, service, admin)
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
        if admin is not None and config.admin_socket is not None:
            sock = _unix_socket(config.admin_socket, config.unix_admin_mode, config.unix_group)
            self.unix_paths.append(config.admin_socket)
            self.admin_entries.append((sock, partial(self._serve_admin, admin, str(config.admin_socket))))

    def _tls_handler(self, config: ServerConfig, service: Service) -> Handler:
        files = config.tls_credentials()
        try:
            ctx = server_context(
                files,
                config.tls_priority,
                sanity_check=config.tls_sanity_check,
                verify_client=config.tls_verify_client,
            )
        except (libvirtError, OSError, ssl.SSLError) as exc:
            raise SystemExit(f"virtwire serve: TLS: {exc}") from None
        self.tls_context, self.tls_files = ctx, files  # virt-admin srv-update-tls reloads them
        allowed = config.tls_allowed_dn if config.tls_verify_client else []
        return partial(self._serve_tls, service, ctx, allowed)

    def _adopt(self, config: ServerConfig, service: Service, admin: Service | None) -> None:
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
        for sock in act.admin:
            if admin is None:
                log.warning("the activated admin socket is not served: no admin server")
                continue
            self.admin_entries.append((sock, partial(self._serve_admin, admin, str(sock.getsockname()))))

    def close(self) -> None:
        """Close every listening socket (again: a no-op)."""
        for sock, _ in self.entries + self.admin_entries:
            if sock.fileno() != -1:
                _close(sock)

    @staticmethod
    def _serve_tcp(service: Service, sock: socket.socket, peer: str) -> Awaitable[None]:
        with contextlib.suppress(OSError):  # the peer may already be gone: serving finds out
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return service.serve_stream(sock, transport="tcp", peer=peer, readonly_socket=False, accepted=True)

    @staticmethod
    async def _serve_tls(
        service: Service, ctx: object, allowed: list[str], sock: socket.socket, peer: str
    ) -> None:
        counted = True  # until serve_stream takes the accepted count over
        try:
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
                counted = False
                await service.serve_stream(
                    tls_stream, transport="tls", peer=peer, readonly_socket=False, accepted=True
                )
        finally:
            if counted:
                service.client_gone()

    @staticmethod
    def _serve_unix(
        service: Service, path: str, readonly: bool, sock: socket.socket, peer: str
    ) -> Awaitable[None]:
        return service.serve_stream(
            sock, transport="unix", peer=f"unix:{path}", readonly_socket=readonly, accepted=True
        )

    @staticmethod
    async def _serve_admin(service: Service, path: str, sock: socket.socket, peer: str) -> None:
        try:
            uid = peer_uid(sock)
        except BaseException:
            _close(sock)
            service.client_gone()
            raise
        if uid is not None and uid != os.geteuid():
            # libvirtd's remoteAdmClientNew: only the daemon's own user may administer it.
            log.warning("admin socket: disallowing a client with uid %d", uid)
            _close(sock)
            service.client_gone()
            return
        # serve_stream gives the accepted count back (the connection may park and outlive this call).
        await service.serve_stream(
            sock, transport="unix", peer=f"unix:{path}", readonly_socket=False, accepted=True
        )

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
            connections.start_soon(handler, sock, _peer(family, address))


async def _force_on_second_signal(signals: AsyncIterator[int], services: list[Service]) -> None:
    """While clients finish their calls, a (second) signal drops them at once."""
    async with trio.open_nursery() as nursery:

        async def until_idle() -> None:
            for service in services:
                await service.all_closed.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(until_idle)
        async for signum in signals:
            count = sum(len(service.connections) for service in services)
            log.warning("%s again: dropping %d clients now", signal.Signals(signum).name, count)
            for service in services:
                service.abort_all("server shutting down")
            break


def make_daemon(
    config: ServerConfig, driver: Driver, log_settings: LogSettings | None = None
) -> tuple[Daemon, Service, Service | None]:
    """The daemon's servers: "libvirtd" for ``driver``, and "admin" when there is an admin socket."""
    if log_settings is None:
        level = config.log_level or DEFAULT_LOG_LEVEL
        log_settings = LogSettings(level, config.log_filters, config.log_outputs, install=False)
    daemon = Daemon(timeout=config.timeout, log=log_settings)
    service = Service(config, driver)
    daemon.add_server(service, ThreadPoolSettings(*LIBVIRTD_POOL))
    admin: Service | None = None
    if config.admin_socket is not None:
        # libvirtd's admin_* defaults: 5000 clients, none waiting for auth, 5 requests each.
        admin_config = ServerConfig(
            max_clients=5000,
            max_anonymous_clients=0,
            max_client_requests=5,
            keepalive_interval=config.keepalive_interval,
            keepalive_count=config.keepalive_count,
        )
        admin = Service(admin_config, Driver(), program=admin_program(daemon), name="admin")
        daemon.add_server(admin, ThreadPoolSettings(*ADMIN_POOL))
    return daemon, service, admin


async def _until_signal(signals: AsyncIterator[int], stop: trio.Event) -> None:
    async for signum in signals:
        log.info("%s: shutting down", signal.Signals(signum).name)
        stop.set()
        return


async def serve(
    config: ServerConfig,
    driver: Driver,
    *,
    on_ready: Callable[[Listeners], None] | None = None,
    on_stopping: Callable[[], object] | None = None,
    log_settings: LogSettings | None = None,
) -> None:
    """Run a server until SIGINT/SIGTERM, the idle timeout (or cancellation), then shut down cleanly.

    ``on_ready`` runs once every listener accepts, ``on_stopping`` when the shutdown
    starts (the CLI tells systemd READY=1 and STOPPING=1 there).
    """
    daemon, service, admin = make_daemon(config, driver, log_settings)
    listeners = Listeners()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            await listeners.open(config, service, admin)
        except OSError as exc:
            listeners.close()
            listeners.remove_socket_files()
            if exc.errno == errno.EADDRINUSE:
                raise SystemExit(f"virtwire serve: address already in use: {exc}") from None
            raise SystemExit(f"virtwire serve: cannot listen: {exc}") from None
        if listeners.tls_context is not None and listeners.tls_files is not None:
            daemon.tls = (listeners.tls_context, listeners.tls_files)
        servers = [service] if admin is None else [service, admin]
        metrics_server = _start_metrics(config, driver, servers, listeners)
        try:
            async with trio.open_nursery() as background:
                driver.nursery = background
                try:
                    async with trio.open_nursery() as connections:
                        # Idle clients park (server/parking.py): the parking task and the
                        # connections it wakes live in this nursery, as the others do.
                        parker = Parker(connections, servers) if parking_available() else None
                        if parker is not None:
                            connections.start_soon(parker.run)
                        async with trio.open_nursery() as accepting:
                            for listening, handler in listeners.entries:
                                accept = partial(accept_loop, listening, handler, connections, service)
                                accepting.start_soon(accept)
                            for listening, handler in listeners.admin_entries:
                                assert admin is not None
                                accept = partial(accept_loop, listening, handler, connections, admin)
                                accepting.start_soon(accept)
                            stop = trio.Event()
                            accepting.start_soon(_until_signal, signals, stop)
                            accepting.start_soon(daemon.run_idle_timer, stop.set)
                            if on_ready is not None:
                                on_ready(listeners)
                            await stop.wait()
                            if on_stopping is not None:
                                on_stopping()
                            accepting.cancel_scope.cancel()
                        listeners.close()
                        listeners.remove_socket_files()
                        for server in servers:
                            server.begin_shutdown()
                        if parker is not None:
                            parker.stop()
                        connections.start_soon(_force_on_second_signal, signals, servers)
                finally:
                    # Every client is gone: what the driver still runs has no one to report to.
                    background.cancel_scope.cancel()
                    driver.nursery = None
        finally:
            listeners.close()
            listeners.remove_socket_files()
            if metrics_server is not None:
                metrics_server.close()
    log.info("stopped")


def _start_metrics(
    config: ServerConfig, driver: Driver, servers: list[Service], listeners: Listeners
) -> MetricsServer | None:
    """``--metrics HOST:PORT``: count in every server and serve /metrics from a thread."""
    if config.metrics is None:
        return None
    metrics = Metrics()
    metrics.services = servers
    for server in servers:
        server.metrics = metrics
    driver.job_observer = metrics
    try:
        metrics_server = MetricsServer(metrics, config.metrics)
    except OSError as exc:
        listeners.close()
        listeners.remove_socket_files()
        raise SystemExit(f"virtwire serve: --metrics {config.metrics}: cannot listen: {exc}") from None
    host = config.metrics.host
    shown = f"[{host}]" if ":" in host else host
    listeners.metrics_url = f"http://{shown}:{metrics_server.port}/metrics"
    return metrics_server
