"""The asyncio shell: `async with await virtwire.client.asyncio.connect(uri) as conn:`.

The same API as the trio shell (aio_api.AsyncAPI: the same method names, the
same Domain handle, the same streams), over asyncio. The protocol state is
core.ClientProtocol; the I/O is callbacks, with no task of its own:

- reading: an `asyncio.Protocol` (`_Wire`) whose `data_received` feeds the
  core directly and resolves the calls' futures from the replies it returns
  (a unix socket is read with recvmsg by a reader callback instead, so that
  descriptors a REPLY_WITH_FDS passes arrive: fdpass.py);
- writing: `transport.write`, which takes a whole packet into its buffer at
  once, so a call cancelled while it waits never leaves half a packet on the
  wire (its late reply is dropped on arrival). While several calls are in
  flight, the packets of the tasks that run in one turn of the loop go out in
  one write (`_outbox`, flushed by one `call_soon`), as the trio shell batches
  them; except that after replies woke several calls, the first packet they
  make is written at once, so that the daemon works on it while the other
  woken tasks run (measured: 6% more calls/s with 8 and 32 tasks, and less
  daemon CPU per call, than holding it for the batch); backpressure comes from
  the transport's pause_writing/resume_writing,
  and a new packet waits while writing is paused;
- keepalive: a timer at the core's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from virtwire.client import (
    aio_api,
    aio_shell,
    cmdsocket,
    core,
    errfactory,
    fdpass,
    flows,
    ops,
    sasl_auth,
    transport,
)
from virtwire.client import tls as tlsmod
from virtwire.client import uri as urimod
from virtwire.client.aio_api import Domain, DomainEventRecord, drive
from virtwire.client.aio_shell import RECV_SIZE
from virtwire.client.streamstate import StreamState
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

__all__ = ["Connection", "Domain", "DomainEventRecord", "EventSubscription", "connect"]

# A reply's waiter is the calling task's future: the reply is its result.
Waiter = asyncio.Future[core.Reply]
# A packet larger than this is written at once rather than batched (batching
# saves system calls on small packets; a large one is its own write anyway).
BATCH_MAX = 65536


class EventSubscription:
    """The events of one registration, as an async iterator with a bounded buffer.

    As in the trio shell: a consumer that falls more than `buffer` events behind
    ends its subscription, and hears so as a libvirtError once it has drained
    the events it has.
    """

    def __init__(self, buffer: int) -> None:
        self._queue: deque[DomainEventRecord] = deque()
        self._buffer = buffer
        self._closed = False
        self._ready = asyncio.Event()
        self.lost = 0

    def deliver(self, record: DomainEventRecord) -> None:
        if self._closed:
            self.lost += 1
            return
        if len(self._queue) >= self._buffer:
            self.lost += 1
            self._closed = True
        else:
            self._queue.append(record)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> DomainEventRecord:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                if self.lost:
                    raise errfactory.rpc(
                        "event subscription overflowed: the consumer fell behind by more than"
                        f" {self._buffer} events"
                    )
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()


class _Wire(asyncio.Protocol):
    """The transport's protocol: what asyncio reports goes straight to the connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._conn._attach(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self._conn._received(data, None)

    def eof_received(self) -> bool:
        self._conn._received(b"", None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._lost(exc)

    def pause_writing(self) -> None:
        self._conn._pause_writing()

    def resume_writing(self) -> None:
        self._conn._resume_writing()


class _ReaderResume:
    """Set while reading is paused for a lagging stream: `set()` reads again.

    (AsyncShell calls `_reader_resume.set()` when a call starts and when the
    stream's reader caught up.)"""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def set(self) -> None:
        self._conn._resume_reading()


class _TlsConfirmation(asyncio.Protocol):
    """The first byte after the TLS handshake: libvirt's server says whether it accepted us."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.byte: asyncio.Future[bytes] = loop.create_future()
        self.rest = b""

    def data_received(self, data: bytes) -> None:
        if not self.byte.done():
            self.byte.set_result(data[:1])
            self.rest = data[1:]
        else:
            self.rest += data

    def eof_received(self) -> bool:
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.byte.done():
            self.byte.set_result(b"")


class Connection(aio_shell.AsyncShell):
    """A connection to a daemon; use `async with` to run it."""

    def __init__(self, target: urimod.Target, readonly: bool) -> None:
        self.target = target
        self.readonly = readonly
        self._loop = asyncio.get_running_loop()
        self.protocol: core.ClientProtocol[Waiter] = core.ClientProtocol()
        self._wire = _Wire(self)
        self._transport: asyncio.Transport | None = None
        self._lost_future: asyncio.Future[None] = self._loop.create_future()
        self._new_future = functools.partial(asyncio.Future, loop=self._loop)
        self._outbox: list[bytes] = []  # whole packets for the next flush (_write)
        self._flush_scheduled = False
        self._send_first = False
        self._held: list[bytes] | None = None  # packets waiting while descriptors go out
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._subscribers: dict[tuple[str, int], EventSubscription] = {}
        self._stream_waiters: dict[int, asyncio.Event] = {}
        self._reader_resume: _ReaderResume | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self.features = flows.Features(False, False, False)
        # asyncio's transport reads with plain recv, which would drop descriptors a
        # REPLY_WITH_FDS passes: a unix socket is read here instead, with recvmsg on
        # a duplicate of its descriptor (fdpass.py); the transport only writes.
        self._unix: socket.socket | None = None
        self._fds_in: list[int] = []

    def _attach(self, transport: asyncio.Transport) -> None:
        """The transport is connected (connection_made)."""
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            transport.pause_reading()
            self._unix = socket.socket(fileno=os.dup(sock.fileno()))
            self._unix.setblocking(False)
            self._loop.add_reader(self._unix.fileno(), self._read_unix)
        self.protocol.passes_fds = self._unix is not None and fdpass.carries_fds(self._unix)

    def _keep_transport_from_reading(self) -> None:
        """Once connected: the unix socket is ours to read. (uvloop starts its
        transport reading after connection_made, whatever that asked.)"""
        if self._unix is not None and self._transport is not None:
            self._transport.pause_reading()

    # -- running --------------------------------------------------------

    def _new_event(self) -> asyncio.Event:
        return asyncio.Event()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.close()
        finally:
            await self._shutdown()

    async def close(self) -> None:
        """CONNECT_CLOSE, then the socket is closed."""
        if self.protocol.dead is None:
            with contextlib.suppress(libvirtError):
                await self.call(ops.connect_close())
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._apply(self.protocol.fail_all(errfactory.socket_closed()))
        self._close_transport()
        with contextlib.suppress(OSError, ssl.SSLError):
            await asyncio.shield(self._lost_future)

    def _close_transport(self) -> None:
        """Close the transport, our unix reader and what it received, and stop the
        keepalive timer. The transport is aborted: the connection is over (closed
        after CONNECT_CLOSE's reply, or dead), and a peer that reads nothing more
        must not keep it open with bytes still to write."""
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        if self._outbox:
            self._flush()
        core.close_fds(self._fds_in)
        if self._unix is not None:
            self._loop.remove_reader(self._unix.fileno())
            self._unix.close()
            self._unix = None
        transport = self._transport
        if transport is None:
            if not self._lost_future.done():
                self._lost_future.set_result(None)
        elif not transport.is_closing():
            transport.abort()

    # -- calls ----------------------------------------------------------

    async def call(self, op: ops.Op) -> Any:
        """Run one Op (AsyncShell.call with _roundtrip and _send inlined: the
        path every call takes, one coroutine deep)."""
        if self.readonly:
            core.check_read_only(op.proc, op.flags, op.api)
        proc = op.proc
        protocol = self.protocol
        done: Waiter = self._new_future()
        serial, packet = protocol.start_call(proc.number, op.payload(), done)
        if self._reader_resume is not None:
            self._reader_resume.set()  # a reply is awaited: the reader must run
        try:
            if self._writable is not None:
                await self._wait_writable()
            self._write(packet)
            reply = await done
        except BaseException:
            protocol.discard(serial)  # a late reply to a cancelled call is dropped
            raise
        # (A reply that came, or a failure of the connection, took the serial out of
        # the pending calls already.)
        return op.convert(core.decode_reply(proc, reply))

    async def _roundtrip(self, start: Any, op: ops.Op) -> core.Reply:
        done: Waiter = self._new_future()
        serial, packet = start(op.proc.number, op.payload(), done)
        if self._reader_resume is not None:
            self._reader_resume.set()  # a reply is awaited: the reader must run
        try:
            await self._send(packet)
            return await done
        finally:
            self.protocol.discard(serial)  # a late reply to a cancelled call is dropped

    async def _send(self, packet: bytes) -> None:
        if type(packet) is core.FdPacket:
            await self._send_with_fds(packet)
            return
        if self._writable is not None:
            await self._wait_writable()
        self._write(packet)

    def _write(self, packet: bytes) -> None:
        """The whole packet into the transport's buffer, now or later in this turn of
        the loop: while other calls are in flight, the packets their tasks write in
        the same turn go out together (one system call instead of one each)."""
        protocol = self.protocol
        if protocol.dead is not None:
            raise errfactory.socket_closed()
        if self._held is not None:
            self._held.append(packet)  # after the descriptors another call is sending
        elif self._flush_scheduled:
            if self._send_first:
                # The first packet after a batch of replies goes out at once: the
                # daemon starts on it while the other woken tasks still run.
                self._send_first = False
                self._transport.write(packet)  # type: ignore[union-attr]
                return
            self._outbox.append(packet)
            if len(packet) > BATCH_MAX:
                # Now, so that the transport's high-water mark holds the next
                # writer back (pause_writing) instead of the outbox growing.
                self._flush()
        elif len(protocol.pending.waiters) > 1 and len(packet) <= BATCH_MAX:
            self._outbox.append(packet)
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(packet)  # type: ignore[union-attr]

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._send_first = False
        outbox = self._outbox
        if not outbox or self._held is not None:
            return  # nothing came, or the descriptors' sender takes it along
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        outbox.clear()
        self._transport.write(data)  # type: ignore[union-attr]

    async def _wait_writable(self) -> None:
        """Wait while the transport holds more than its high-water mark (backpressure).
        The packet is written after this returns: a cancelled wait wrote nothing."""
        while self._writable is not None:
            await asyncio.shield(self._writable)
        if self.protocol.dead is not None:
            raise errfactory.socket_closed()

    def _pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def _resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def passes_fds(self) -> bool:
        """Whether the socket can carry file descriptors (a daemon's unix socket)."""
        return self.protocol.passes_fds

    async def _send_with_fds(self, packet: core.FdPacket) -> None:
        """The packet, then each descriptor in a one-byte message (SCM_RIGHTS, as
        libvirt's virSocketSendFD), with no other packet in between: packets of
        other calls wait in `_held` until the descriptors are out."""
        while self._held is not None:  # another call is sending descriptors
            await asyncio.sleep(0)
        if self.protocol.dead is not None:
            raise errfactory.socket_closed()
        transport = self._transport
        assert transport is not None
        self._flush()
        self._held = []
        try:
            transport.write(bytes(packet))
            if transport.get_write_buffer_size():
                # Everything written first: with a high-water mark of 0 the
                # transport says when its buffer is empty (resume_writing).
                transport.set_write_buffer_limits(high=0)
                try:
                    while self._writable is not None and self.protocol.dead is None:
                        await asyncio.shield(self._writable)
                finally:
                    transport.set_write_buffer_limits()
            if self.protocol.dead is not None:
                raise errfactory.socket_closed()
            raw = transport.get_extra_info("socket")
            with socket.socket(fileno=os.dup(raw.fileno())) as sock:
                for fd in packet.fds:
                    socket.send_fds(sock, [b"\0"], [fd])
        except OSError:
            err = core.write_failed()
            self._apply(self.protocol.fail_all(err, "error"))
            raise err from None
        finally:
            held, self._held = self._held, None
            if held and self.protocol.dead is None:
                transport.write(b"".join(held))

    # -- reading --------------------------------------------------------

    def _received(self, data: bytes, fds: list[int] | None) -> None:
        """Bytes read (b"": end of file) in: the core's events acted on at once."""
        protocol = self.protocol
        evs = protocol.receive_data(data, self._loop.time(), fds)
        self._apply(evs)
        if evs and protocol.pending.waiters and not self._flush_scheduled:
            # Calls were woken while others are in flight: the packets of their next
            # calls go out in one write, in this same turn of the loop, right after
            # they have run (this flush is queued behind their wakeups).
            self._flush_scheduled = True
            self._send_first = True
            self._loop.call_soon(self._flush)
        if protocol.streams and self._reader_resume is None and self._stream_lags():
            self._pause_reading()

    def _read_unix(self) -> None:
        """The unix socket is readable: recvmsg, so that descriptors arrive too."""
        sock = self._unix
        if sock is None:
            return
        try:
            data, fds = fdpass.recv(sock, 4 * RECV_SIZE if self.protocol.streams else RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # A read error (a reset) is libvirt's "Cannot recv data"; the rest reads as end of file.
            if exc.errno is not None:
                self._apply(self.protocol.receive_failed(exc))
            data, fds = b"", []
        self._received(data, fds or None)

    def _lost(self, exc: Exception | None) -> None:
        """The transport is closed (by us, the peer, or an error)."""
        if self.protocol.dead is None:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                self._apply(self.protocol.fail_all(core.write_failed(), "error"))
            elif isinstance(exc, OSError) and exc.errno is not None:
                self._apply(self.protocol.receive_failed(exc))
            else:
                self._received(b"", None)
        self._close_transport()
        if not self._lost_future.done():
            self._lost_future.set_result(None)

    def _pause_reading(self) -> None:
        """A stream's reader lags far behind: stop reading (TCP then holds the daemon
        back) until it catches up or a call waits for a reply."""
        self._reader_resume = _ReaderResume(self)
        if self._unix is not None:
            self._loop.remove_reader(self._unix.fileno())
        elif self._transport is not None:
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reader_resume is None:
            return
        self._reader_resume = None
        if self._unix is not None:
            self._loop.add_reader(self._unix.fileno(), self._read_unix)
        elif self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _apply(self, evs: list[core.ProtocolEvent]) -> None:
        for ev in evs:
            kind = type(ev)
            if kind is core.Reply:
                fut: Waiter = ev.waiter  # type: ignore[union-attr]
                # The future holds the reply from here: no link back (future ->
                # reply -> future would be a cycle only the cyclic GC frees).
                ev.waiter = None  # type: ignore[union-attr]
                if not fut.done():
                    fut.set_result(ev)  # type: ignore[arg-type]
            elif kind is core.Event:
                self._dispatch_event(ev)  # type: ignore[arg-type]
            elif kind is core.SendPacket:
                with contextlib.suppress(libvirtError):
                    self._write(ev.data)  # type: ignore[union-attr]
            elif kind is core.StreamReady:
                waiting = self._stream_waiters.pop(ev.stream.serial, None)  # type: ignore[union-attr]
                if waiting is not None:
                    waiting.set()
            elif kind is core.Closed:
                self._closed(ev)  # type: ignore[arg-type]

    def _closed(self, closed: core.Closed) -> None:
        """The connection died: fail every waiter, end every subscription, close the socket."""
        for waiter in closed.waiters:
            if not waiter.done():
                waiter.set_exception(closed.error)
        for waiting in self._stream_waiters.values():
            waiting.set()
        self._stream_waiters.clear()
        for sub in self._subscribers.values():
            sub.close()
        self._subscribers.clear()
        self._resume_writing()
        self._reader_resume = None
        self._close_transport()

    # -- keepalive ------------------------------------------------------

    def set_keepalive(self, interval: float, count: int) -> None:
        """Send PINGs after `interval` s idle; declare the peer dead after `count` unanswered."""
        self.protocol.set_keepalive(interval, count, self._loop.time())
        self._arm_keepalive()

    def _arm_keepalive(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        deadline = self.protocol.deadline()
        if deadline != float("inf"):
            self._keepalive_timer = self._loop.call_at(deadline, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._keepalive_timer = None
        self._apply(self.protocol.tick(self._loop.time()))
        if self.protocol.dead is None:
            self._arm_keepalive()

    # -- streams ----------------------------------------------------------

    async def _stream_close(self, state: StreamState, abort: bool) -> None:
        protocol = self.protocol
        done: Waiter = self._loop.create_future()
        try:
            packet = protocol.close_stream(state, abort, done)
            if self._reader_resume is not None:
                self._reader_resume.set()  # the confirmation must be read
            await self._send(packet)
            reply = await done
        finally:
            protocol.discard(state.serial)
            protocol.forget_stream(state, "aborted" if abort else "finished")
        core.check_status(reply)

    # -- events ---------------------------------------------------------

    def _new_subscription(self, buffer: int) -> EventSubscription:
        return EventSubscription(buffer)

    async def _call_shielded(self, op: ops.Op) -> None:
        with contextlib.suppress(libvirtError):
            await asyncio.shield(self.call(op))


Errout = Callable[[], str] | None


async def _open(conn: Connection, target: urimod.Target) -> Errout:
    """Connect the socket as the thread shell connects (same errors), then hand it to
    asyncio with `conn`'s protocol; for a tunnel also the reader of its program's
    stderr (for error texts)."""
    loop = conn._loop
    if target.tunnel is not None:
        # asyncio closes the socket object it was given: this one stops the program too.
        tunnel = cmdsocket.spawn_socket(target.tunnel.argv)
        await loop.create_unix_connection(lambda: conn._wire, sock=tunnel)
        conn._keep_transport_from_reading()
        return tunnel.tunnel.stderr_text
    if target.transport is urimod.Transport.UNIX:
        sock = await asyncio.to_thread(transport.connect_unix, target.socket_path)
        await loop.create_unix_connection(lambda: conn._wire, sock=sock)
        conn._keep_transport_from_reading()
        return None
    ctx = None
    if target.transport is urimod.Transport.TLS:
        assert target.tls is not None
        ctx = tlsmod.tls_context(target, target.tls)  # before connecting, as libvirt
    sock = await asyncio.to_thread(transport.connect_tcp, target.host, target.port)
    if ctx is None:
        await loop.create_connection(lambda: conn._wire, sock=sock)
        return None
    confirmation = _TlsConfirmation(loop)
    try:
        tls, _ = await loop.create_connection(
            lambda: confirmation, sock=sock, ssl=ctx, server_hostname=target.host
        )
    except ssl.SSLError as exc:
        sock.close()
        raise tlsmod.tls_handshake_error(exc) from None
    except OSError:
        sock.close()
        raise errfactory.system("Cannot recv data: Connection reset by peer", 104) from None
    try:
        byte = await confirmation.byte
    except BaseException:
        tls.close()
        raise
    if byte != tlsmod.TLS_CONFIRMATION:
        tls.close()
        raise tlsmod.tls_confirmation_error(byte)
    tls.set_protocol(conn._wire)
    conn._wire.connection_made(tls)
    if confirmation.rest:
        conn._received(confirmation.rest, None)
    return None


async def connect(
    uri: str, readonly: bool = False, keepalive: bool = True, auth: Sequence[Any] | None = None
) -> Connection:
    """Connect and open `uri`; enter the result with `async with` to use it."""
    target = urimod.parse(uri, readonly=readonly)
    conn = Connection(target, readonly)
    conn.protocol.errout = await _open(conn, target)
    try:
        flags = c.VIR_CONNECT_RO if readonly else 0
        conn.features = await drive(
            flows.handshake(target.name, flags, keepalive, sasl_auth.request_for(target, auth)),
            {flows.SRC: aio_api.Unchecked(conn)},
        )
    except BaseException:
        conn._close_transport()
        raise
    return conn
