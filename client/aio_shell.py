"""What the trio and asyncio shells share: calls, streams and event dispatch over the core.

A shell supplies its I/O: ``_roundtrip`` (send a call's packet, wait for its
reply) and ``_new_event`` (its library's Event); everything else about a call,
a stream or an event is the same whichever loop runs it, so it lives here once.
"""

from __future__ import annotations

from typing import Any, Protocol

from virtwire.client import aio_api, core, events, ops
from virtwire.client.aio_api import Domain, DomainEventRecord
from virtwire.client.stream_aio import AsyncStream
from virtwire.client.streamstate import StreamState
from virtwire.protocol.errors import libvirtError

RECV_SIZE = 65536
EVENT_BUFFER = 256  # events a subscription holds before it counts as too slow
# A stream whose reader lags this far behind pauses the connection's reader (TCP
# then holds the daemon back) until the stream is read, unless a call waits.
STREAM_RX_LIMIT = 4 * 1024 * 1024


class ShellEvent(Protocol):
    def set(self) -> None: ...

    async def wait(self) -> Any: ...


class Subscriber(Protocol):
    def deliver(self, record: DomainEventRecord) -> None: ...


class AsyncShell(aio_api.AsyncAPI):
    """Calls, streams and events of an async connection; I/O left to the subclass."""

    protocol: core.ClientProtocol[Any]
    _stream_waiters: dict[int, Any]  # stream serial -> the shell's Event
    _reader_resume: Any  # the shell's Event while the reader waits for a lagging stream
    _subscribers: dict[int, Any]  # callback ID -> the shell's subscription

    def _new_event(self) -> ShellEvent:
        raise NotImplementedError

    async def _roundtrip(self, start: Any, op: ops.Op) -> core.Reply:
        raise NotImplementedError

    async def _send(self, packet: bytes) -> None:
        raise NotImplementedError

    async def _stream_close(self, state: StreamState, abort: bool) -> None:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return self.protocol.dead is None

    async def call(self, op: ops.Op) -> Any:
        """Run one Op: read-only check, send, wait for the reply, convert."""
        if self.readonly:
            core.check_read_only(op.proc, op.flags, op.api)
        reply = await self._roundtrip(self.protocol.start_call, op)
        return op.convert(core.decode_reply(op.proc, reply))

    # -- streams ----------------------------------------------------------

    async def new_stream(self, op: ops.Op, sparse: bool = False) -> AsyncStream:
        """Make a call that opens a data stream (STORAGE_VOL_DOWNLOAD, ...); the stream,
        once the daemon accepted the call. `sparse`: holes travel as holes."""
        if self.readonly:
            core.check_read_only(op.proc, op.flags, op.api)
        holder: list[StreamState] = []

        def start(proc: int, payload: bytes, waiter: Any) -> tuple[int, bytes]:
            state, packet = self.protocol.start_stream(proc, payload, waiter, sparse)
            holder.append(state)
            return state.serial, packet

        reply = await self._roundtrip(start, op)
        result = op.convert(core.decode_reply(op.proc, reply))
        return AsyncStream(self, holder[0], result)

    async def _stream_wait(self, state: StreamState) -> None:
        if self.protocol.dead is not None and state.error is None:
            state.set_error(self.protocol.dead)
            return
        waiting = self._stream_waiters.get(state.serial)
        if waiting is None:
            waiting = self._stream_waiters[state.serial] = self._new_event()
        await waiting.wait()

    def _stream_lags(self) -> bool:
        """Hold the reader back: a stream's reader lags far behind and no call
        waits for a reply (a waiting call must never be starved by a stream)."""
        protocol = self.protocol
        if protocol.pending.waiters:
            return False
        return any(st.rx_bytes > STREAM_RX_LIMIT for st in protocol.streams.values())

    def _stream_consumed(self, state: StreamState) -> None:
        resume = self._reader_resume
        if resume is not None and state.rx_bytes <= STREAM_RX_LIMIT:
            resume.set()

    # -- events -----------------------------------------------------------

    def _dispatch_event(self, msg: core.Event) -> None:
        try:
            decoded = events.decode(msg.procedure, msg.payload)
        except (ValueError, libvirtError):
            return
        if decoded is None:
            return
        subscription: Subscriber | None = self._subscribers.get(decoded.callback_id)
        if subscription is not None:
            subscription.deliver(DomainEventRecord(decoded.event_id, Domain(self, decoded.dom), decoded.args))
