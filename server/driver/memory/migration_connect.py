"""Opening a migration link: which kind, over how many connections, TLS or not.

``LinkPlan`` is what the flags and parameters asked for; ``open_outgoing``
connects the source to the port the destination announced, ``accept_incoming``
takes the destination's side of the same connections. Both are async context
managers: the link (and a parallel link's connection tasks) lives for the block.
The engine then runs over the link it is given (``migration`` knows no sockets).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio

from .migration import MigrationFailed
from .migration_codec import BlockCodec
from .migration_link import MigrationLink, StreamLink, link_cap_bucket
from .migration_parallel import ParallelDestinationLink, ParallelSourceLink, running
from .migration_stream import Kind, StreamError, encode
from .migration_tls import DestinationTLS, SourceTLS, handshake_error

DEFAULT_PARALLEL_CONNECTIONS = 2  # QEMU's multifd-channels default


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """What the migration's flags and parameters ask of its link."""

    channels: int = 0  # parallel data connections (0: not parallel)
    multifd: str | None = None  # zlib / zstd on the data connections
    cap_mib_s: int | None = None  # per-connection cap (test hook)
    source_tls: SourceTLS | None = None
    destination_tls: DestinationTLS | None = None


async def _connect(host: str, port: int, plan: LinkPlan) -> trio.abc.Stream:
    try:
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise MigrationFailed(f"Failed to connect to '{host}:{port}': {exc.strerror}") from None
    if plan.source_tls is None:
        return stream
    try:
        return await plan.source_tls.wrap(stream)
    except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
        await trio.aclose_forcefully(stream)
        raise MigrationFailed(handshake_error(exc.__cause__ or exc)) from None


@contextlib.asynccontextmanager
async def open_outgoing(host: str, port: int, plan: LinkPlan) -> AsyncIterator[MigrationLink]:
    streams: list[trio.abc.Stream] = []
    try:
        for _ in range(1 + plan.channels):
            streams.append(await _connect(host, port, plan))
        main = StreamLink(streams[0], link_cap_bucket(plan.cap_mib_s))
        if not plan.channels:
            async with main:
                yield main
            return
        for index, stream in enumerate(streams[1:]):
            await stream.send_all(encode(Kind.CHANNEL, index, plan.channels))
        codec = BlockCodec(plan.multifd) if plan.multifd else None
        caps = [link_cap_bucket(plan.cap_mib_s) for _ in streams[1:]]
        async with running(ParallelSourceLink(main, streams[1:], caps, codec)) as link:
            yield link
    finally:
        with trio.CancelScope(shield=True):
            for stream in streams:
                await trio.aclose_forcefully(stream)


async def _accept(listener: trio.SocketListener, plan: LinkPlan) -> StreamLink:
    stream: trio.abc.Stream = await listener.accept()
    if plan.destination_tls is not None:
        try:
            stream = await plan.destination_tls.wrap(stream)
        except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            await trio.aclose_forcefully(stream)
            raise MigrationFailed(handshake_error(exc.__cause__ or exc)) from None
    return StreamLink(stream)


@contextlib.asynccontextmanager
async def accept_incoming(listener: trio.SocketListener, plan: LinkPlan) -> AsyncIterator[MigrationLink]:
    accepted: list[StreamLink] = []
    try:
        if not plan.channels:
            main = await _accept(listener, plan)
            accepted.append(main)
            yield main
            return
        # Accept (and handshake) every connection before reading any: the source opens
        # them all, one after the other, before it sends its first record.
        for _ in range(1 + plan.channels):
            accepted.append(await _accept(listener, plan))
        found: StreamLink | None = None
        channels: dict[int, StreamLink] = {}
        for link in accepted:
            first = await link.first_record()
            if first is None:
                raise MigrationFailed("Unable to read from socket: Connection reset by peer")
            if first.kind is Kind.HELLO and found is None:
                found = link
            elif (
                first.kind is Kind.CHANNEL
                and first.b == plan.channels
                and first.a < plan.channels
                and first.a not in channels
            ):
                channels[first.a] = link
            else:
                raise StreamError(f"unexpected connection opening with {first.kind.name}")
        assert found is not None
        codec = BlockCodec(plan.multifd) if plan.multifd else None
        ordered = [channels[index] for index in range(plan.channels)]
        async with running(ParallelDestinationLink(found, ordered, codec)) as parallel:
            yield parallel
    finally:
        with trio.CancelScope(shield=True):
            for link in accepted:
                await link.abort()
