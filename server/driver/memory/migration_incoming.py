"""The destination endpoint of a live migration (see ``migration`` for the stream's shape).

``IncomingMigration`` loads what arrives into an empty guest and checks every page
against ``page_content(page, version)``. Once the source switches to post-copy the
guest runs here: its workload writes pages, and a write to a page that has not
arrived yet faults to the source (a PAGE_REQUEST, counted in
memory_postcopy_requests) and is applied when the page lands.

When the link breaks in post-copy the guest keeps what it has; ``resume`` takes
a new link from the recovering source, tells it which pages are still missing
and asks again for the faulted ones whose requests the old link lost.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from .guest import PAGE_SIZE, Guest, page_content, page_runs
from .jobs import Job
from .migration import LINK_ERRORS, MigrationFailed, Phase, link_error
from .migration_codec import decode_page
from .migration_link import MigrationLink, StreamLink
from .migration_stream import (
    Kind,
    Record,
    StreamError,
    encode,
)

_DEST_TICK_S = 0.005  # how often the running destination guest's workload advances


class DestinationObserver:
    def postcopy_running(self) -> None:
        """The guest runs here now, while pages still arrive."""

    def recovered(self) -> None:
        """A failed post-copy migration goes on over a new link."""


class IncomingMigration:
    """The destination side: loads the stream into an empty guest."""

    def __init__(self, guest: Guest, job: Job, observer: DestinationObserver | None = None) -> None:
        self.guest = guest
        self.job = job
        self.observer = observer or DestinationObserver()
        self.phase = Phase.SETUP
        self.missing: set[int] = set()
        self._requested: set[int] = set()
        # The page the guest's vCPU waits for (blocked on a post-copy fault), if any.
        self._blocked_on: int | None = None
        self._arrived = trio.Event()
        self._link: MigrationLink | None = None
        self.received_pages = 0
        self.failure: str | None = None
        # Post-copy faults: when each outstanding request went out, and how long answers took.
        self._requested_at: dict[int, float] = {}
        self.request_latencies: list[float] = []

    async def run(self, stream: trio.abc.Stream | MigrationLink) -> None:
        """Receive a whole migration (over a link, or a stream for a plain one);
        raises MigrationFailed if it breaks."""
        await self._run_link(stream, resuming=False)

    async def resume(self, stream: trio.abc.Stream | MigrationLink) -> None:
        """Go on with a post-copy migration whose link broke, over ``stream``."""
        if self.phase is not Phase.POSTCOPY:
            raise MigrationFailed("migration is not in post-copy phase")
        self.failure = None
        # Requests sent on the old link may be lost with it: ask again on the new one.
        self._requested.clear()
        await self._run_link(stream, resuming=True)

    async def _run_link(self, stream: trio.abc.Stream | MigrationLink, *, resuming: bool) -> None:
        link = stream if isinstance(stream, MigrationLink) else StreamLink(stream)
        self._link = link
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await self._receive(link, nursery.start_soon, resuming=resuming)
                except LINK_ERRORS as exc:
                    self.failure = link_error(exc, "read from")
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self.guest.memory.stop_dirty_log()
            with trio.CancelScope(shield=True):
                await link.abort()
        if self.failure is not None:
            raise MigrationFailed(self.failure, postcopy=self.phase is Phase.POSTCOPY)
        self.phase = Phase.DONE

    async def _receive(self, link: MigrationLink, spawn: Callable[..., object], *, resuming: bool) -> None:
        counters = self.job.counters
        while True:
            records = await link.records()
            if records is None:
                raise trio.BrokenResourceError("source closed the migration stream")
            for record in records:
                kind = record.kind
                if kind in (Kind.PAGE, Kind.ZPAGE, Kind.XBZRLE):
                    if kind is not Kind.PAGE:
                        record = decode_page(record, self._current_content)
                    self._load_page(record)
                    counters.memory_normal += kind is not Kind.XBZRLE  # deltas count apart, as on the source
                    counters.handled(1)
                    if self.phase is Phase.POSTCOPY and not self.missing:
                        await link.send(encode(Kind.POSTCOPY_DONE))
                elif kind is Kind.ZERO_RUN:
                    self._load_zero_run(record.a, record.b)
                    counters.memory_constant += record.b
                    counters.handled(record.b)
                elif kind is Kind.ITERATION:
                    # The source's total at a sync is what it handled (all of which
                    # arrived before this record) plus what the sync queued.
                    counters.memory_iteration = record.a
                    counters.memory_remaining = record.b * PAGE_SIZE
                    counters.memory_total = counters.memory_processed + counters.memory_remaining
                elif kind is Kind.HELLO:
                    self._hello(record, resuming=resuming)
                elif kind is Kind.RESUME and resuming:
                    await self._answer_resume(link, spawn)
                elif kind is Kind.DISCARD:
                    self.missing.update(range(record.a, record.a + record.b))
                elif kind is Kind.POSTCOPY:
                    self.phase = Phase.POSTCOPY
                    self.guest.cursor = record.a % max(self.guest.workload.hot_pages, 1)
                    self.guest.resume(trio.current_time())
                    self.observer.postcopy_running()
                    spawn(self._postcopy_guest, link)
                    if not self.missing:
                        await link.send(encode(Kind.POSTCOPY_DONE))
                elif kind is Kind.COMPLETE:
                    if self.missing:
                        raise StreamError(f"migration completed with {len(self.missing)} pages missing")
                    if self.phase is not Phase.POSTCOPY:
                        self.guest.cursor = record.a % max(self.guest.workload.hot_pages, 1)
                        if link.return_path:
                            await link.send(encode(Kind.LOADED))
                    return
                else:
                    raise StreamError(f"unexpected record {kind.name} from source")

    def _hello(self, record: Record, *, resuming: bool) -> None:
        page_size = record.a & 0xFFFFFFFF
        if page_size != PAGE_SIZE or record.b != self.guest.memory.total_pages:
            raise StreamError(
                f"guest memory mismatch: source has {record.b} pages of {page_size} bytes, "
                f"destination {self.guest.memory.total_pages} of {PAGE_SIZE}"
            )
        if not resuming:
            self.job.counters.start(record.b)
            self.phase = Phase.PRECOPY

    async def _answer_resume(self, link: MigrationLink, spawn: Callable[..., object]) -> None:
        """Recovery: list the pages still missing, re-request the faulted ones, run on."""
        out = bytearray()
        for start, count in page_runs(sorted(self.missing)):
            out += encode(Kind.MISSING, start, count)
        out += encode(Kind.RESUME_READY)
        await link.send(bytes(out))
        self.observer.recovered()
        if self.missing:
            spawn(self._postcopy_guest, link)
        else:
            await link.send(encode(Kind.POSTCOPY_DONE))

    def _current_content(self, number: int) -> bytes:
        """What the page holds here now (what an xbzrle delta applies to)."""
        if number >= self.guest.memory.total_pages:
            raise StreamError(f"page {number} beyond guest memory")
        return page_content(number, self.guest.memory.versions.get(number, 0))

    def _load_zero_run(self, start: int, count: int) -> None:
        versions = self.guest.memory.versions
        if start + count > self.guest.memory.total_pages:
            raise StreamError(f"zero pages {start}+{count} beyond guest memory")
        # The destination starts empty, so only pages loaded earlier need clearing;
        # walk whichever is smaller, the run or the loaded pages.
        if count <= len(versions):
            stale = [number for number in range(start, start + count) if number in versions]
        else:
            stale = [number for number in versions if start <= number < start + count]
        for number in stale:
            del versions[number]
        if self.phase is Phase.POSTCOPY:
            self.missing.difference_update(range(start, start + count))

    def _load_page(self, record: Record) -> None:
        number, version = record.a, record.b
        if number >= self.guest.memory.total_pages:
            raise StreamError(f"page {number} beyond guest memory")
        if record.data != page_content(number, version):
            raise StreamError(f"page {number} version {version} arrived corrupted")
        memory = self.guest.memory
        memory.versions[number] = version
        self.received_pages += 1
        if self.phase is Phase.POSTCOPY:
            self.missing.discard(number)
            asked = self._requested_at.pop(number, None)
            if asked is not None:
                self.request_latencies.append(trio.current_time() - asked)
            if number == self._blocked_on:
                self._arrived.set()

    async def _postcopy_guest(self, link: MigrationLink) -> None:
        """Run the workload here; a write to a page not yet here faults to the source.

        As with userfaultfd, the faulting vCPU waits until its page arrives, and
        writes it then; the guest does nothing meanwhile.
        """

        def touch(number: int) -> bool:
            if number in self.missing:
                self._blocked_on = number
                return False
            self.guest.memory.write(number)
            return True

        while self.phase is Phase.POSTCOPY and self.missing:
            self._blocked_on = None
            self.guest.catch_up(trio.current_time(), touch)
            wanted = self._blocked_on
            if wanted is None:
                await trio.sleep(_DEST_TICK_S)
                continue
            self._arrived = trio.Event()
            if wanted not in self._requested:
                self._requested.add(wanted)
                self._requested_at[wanted] = trio.current_time()
                self.job.counters.memory_postcopy_requests += 1
                try:
                    await link.send(encode(Kind.PAGE_REQUEST, wanted))
                except LINK_ERRORS:
                    return  # the receiving side sees the broken link and reports it
            if wanted in self.missing:
                await self._arrived.wait()
            self.guest.stall(trio.current_time())
