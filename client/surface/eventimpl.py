"""An application's own event loop (virEventRegisterImpl), as libvirtaio.py uses.

libvirt-python lets a program supply the six functions of an event loop;
libvirt then watches its sockets and runs its timers through them.  Here the
same: `ImplLoop` offers the interface the facade needs from an event loop
(add / discard / post / wake) on top of the registered functions, so event
callbacks run where the program's loop runs (asyncio with libvirtaio).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import select
import socket
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


class DefaultUserEvents:
    """virEventAddHandle / virEventAddTimeout on the default event loop.

    A watcher thread waits for the registered descriptors and timers and posts
    each due callback to the default loop, so it runs on the thread calling
    virEventRunDefaultImpl, as with libvirt's default implementation.  A
    handle or timer is not watched again until its callback has run (a
    readable descriptor stays readable until the callback reads it).
    """

    def __init__(self, loop: eventloop.EventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._handles: dict[int, _UserHandle] = {}
        self._timers: dict[int, _UserTimer] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None

    # -- the six functions ----------------------------------------------------------

    def add_handle(self, fd: int, events: int, cb: Callable[..., Any], opaque: Any) -> int:
        with self._lock:
            watch = next(self._ids)
            self._handles[watch] = _UserHandle(fd, events, cb, opaque)
        self._changed()
        return watch

    def update_handle(self, watch: int, events: int) -> None:
        with self._lock:
            handle = self._handles.get(watch)
            if handle is not None:
                handle.events = events
        self._changed()

    def remove_handle(self, watch: int) -> int:
        with self._lock:
            gone = self._handles.pop(watch, None)
        self._changed()
        return -1 if gone is None else 0

    def add_timeout(self, timeout: int, cb: Callable[..., Any], opaque: Any) -> int:
        with self._lock:
            timer = next(self._ids)
            self._timers[timer] = _UserTimer(timeout, time.monotonic(), cb, opaque)
        self._changed()
        return timer

    def update_timeout(self, timer: int, timeout: int) -> None:
        with self._lock:
            entry = self._timers.get(timer)
            if entry is not None:
                entry.interval = timeout
                entry.since = time.monotonic()
        self._changed()

    def remove_timeout(self, timer: int) -> int:
        with self._lock:
            gone = self._timers.pop(timer, None)
        self._changed()
        return -1 if gone is None else 0

    # -- the watcher ------------------------------------------------------------------

    def _changed(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="virtwire-user-events", daemon=True)
            self._thread.start()
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\0")

    def _watch(self) -> None:
        while True:
            now = time.monotonic()
            readers: list[Any] = [self._wake_r]
            writers: list[int] = []
            wait: float | None = None
            with self._lock:
                handles = [(w, h) for w, h in self._handles.items() if not h.busy]
                timers = [(t, e) for t, e in self._timers.items() if not e.busy and e.interval >= 0]
            for _, h in handles:
                if h.events & (
                    c.VIR_EVENT_HANDLE_READABLE | c.VIR_EVENT_HANDLE_HANGUP | c.VIR_EVENT_HANDLE_ERROR
                ):
                    readers.append(h.fd)
                if h.events & c.VIR_EVENT_HANDLE_WRITABLE:
                    writers.append(h.fd)
            for _, e in timers:
                left = max(0.0, e.since + e.interval / 1000 - now)
                wait = left if wait is None else min(wait, left)
            try:
                readable, writable, _ = select.select(readers, writers, [], wait)
            except (OSError, ValueError):
                readable, writable = [], []  # a descriptor closed under us: look again
                time.sleep(0.01)
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    while self._wake_r.recv(4096):
                        pass
            for watch, h in handles:
                revents = (c.VIR_EVENT_HANDLE_READABLE if h.fd in readable else 0) | (
                    c.VIR_EVENT_HANDLE_WRITABLE if h.fd in writable else 0
                )
                revents &= h.events | c.VIR_EVENT_HANDLE_READABLE
                if revents:
                    h.busy = True
                    self._loop.post(functools.partial(self._fire_handle, watch, h, revents))
            now = time.monotonic()
            for timer, e in timers:
                if e.since + e.interval / 1000 <= now:
                    e.busy = True
                    self._loop.post(functools.partial(self._fire_timer, timer, e))

    def _fire_handle(self, watch: int, h: _UserHandle, revents: int) -> None:
        try:
            if watch in self._handles:
                h.cb(watch, h.fd, revents, h.opaque)
        finally:
            h.busy = False
            self._changed()

    def _fire_timer(self, timer: int, e: _UserTimer) -> None:
        try:
            if timer in self._timers and e.interval >= 0:
                e.cb(timer, e.opaque)
        finally:
            e.since = time.monotonic()
            e.busy = False
            self._changed()


class _UserHandle:
    __slots__ = ("busy", "cb", "events", "fd", "opaque")

    def __init__(self, fd: int, events: int, cb: Callable[..., Any], opaque: Any) -> None:
        self.fd = fd
        self.events = events
        self.cb = cb
        self.opaque = opaque
        self.busy = False


class _UserTimer:
    __slots__ = ("busy", "cb", "interval", "opaque", "since")

    def __init__(self, interval: int, since: float, cb: Callable[..., Any], opaque: Any) -> None:
        self.interval = interval
        self.since = since
        self.cb = cb
        self.opaque = opaque
        self.busy = False


_default_user: DefaultUserEvents | None = None
_default_user_lock = threading.Lock()


def user_events() -> ImplLoop | DefaultUserEvents | None:
    """Where virEventAddHandle & co. go: the application's loop, else the default one."""
    global _default_user
    if _impl is not None:
        return _impl
    loop = eventloop.default()
    if loop is None:
        return None
    with _default_user_lock:
        if _default_user is None:
            _default_user = DefaultUserEvents(loop)
        return _default_user
