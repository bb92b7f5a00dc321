"""The default event loop of the sync API (virEventRegisterDefaultImpl /
virEventRunDefaultImpl): callbacks run on the thread that runs the loop.

One iteration waits (select) until a connection's socket is readable, a
keepalive timer is due, or another thread posted work; reads idle sockets,
runs keepalive clocks, then runs the posted callbacks. A thread that reads a
socket while waiting for its own reply posts the events it sees here instead
of running them itself, as libvirt does.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import select
import socket
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from virtwire.client.streamstate import StreamState
from virtwire.client.sync import SyncConnection
from virtwire.protocol.generated import constants as c


class StreamSource:
    """A stream's event callback: libvirt runs it from a timer that is armed while
    the stream is readable (data, end, error) and READABLE is asked for, or
    always when WRITABLE is asked for (virNetClientStreamEventTimerUpdate)."""

    def __init__(
        self,
        loop: EventLoop,
        conn: SyncConnection,
        state: StreamState,
        events: int,
        fire: Callable[[int], None],
    ) -> None:
        self.loop = loop
        self.conn = conn
        self.state = state
        self.events = events
        self.fire = fire

    def ready(self) -> int:
        """The events to report now (0: none)."""
        state = self.state
        out = 0
        if self.events & c.VIR_STREAM_EVENT_READABLE and (state.readable or state.closed is not None):
            out |= c.VIR_STREAM_EVENT_READABLE
        if self.events & c.VIR_STREAM_EVENT_WRITABLE:
            out |= c.VIR_STREAM_EVENT_WRITABLE
        return out

    def remove(self) -> None:
        self.loop.remove_stream(self)


class EventLoop:
    def __init__(self) -> None:
        self._conns: weakref.WeakSet[SyncConnection] = weakref.WeakSet()
        self._posted: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._streams: list[StreamSource] = []

    def add_stream(
        self, conn: SyncConnection, state: StreamState, events: int, fire: Callable[[int], None]
    ) -> StreamSource:
        source = StreamSource(self, conn, state, events, fire)
        with self._lock:
            self._streams.append(source)
        self.wake()
        return source

    def remove_stream(self, source: StreamSource) -> None:
        with self._lock:
            if source in self._streams:
                self._streams.remove(source)

    def add(self, conn: SyncConnection) -> None:
        with self._lock:
            self._conns.add(conn)
        self.wake()

    def discard(self, conn: SyncConnection) -> None:
        with self._lock:
            self._conns.discard(conn)
        self.wake()  # stop watching its socket before it is closed

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the loop's thread at its next iteration (any thread may post)."""
        self._posted.append(fn)
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already pending
            self._wake_w.send(b"\0")

    def run_once(self) -> None:
        with self._lock:
            conns = [cn for cn in self._conns if cn.alive]
        now = time.monotonic()
        timeout: float | None = None
        for cn in conns:
            ka = cn.keepalive
            if ka is not None:
                wait = max(0.0, ka.deadline() - now)
                timeout = wait if timeout is None else min(timeout, wait)
        watched = [cn for cn in conns if not cn.busy]
        with self._lock:
            streams = list(self._streams)
        if self._posted or any(cn.buffered() for cn in watched) or any(s.ready() for s in streams):
            timeout = 0.0
        fds: list[Any] = [self._wake_r, *watched]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError):
            readable = []  # a socket closed under us; the next iteration drops it
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while self._wake_r.recv(4096):
                    pass
        for cn in watched:
            if cn in readable or cn.buffered():
                cn.poll()
        now = time.monotonic()
        for cn in conns:
            cn.tick(now)
        for source in streams:
            got = source.ready()
            if got and source in self._streams:
                self._posted.append(functools.partial(source.fire, got))
        while self._posted:
            fn = self._posted.popleft()
            try:
                fn()
            except Exception:
                # As libvirt-python: a failing callback is reported, the loop goes on.
                traceback.print_exc()


_default: EventLoop | None = None
_default_lock = threading.Lock()


def register_default() -> EventLoop:
    global _default
    with _default_lock:
        if _default is None:
            _default = EventLoop()
        return _default


def default() -> EventLoop | None:
    return _default
