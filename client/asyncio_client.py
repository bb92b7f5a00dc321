"""The asyncio shell: `async with await virtwire.client.asyncio.connect(uri) as conn:`.

The same API as the trio shell (aio_api.AsyncAPI: the same method names, the
same Domain handle, the same streams), over asyncio. The protocol state is
core.ClientProtocol; a reader task feeds it and acts on its events, a
keepalive task runs its clock.

Writes go through asyncio's transport: `write()` takes a whole packet into
the transport's buffer at once, so a call cancelled while it waits (for
`drain()` or for its reply) never leaves half a packet behind; its late reply
is dropped on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, NoReturn

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
from virtwire.client import uri as urimod
from virtwire.client.aio_api import Domain, DomainEventRecord, drive
from virtwire.client.aio_shell import RECV_SIZE
from virtwire.client.streamstate import StreamState
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

__all__ = ["Connection", "Domain", "DomainEventRecord", "EventSubscription", "connect"]


class _Waiter:
    __slots__ = ("done",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[core.Reply] = loop.create_future()


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


class Connection(aio_shell.AsyncShell):
    """A connection to a daemon; use `async with` to run it."""

    def __init__(
        self,
        target: urimod.Target,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        readonly: bool,
    ) -> None:
        self.target = target
        self.readonly = readonly
        self._reader_stream = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self.protocol: core.ClientProtocol[_Waiter] = core.ClientProtocol()
        self._tasks: list[asyncio.Task[None]] = []
        self._held: list[bytes] | None = None  # packets waiting while descriptors go out
        self._subscribers: dict[tuple[str, int], EventSubscription] = {}
        self._keepalive_changed = asyncio.Event()
        self._stream_waiters: dict[int, asyncio.Event] = {}
        self._reader_resume: asyncio.Event | None = None
        self.features = flows.Features(False, False, False)
        # asyncio's transport reads with plain recv, which would drop descriptors a
        # REPLY_WITH_FDS passes: a unix socket is read here instead, with recvmsg on
        # a duplicate of its descriptor (fdpass.py); the transport only writes.
        sock = writer.transport.get_extra_info("socket")
        self._unix: socket.socket | None = None
        if sock is not None and sock.family == socket.AF_UNIX:
            writer.transport.pause_reading()  # type: ignore[attr-defined]
            self._unix = socket.socket(fileno=os.dup(sock.fileno()))
            self._unix.setblocking(False)
        self.protocol.passes_fds = self._unix is not None
        self._fds_in: list[int] = []

    # -- running --------------------------------------------------------

    def _new_event(self) -> asyncio.Event:
        return asyncio.Event()

    async def __aenter__(self) -> Connection:
        self._tasks = [
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._keepalive_task()),
        ]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.close()
        finally:
            await self._shutdown()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks = []
            self._close_unix()

    def _close_unix(self) -> None:
        """Close our duplicate of a unix socket (once its reader is gone) and what it received."""
        core.close_fds(self._fds_in)
        if self._unix is not None:
            self._unix.close()
            self._unix = None

    async def close(self) -> None:
        """CONNECT_CLOSE, then the socket is closed."""
        if self.protocol.dead is None:
            with contextlib.suppress(libvirtError):
                await self.call(ops.connect_close())
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._apply(self.protocol.fail_all(errfactory.socket_closed()))
        writer = self._writer
        if not writer.is_closing():
            writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
            await asyncio.shield(writer.wait_closed())

    # -- calls ----------------------------------------------------------

    async def call(self, op: ops.Op) -> Any:
        """Run one Op (AsyncShell.call with _roundtrip and _send inlined: the
        path every call takes, one coroutine deep)."""
        if not self._tasks:
            return await super().call(op)  # the handshake, read inline
        if self.readonly:
            core.check_read_only(op.proc, op.flags, op.api)
        proc = op.proc
        protocol = self.protocol
        done = self._loop.create_future()
        waiter = _Waiter.__new__(_Waiter)
        waiter.done = done
        serial, packet = protocol.start_call(proc.number, op.payload(), waiter)
        if self._reader_resume is not None:
            self._reader_resume.set()  # a reply is awaited: the reader must run
        try:
            if self._write(packet):
                await self._drain()
            reply = await done
        finally:
            protocol.discard(serial)  # a late reply to a cancelled call is dropped
        return op.convert(core.decode_reply(proc, reply))

    async def _roundtrip(self, start: Any, op: ops.Op) -> core.Reply:
        waiter = _Waiter(self._loop)
        serial, packet = start(op.proc.number, op.payload(), waiter)
        if self._reader_resume is not None:
            self._reader_resume.set()  # a reply is awaited: the reader must run
        try:
            await self._send(packet)
            if not self._tasks:
                await self._read_inline(waiter)  # before `async with`: handshake
            return await waiter.done
        finally:
            self.protocol.discard(serial)  # a late reply to a cancelled call is dropped

    async def _send(self, packet: bytes) -> None:
        if type(packet) is core.FdPacket:
            await self._send_with_fds(packet)
        elif self._write(packet):
            await self._drain()

    def passes_fds(self) -> bool:
        """Whether the socket can carry file descriptors (a unix socket)."""
        sock = self._writer.transport.get_extra_info("socket")
        return sock is not None and sock.family == socket.AF_UNIX

    async def _send_with_fds(self, packet: core.FdPacket) -> None:
        """The packet, then each descriptor in a one-byte message (SCM_RIGHTS, as
        libvirt's virSocketSendFD), with no other packet in between: packets of
        other calls wait in `_held` until the descriptors are out."""
        while self._held is not None:  # another call is sending descriptors
            await asyncio.sleep(0)
        self._held = []
        transport = self._writer.transport
        try:
            self._writer.write(bytes(packet))
            transport.set_write_buffer_limits(high=0)  # drain() waits until all is written
            try:
                await self._writer.drain()
            finally:
                transport.set_write_buffer_limits()
            raw = transport.get_extra_info("socket")
            with socket.socket(fileno=os.dup(raw.fileno())) as sock:
                for fd in packet.fds:
                    socket.send_fds(sock, [b"\0"], [fd])
        except (ConnectionError, OSError, RuntimeError) as exc:
            self._write_failed(exc)
        finally:
            held, self._held = self._held, None
            for other in held:
                self._writer.write(other)

    def _write(self, packet: bytes) -> bool:
        """The whole packet into the transport's buffer; whether to drain it now."""
        if self.protocol.dead is not None:
            raise errfactory.socket_closed()
        held = self._held
        if held is not None:
            held.append(packet)  # after the descriptors another call is sending
            return False
        writer = self._writer
        try:
            writer.write(packet)
        except (ConnectionError, OSError, RuntimeError) as exc:
            self._write_failed(exc)
        return writer.transport.get_write_buffer_size() > 65536

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError, RuntimeError) as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: BaseException) -> NoReturn:
        if isinstance(exc, RuntimeError) and not self._writer.is_closing():
            raise exc
        err = core.write_failed()
        self._apply(self.protocol.fail_all(err, "error"))
        raise err from None

    # -- reading --------------------------------------------------------

    async def _receive(self, size: int = RECV_SIZE) -> bytes:
        if self._unix is not None:
            return await self._receive_unix(self._unix, size)
        try:
            return await self._reader_stream.read(size)
        except ssl.SSLError:
            return b""
        except OSError as exc:
            # A read error (a reset) is libvirt's "Cannot recv data"; the rest reads as end of file.
            if exc.errno is not None:
                self._apply(self.protocol.receive_failed(exc))
            return b""

    async def _receive_unix(self, sock: socket.socket, size: int) -> bytes:
        """A read of the unix socket; descriptors that came wait in _fds_in."""
        while True:
            try:
                data, fds = fdpass.recv(sock, size)
            except BlockingIOError:
                await self._readable(sock.fileno())
                continue
            except OSError as exc:
                if exc.errno is not None:
                    self._apply(self.protocol.receive_failed(exc))
                return b""
            if fds:
                self._fds_in += fds
            return data

    async def _readable(self, fd: int) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_reader(fd)

    def _take_fds(self) -> list[int] | None:
        if not self._fds_in:
            return None
        fds, self._fds_in = self._fds_in, []
        return fds

    def _apply(self, evs: list[core.ProtocolEvent]) -> None:
        for ev in evs:
            kind = type(ev)
            if kind is core.Reply:
                fut = ev.waiter.done  # type: ignore[union-attr]
                if not fut.done():
                    fut.set_result(ev)
            elif kind is core.Event:
                self._dispatch_event(ev)  # type: ignore[arg-type]
            elif kind is core.SendPacket:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    self._writer.write(ev.data)  # type: ignore[union-attr]
            elif kind is core.StreamReady:
                waiting = self._stream_waiters.pop(ev.stream.serial, None)  # type: ignore[union-attr]
                if waiting is not None:
                    waiting.set()
            elif kind is core.Closed:
                closed: core.Closed = ev  # type: ignore[assignment]
                for waiter in closed.waiters:
                    if not waiter.done.done():
                        waiter.done.set_exception(closed.error)
                for waiting in self._stream_waiters.values():
                    waiting.set()
                self._stream_waiters.clear()
                for sub in self._subscribers.values():
                    sub.close()
                self._subscribers.clear()
                self._keepalive_changed.set()
                if self._reader_resume is not None:
                    self._reader_resume.set()

    async def _read_inline(self, waiter: _Waiter) -> None:
        while not waiter.done.done():
            data = await self._receive()
            self._apply(self.protocol.receive_data(data, self._loop.time(), self._take_fds()))

    async def _read_loop(self) -> None:
        protocol = self.protocol
        while protocol.dead is None:
            if self._stream_lags():
                self._reader_resume = asyncio.Event()
                await self._reader_resume.wait()
                self._reader_resume = None
                continue
            size = 4 * RECV_SIZE if protocol.streams else RECV_SIZE
            data = await self._receive(size)
            self._apply(protocol.receive_data(data, self._loop.time(), self._take_fds()))
        self._writer.close()

    # -- keepalive ------------------------------------------------------

    def set_keepalive(self, interval: float, count: int) -> None:
        """Send PINGs after `interval` s idle; declare the peer dead after `count` unanswered."""
        self.protocol.set_keepalive(interval, count, self._loop.time())
        self._keepalive_changed.set()

    async def _keepalive_task(self) -> None:
        protocol = self.protocol
        while protocol.dead is None:
            timeout = protocol.deadline() - self._loop.time()
            self._keepalive_changed.clear()
            try:
                await asyncio.wait_for(
                    self._keepalive_changed.wait(), None if timeout == float("inf") else max(0.0, timeout)
                )
                continue
            except TimeoutError:
                pass
            self._apply(protocol.tick(self._loop.time()))
        self._writer.close()

    # -- streams ----------------------------------------------------------

    async def _stream_close(self, state: StreamState, abort: bool) -> None:
        protocol = self.protocol
        waiter = _Waiter(self._loop)
        try:
            packet = protocol.close_stream(state, abort, waiter)
            if self._reader_resume is not None:
                self._reader_resume.set()  # the confirmation must be read
            await self._send(packet)
            reply = await waiter.done
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


async def _open(target: urimod.Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Errout]:
    """The socket, connected as the thread shell connects (same errors), then handed to asyncio;
    for a tunnel also the reader of its program's stderr (for error texts)."""
    if target.tunnel is not None:
        # asyncio closes the socket object it was given: this one stops the program too.
        sock = cmdsocket.spawn_socket(target.tunnel.argv)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return reader, writer, sock.tunnel.stderr_text
    reader, writer = await _open_socket(target)
    return reader, writer, None


async def _open_socket(target: urimod.Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if target.transport is urimod.Transport.UNIX:
        sock = await asyncio.to_thread(transport.connect_unix, target.socket_path)
        return await asyncio.open_unix_connection(sock=sock)
    ctx = None
    if target.transport is urimod.Transport.TLS:
        assert target.tls is not None
        ctx = transport.tls_context(target, target.tls)  # before connecting, as libvirt
    sock = await asyncio.to_thread(transport.connect_tcp, target.host, target.port)
    if ctx is None:
        return await asyncio.open_connection(sock=sock)
    try:
        reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=target.host)
    except ssl.SSLError as exc:
        sock.close()
        raise transport.tls_handshake_error(exc) from None
    except OSError:
        sock.close()
        raise errfactory.system("Cannot recv data: Connection reset by peer", 104) from None
    try:
        data = await reader.read(1)
    except (OSError, ssl.SSLError):
        data = b""
    if data != transport.TLS_CONFIRMATION:
        writer.close()
        raise transport.tls_confirmation_error(data)
    return reader, writer


async def connect(
    uri: str, readonly: bool = False, keepalive: bool = True, auth: Sequence[Any] | None = None
) -> Connection:
    """Connect and open `uri`; enter the result with `async with` to use it."""
    target = urimod.parse(uri, readonly=readonly)
    reader, writer, errout = await _open(target)
    conn = Connection(target, reader, writer, readonly)
    conn.protocol.errout = errout
    try:
        flags = c.VIR_CONNECT_RO if readonly else 0
        conn.features = await drive(
            flows.handshake(target.name, flags, keepalive, sasl_auth.request_for(target, auth)),
            {flows.SRC: aio_api.Unchecked(conn)},
        )
    except BaseException:
        conn._close_unix()
        writer.close()
        raise
    return conn
