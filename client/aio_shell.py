"""What the trio and asyncio shells share: calls, streams and event dispatch over the core.

A shell supplies its I/O: ``_roundtrip`` (send a call's packet, wait for its
reply) and ``_new_event`` (its library's Event); everything else about a call,
a stream or an event is the same whichever loop runs it, so it lives here once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from virtwire.client import aio_api, aio_handle, core, events, ops
from virtwire.client.aio_api import Domain, DomainEventRecord, ObjectEventRecord
from virtwire.client.stream_aio import AsyncStream
from virtwire.client.streamstate import StreamState
from virtwire.client.surface import objevents
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

RECV_SIZE = 65536
EVENT_BUFFER = 256  # events a subscription holds before it counts as too slow
# A stream whose reader lags this far behind pauses the connection's reader (TCP
# then holds the daemon back) until the stream is read, unless a call waits.
STREAM_RX_LIMIT = 4 * 1024 * 1024


class ShellEvent(Protocol):
    def set(self) -> None: ...

    async def wait(self) -> Any: ...


class Subscriber(Protocol):
    def deliver(self, record: Any) -> None: ...

    def close(self) -> None: ...


class AsyncShell(aio_api.AsyncAPI):
    """Calls, streams and events of an async connection; I/O left to the subclass."""

    protocol: core.ClientProtocol[Any]
    _stream_waiters: dict[int, Any]  # stream serial -> the shell's Event
    _reader_resume: Any  # the shell's Event while the reader waits for a lagging stream
    _subscribers: dict[tuple[str, int], Any]  # (family, callback ID) -> the shell's subscription

    def _new_event(self) -> ShellEvent:
        raise NotImplementedError

    async def _roundtrip(self, start: Any, op: ops.Op) -> core.Reply:
        raise NotImplementedError

    async def _send(self, packet: bytes) -> None:
        raise NotImplementedError

    async def _stream_close(self, state: StreamState, abort: bool) -> None:
        raise NotImplementedError

    def _new_subscription(self, buffer: int) -> Any:
        raise NotImplementedError

    async def _call_shielded(self, op: ops.Op) -> None:
        """Make a call that the caller's cancellation does not interrupt (errors ignored)."""
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

    @asynccontextmanager
    async def domain_events(
        self,
        event_id: int = c.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        domain: Domain | None = None,
        buffer: int = EVENT_BUFFER,
    ) -> AsyncIterator[Any]:
        """Subscribe to one event ID (optionally for one domain); iterate the events
        (DomainEventRecord: the ID, the Domain, libvirt-python's callback arguments).

        At most ``buffer`` events wait for the consumer. One that falls further
        behind is not allowed to stall every reply on the connection: its
        subscription ends, and iterating raises a libvirtError once the buffered
        events have been consumed (nothing is skipped silently).
        """
        aio_api.check_event_id(event_id)
        register = ops.event_register_any(event_id, None if domain is None else domain.ref)
        async with self._subscribe("DOMAIN", register, ops.event_deregister_any, buffer) as subscription:
            yield subscription

    @asynccontextmanager
    async def object_events(
        self, family: str, event_id: int, obj: Any = None, buffer: int = EVENT_BUFFER
    ) -> AsyncIterator[Any]:
        """As domain_events, for the events of networks, storage pools, node devices
        or secrets: `family` is "NETWORK", "STORAGE_POOL", "NODE_DEVICE" or "SECRET",
        `obj` optionally one such object; each event is an ObjectEventRecord."""
        fam = objevents.FAMILIES[family]
        objevents.check_event_id(fam, event_id)
        proc = ops.PROCS[f"CONNECT_{family}_EVENT_REGISTER_ANY"]
        codec: Callable[..., Any] | None = proc.args
        assert codec is not None
        args = codec(event_id, None if obj is None else obj._ref)
        register = ops.Op(proc, args, ops.int_field("callbackID"))
        dereg = ops.PROCS[f"CONNECT_{family}_EVENT_DEREGISTER_ANY"]
        dereg_args: Callable[..., Any] | None = dereg.args
        assert dereg_args is not None

        def deregister(callback_id: int) -> ops.Op:
            return ops.Op(dereg, dereg_args(callback_id))

        async with self._subscribe(family, register, deregister, buffer) as subscription:
            yield subscription

    @asynccontextmanager
    async def _subscribe(
        self, family: str, register: ops.Op, deregister: Callable[[int], ops.Op], buffer: int
    ) -> AsyncIterator[Any]:
        subscription: Subscriber = self._new_subscription(buffer)
        key = (family, int(await self.call(register)))
        self._subscribers[key] = subscription
        try:
            yield subscription
        finally:
            self._subscribers.pop(key, None)
            subscription.close()
            if self.protocol.dead is None:
                await self._call_shielded(deregister(key[1]))

    def _dispatch_event(self, msg: core.Event) -> None:
        try:
            decoded = events.decode(msg.procedure, msg.payload)
            other = None if decoded is not None else objevents.decode(msg.procedure, msg.payload)
        except (ValueError, libvirtError):
            return  # malformed: dropped, as libvirt's client does
        if decoded is not None:
            subscription: Subscriber | None = self._subscribers.get(("DOMAIN", decoded.callback_id))
            if subscription is not None:
                record = DomainEventRecord(decoded.event_id, Domain(self, decoded.dom), decoded.args)
                subscription.deliver(record)
        elif other is not None:
            subscription = self._subscribers.get((other.family.prefix, other.callback_id))
            if subscription is not None:
                obj = aio_handle.ASYNC_CLASSES[other.family.klass](self, other.obj)
                subscription.deliver(ObjectEventRecord(other.family.prefix, other.event_id, obj, other.args))
