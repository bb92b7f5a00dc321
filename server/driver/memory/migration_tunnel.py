"""Tunnelled migration (VIR_MIGRATE_TUNNELLED): the pages travel inside the libvirt connection.

With PEER2PEER the source daemon opens a virStream on its connection to the
destination daemon and calls PREPARE_TUNNEL3_PARAMS with it (as libvirt's
qemuMigrationSrcPerformPeer2Peer3); the migration stream is then written into
that stream: no migration port, no second connection.

As in QEMU's tunnelled migration there is no return path: the destination
cannot answer, so post-copy is refused and the source learns that everything
arrived when the destination answers its stream finish, which it does once
the incoming migration loaded the whole guest (else STREAM/ERROR with why).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import trio
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.protocol.wire import STREAM_CHUNK

from ...errors import report
from ...streams import StreamSink
from .core import FROM
from .migration_link import MigrationLink
from .migration_stream import Record, RecordReader

if TYPE_CHECKING:  # the client is imported only when a peer-to-peer migration runs
    from virtwire.client.stream_aio import AsyncStream

# Page batches are gathered into stream packets of up to one legacy payload
# (what libvirtd itself sends per stream packet): fewer, larger packets.
TUNNEL_CHUNK = STREAM_CHUNK
_QUEUED_CHUNKS = 16  # destination: data the engine has not read yet, before the socket stops being read


def _reset(message: str) -> OSError:
    # LINK_ERRORS includes OSError; the engine words it as "Unable to ... socket: <message>".
    return OSError(0, message)


class TunnelSourceLink(MigrationLink):
    """The source's side: a stream on the daemon's connection to the destination."""

    return_path = False

    def __init__(self, stream: AsyncStream) -> None:
        super().__init__()
        self.stream = stream
        self._pending = bytearray()

    async def send_pages(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= TUNNEL_CHUNK:
            await self._flush()

    async def send(self, data: bytes) -> None:
        self._pending += data
        await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, bytearray()
        try:
            view = memoryview(pending)
            for start in range(0, len(pending), TUNNEL_CHUNK):
                await self.stream.send(bytes(view[start : start + TUNNEL_CHUNK]))
        except libvirtError as exc:
            raise _reset(exc.get_error_message() or str(exc)) from None
        self.sent += len(pending)

    async def records(self) -> Iterator[Record] | None:
        return None  # no return path

    async def finish(self) -> None:
        await self._flush()
        try:
            await self.stream.finish()
        except libvirtError as exc:
            raise _reset(exc.get_error_message() or str(exc)) from None

    async def aclose(self) -> None:
        if self.stream.state.closed is None:
            await self.finish()

    async def abort(self) -> None:
        if self.stream.state.closed is None:
            with contextlib.suppress(
                libvirtError, trio.BrokenResourceError, trio.ClosedResourceError, OSError
            ):
                await self.stream.abort()


class TunnelDestinationLink(MigrationLink):
    """The destination's side: what the source's stream delivered, as records."""

    return_path = False

    def __init__(self) -> None:
        super().__init__()
        self._tx, self._rx = trio.open_memory_channel[memoryview](_QUEUED_CHUNKS)
        self._reader = RecordReader()
        self.aborted = False

    async def send(self, data: bytes) -> None:
        raise trio.BrokenResourceError("tunnelled migration has no return path")

    async def records(self) -> Iterator[Record] | None:
        out: list[Record] = []
        while not out:
            try:
                data = await self._rx.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                if self.aborted:
                    raise trio.BrokenResourceError("the source aborted the migration stream") from None
                return None
            self._reader.feed(data)
            while (record := self._reader.next()) is not None:
                out.append(record)
        return iter(out)

    async def aclose(self) -> None:
        self._rx.close()

    async def abort(self) -> None:
        self._rx.close()


class TunnelSink(StreamSink):
    """The server stream of PREPARE_TUNNEL3_PARAMS: feeds the link; its finish waits for the load."""

    def __init__(
        self, link: TunnelDestinationLink, done: trio.Event, failure: Callable[[], str | None]
    ) -> None:
        self.link = link
        self._done = done
        self._failure = failure

    async def write(self, data: memoryview) -> None:
        # A view of the received packet, which nothing modifies: no copy until the reader's.
        # Once the incoming migration stopped, data is dropped; finish reports why.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.link._tx.send(data)

    async def finish(self) -> None:
        self.link._tx.close()
        await self._done.wait()
        failure = self._failure()
        if failure is not None:
            raise report(C.VIR_ERR_OPERATION_FAILED, FROM, f"job 'migration in' failed: {failure}")

    def abort(self) -> None:
        self.link.aborted = True
        self.link._tx.close()
