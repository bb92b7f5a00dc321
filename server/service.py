"""What all connections of one server share: settings, driver, event bus, routes."""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from virtwire.protocol.generated import remote as R

from .access import list_bound
from .config import ServerConfig
from .connection import Connection
from .credentials import CredentialStore
from .dispatch import Program, Route, build_routes
from .driver.base import ConnectionContext, Driver
from .events import EventBus
from .features import ConnectionProcedures
from .memtrim import Trimmer
from .metrics import Metrics
from .streamio import close_stream

if TYPE_CHECKING:
    from .parking import Parker

log = logging.getLogger(__name__)

# The context of calls the server makes itself (an access-filtered count's listing).
_INTERNAL = ConnectionContext(conn_id=0, peer="virtwire", transport="internal")


class Service:
    """The server minus its listeners: give it accepted streams with ``serve_stream``."""

    def __init__(
        self, config: ServerConfig, driver: Driver, *, program: Program | None = None, name: str = "libvirtd"
    ) -> None:
        self.config = config
        self.driver = driver
        self.name = name  # the server's name for virt-admin ("libvirtd", "admin")
        self.bus = EventBus()
        driver.bind_events(self.bus)
        if program is None:
            routes = build_routes(driver)
            program = Program(R.REMOTE_PROGRAM, R.REMOTE_PROTOCOL_VERSION, routes, ConnectionProcedures)
        self.program = program
        self.routes: dict[int, Route] = program.routes
        # Called with the number of connections whenever a client comes or goes
        # (the daemon's idle timer listens).
        self.on_client_count: Callable[[], None] | None = None
        # Counters for ``--metrics`` (server/metrics.py); None: not counted.
        self.metrics: Metrics | None = None
        self.connections: set[Connection] = set()  # parked ones too
        # The daemon's parking task (server/parking.py); None: connections never park.
        self.parking: Parker | None = None
        self._ids = itertools.count(1)
        self.shutting_down = False
        self.all_closed = trio.Event()  # set once shutting down and no client is left
        # Accepted clients not yet gone, and those of them still in the TLS handshake
        # or not yet past SASL (libvirtd's nclients / nclients_unauth): the listeners accept only while
        # both are below their limits, so an extra client waits in the listen backlog.
        self.accepted = 0
        self.handshaking = 0
        self._room: trio.Event | None = None
        self._trimmer = Trimmer(trio.current_time)
        self.credentials = CredentialStore(config.sasl_users_file)

    async def list_for_access(self, name: str, num_args: Any) -> Any:
        """Run listing ``name`` unfiltered, as big as its list may be (an access-filtered count)."""
        proc = R.PROCEDURES_BY_NAME[name]
        route = self.routes[proc.number]
        assert proc.args is not None and proc.ret is not None and route.driver_handler is not None
        values = {name: getattr(num_args, name) for name in num_args.__match_args__} if num_args else {}
        for name in proc.args.__match_args__:
            values.setdefault(name, list_bound(proc))  # the max<X> argument
        return await route.driver_handler(proc.args(**values), _INTERNAL)

    def next_connection_id(self) -> int:
        return next(self._ids)

    # --- libvirtd's max_clients / max_anonymous_clients --------------------------------

    def may_accept(self) -> bool:
        cfg = self.config
        return self.accepted < cfg.max_clients and (
            not cfg.max_anonymous_clients or self.handshaking < cfg.max_anonymous_clients
        )

    async def wait_until_may_accept(self) -> None:
        """Wait while the client limits are reached (libvirtd suspends its services)."""
        while not self.may_accept():
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()

    def _limits_changed(self) -> None:
        if self._room is not None and self.may_accept():
            self._room.set()
            self._room = None

    def set_client_limits(self, max_clients: int, max_anonymous_clients: int) -> None:
        """virt-admin srv-clients-set: new limits apply to the next accept."""
        self.config.max_clients = max_clients
        self.config.max_anonymous_clients = max_anonymous_clients
        self._limits_changed()

    def client_accepted(self) -> None:
        self.accepted += 1

    def client_gone(self) -> None:
        self.accepted -= 1
        self._limits_changed()

    def handshake_started(self) -> None:
        self.handshaking += 1

    def handshake_done(self) -> None:
        self.handshaking -= 1
        self._limits_changed()

    async def serve_stream(
        self,
        stream: trio.abc.Stream | socket.socket,
        *,
        transport: str,
        peer: str,
        readonly_socket: bool,
        accepted: bool = False,
    ) -> None:
        """Serve one accepted client until it goes away.

        ``stream``: a trio stream (TLS, tests), or a connected non-blocking socket.
        ``accepted``: the accept loop counted it (``client_accepted``); it is
        uncounted here as soon as the client is gone (which, for a connection
        that parks, is after this returns: the connection keeps the count).
        """
        try:
            if self.shutting_down:
                await close_stream(stream)
                return
            if len(self.connections) >= self.config.max_clients:
                # Only for streams handed in directly: the listeners stop accepting first.
                log.warning(
                    "too many active clients (%d), dropping connection from %s", len(self.connections), peer
                )
                await close_stream(stream)
                return
            conn = Connection(self, stream, transport=transport, peer=peer, readonly_socket=readonly_socket)
            conn.counted = accepted
            accepted = False
        finally:
            if accepted:
                self.client_gone()
        self.connections.add(conn)
        if self.on_client_count is not None:
            self.on_client_count()
        if self.parking is not None:
            self.parking.connection_started()
        await self.resume(conn)

    async def resume(self, conn: Connection, *, trim: bool = True) -> None:
        """Serve a connection (again, when it was parked) until it ends or parks.

        ``trim``: once it has ended, this task may wait to give freed memory back
        (not when the parking task ends parked connections on its way out).
        """
        parked = False
        try:
            while True:
                try:
                    if not await conn.run():
                        break
                except Exception:
                    # A bug must cost one connection, never the server and its other clients.
                    log.exception("client %s (%s): connection failed", conn.ctx.conn_id, conn.ctx.peer)
                    break
                # Parked: the parking task holds it now, unless something came up
                # while its task was ending (then it is served again at once).
                if self.parking is not None and self.parking.park(conn):
                    parked = True
                    return
        finally:
            if not parked:
                await self._gone(conn, trim)

    async def _gone(self, conn: Connection, trim: bool) -> None:
        """A connection has ended: forget it, give back its count, trim the heap."""
        self.connections.discard(conn)
        counted = conn.counted
        del conn  # what it held is garbage now: the trim below can return it
        if counted:
            self.client_gone()
        if self.on_client_count is not None:
            self.on_client_count()
        if self.shutting_down and not self.connections:
            self.all_closed.set()
        delay = self._trimmer.connection_ended(idle=not self.connections) if trim else None
        if delay is not None:
            try:
                if not self.shutting_down:  # a server on its way out need not trim
                    await trio.sleep(delay)
            finally:
                self._trimmer.still_idle(idle=not self.connections and not self.shutting_down)

    def begin_shutdown(self) -> None:
        """Stop reading from every client; their calls in flight still finish."""
        self.shutting_down = True
        if not self.connections:
            self.all_closed.set()
        for conn in list(self.connections):
            conn.stop_reading()

    def abort_all(self, reason: str) -> None:
        """Drop every client now (a second SIGINT/SIGTERM during shutdown)."""
        for conn in list(self.connections):
            conn.abort(reason)
