"""What all connections of one server share: settings, driver, event bus, routes."""

from __future__ import annotations

import itertools
import logging
import socket

import trio

from .config import ServerConfig
from .connection import Connection
from .dispatch import Route, build_routes
from .driver.base import Driver
from .events import EventBus
from .streamio import close_stream

log = logging.getLogger(__name__)


class Service:
    """The server minus its listeners: give it accepted streams with ``serve_stream``."""

    def __init__(self, config: ServerConfig, driver: Driver) -> None:
        self.config = config
        self.driver = driver
        self.bus = EventBus()
        driver.bind_events(self.bus)
        self.routes: dict[int, Route] = build_routes(driver)
        self.connections: set[Connection] = set()
        self._ids = itertools.count(1)
        self.shutting_down = False
        self.all_closed = trio.Event()  # set once shutting down and no client is left

    def next_connection_id(self) -> int:
        return next(self._ids)

    async def serve_stream(
        self, stream: trio.abc.Stream | socket.socket, *, transport: str, peer: str, readonly_socket: bool
    ) -> None:
        """Serve one accepted client until it goes away.

        ``stream``: a trio stream (TLS, tests), or a connected non-blocking socket.
        """
        if self.shutting_down:
            await close_stream(stream)
            return
        if len(self.connections) >= self.config.max_clients:
            log.warning(
                "too many active clients (%d), dropping connection from %s", len(self.connections), peer
            )
            await close_stream(stream)
            return
        conn = Connection(self, stream, transport=transport, peer=peer, readonly_socket=readonly_socket)
        self.connections.add(conn)
        try:
            await conn.run()
        except Exception:
            # A bug must cost one connection, never the server and its other clients.
            log.exception("client %s (%s): connection failed", conn.ctx.conn_id, peer)
        finally:
            self.connections.discard(conn)
            if self.shutting_down and not self.connections:
                self.all_closed.set()

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
