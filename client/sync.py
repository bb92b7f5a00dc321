"""The blocking connection: many threads, one socket, no dedicated reader thread.

Like libvirt's own client (virnetclient.c), whichever thread is waiting reads
the socket ("buck passing"): a call registers itself, writes its packet whole,
then either becomes the reader or sleeps on its own condition. The reader
hands each reply to its waiter and wakes only that thread; once its own reply
is in, it passes the reader role to a thread still waiting. One sequential
call therefore costs a send and a recv (on unix sockets a poll, then the recv)
on the caller's own thread, with no thread hand-off at all.

Events and keepalive PINGs are handled by whoever reads: PINGs are answered at
once, events are handed to `on_event` (the event loop queues them for the
thread that runs virEventRunDefaultImpl).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable

from virtwire.client import core, errfactory, transport
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated.constants import (
    VIR_CONNECT_CLOSE_REASON_EOF,
    VIR_CONNECT_CLOSE_REASON_ERROR,
    VIR_CONNECT_CLOSE_REASON_KEEPALIVE,
)

RECV_SIZE = 65536  # below glibc's mmap threshold: no mmap/munmap per read


class _Waiter:
    __slots__ = ("cond", "error", "reply")

    def __init__(self) -> None:
        self.reply: core.Reply | None = None
        self.error: libvirtError | None = None
        self.cond: threading.Condition | None = None  # made only if it must sleep


EventSink = Callable[[core.Event], None]
CloseSink = Callable[[int], None]


class SyncConnection:
    """One socket to a daemon, safe to call from any number of threads."""

    def __init__(self, sock: transport.Socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: core.Pending[_Waiter] = core.Pending()
        self._splitter = core.PacketSplitter()
        self._reading = False
        self._dead: libvirtError | None = None  # why the socket is gone
        self._closed = False
        self.keepalive: core.KeepAlive | None = None
        self.on_event: EventSink | None = None
        self.on_close: CloseSink | None = None
        # A thread blocked in recv() on a unix socket is also woken each time the
        # daemon drains our request (the kernel's write-space wakeup shares the
        # socket's wait queue), which costs a second context switch per call.
        # poll() for POLLIN first, as libvirt's client does: poll wakes on input only.
        self._wait_input: Callable[[], object] | None = None
        if getattr(sock, "family", None) == socket.AF_UNIX:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            self._wait_input = poller.poll

    # -- public ---------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def buffered(self) -> bool:
        """Received bytes waiting inside TLS, invisible to select()."""
        sock = self._sock
        return isinstance(sock, transport.TLSSocket) and sock.pending() > 0

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def busy(self) -> bool:
        """A thread is reading right now (the event loop then leaves it alone)."""
        return self._reading

    def call(self, procedure: int, payload: bytes) -> core.Reply:
        """Send one CALL and block until its reply (or the connection's death)."""
        waiter = _Waiter()
        with self._lock:
            if self._dead is not None:
                raise errfactory.socket_closed()
            serial = self._pending.add(waiter)
        self._send(core.call_packet(serial, procedure, payload))
        return self._wait(waiter)

    def call_many(self, calls: list[tuple[int, bytes]]) -> list[core.Reply | libvirtError]:
        """Send several CALLs back to back, then wait for all their replies.

        Each entry is the reply or the libvirtError its call ended with.
        """
        waiters = [_Waiter() for _ in calls]
        with self._lock:
            if self._dead is not None:
                raise errfactory.socket_closed()
            serials = [self._pending.add(w) for w in waiters]
        # One write per packet, as libvirt's client does: libvirtd over TLS reads
        # one RPC out of a TLS record and does not look for a second one in it.
        for serial, (procedure, payload) in zip(serials, calls, strict=True):
            self._send(core.call_packet(serial, procedure, payload))
        out: list[core.Reply | libvirtError] = []
        for waiter in waiters:
            try:
                out.append(self._wait(waiter))
            except libvirtError as exc:
                out.append(exc)
        return out

    def _wait(self, waiter: _Waiter) -> core.Reply:
        """Block until ``waiter`` has its reply: read the socket, or sleep while another thread does."""
        lock = self._lock
        with lock:
            while waiter.reply is None and waiter.error is None:
                if not self._reading:
                    self._reading = True
                    try:
                        while waiter.reply is None and waiter.error is None:
                            self._read_once(block=True)
                    finally:
                        self._stop_reading()
                else:
                    if waiter.cond is None:
                        waiter.cond = threading.Condition(lock)
                    waiter.cond.wait()
        reply = waiter.reply
        if reply is None:
            assert waiter.error is not None
            raise waiter.error
        return reply

    def poll(self) -> None:
        """Read what the socket has, if no other thread is reading (event loop use)."""
        with self._lock:
            if self._reading or self._dead is not None:
                return
            self._reading = True
            try:
                self._read_once(block=False)
            finally:
                self._stop_reading()

    def tick(self, now: float) -> None:
        """Run the keepalive clock when nobody is blocked reading (event loop use)."""
        ka = self.keepalive
        if ka is None or self._reading or self._dead is not None:
            return
        self._keepalive_action(ka.tick(now))

    def set_keepalive(self, interval: float, count: int) -> None:
        self.keepalive = core.KeepAlive(interval, count, time.monotonic()) if interval > 0 else None

    def shutdown(self) -> None:
        """Close the socket; waiting calls fail, later calls get "socket is closed"."""
        self._closed = True
        with self._lock:
            if self._dead is None:
                self._dead = errfactory.socket_closed()
            waiters = self._pending.drain()
            for w in waiters:
                w.error = errfactory.socket_closed()
                if w.cond is not None:
                    w.cond.notify()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    # -- sending --------------------------------------------------------

    def _send(self, packet: bytes) -> None:
        # One lock around the whole packet: packets never interleave.
        try:
            with self._send_lock:
                self._sock.sendall(packet)
        except OSError as exc:
            err = errfactory.system_errno("Cannot write data", exc)
            with self._lock:
                self._die(err, VIR_CONNECT_CLOSE_REASON_ERROR)
            raise err from None
        except BaseException:
            # Interrupted (KeyboardInterrupt...) with part of a packet maybe
            # written: the stream can no longer be trusted.
            with self._lock:
                self._die(errfactory.socket_closed(), VIR_CONNECT_CLOSE_REASON_ERROR)
            raise

    # -- reading (lock held on entry and exit) ---------------------------

    def _stop_reading(self) -> None:
        self._reading = False
        waiters = self._pending.waiters
        if waiters:
            # Pass the reader role on to a thread that is asleep waiting.
            for other in waiters.values():
                if other.cond is not None:
                    other.cond.notify()
                    break

    def _read_once(self, block: bool) -> None:
        lock = self._lock
        lock.release()
        events: list[core.Event] = []
        pongs = 0
        try:
            try:
                data = self._recv(block)
            except libvirtError as exc:
                lock.acquire()
                self._die(exc, VIR_CONNECT_CLOSE_REASON_KEEPALIVE)
                return
            except OSError as exc:
                lock.acquire()
                self._die(errfactory.system_errno("Cannot recv data", exc), VIR_CONNECT_CLOSE_REASON_ERROR)
                return
            if data is None:  # keepalive timer fired, nothing read
                lock.acquire()
                return
            if not data:
                lock.acquire()
                self._die(
                    errfactory.system("End of file while reading data: Input/output error", 5),
                    VIR_CONNECT_CLOSE_REASON_EOF,
                )
                return
            try:
                packets = self._splitter.feed(data)
            except libvirtError as exc:  # a length word over the limit
                lock.acquire()
                self._die(exc, VIR_CONNECT_CLOSE_REASON_ERROR)
                return
            ka = self.keepalive
            if ka is not None:
                ka.received(time.monotonic())
            lock.acquire()
            pending = self._pending
            for packet in packets:
                msg = core.classify(packet)
                if type(msg) is core.Reply:
                    w = pending.pop(msg.serial)
                    if w is not None:
                        w.reply = msg
                        if w.cond is not None:
                            w.cond.notify()
                elif type(msg) is core.Event:
                    events.append(msg)
                elif msg is core.PING:
                    pongs += 1
        finally:
            if pongs or events:
                lock.release()
                try:
                    if pongs and self._dead is None:
                        with contextlib.suppress(libvirtError):
                            self._send(core.PONG_PACKET)
                    sink = self.on_event
                    if sink is not None:
                        for ev in events:
                            sink(ev)
                finally:
                    lock.acquire()

    def _recv(self, block: bool) -> bytes | None:
        sock = self._sock
        ka = self.keepalive
        if ka is None and block:
            wait_input = self._wait_input
            if wait_input is not None:
                wait_input()
            return sock.recv(RECV_SIZE)
        if self.buffered():
            return sock.recv(RECV_SIZE)
        if not block:
            ready, _, _ = select.select([sock], [], [], 0)
            return sock.recv(RECV_SIZE) if ready else None
        assert ka is not None
        while True:
            now = time.monotonic()
            timeout = max(0.0, ka.deadline() - now)
            ready, _, _ = select.select([sock], [], [], timeout)
            if ready:
                return sock.recv(RECV_SIZE)
            action = ka.tick(time.monotonic())
            if action == "dead":
                raise errfactory.keepalive_timeout()
            if action == "ping":
                self._send(core.PING_PACKET)

    def _keepalive_action(self, action: str | None) -> None:
        if action == "ping":
            with contextlib.suppress(libvirtError):
                self._send(core.PING_PACKET)
        elif action == "dead":
            with self._lock:
                self._die(errfactory.keepalive_timeout(), VIR_CONNECT_CLOSE_REASON_KEEPALIVE)

    def _die(self, err: libvirtError, reason: int) -> None:
        """Fail every waiting call with `err` (lock held)."""
        if self._dead is not None:
            return
        self._dead = err
        for w in self._pending.drain():
            w.error = err
            if w.cond is not None:
                w.cond.notify()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        sink = self.on_close
        if sink is not None and not self._closed:
            sink(reason)
