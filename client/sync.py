"""The thread shell: many threads, one socket, no dedicated reader thread.

The protocol state is core.ClientProtocol; this module only moves bytes and
wakes threads. Like libvirt's own client (virnetclient.c), whichever thread is
waiting reads the socket ("buck passing"): a call registers itself, writes its
packet whole, then either becomes the reader or sleeps on its own wake-up lock.
The reader hands each reply to its waiter and wakes only that thread; once its
own reply is in, it passes the reader role to a thread still asleep. One
sequential call therefore costs a send and a recv (on unix sockets a poll,
then the recv) on the caller's own thread, with no thread hand-off at all.

A sleeping thread waits on a plain lock it holds (released by whoever wakes
it; one per thread, reused from sleep to sleep), not on a threading.Condition:
a Condition costs a new lock, a deque and several Python-level calls per wait,
the main price of a call under threads.

Streams wait the same way: a thread reading a stream sleeps (or reads the
socket) until the core reports the stream ready. On plain sockets a stream's
reader takes one packet at a time, header then payload, and a writer sends
header and data with one sendmsg: stream data is never copied in user space
(the kernel's copy is the only one). Events and keepalive PINGs
are handled by whoever reads: PINGs are answered at once, events go to
`on_event` (the event loop queues them for the thread that runs
virEventRunDefaultImpl).
"""

from __future__ import annotations

import _thread
import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from virtwire.client import cmdsocket, core, errfactory, fdpass, gilio, transport
from virtwire.client.streamstate import StreamState
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.framing import MAX_PACKET_SIZE, MIN_PACKET_SIZE
from virtwire.protocol.generated.constants import (
    VIR_CONNECT_CLOSE_REASON_EOF,
    VIR_CONNECT_CLOSE_REASON_ERROR,
    VIR_CONNECT_CLOSE_REASON_KEEPALIVE,
)

RECV_SIZE = 65536  # below glibc's mmap threshold: no mmap/munmap per read
# Stream reads take bigger bites: a download arrives in 256 KiB packets.
STREAM_RECV_SIZE = 1024 * 1024

_CLOSE_REASONS = {
    "eof": VIR_CONNECT_CLOSE_REASON_EOF,
    "error": VIR_CONNECT_CLOSE_REASON_ERROR,
    "keepalive": VIR_CONNECT_CLOSE_REASON_KEEPALIVE,
}
_new_lock = _thread.allocate_lock
# Each thread's wake-up lock, kept held between sleeps: a sleeping thread blocks
# acquiring it, whoever wakes it releases it, and the thread's acquire takes it
# back, ready for the next sleep; one lock per thread rather than one per sleep.
_thread_state = threading.local()
_monotonic = time.monotonic
_Reply = core.Reply
_ANCILLARY_SIZE = fdpass.ANCILLARY_SIZE
HEADER_SIZE = core.HEADER_SIZE
_thread_count = _thread._count  # threads other than the main one
_gil_send = gilio.send
_gil_recv = gilio.recv
_string_at = gilio.string_at
_SEND_FLAGS = gilio.SEND_FLAGS
_RECV_FLAGS = gilio.RECV_FLAGS


class _Waiter:
    """A call waiting for its reply.

    No __init__ and no __slots__: both attributes start as the class's None,
    so making one (once per call) runs no Python frame; only a waiter that
    gets a value stores one of its own.
    """

    # The reply, or the error the call ends with; one attribute, so that the
    # wait loop has one thing to check.
    outcome: core.Reply | libvirtError | None = None
    wake: _thread.LockType | None = None  # held while its thread sleeps


class _StreamWaiter:
    """A thread waiting for a stream to become readable."""

    __slots__ = ("stream", "wake")

    def __init__(self, stream: StreamState) -> None:
        self.stream = stream
        self.wake: _thread.LockType | None = None


EventSink = Callable[[core.Event], None]
CloseSink = Callable[[int], None]


class SyncConnection:
    """One socket to a daemon, safe to call from any number of threads."""

    def __init__(self, sock: transport.Socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._outbox: list[bytes] = []  # packets waiting for the thread that writes
        self.protocol: core.ClientProtocol[_Waiter] = core.ClientProtocol()
        # Asleep, in arrival order: a dict used as an ordered set, so that waking
        # one is O(1) (a list's remove() scanned every sleeper, 32 under 32 threads).
        self._sleepers: dict[_Waiter | _StreamWaiter, None] = {}
        self._reading = False
        self._closed = False
        self.on_event: EventSink | None = None
        self.on_close: CloseSink | None = None
        # A thread blocked in recv() on a unix socket is also woken each time the
        # daemon drains our request (the kernel's write-space wakeup shares the
        # socket's wait queue), which costs a second context switch per call.
        # poll() for POLLIN first, as libvirt's client does: poll wakes on input only.
        self._wait_input: Callable[[], object] | None = None
        # Plain sockets can read a large packet's rest straight into its buffer.
        self._recv_into: Callable[[memoryview], int] | None = (
            sock.recv_into if isinstance(sock, socket.socket) else None
        )
        # Plain sockets send, and read what is already there, keeping the GIL (gilio).
        self._gil_io = gilio.AVAILABLE and self._recv_into is not None
        # Made when first needed (64 KiB): only a connection several threads share uses it.
        self._recv_buffer: gilio.Buffer | None = None
        # A TLS socket (tls.TLSSocket, imported for TLS connections only) holds
        # decrypted bytes select() cannot see; plain sockets have no pending().
        self._tls_pending: Callable[[], int] | None = getattr(sock, "pending", None)
        if isinstance(sock, cmdsocket.CommandSocket):
            self.protocol.errout = sock.tunnel.stderr_text
        self.protocol.passes_fds = fdpass.carries_fds(sock)
        # Descriptors come only on a daemon's unix socket (a tunnel's socketpair,
        # ssh or ext, carries none: always a plain recv). Even there, a plain
        # recv() (cheaper than recvmsg by a tuple, an address and an ancillary
        # list per read) is used while no call in flight may be answered with
        # descriptors: a plain read would make the kernel close them. A call that
        # may (call_receiving_fds) counts itself in `_fd_calls` before it sends,
        # and first waits out a plain read in progress (`_plain_read`): the reader
        # sets that flag, then checks the count; the call raises the count, then
        # checks the flag (under the GIL one of the two sees the other), and
        # sleeps on `_plain_done`, which the reader releases once its recv()
        # returned. That recv() never waits long: it runs only after poll() saw input.
        self._fd_calls = 0
        self._plain_read = False
        self._plain_done: _thread.LockType | None = None
        self._fd_gate = threading.Lock()  # one descriptor call at a time sets up
        self._fd_socket = self.protocol.passes_fds
        if fdpass.is_unix(sock):
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            self._wait_input = poller.poll

    # -- public ---------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def buffered(self) -> bool:
        """Received bytes waiting inside TLS, invisible to select()."""
        return self._tls_pending is not None and self._tls_pending() > 0

    @property
    def alive(self) -> bool:
        return self.protocol.dead is None

    @property
    def busy(self) -> bool:
        """A thread is reading right now (the event loop then leaves it alone)."""
        return self._reading

    @property
    def keepalive(self) -> core.KeepAlive | None:
        return self.protocol.keepalive

    def call(self, procedure: int, payload: bytes) -> core.Reply:
        """Send one CALL and block until its reply (or the connection's death).

        When no thread is reading, the call takes the reader role along with
        its serial, before it sends: then it reads its reply without taking
        the lock again first (one lock round trip less per sequential call).
        """
        waiter = _Waiter()
        lock = self._lock
        lock.acquire()  # acquire/release rather than `with`: this runs once per call
        try:
            packet = self.protocol.start_call(procedure, payload, waiter)[1]
        except BaseException:
            lock.release()
            raise
        reader = not self._reading
        if reader:
            self._reading = True
        lock.release()
        if not reader:
            self._send(packet)
            return self._wait(waiter)
        try:
            self._send(packet)
        except BaseException:
            with lock:
                self._stop_reading()
            raise
        return self._read_reply(waiter)

    def _read_reply(self, waiter: _Waiter) -> core.Reply:
        """Read until ``waiter`` has its reply (reader role held, lock not held).

        Other threads' replies met on the way wake their owners; once its own
        is in, the role passes to a thread still asleep (_stop_reading).
        """
        lock = self._lock
        read = self._read_unlocked
        try:
            while True:
                read(True)  # returns with the lock held
                if waiter.outcome is not None:
                    break
                lock.release()
        except BaseException:
            # read() left the lock held on every way out.
            self._stop_reading()
            lock.release()
            raise
        # _stop_reading, written out: the role goes to a sleeper, if any.
        self._reading = False
        if self._sleepers:
            self._wake(next(iter(self._sleepers)))
        lock.release()
        outcome = waiter.outcome
        if type(outcome) is _Reply:
            return outcome
        assert isinstance(outcome, libvirtError)
        raise outcome

    def call_with_fds(self, procedure: int, payload: bytes, fds: list[int]) -> core.Reply:
        """A call whose file descriptors follow its packet (SCM_RIGHTS, one per
        one-byte message, as libvirt's virSocketSendFD): a daemon's unix socket only."""
        if fds and not self.protocol.passes_fds:
            # libvirt writes the packet, fails on the first descriptor and drops
            # the connection; the packet is not even sent here, the rest is the same.
            self.shutdown()
            raise errfactory.fds_unsupported()
        waiter = _Waiter()
        with self._lock:
            _, packet = self.protocol.start_call_with_fds(procedure, payload, len(fds), waiter)
        self._send(packet, fds)
        return self._wait(waiter)

    def call_receiving_fds(self, procedure: int, payload: bytes) -> core.Reply:
        """A call whose reply may pass descriptors (REPLY_WITH_FDS): they are the
        reply's `fds`, the caller's to close.  Any socket: on one that cannot carry
        them the core fails the connection as libvirt does."""
        if not self._fd_socket:
            return self.call(procedure, payload)
        counted = False
        try:
            with self._fd_gate:
                with self._lock:
                    self._fd_calls += 1
                counted = True
                self._await_plain_read()
            reply = self.call(procedure, payload)
        except libvirtError:
            # The call is over (refused, or the connection died): no reply will come.
            if counted:
                with self._lock:
                    self._fd_calls -= 1
            raise
        except BaseException:
            # Interrupted: its reply (and descriptors) may still come, so the
            # count stays up and the socket keeps being read with recvmsg.
            raise
        with self._lock:
            self._fd_calls -= 1
        return reply

    def _await_plain_read(self) -> None:
        """Wait until no plain recv() is in progress (`_fd_calls` already counts
        the caller: the next read uses recvmsg)."""
        if not self._plain_read:
            return
        done = _new_lock()
        done.acquire()
        self._plain_done = done
        if self._plain_read:
            done.acquire()  # released by _plain_read_over
        else:
            # The read ended before it could see `done`; a later one releases it, harmlessly.
            self._plain_done = None

    def _plain_read_over(self) -> None:
        self._plain_read = False
        done = self._plain_done
        if done is not None:
            self._plain_done = None
            done.release()

    def call_many(self, calls: list[tuple[int, bytes]]) -> list[core.Reply | libvirtError]:
        """Send several CALLs back to back, then wait for all their replies.

        Each entry is the reply or the libvirtError its call ended with.
        """
        waiters = [_Waiter() for _ in calls]
        with self._lock:
            start = self.protocol.start_call
            packets = [start(proc, payload, w)[1] for w, (proc, payload) in zip(waiters, calls, strict=True)]
        # One write per packet, as libvirt's client does: libvirtd over TLS reads
        # one RPC out of a TLS record and does not look for a second one in it.
        for packet in packets:
            self._send(packet)
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
        lock.acquire()
        held = True
        try:
            while waiter.outcome is None:
                if not self._reading:
                    self._reading = True
                    try:
                        read_once = self._read_once
                        while waiter.outcome is None:
                            read_once(True)
                    finally:
                        self._stop_reading()
                else:
                    held = self._sleep(waiter)
                    if not held:
                        break  # woken with the reply in hand: no need for the lock again
        finally:
            if held:
                lock.release()
        outcome = waiter.outcome
        if type(outcome) is _Reply:
            return outcome
        assert isinstance(outcome, libvirtError)
        raise outcome

    def _sleep(self, waiter: _Waiter | _StreamWaiter) -> bool:
        """Sleep until another thread wakes ``waiter`` (lock held on entry).

        Returns whether the lock is held again: a call woken because its reply
        (or error) came in returns without taking it, so that threads woken one
        after the other by the reader do not queue up on the lock it holds.
        """
        lock = self._lock
        try:
            wake = _thread_state.wake
        except AttributeError:
            wake = _thread_state.wake = _new_lock()
            wake.acquire()
        waiter.wake = wake
        self._sleepers[waiter] = None
        lock.release()
        try:
            wake.acquire()  # held again once woken: ready for this thread's next sleep
        except BaseException:
            lock.acquire()
            if waiter.wake is wake:  # not woken by _wake: still held, still reusable
                waiter.wake = None
                del self._sleepers[waiter]
            else:
                del _thread_state.wake  # released by _wake and not taken back
            raise
        if type(waiter) is _Waiter and waiter.outcome is not None:
            return False
        lock.acquire()
        return True

    def _wake(self, waiter: _Waiter | _StreamWaiter) -> None:
        wake = waiter.wake
        if wake is not None:
            waiter.wake = None
            del self._sleepers[waiter]
            wake.release()

    def poll(self) -> None:
        """Read what the socket has, if no other thread is reading (event loop use)."""
        with self._lock:
            if self._reading or self.protocol.dead is not None:
                return
            self._reading = True
            try:
                self._read_once(block=False)
            finally:
                self._stop_reading()

    def tick(self, now: float) -> None:
        """Run the keepalive clock when nobody is blocked reading (event loop use)."""
        if self._reading:
            return
        with self._lock:
            self._apply(self.protocol.tick(now))

    def set_keepalive(self, interval: float, count: int) -> None:
        with self._lock:
            self.protocol.set_keepalive(interval, count, time.monotonic())

    def shutdown(self) -> None:
        """Close the socket; waiting calls fail, later calls get "socket is closed"."""
        self._closed = True
        with self._lock:
            if self.protocol.dead is None:
                # Its Closed event shuts the socket down (_apply), as it did for a
                # connection that died earlier: no second shutdown() here.
                self._apply(self.protocol.fail_all(errfactory.socket_closed()))
        self._sock.close()

    # -- streams ----------------------------------------------------------

    def open_stream(self, procedure: int, payload: bytes, allow_skip: bool) -> tuple[StreamState, core.Reply]:
        """Make a call that opens a stream; its reply comes back with the stream."""
        waiter = _Waiter()
        with self._lock:
            stream, packet = self.protocol.start_stream(procedure, payload, waiter, allow_skip)
        self._send(packet)
        return stream, self._wait(waiter)

    def stream_send(self, stream: StreamState, data: bytes) -> None:
        with self._lock:
            header = stream.data_header(len(data))
        if self._recv_into is None:
            self._send(header + data)  # TLS, a tunnel: one buffer per write
        else:
            self._send_vectored(header, data)

    def _send_vectored(self, header: bytes, data: bytes) -> None:
        """_send(header + data) on a plain socket without joining them: one sendmsg.

        Only when nothing is queued and nobody is writing; else the joined packet
        takes _send's queue like any other."""
        lock = self._send_lock
        if self._outbox or not lock.acquire(False):
            self._send(header + data)
            return
        try:
            try:
                sock: socket.socket = self._sock  # type: ignore[assignment]
                sent = sock.sendmsg((header, data))
                if sent < len(header):  # cut short (a signal, a socket timeout): the rest
                    sock.sendall(header[sent:])
                    sent = len(header)
                if sent - len(header) < len(data):
                    sock.sendall(memoryview(data)[sent - len(header) :])
            finally:
                lock.release()
            # Packets other threads queued while this one wrote go out too (as in _send).
            outbox = self._outbox
            while outbox and lock.acquire(False):
                try:
                    self._write_queued()
                finally:
                    lock.release()
        except OSError as exc:
            raise self._write_failed(exc) from None
        except BaseException:
            self._write_interrupted()
            raise

    def stream_send_hole(self, stream: StreamState, length: int, flags: int) -> None:
        with self._lock:
            packet = stream.hole_packet(length, flags)
        self._send(packet)

    def stream_recv(self, stream: StreamState, nbytes: int, stop_at_hole: bool, block: bool) -> bytes | int:
        """Data, b"" at the end, AT_HOLE, or WOULD_BLOCK (-2) when not `block`ing."""
        with self._lock:
            while True:
                got = stream.recv(nbytes, stop_at_hole)
                if got is not None:
                    return got
                if not block:
                    if not self._reading and self.protocol.dead is None:
                        self._reading = True
                        try:
                            self._read_once(block=False)
                        finally:
                            self._stop_reading()
                        got = stream.recv(nbytes, stop_at_hole)
                    return -2 if got is None else got
                self._wait_stream(stream)

    def stream_recv_hole(self, stream: StreamState) -> int:
        with self._lock:
            while True:
                if stream.readable or not stream.allow_skip:
                    return stream.recv_hole()
                self._wait_stream(stream)

    def _wait_stream(self, stream: StreamState) -> None:
        """Block until the stream has something (lock held on entry and exit)."""
        if stream.readable:
            return
        if self._reading:
            self._sleep(_StreamWaiter(stream))  # always returns with the lock held
            return
        self._reading = True
        try:
            # Plain sockets read a packet at a time, header then payload, so that
            # the data lands in a bytes object of its own that is queued as it is.
            whole_packets = self._recv_into is not None
            protocol = self.protocol
            while not stream.readable:
                if whole_packets and protocol.packet_boundary():
                    self._read_packet()
                else:
                    self._read_once(block=True, size=STREAM_RECV_SIZE)
        finally:
            self._stop_reading()

    def _read_packet(self) -> None:
        """Read one whole packet as two reads, its header and its payload (plain
        sockets, at a packet boundary, reader role and lock held on entry and exit).

        The payload read asks for exactly the rest of the packet (MSG_WAITALL):
        a stream packet's data (up to 256 KiB) comes out of the kernel as the
        bytes object the stream queues and recvAll hands on, with no copy in
        between, where a read of whatever is there cuts it in pieces to be joined. Reading no
        further than the packet also leaves the descriptors a REPLY_WITH_FDS
        passes (on the bytes after it) to the recvmsg of _read_once. Under a
        keepalive clock each read waits for input through _ready, without
        MSG_WAITALL, so that a daemon gone quiet mid-packet is still noticed.
        """
        lock = self._lock
        protocol = self.protocol
        sock: socket.socket = self._sock  # type: ignore[assignment]
        timed = protocol.keepalive is not None
        flags = 0 if timed else socket.MSG_WAITALL
        header = b""
        parts: list[bytes] = []
        remaining = -1  # payload bytes still to read; -1: the header is not whole
        eof = False
        lock.release()
        try:
            if timed and not self._ready(True):
                lock.acquire()
                return  # the keepalive clock acted
            header = sock.recv(HEADER_SIZE, flags)
            eof = not header
            while 0 < len(header) < HEADER_SIZE:  # cut short (a signal, a socket timeout)
                if timed and not self._ready(True):
                    break
                more = sock.recv(HEADER_SIZE - len(header), flags)
                if not more:
                    eof = True
                    break
                header += more
            if len(header) == HEADER_SIZE:
                length = int.from_bytes(header[:4], "big")  # the length word
                if MIN_PACKET_SIZE <= length <= MAX_PACKET_SIZE:
                    remaining = length - HEADER_SIZE
                    while remaining:
                        if timed and not self._ready(True):
                            break
                        chunk = sock.recv(remaining, flags)
                        if not chunk:
                            eof = True  # the core reports it below
                            break
                        parts.append(chunk)
                        remaining -= len(chunk)
        except (libvirtError, OSError) as exc:  # libvirtError: a failed PING write (_ready)
            self._read_failed(exc)
            return
        except BaseException:
            # Interrupted (a signal handler's exception): what was read goes to
            # the core, which keeps a split packet's rest, so the stream stays in step.
            lock.acquire()
            if header:
                self._apply(protocol.receive_data(header + b"".join(parts), 0.0))
            raise
        lock.acquire()
        now = _monotonic() if timed else 0.0
        if remaining == 0:
            payload = parts[0] if len(parts) == 1 else b"".join(parts)
            self._apply(protocol.receive_packet(header, payload, now))
            return
        # Not a whole packet: end of file, a bad length word, a clock that acted.
        # The core takes the part read as any read (its splitter keeps the rest).
        if header:
            self._apply(protocol.receive_data(header + b"".join(parts), now))
        if eof and protocol.dead is None:
            self._apply(protocol.receive_data(b"", now))

    def stream_close(self, stream: StreamState, abort: bool) -> None:
        """Finish or abort, and wait for the daemon's confirmation."""
        waiter = _Waiter()
        with self._lock:
            try:
                packet = self.protocol.close_stream(stream, abort, waiter)
            except libvirtError:
                self.protocol.forget_stream(stream, "aborted")
                raise
        try:
            self._send(packet)
            core.check_status(self._wait(waiter))
        finally:
            with self._lock:
                self.protocol.forget_stream(stream, "aborted" if abort else "finished")

    # -- sending --------------------------------------------------------

    def _send(self, packet: bytes, fds: list[int] | None = None) -> None:
        """Write a whole packet (then its descriptors).

        Packets never interleave: one thread at a time writes, holding the send
        lock. A thread that finds it held does not wait for it: it queues its
        packet, and the writing thread sends it along before letting the lock
        go (on plain sockets several queued packets in one write). Under many
        threads that saves a lock hand-off and a system call per call.
        """
        outbox = self._outbox
        lock = self._send_lock
        try:
            if fds:
                with lock:
                    self._write_queued()  # what was queued before goes first
                    self._sock.sendall(packet)
                    sock: socket.socket = self._sock  # type: ignore[assignment]
                    for fd in fds:
                        socket.send_fds(sock, [b"\0"], [fd])
            elif not outbox and lock.acquire(False):
                # Nothing queued, nobody writing (the sequential case): write it now.
                try:
                    if self._gil_io and _thread_count() and type(packet) is bytes:
                        # _write, written out (once per call). Only with other threads
                        # about: with none, the GIL goes to nobody and ctypes costs more.
                        sent = _gil_send(self._sock.fileno(), packet, len(packet), _SEND_FLAGS)
                        if sent != len(packet):
                            self._write_rest(packet, sent)
                    else:
                        self._sock.sendall(packet)
                finally:
                    lock.release()
            else:
                outbox.append(packet)
            # Packets other threads queued while this one held the lock go out too.
            while outbox and lock.acquire(False):
                try:
                    if len(outbox) == 1:
                        # The usual case, written out: one packet, one write.
                        # pop(0), not pop(): a packet queued meanwhile stays behind the first.
                        self._write(outbox.pop(0))
                    if outbox:
                        self._write_queued()
                finally:
                    lock.release()
        except OSError as exc:
            raise self._write_failed(exc) from None
        except BaseException:
            self._write_interrupted()
            raise

    def _write_failed(self, exc: OSError) -> libvirtError:
        """A write failed: every waiting call fails; the error for the writer."""
        err = errfactory.system_errno("Cannot write data", exc)
        with self._lock:
            self._apply(self.protocol.fail_all(err, "error"))
        return err

    def _write_interrupted(self) -> None:
        """Interrupted (KeyboardInterrupt...) with part of a packet maybe written:
        the stream can no longer be trusted."""
        with self._lock:
            self._apply(self.protocol.fail_all(errfactory.socket_closed(), "error"))

    def _write(self, data: bytes) -> None:
        """sendall(), holding the GIL unless the socket is full (send lock held)."""
        if self._gil_io and type(data) is bytes:  # ctypes passes bytes as a pointer, nothing else
            sent = _gil_send(self._sock.fileno(), data, len(data), _SEND_FLAGS)
            if sent != len(data):
                self._write_rest(data, sent)
        else:
            self._sock.sendall(data)

    def _write_rest(self, data: bytes, sent: int) -> None:
        """What a GIL-holding send left: fails as sendall would, or goes out through sendall."""
        if sent < 0:
            error = gilio.failed()
            if error is not None:
                raise error
            sent = 0
        self._sock.sendall(data[sent:])

    def _write_queued(self) -> None:
        """Write the queued packets (send lock held)."""
        outbox = self._outbox
        while outbox:
            n = len(outbox)
            batch = outbox[:n]
            del outbox[:n]  # packets queued meanwhile stay for the next round
            if n == 1:
                self._write(batch[0])
            elif self._recv_into is not None:
                self._write(b"".join(batch))
            else:
                # TLS: one packet per write (libvirt's client writes them so).
                for data in batch:
                    self._sock.sendall(data)

    # -- reading (lock held on entry and exit) ---------------------------

    def _stop_reading(self) -> None:
        self._reading = False
        if self._sleepers:
            # Pass the reader role on to a thread that is asleep waiting.
            self._wake(next(iter(self._sleepers)))

    def _read_failed(self, exc: libvirtError | OSError) -> None:
        """A read failed, or _ready's PING write did (lock not held on entry, held
        on exit): every waiting call fails.  Only on the failure path, so the
        readers' normal path has no extra frame."""
        self._lock.acquire()
        if isinstance(exc, libvirtError):
            self._apply(self.protocol.fail_all(exc, "error"))
        else:
            self._apply(self.protocol.receive_failed(exc))

    def _read_once(self, block: bool, size: int = RECV_SIZE) -> None:
        self._lock.release()
        self._read_unlocked(block, size)

    def _read_unlocked(self, block: bool, size: int = RECV_SIZE) -> None:
        """One read and what it brings (reader role held; lock not held on entry,
        held on every way out)."""
        lock = self._lock
        protocol = self.protocol
        # The rest of a large packet (stream data) goes straight into its buffer.
        # Only a packet split across reads has a rest: without one (a call's
        # reply, one read) read_buffer is not even called. Only the reader feeds
        # the splitter, so its state needs no lock here.
        split = self._recv_into is not None and protocol._splitter._partial is not None
        try:
            view = protocol.read_buffer() if split else None
            # Other calls wait: their replies may already be in (a batch). Take
            # them without letting go of the GIL (gilio); only an empty socket waits.
            data: bytes | None = None
            if self._sleepers and self._gil_io and view is None:
                data = self._read_waiting(size)
            if data is None:
                if block and protocol.keepalive is None:
                    # _ready's first case, written out: it runs once per call.
                    wait_input = self._wait_input
                    if wait_input is not None:
                        wait_input()
                elif not self._ready(block):
                    lock.acquire()
                    return  # nothing yet (non-blocking), or the keepalive clock acted
                if view is not None:
                    assert self._recv_into is not None
                    n = self._recv_into(view)
                    lock.acquire()
                    self._apply(self.protocol.received_into(n, time.monotonic()))
                    return
                if self._fd_socket:
                    # See __init__: a plain recv() unless a call may get descriptors.
                    self._plain_read = True
                    if not self._fd_calls:
                        try:
                            data = self._sock.recv(size)
                        finally:
                            # _plain_read_over, written out (once per call).
                            self._plain_read = False
                            if self._plain_done is not None:
                                self._plain_read_over()
                    else:
                        self._plain_read_over()
                        # fdpass.recv written out: recvmsg, descriptors only when ancillary data came.
                        unix_sock: Any = self._sock
                        data, ancdata, _flags, _addr = unix_sock.recvmsg(size, _ANCILLARY_SIZE)
                        if ancdata:
                            fds = fdpass.fds_of(ancdata)
                            if fds:
                                lock.acquire()
                                self._apply(protocol.receive_data(data, _monotonic(), fds))
                                return
                else:
                    data = self._sock.recv(size)
        except (libvirtError, OSError) as exc:  # libvirtError: a failed PING write
            self._read_failed(exc)
            return
        except BaseException:
            # Interrupted while blocked (a signal handler's exception in the main
            # thread): the caller expects the lock held, as on every other way out.
            lock.acquire()
            raise
        lock.acquire()
        # The time only feeds the keepalive clock: without one, no clock read.
        events = protocol.receive_data(data, _monotonic() if protocol.keepalive is not None else 0.0)
        if len(events) == 1 and type(events[0]) is _Reply:
            # One reply (the usual read): _apply's first case, written out.
            reply = events[0]
            waiter: _Waiter = reply.waiter
            reply.waiter = None  # no reply <-> waiter cycle for the GC
            waiter.outcome = reply
            if waiter.wake is not None:
                self._wake(waiter)
        elif events:
            self._apply(events)

    def _read_waiting(self, size: int) -> bytes | None:
        """What the socket already holds (b"" at end of file), read keeping the
        GIL; None when it holds nothing (reader role held, lock not held).

        At most RECV_SIZE bytes, the size of the buffer the C call writes into,
        whatever `size` asks (a stream read asks for more)."""
        size = min(size, RECV_SIZE)
        buffer = self._recv_buffer
        if buffer is None:
            buffer = self._recv_buffer = gilio.buffer(RECV_SIZE)
        if self._fd_socket:
            # A plain read, under the descriptor calls' rule (see __init__).
            self._plain_read = True
            if self._fd_calls:
                self._plain_read_over()
                return None
            try:
                got = _gil_recv(self._sock.fileno(), buffer, size, _RECV_FLAGS)
            finally:
                self._plain_read_over()
        else:
            got = _gil_recv(self._sock.fileno(), buffer, size, _RECV_FLAGS)
        if got >= 0:
            return _string_at(buffer, got)
        error = gilio.failed()
        if error is not None:
            raise error
        return None

    def _apply(self, events: list[core.ProtocolEvent]) -> None:
        """Act on the core's events (lock held): wake waiters, then send and deliver unlocked."""
        later: list[core.ProtocolEvent] | None = None
        for ev in events:
            kind = type(ev)
            if kind is _Reply:
                w: _Waiter = ev.waiter  # type: ignore[union-attr]
                w.outcome = ev  # type: ignore[assignment]
                ev.waiter = None  # type: ignore[union-attr]  # no reply <-> waiter cycle for the GC
                if w.wake is not None:
                    self._wake(w)
            elif kind is core.StreamReady:
                stream = ev.stream  # type: ignore[union-attr]
                for sleeper in [s for s in self._sleepers if type(s) is _StreamWaiter and s.stream is stream]:
                    self._wake(sleeper)
            elif kind is core.Closed:
                closed: core.Closed = ev  # type: ignore[assignment]
                for w in closed.waiters:
                    w.outcome = closed.error
                    if w.wake is not None:
                        self._wake(w)
                for sleeper in [s for s in self._sleepers if type(s) is _StreamWaiter]:
                    self._wake(sleeper)
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                if later is None:
                    later = []
                later.append(ev)
            else:
                if later is None:
                    later = []
                later.append(ev)
        if later:
            self._lock.release()
            try:
                self._act(later)
            finally:
                self._lock.acquire()

    def _act(self, events: list[core.ProtocolEvent]) -> None:
        """The unlocked part: write PONGs and PINGs, deliver events, report a close."""
        for ev in events:
            if type(ev) is core.SendPacket:
                if self.protocol.dead is None:
                    with contextlib.suppress(libvirtError):
                        self._send(ev.data)
            elif type(ev) is core.Event:
                sink = self.on_event
                if sink is not None:
                    sink(ev)
            elif type(ev) is core.Closed:
                close_sink = self.on_close
                if close_sink is not None and not self._closed:
                    close_sink(_CLOSE_REASONS[ev.reason])

    def _ready(self, block: bool) -> bool:
        """Wait until a recv will find data (or EOF); False when there is none to
        wait for: not `block`ing, or the keepalive clock ran (lock not held)."""
        sock = self._sock
        protocol = self.protocol
        if protocol.keepalive is None and block:
            wait_input = self._wait_input
            if wait_input is not None:
                wait_input()
            return True  # tcp: recv itself blocks
        if self.buffered():
            return True
        if not block:
            ready, _, _ = select.select([sock], [], [], 0)
            return bool(ready)
        while True:
            timeout = max(0.0, protocol.deadline() - time.monotonic())
            ready, _, _ = select.select([sock], [], [], timeout)
            if ready:
                return True
            with self._lock:
                events = protocol.tick(time.monotonic())
                if any(type(ev) is core.Closed for ev in events):
                    self._apply(events)
                    return False
            for ev in events:
                if type(ev) is core.SendPacket:
                    self._send(ev.data)
            if protocol.keepalive is None or protocol.dead is not None:
                return False
