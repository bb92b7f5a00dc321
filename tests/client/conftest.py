"""A scriptable fake daemon for client tests that need to see or shape the wire.

`fake_daemon(handlers=..., features=...)` starts a thread that accepts TCP
connections on 127.0.0.1 and answers remote-program CALLs: AUTH_LIST (no auth),
CONNECT_OPEN, CONNECT_SUPPORTS_FEATURE (from `features`), CONNECT_CLOSE, and
whatever `handlers` maps a procedure number to. A handler gets the args
payload and returns the reply payload (bytes), raises `libvirtError` (sent as
REPLY+ERROR), or returns the string "hang" to never answer. Every packet received is
recorded in `daemon.calls` as (procedure, serial, payload). Keepalive PINGs are
answered unless `answer_pings=False`. `daemon.kill()` drops every connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from virtwire.protocol.errors import libvirtError, to_remote_error

HEADER = struct.Struct(">IIIiiIi")
REMOTE = 0x20008086
KEEPALIVE = 0x6B656570
HANG = "hang"
DEFER = "defer"  # a handler returning (DEFER, body) is answered by release_deferred()

Handler = Callable[[bytes], Any]


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


@dataclass
class FakeDaemon:
    handlers: dict[int, Handler]
    features: dict[int, int]
    answer_pings: bool = True
    calls: list[tuple[int, int, bytes]] = field(default_factory=list)
    keepalive_seen: list[int] = field(default_factory=list)
    port: int = 0
    _listener: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    call_arrived: threading.Event = field(default_factory=threading.Event)
    deferred: list[tuple[socket.socket, int, int, bytes]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"test+tcp://127.0.0.1:{self.port}/default"

    def procedures(self) -> list[int]:
        with self._lock:
            return [proc for proc, _, _ in self.calls]

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _reply(self, conn: socket.socket, proc: int, serial: int, status: int, body: bytes) -> None:
        conn.sendall(HEADER.pack(28 + len(body), REMOTE, 1, proc, 1, serial, status) + body)

    def send_message(self, proc: int, body: bytes, program: int = REMOTE) -> None:
        """Push a MESSAGE (an event, a PING) to every client."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sendall(
                    HEADER.pack(28 + len(body), program, 1, proc, 2, 1 if program == REMOTE else 0, 0) + body
                )

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                (length,) = struct.unpack(">I", _recv_exact(conn, 4))
                packet = _recv_exact(conn, length - 4)
                prog, _vers, proc, _mtype, serial, _status = struct.unpack(">IIiiIi", packet[:24])
                payload = packet[24:]
                if prog == KEEPALIVE:
                    self.keepalive_seen.append(proc)
                    if proc == 1 and self.answer_pings:
                        conn.sendall(HEADER.pack(28, KEEPALIVE, 1, 2, 2, 0, 0))
                    continue
                with self._lock:
                    self.calls.append((proc, serial, payload))
                self.call_arrived.set()
                self._answer(conn, proc, serial, payload)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, proc: int, serial: int, payload: bytes) -> None:
        handler = self.handlers.get(proc)
        if handler is None:
            if proc == 66:  # AUTH_LIST: [REMOTE_AUTH_NONE]
                return self._reply(conn, proc, serial, 0, struct.pack(">II", 1, 0))
            if proc == 60:  # SUPPORTS_FEATURE
                (feature,) = struct.unpack(">i", payload[:4])
                return self._reply(conn, proc, serial, 0, struct.pack(">i", self.features.get(feature, 0)))
            if proc in (360, 361):  # (UN)REGISTER_CLOSE_CALLBACK
                return self._reply(conn, proc, serial, 0, b"")
            if proc in (1, 2):  # OPEN, CLOSE
                self._reply(conn, proc, serial, 0, b"")
                if proc == 2:
                    conn.shutdown(socket.SHUT_RDWR)
                return None
            err = libvirtError(
                "", (39, 7, f"unknown procedure: {proc}", 2, "%s", f"unknown procedure: {proc}", None, -1, -1)
            )
            return self._reply(conn, proc, serial, 1, to_remote_error(err).to_bytes())
        try:
            body = handler(payload)
        except libvirtError as exc:
            return self._reply(conn, proc, serial, 1, to_remote_error(exc).to_bytes())
        if isinstance(body, str) and body == HANG:
            return None
        if isinstance(body, tuple) and body[0] == DEFER:
            with self._lock:
                self.deferred.append((conn, proc, serial, body[1]))
            return None
        return self._reply(conn, proc, serial, 0, body)

    def release_deferred(self, order: Callable[[list[Any]], list[Any]] = lambda d: d) -> None:
        """Send the replies handlers deferred, in the order `order` gives."""
        with self._lock:
            pending, self.deferred = list(self.deferred), []
        for conn, proc, serial, body in order(pending):
            self._reply(conn, proc, serial, 0, body)

    def kill(self) -> None:
        """Drop every connection and stop listening, as a crashed daemon would."""
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def fake_daemon() -> Iterator[Callable[..., FakeDaemon]]:
    started: list[FakeDaemon] = []

    def factory(
        handlers: dict[int, Handler] | None = None,
        features: dict[int, int] | None = None,
        answer_pings: bool = True,
    ) -> FakeDaemon:
        daemon = FakeDaemon(
            handlers or {}, features if features is not None else {10: 1, 14: 1, 15: 1}, answer_pings
        )
        daemon.start()
        started.append(daemon)
        return daemon

    yield factory
    for daemon in started:
        daemon.kill()
