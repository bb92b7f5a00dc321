"""An application's own event loop (virEventRegisterImpl), as libvirtaio.py uses.

libvirt-python lets a program supply the six functions of an event loop;
libvirt then watches its sockets and runs its timers through them.  Here the
same: `ImplLoop` offers the interface the facade needs from an event loop
(add / discard / post / wake) on top of the registered functions, so event
callbacks run where the program's loop runs (asyncio with libvirtaio).
"""

from __future__ import annotations

import collections
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from virtwire.client import eventloop
from virtwire.client.sync import SyncConnection
from virtwire.protocol.generated import constants as c

EventFuncs = tuple[
    Callable[..., Any],
    Callable[..., Any],
    Callable[..., Any],
    Callable[..., Any],
    Callable[..., Any],
    Callable[..., Any],
]
_TICK_MS = 1000  # how often keepalive clocks are looked at


class ImplLoop:
    """The facade's event-loop interface over an application's registered functions."""

    def __init__(self, funcs: EventFuncs) -> None:
        self.add_handle, self.update_handle, self.remove_handle = funcs[0], funcs[1], funcs[2]
        self.add_timeout, self.update_timeout, self.remove_timeout = funcs[3], funcs[4], funcs[5]
        self._posted: collections.deque[Callable[[], None]] = collections.deque()
        self._watches: dict[int, tuple[int, int]] = {}  # id(conn) -> (handle watch, tick timer)
        self._lock = threading.Lock()
        self._post_timer: int | None = None

    # libvirt's handle and timeout callbacks: (watch, fd, events, opaque) / (timer, opaque).

    def _on_readable(self, watch: int, fd: int, events: int, conn: SyncConnection) -> None:
        if conn.alive and not conn.busy:
            conn.poll()
        self._run_posted()

    def _on_tick(self, timer: int, conn: SyncConnection) -> None:
        if conn.alive:
            conn.tick(time.monotonic())

    def _on_posted(self, timer: int, opaque: Any) -> None:
        self.update_timeout(timer, -1)
        self._run_posted()

    def _run_posted(self) -> None:
        while self._posted:
            fn = self._posted.popleft()
            try:
                fn()
            except Exception:
                traceback.print_exc()  # as libvirt-python: reported, the loop goes on

    # The interface client/facade.py uses (as eventloop.EventLoop's).

    def add(self, conn: SyncConnection) -> None:
        with self._lock:
            if self._post_timer is None:
                self._post_timer = int(self.add_timeout(-1, self._on_posted, None))
        watch = int(self.add_handle(conn.fileno(), c.VIR_EVENT_HANDLE_READABLE, self._on_readable, conn))
        timer = int(self.add_timeout(_TICK_MS, self._on_tick, conn))
        self._watches[id(conn)] = (watch, timer)

    def discard(self, conn: SyncConnection) -> None:
        entry = self._watches.pop(id(conn), None)
        if entry is not None:
            self.remove_handle(entry[0])
            self.remove_timeout(entry[1])
        with self._lock:
            timer = self._post_timer if not self._watches else None
            if timer is not None:
                self._post_timer = None
        if timer is not None:
            # No connection left: give the loop back idle (libvirtaio's drain()
            # waits for every handle and timer to go), after the last callbacks.
            self.remove_timeout(timer)
            self._run_posted()

    def post(self, fn: Callable[[], None]) -> None:
        self._posted.append(fn)
        if self._post_timer is None:
            self._run_posted()  # no connection watched any more: nothing to wait for
        else:
            self.wake()

    def wake(self) -> None:
        if self._post_timer is not None:
            self.update_timeout(self._post_timer, 0)


_impl: ImplLoop | None = None


def register(funcs: EventFuncs) -> None:
    global _impl
    _impl = ImplLoop(funcs)


def registered() -> ImplLoop | None:
    return _impl


def current_loop() -> ImplLoop | eventloop.EventLoop | None:
    """The loop new connections use: the application's, else the default one (if any)."""
    return _impl if _impl is not None else eventloop.default()
