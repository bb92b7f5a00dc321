"""Parallel migration links (VIR_MIGRATE_PARALLEL): page batches over N data connections.

As QEMU's multifd: the main connection carries the control records (HELLO,
ITERATION, COMPLETE, the destination's answers) and N data connections carry
the page batches, each its own TCP (or TLS) flow, each fed by its own task so
that N flows really move at once. A data connection opens with
CHANNEL(index, N); a batch may be compressed as one BLOCK (multifd zlib/zstd).

Batches of one pass may arrive in any order (each page is sent at most once
per pass), but never across passes, and never before the control records sent
before them: the data is cut into epochs.

    source                                   destination
    EPOCH e on main, then batches          batches of epoch e wait until main's EPOCH e
    FLUSH e on every data link and main,    main's FLUSH e waits until every data link
      then control records on main            delivered its FLUSH e (all its epoch-e data)

Pre-copy only: QEMU refuses post-copy with multifd, and so does libvirt's
migration with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import trio

from .migration_codec import BlockCodec
from .migration_link import MigrationLink, StreamLink
from .migration_ratelimit import TokenBucket
from .migration_stream import Kind, Record, StreamError, encode

_QUEUED_BATCHES = 4  # per data connection: enough to keep it busy, little to buffer
_LINK_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, StreamError)


@dataclass(eq=False)
class _Channel:
    stream: trio.abc.Stream
    cap: TokenBucket | None
    tx: trio.MemorySendChannel[bytes]
    rx: trio.MemoryReceiveChannel[bytes]
    sent: int = 0  # bytes this data connection carried


class ParallelSourceLink(MigrationLink):
    """The sending side: control on ``main``, batches round-robin over the data connections."""

    def __init__(
        self,
        main: StreamLink,
        streams: list[trio.abc.Stream],
        caps: list[TokenBucket | None],
        codec: BlockCodec | None,
    ) -> None:
        super().__init__()
        self.main = main
        self.codec = codec
        self._channels = []
        for stream, cap in zip(streams, caps, strict=True):
            tx, rx = trio.open_memory_channel[bytes](_QUEUED_BATCHES)
            self._channels.append(_Channel(stream, cap, tx, rx))
        self._next = 0
        self._epoch = 0
        self._data_open = False
        self._failure: BaseException | None = None

    @property
    def channel_sent(self) -> list[int]:
        """Bytes each data connection carried."""
        return [channel.sent for channel in self._channels]

    def start(self, nursery: trio.Nursery) -> None:
        for channel in self._channels:
            nursery.start_soon(self._pump, channel)

    async def _pump(self, channel: _Channel) -> None:
        try:
            async for data in channel.rx:
                if channel.cap is not None:
                    await channel.cap.consume(len(data))
                await channel.stream.send_all(data)
                channel.sent += len(data)
                self.sent += len(data)
        except _LINK_ERRORS as exc:
            self._failure = exc
            channel.rx.close()

    async def _to_channel(self, channel: _Channel, data: bytes) -> None:
        if self._failure is not None:
            raise trio.BrokenResourceError(f"parallel migration link failed: {self._failure}")
        await channel.tx.send(data)

    async def send(self, data: bytes) -> None:
        if self._data_open:
            flush = encode(Kind.FLUSH, self._epoch)
            for channel in self._channels:
                await self._to_channel(channel, flush)
            data = flush + data
            self._data_open = False
        await self.main.send(data)
        self.sent += len(data)

    async def send_pages(self, data: bytes) -> None:
        if not self._data_open:
            self._epoch += 1
            start = encode(Kind.EPOCH, self._epoch)
            await self.main.send(start)
            self.sent += len(start)
            self._data_open = True
        if self.codec is not None:
            data = self.codec.pack(data)
        channel = self._channels[self._next]
        self._next = (self._next + 1) % len(self._channels)
        await self._to_channel(channel, data)

    async def records(self) -> Iterator[Record] | None:
        return await self.main.records()

    async def aclose(self) -> None:
        for channel in self._channels:
            channel.tx.close()
            await channel.stream.aclose()
        await self.main.aclose()

    async def abort(self) -> None:
        for channel in self._channels:
            channel.tx.close()
            await trio.aclose_forcefully(channel.stream)
        await self.main.abort()


@dataclass(eq=False)
class _Sync:
    """Where the epochs are: released by main's EPOCH, flushed by each data link's FLUSH."""

    channels: int
    released: int = 0
    flushed: dict[int, int] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def flushed_by_all(self, epoch: int) -> None:
        while self.flushed.get(epoch, 0) < self.channels:
            await self._changed.wait()
        del self.flushed[epoch]

    async def released_up_to(self, epoch: int) -> None:
        while self.released < epoch:
            await self._changed.wait()


class ParallelDestinationLink(MigrationLink):
    """The receiving side: one ordered sequence of records from main and the data links."""

    def __init__(self, main: StreamLink, channels: list[StreamLink], codec: BlockCodec | None) -> None:
        super().__init__()
        self.main = main
        self.channels = channels
        self.codec = codec
        self._sync = _Sync(len(channels))
        self._tx, self._rx = trio.open_memory_channel[list[Record]](len(channels) * _QUEUED_BATCHES)
        self._failure: BaseException | None = None
        self._open_readers = len(channels) + 1

    def start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._guard, self._read_main)
        for channel in self.channels:
            nursery.start_soon(self._guard, self._read_channel, channel)

    async def _guard(self, read: Callable[..., object], *args: object) -> None:
        try:
            await read(*args)  # type: ignore[misc]
        except _LINK_ERRORS as exc:
            if self._failure is None:
                self._failure = exc
            self._tx.close()

    async def _read_main(self) -> None:
        sync = self._sync
        while True:
            records = await self.main.records()
            if records is None:
                self._tx.close()  # EOF on main: the engine decides what it means
                return
            batch: list[Record] = []
            for record in records:
                if record.kind is Kind.FLUSH:
                    await self._deliver(batch)
                    batch = []
                    await sync.flushed_by_all(record.a)
                elif record.kind is Kind.EPOCH:
                    await self._deliver(batch)
                    batch = []
                    sync.released = record.a
                    sync.notify()
                else:
                    batch.append(record)
            await self._deliver(batch)

    async def _read_channel(self, link: StreamLink) -> None:
        sync = self._sync
        epoch = 1
        first = True
        while True:
            records = await link.records()
            if records is None:
                raise trio.BrokenResourceError("a parallel migration connection closed")
            batch: list[Record] = []
            for record in records:
                if first and record.kind is Kind.CHANNEL:
                    first = False
                    continue
                if record.kind is Kind.FLUSH:
                    if record.a != epoch:
                        raise StreamError(f"parallel link flushed epoch {record.a}, expected {epoch}")
                    await self._deliver(batch)
                    batch = []
                    sync.flushed[epoch] = sync.flushed.get(epoch, 0) + 1
                    sync.notify()
                    epoch += 1
                elif record.kind in (Kind.PAGE, Kind.ZERO_RUN, Kind.BLOCK):
                    await sync.released_up_to(epoch)
                    if record.kind is Kind.BLOCK:
                        if self.codec is None:
                            raise StreamError("compressed block on a migration without compression")
                        batch.extend(self.codec.unpack(record))
                    else:
                        batch.append(record)
                else:
                    raise StreamError(f"unexpected record {record.kind.name} on a parallel data link")
            await self._deliver(batch)

    async def _deliver(self, batch: list[Record]) -> None:
        if batch:
            await self._tx.send(batch)

    async def send(self, data: bytes) -> None:
        await self.main.send(data)

    async def records(self) -> Iterator[Record] | None:
        try:
            batch = await self._rx.receive()
        except trio.EndOfChannel:
            if self._failure is not None:
                raise trio.BrokenResourceError(str(self._failure)) from None
            return None
        return iter(batch)

    async def aclose(self) -> None:
        await self.abort()

    async def abort(self) -> None:
        for link in self.channels:
            await link.abort()
        await self.main.abort()


@contextlib.asynccontextmanager
async def running(link: ParallelSourceLink | ParallelDestinationLink) -> AsyncIterator[MigrationLink]:
    """The link with its connection tasks; they end with the block.

    What the block raises is raised as is, not wrapped in the nursery's group:
    the tasks themselves never raise (they record a failure for the link).
    """
    raised: BaseException | None = None
    async with trio.open_nursery() as nursery:
        link.start(nursery)
        try:
            yield link
        except BaseException as exc:  # re-raised below, once the tasks are gone
            raised = exc
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await link.abort()
    if raised is not None:
        raise raised
