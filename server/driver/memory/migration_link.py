"""The byte transport under the migration engine: what a link can do, and the plain one.

The engines (``migration``, ``migration_incoming``) speak records; a link moves
them. Every kind of link has the same small surface:

* ``send`` -- control records (HELLO, ITERATION, COMPLETE, ...), in order;
* ``send_pages`` -- a batch of page records (PAGE, ZERO_RUN, XBZRLE, ZPAGE): a
  parallel link spreads batches over its data connections;
* ``records`` -- what the peer sent, in an order the engine may apply;
* ``return_path`` -- whether the destination can answer (page requests, LOADED).
  A tunnelled link has none, as QEMU's tunnelled migration has none; its
  ``finish`` confirms that the destination took everything instead;
* ``cut`` (test hook), ``aclose`` and ``abort``.

Kinds: ``StreamLink`` here (one TCP or TLS stream), ``migration_parallel``
(N data connections beside the main one), ``migration_tunnel`` (a libvirt
stream between the two daemons).

A test hook (``<virtwire:link-cap mib-s="N"/>`` in a domain's metadata, honoured
only with test hooks on) caps each connection of the link at N MiB/s, as a
per-flow network limit would: what parallel links are for.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import TracebackType

import trio

from .guest import VIRTWIRE_XMLNS, test_hooks_enabled
from .migration_ratelimit import TokenBucket
from .migration_stream import Record, RecordReader

RECEIVE_SIZE = 1 << 16


class MigrationLink:
    """What every link offers the engines; subclasses move the bytes."""

    return_path = True

    def __init__(self) -> None:
        self.cut_by_us = False
        self.sent = 0  # bytes written, every record included

    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def send_pages(self, data: bytes) -> None:
        await self.send(data)

    async def records(self) -> Iterator[Record] | None:
        """Receive once; None at EOF, else the records that became complete."""
        raise NotImplementedError

    async def finish(self) -> None:
        """The source sent everything (COMPLETE included)."""

    async def cut(self) -> None:
        self.cut_by_us = True
        await self.abort()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def abort(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> MigrationLink:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with trio.CancelScope(shield=True):
            await self.abort()


class StreamLink(MigrationLink):
    """One stream (TCP, or TLS over TCP) carrying records both ways; sends are serialised."""

    def __init__(self, stream: trio.abc.Stream, cap: TokenBucket | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.reader = RecordReader()
        self._send_lock = trio.StrictFIFOLock()
        self._cap = cap
        self._peeked: list[Record] = []

    async def send(self, data: bytes) -> None:
        async with self._send_lock:
            if self._cap is not None:
                await self._cap.consume(len(data))
            await self.stream.send_all(data)
            self.sent += len(data)

    async def records(self) -> Iterator[Record] | None:
        out = self._peeked
        self._peeked = []
        while not out:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                return None
            self.reader.feed(data)
            while (record := self.reader.next()) is not None:
                out.append(record)
        return iter(out)

    async def first_record(self) -> Record | None:
        """The first record (kept, so that ``records`` still returns it); None at EOF."""
        while not self._peeked:
            got = await self.records()
            if got is None:
                return None
            self._peeked = list(got)
        return self._peeked[0]

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def abort(self) -> None:
        await trio.aclose_forcefully(self.stream)


def parse_link_cap(tree: ET.Element) -> int | None:
    """The per-connection cap in MiB/s of the link-cap test hook, or None."""
    if not test_hooks_enabled():
        return None
    element = tree.find(f"metadata/{{{VIRTWIRE_XMLNS}}}link-cap")
    if element is None:
        return None
    value = element.get("mib-s", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def link_cap_bucket(mib_s: int | None) -> TokenBucket | None:
    return TokenBucket(mib_s) if mib_s else None
