"""Server-side streams: the data of a call that opened one, as libvirtd moves it.

A driver method serving a stream procedure (STORAGE_VOL_UPLOAD, _DOWNLOAD,
DOMAIN_SCREENSHOT, ...) calls ``attach(endpoint)`` before it returns: a
``StreamSink`` takes what the client sends, a ``StreamSource`` gives what the
client reads.  The call's reply goes out first; then the stream runs with the
call's procedure and serial (libvirt's remote_daemon_stream.c):

* client → server: STREAM/CONTINUE packets carry data, STREAM_HOLE packets a
  hole (only on a sparse stream; otherwise libvirtd drops the client); an empty
  STREAM/OK finishes (answered by an empty STREAM/OK, or STREAM/ERROR when the
  sink fails), STREAM/ERROR aborts (answered by an empty STREAM/OK).
* server → client: STREAM/CONTINUE data packets of at most 262120 bytes (one
  legacy payload, as libvirtd sends), STREAM_HOLE for a hole of a sparse
  stream, an empty STREAM/CONTINUE at the end (the read EOF); the client's
  finish is answered as above.
* any failure of the endpoint is sent as STREAM/ERROR with the libvirt error
  and the stream is gone (later packets for it are ignored, as libvirtd does).

Flow control: each stream queues at most ``INCOMING_QUEUE`` packets from the
client; when its queue is full the connection's reader waits, so the socket
is not read (TCP backpressure), as libvirtd stops reading a client whose
stream cannot keep up.  Outgoing data is produced only as the connection gets
it written: the source is read again when the previous packet left.

A stream lives in its connection's nursery: when the connection ends, every
stream still open is aborted (``endpoint.abort()``) and nothing outlives it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio
from virtwire.protocol.errors import libvirtError, make_error, to_remote_error
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import (
    VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX,
    virNetMessageStatus,
    virNetMessageType,
    virNetStreamHole,
)

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IIIiiIi")  # length, program, version, procedure, type, serial, status
STREAM = int(virNetMessageType.VIR_NET_STREAM)
STREAM_HOLE = int(virNetMessageType.VIR_NET_STREAM_HOLE)
_OK = int(virNetMessageStatus.VIR_NET_OK)
_ERROR = int(virNetMessageStatus.VIR_NET_ERROR)
_CONTINUE = int(virNetMessageStatus.VIR_NET_CONTINUE)
CHUNK = VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX
INCOMING_QUEUE = 8


class StreamSink:
    """Where the data a client sends goes (an upload); drivers subclass it."""

    sparse = False  # holes allowed (STREAM_HOLE packets)

    async def write(self, data: memoryview) -> None:
        """Take ``data``; raise libvirtError to fail the stream."""
        raise NotImplementedError

    async def hole(self, length: int) -> None:
        """A hole of ``length`` bytes (only on a sparse stream)."""
        raise NotImplementedError

    async def finish(self) -> None:
        """The client finished; raise libvirtError when the result is unusable."""

    def abort(self) -> None:
        """The client aborted or went away: drop what is pending."""


class StreamSource:
    """Where the data a client reads comes from (a download, a screenshot); drivers subclass it."""

    sparse = False  # send holes as STREAM_HOLE packets

    async def section(self) -> tuple[bool, int]:
        """Sparse only: whether data comes next and how many bytes of it (or of the hole)."""
        return True, 0

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; b"" at the end."""
        raise NotImplementedError

    async def skip(self, length: int) -> None:
        """Move past a hole of ``length`` bytes that was sent as a STREAM_HOLE."""
        raise NotImplementedError

    async def finish(self) -> None:
        """The client finished reading."""

    def abort(self) -> None:
        """The client aborted or went away."""


Endpoint = StreamSink | StreamSource
_attached: contextvars.ContextVar[list[Endpoint] | None] = contextvars.ContextVar(
    "virtwire_stream_slot", default=None
)


def attach(endpoint: Endpoint) -> None:
    """Open a stream for the call being served (called by the driver method)."""
    slot = _attached.get()
    if slot is None:
        raise RuntimeError("attach() outside a call that may open a stream")
    slot.append(endpoint)


def _packet(procedure: int, serial: int, mtype: int, status: int, payload: bytes | memoryview = b"") -> bytes:
    header = _HEADER.pack(
        _HEADER.size + len(payload),
        R.REMOTE_PROGRAM,
        R.REMOTE_PROTOCOL_VERSION,
        procedure,
        mtype,
        serial,
        status,
    )
    return header + bytes(payload) if payload else header


def unexpected_hole() -> libvirtError:
    return make_error(C.VIR_ERR_RPC, C.VIR_FROM_RPC, "Unexpected stream hole")


@dataclass(eq=False)
class _Stream:
    procedure: int
    serial: int
    endpoint: Endpoint
    rx: trio.MemorySendChannel[tuple[int, int, memoryview]]
    rx_out: trio.MemoryReceiveChannel[tuple[int, int, memoryview]]
    closed: bool = False
    started: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class StreamHost(Protocol):
    """What a stream needs from its connection."""

    async def send_packet(self, packet: bytes) -> None:
        """Queue a packet; waits only when the connection's queue is full."""

    async def wait_written(self) -> None:
        """Until what was queued so far has been written to the socket."""

    def start_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` in the connection's nursery."""

    def drop(self, reason: str) -> None:
        """Abort the connection (libvirtd closes a client that breaks the stream protocol)."""


class _CallScope:
    """StreamTable.serving's context manager: a class rather than a @contextmanager
    generator, which costs several times more around every call the server answers."""

    __slots__ = ("_procedure", "_serial", "_slot", "_table", "_token")

    def __init__(self, table: StreamTable, procedure: int, serial: int) -> None:
        self._table = table
        self._procedure = procedure
        self._serial = serial

    def __enter__(self) -> None:
        slot: list[Endpoint] = []
        self._slot = slot
        self._token = _attached.set(slot)

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        _attached.reset(self._token)
        if self._slot:
            self._table._call_ended(self._procedure, self._serial, self._slot, exc_type is None)


class StreamTable:
    """The open streams of one connection, by (procedure, serial)."""

    __slots__ = ("_host", "_streams")  # one per connection, idle ones too: no instance dict

    def __init__(self, host: StreamHost) -> None:
        self._host = host
        self._streams: dict[tuple[int, int], _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def serving(self, procedure: int, serial: int) -> _CallScope:
        """Around one call: a stream the driver attaches is registered if the call succeeds."""
        return _CallScope(self, procedure, serial)

    def _call_ended(self, procedure: int, serial: int, slot: list[Endpoint], ok: bool) -> None:
        """A call ended: the first stream it attached (if it succeeded) is registered,
        any other aborted."""
        for index, endpoint in enumerate(slot):
            if ok and index == 0 and (procedure, serial) not in self._streams:
                tx, rx = trio.open_memory_channel[tuple[int, int, memoryview]](INCOMING_QUEUE)
                self._streams[(procedure, serial)] = _Stream(procedure, serial, endpoint, tx, rx)
            else:
                endpoint.abort()

    def reply_sent(self, procedure: int, serial: int) -> None:
        """The call's reply is queued: the stream it opened may run."""
        stream = self._streams.get((procedure, serial))
        if stream is None or stream.started:
            return
        stream.started = True
        self._host.start_task(lambda: self._run(stream))

    async def incoming(
        self, mtype: int, procedure: int, serial: int, status: int, payload: memoryview
    ) -> None:
        """A STREAM or STREAM_HOLE packet from the client; waits while the stream's queue is full."""
        stream = self._streams.get((procedure, serial))
        if stream is None or stream.closed:
            log.info("ignoring stream data for no open stream (proc %d serial %d)", procedure, serial)
            return
        # The stream may end while this packet waits for room: then it is dropped, as libvirtd does.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.rx.send((mtype, status, payload))  # a view of an immutable packet: no copy

    def close_all(self) -> None:
        """The connection is gone: abort every stream still open."""
        for stream in list(self._streams.values()):
            self._close(stream, abort=True)

    # --- one stream ---------------------------------------------------------------------

    def _close(self, stream: _Stream, *, abort: bool) -> None:
        """Forget the stream (later packets for it are ignored); ``abort`` its endpoint if still open."""
        if self._streams.get((stream.procedure, stream.serial)) is stream:
            del self._streams[(stream.procedure, stream.serial)]
        stream.rx_out.close()  # a reader waiting for room in the queue goes on
        if not stream.closed:
            stream.closed = True
            if abort:
                stream.endpoint.abort()

    async def _send(
        self, stream: _Stream, mtype: int, status: int, payload: bytes | memoryview = b""
    ) -> None:
        await self._host.send_packet(_packet(stream.procedure, stream.serial, mtype, status, payload))

    async def _fail(self, stream: _Stream, error: libvirtError) -> None:
        """Send the error as STREAM/ERROR; the stream is over."""
        self._close(stream, abort=True)
        await self._send(stream, STREAM, _ERROR, to_remote_error(error).to_bytes())
        stream.scope.cancel()

    async def _guarded(self, stream: _Stream, work: Callable[[_Stream], Awaitable[None]]) -> None:
        """Run one side of a stream; its failure goes to the client as STREAM/ERROR."""
        try:
            await work(stream)
        except libvirtError as exc:
            await self._fail(stream, exc)
        except Exception:
            log.exception("stream (proc %d serial %d) failed", stream.procedure, stream.serial)
            await self._fail(
                stream, make_error(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_STREAMS, "stream failed")
            )

    async def _run(self, stream: _Stream) -> None:
        try:
            with stream.scope:
                async with trio.open_nursery() as nursery:
                    if isinstance(stream.endpoint, StreamSource):
                        nursery.start_soon(self._guarded, stream, self._pump)
                    await self._guarded(stream, self._control)
                    nursery.cancel_scope.cancel()
        finally:
            self._close(stream, abort=True)

    async def _control(self, stream: _Stream) -> None:
        """Packets the client sends on the stream, in order."""
        endpoint = stream.endpoint
        async for mtype, status, payload in stream.rx_out:
            if mtype == STREAM_HOLE:
                if not endpoint.sparse or not isinstance(endpoint, StreamSink):
                    self._close(stream, abort=True)
                    self._host.drop(str(unexpected_hole()))
                    return
                hole = virNetStreamHole.from_bytes(payload)
                await endpoint.hole(hole.length)
            elif status == _CONTINUE:
                if isinstance(endpoint, StreamSink):
                    await endpoint.write(payload)
            elif status == _OK:
                await endpoint.finish()
                self._close(stream, abort=False)
                await self._send(stream, STREAM, _OK)
                return
            else:
                self._close(stream, abort=True)
                if status == _ERROR:
                    await self._send(stream, STREAM, _OK)
                else:
                    error = make_error(
                        C.VIR_ERR_RPC, C.VIR_FROM_RPC, f"stream aborted with unexpected status {status}"
                    )
                    await self._send(stream, STREAM, _ERROR, to_remote_error(error).to_bytes())
                return

    async def _pump(self, stream: _Stream) -> None:
        """Send what the source gives, a packet at a time, as the client takes it."""
        source = stream.endpoint
        assert isinstance(source, StreamSource)
        while True:
            if source.sparse:
                is_data, length = await source.section()
                if not is_data and length:
                    hole = virNetStreamHole(length=length, flags=0).to_bytes()
                    await self._send(stream, STREAM_HOLE, _CONTINUE, hole)
                    await source.skip(length)
                    await self._host.wait_written()
                    continue
                chunk = await source.read(min(CHUNK, length) if length else CHUNK)
            else:
                chunk = await source.read(CHUNK)
            if not chunk:
                await self._send(stream, STREAM, _CONTINUE)  # empty CONTINUE: end of data
                return
            await self._send(stream, STREAM, _CONTINUE, chunk)
            await self._host.wait_written()


class BytesSource(StreamSource):
    """A source of bytes held in memory (a screenshot image)."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)

    async def read(self, max_bytes: int) -> bytes:
        chunk = bytes(self._view[:max_bytes])
        self._view = self._view[max_bytes:]
        return chunk

    def abort(self) -> None:
        self._view = memoryview(b"")
