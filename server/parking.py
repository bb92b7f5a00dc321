"""Parking: idle connections without a trio task of their own.

A connection served by a task costs the task, its nursery, their cancel scopes
and the suspended coroutine frames: about 4.5 KiB, more than libvirtd needs for
the whole client.  Most clients of a daemon sit idle most of the time, so a
connection that has nothing in flight (no call running, nothing waiting to be
written, no open stream, no half-read packet) and has been silent for
``PARK_AFTER[0]`` seconds is parked: its task ends, and its socket is watched by
the one parking task of the server, through an epoll descriptor of its own
that trio waits on like any other.  When the socket becomes readable (a call,
a keepalive answer, EOF) the connection gets a task again in the server's
connections nursery and reads as before.

While parked, a connection still

* gets its events: ``deliver`` writes a packet straight to the socket when
  nothing else is waiting to be written (a parked connection has nothing
  waiting, so order is kept); a packet the socket does not take whole wakes
  the connection, whose writer sends the rest;
* is pinged: the parking task keeps one timer heap for the keepalive of every
  parked connection and runs the same keepalive step as the connection's own
  keepalive task (a ping is written the same way as an event);
* can be dropped, stopped or shut down: ``abort`` and ``stop_reading`` wake it,
  and its task ends it as usual.

Only plain sockets (TCP, unix) park: a TLS stream keeps decrypted bytes and
the TLS state machine in trio's SSLStream, whose waits cannot be interrupted
without breaking the stream, so TLS clients keep their task.

Which connections to park is decided by a sweep over the connections that
have a task, not by the connections themselves: a client in a tight call loop
never pays for more than a flag set and cleared around its wait, and one that
calls less often than ``PARK_AFTER`` pays one park and one wake-up (two
epoll_ctl calls and a task) per call.  That is well under a millisecond, but
a client that calls every fraction of a second would pay it on every call, so
a connection woken soon after it parked waits longer before it parks again
(the next step of ``PARK_AFTER``), and one that stayed parked long steps back.
The sweep runs when the first running connection could have been quiet long
enough (at most every ``SWEEP_MIN`` seconds), and not at all while every
connection is parked.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import select
from collections.abc import Iterable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .connection import Connection
    from .service import Service

log = logging.getLogger(__name__)

# A connection silent this long, with nothing in flight, is parked: the first step
# for every connection, a later one for a connection that keeps waking up soon.
PARK_AFTER = (0.1, 0.5, 2.5)
# Woken within this many times its step after its last packet: "soon" (one step up);
# parked longer than that: one step down.
_SOON = 10
# Sweeps are at least this far apart (they batch connections that went quiet together).
SWEEP_MIN = 0.02
# Events taken from the epoll descriptor per wake-up (more wait for the next round).
_MAX_EVENTS = 256
_READ_EVENTS = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP


def available() -> bool:
    """Whether this platform can park (it needs epoll)."""
    return hasattr(select, "epoll")


class Parker:
    """The parking task of one daemon, for the connections of its servers.

    ``run`` is the task (in the connections nursery); woken connections are
    served in ``nursery``, the same nursery.  ``stop`` ends it at shutdown.
    """

    def __init__(self, nursery: trio.Nursery, services: Iterable[Service]) -> None:
        self._nursery = nursery
        self._services = list(services)
        self._epoll = select.epoll()
        self._parked: dict[int, Connection] = {}  # by file descriptor
        # Keepalive deadlines of parked connections: (deadline, tie-breaker, connection).
        # Entries are not removed when a connection wakes; they are checked when due.
        self._keepalive: list[tuple[float, int, Connection]] = []
        self._order = itertools.count()
        self._wait: trio.CancelScope | None = None  # the parking task's current wait
        self._next_sweep = math.inf
        self._stopped = False
        self.parks = 0  # connections parked so far (tests and metrics)
        self.wakes = 0
        for service in self._services:
            service.parking = self

    def __len__(self) -> int:
        return len(self._parked)

    def is_parked(self, conn: Connection) -> bool:
        return self._parked.get(conn.fileno) is conn

    # --- what connections and services call ----------------------------------------------

    def park(self, conn: Connection) -> bool:
        """Take a connection whose task has just ended; False: it must be served again now."""
        if self._stopped or not conn.may_park():
            return False
        fd = conn.fileno
        try:
            self._epoll.register(fd, _READ_EVENTS)
        except OSError as exc:
            log.debug("client %s: cannot park (%s)", conn.ctx.conn_id, exc)
            return False
        self._parked[fd] = conn
        conn.parked = True
        self.parks += 1
        if conn.keepalive_deadline is not None and not conn.keepalive_queued:
            conn.keepalive_queued = True
            self._push_keepalive(conn.keepalive_deadline, conn)
        return True

    def wake(self, conn: Connection) -> None:
        """Give a parked connection its task again (it has something to do)."""
        fd = conn.fileno
        if self._parked.get(fd) is not conn:
            return
        del self._parked[fd]
        conn.parked = False
        self.wakes += 1
        step = conn.park_step
        quiet = trio.current_time() - conn.last_rx
        if quiet < _SOON * PARK_AFTER[step]:
            conn.park_step = min(step + 1, len(PARK_AFTER) - 1)
        elif step:
            conn.park_step = step - 1
        with contextlib.suppress(OSError):  # already closed: the connection finds out when it runs
            self._epoll.unregister(fd)
        self._nursery.start_soon(conn.service.resume, conn)
        self.connection_started()

    def connection_started(self) -> None:
        """A connection got a task: make sure a sweep will look at it."""
        due = trio.current_time() + PARK_AFTER[0]
        if due < self._next_sweep:
            self._next_sweep = due
            if self._wait is not None:
                self._wait.deadline = min(self._wait.deadline, due)

    def stop(self) -> None:
        """Shutdown: park nothing more and end the parking task (the parked were woken)."""
        self._stopped = True
        for conn in list(self._parked.values()):
            self.wake(conn)
        if self._wait is not None:
            self._wait.cancel()

    # --- the task --------------------------------------------------------------------------

    async def run(self) -> None:
        epfd = self._epoll.fileno()
        try:
            while not self._stopped:
                deadline = self._next_sweep
                if self._keepalive:
                    deadline = min(deadline, self._keepalive[0][0])
                self._wait = trio.CancelScope(deadline=deadline)
                with self._wait:
                    await trio.lowlevel.wait_readable(epfd)
                self._wait = None
                if self._stopped:
                    break
                self._wake_readable()
                now = trio.current_time()
                if now >= self._next_sweep:
                    self._next_sweep = self._sweep(now)
                self._run_keepalive(now)
        finally:
            self._stopped = True
            self._wait = None
            with trio.CancelScope(shield=True):
                await self._close_parked()
            self._epoll.close()

    def _wake_readable(self) -> None:
        try:
            ready = self._epoll.poll(0, _MAX_EVENTS)
        except InterruptedError:
            return
        for fd, _ in ready:
            conn = self._parked.get(fd)
            if conn is not None:
                self.wake(conn)

    def _sweep(self, now: float) -> float:
        """Ask the connections quiet for their PARK_AFTER step to park; return
        when to sweep next (never, when every connection is parked)."""
        following = math.inf
        for service in self._services:
            for conn in service.connections:
                if conn.parked:
                    continue
                due = conn.last_rx + PARK_AFTER[conn.park_step]
                if due > now:
                    following = min(following, due)
                    continue
                if not conn.request_park():
                    following = now + PARK_AFTER[0]  # busy (calls, writes, streams): look again later
        return max(following, now + SWEEP_MIN)

    def _push_keepalive(self, deadline: float, conn: Connection) -> None:
        heapq.heappush(self._keepalive, (deadline, next(self._order), conn))
        if self._wait is not None and deadline < self._wait.deadline:
            self._wait.deadline = deadline  # parked from another task while this one waits

    def _run_keepalive(self, now: float) -> None:
        heap = self._keepalive
        while heap and heap[0][0] <= now:
            deadline, _, conn = heapq.heappop(heap)
            conn.keepalive_queued = False
            if not conn.parked:
                continue  # its own keepalive task took over when it woke
            current = conn.keepalive_deadline
            if current is None:
                continue
            if current > deadline:
                conn.keepalive_queued = True
                self._push_keepalive(current, conn)
                continue
            following = conn.keepalive_step(now)
            if following is not None and conn.parked:
                conn.keepalive_queued = True
                self._push_keepalive(following, conn)

    async def _close_parked(self) -> None:
        """The parking task is ending (cancelled with the server): end what it holds."""
        parked = list(self._parked.values())
        self._parked.clear()
        self._keepalive.clear()
        for conn in parked:
            conn.parked = False
            with contextlib.suppress(OSError):
                self._epoll.unregister(conn.fileno)
            conn.abort("server shutting down")
            await conn.service.resume(conn, trim=False)
