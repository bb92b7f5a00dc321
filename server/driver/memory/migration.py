"""The live-migration engine: a source and a destination endpoint over a link.

The link (``migration_link``: one TCP or TLS stream, N parallel connections, or a
tunnel inside the libvirt connection) moves the records; the engine decides what
to send. Pages go whole, or compressed as the migration asks (``migration_codec``).

Source (``OutgoingMigration``), QEMU-style:

* pre-copy pass 1 walks all of guest memory: runs of zero pages go as ZERO_RUN
  markers (counted in ``memory_constant``), written pages as PAGE records; every
  later pass sends the pages the guest dirtied meanwhile;
* a pass re-reads the dirty log before every batch (a fine-grained dirty log makes
  that cheap) and skips a page written again since the pass began: it is in the
  next pass's set anyway, so sending it now would only send it twice. A pass ends
  when each of its pages was either sent or written again;
* a pass goes through memory segment by segment (``_SEGMENT_PAGES``) in
  bit-reversed segment order rather than address order, so that its first
  batches sample every region of memory; a segment the guest was seen writing
  during the pass, and its neighbours (``_HOT_REACH_SEGMENTS``), are taken to be
  hot and their unsent pages go last (they are the likeliest to be written again,
  and then skipped). The engine does not know
  where the guest's hot memory lies: in address order, a hot region at the start
  of memory would all be sent before any write to it could be seen, then sent
  again once the guest wrote it;
* after each pass it estimates the downtime of sending what is still dirty at the
  measured bandwidth and, once that fits ``max_downtime_ms``, stops the guest and
  sends the rest (COMPLETE), then waits for the destination to confirm (LOADED);
* if post-copy was requested (only allowed for VIR_MIGRATE_POSTCOPY migrations) it
  switches after the current batch: the guest stops, the destination learns which
  pages it lacks (DISCARD) and starts running (POSTCOPY); the source then pushes
  those pages in order, serving the destination's PAGE_REQUESTs first, and each
  page crosses at most once, so post-copy always converges.

If the link breaks in post-copy, neither side has the whole guest: both keep
their state (the source the pages it has not sent, the destination the pages it
lacks) and ``resume`` carries on over a new link (post-copy recovery), sending
exactly the pages the destination reports missing, the ones lost in flight with
the old link included.

Destination (``migration_incoming.IncomingMigration``) loads what arrives, checks every page against
``page_content(page, version)``, and in post-copy runs the guest's workload, faulting
(requesting) pages it does not have yet.

The engine knows nothing of libvirt objects: it reports progress through the
``Job`` counters it is given and through observer callbacks, and ends by returning
or raising ``MigrationFailed`` / ``MigrationCancelled``.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass

import trio

from .guest import PAGE_SIZE, FaultSpec, Guest, page_content, page_runs
from .jobs import Job
from .migration_codec import CompressionSpec, PageEncoder
from .migration_link import MigrationLink, StreamLink
from .migration_ratelimit import UNLIMITED_MIB_S, TokenBucket
from .migration_stream import (
    PAGE_RECORD_SIZE,
    Kind,
    StreamError,
    encode,
    hello,
    page,
)

DEFAULT_MAX_DOWNTIME_MS = 300  # QEMU's default downtime-limit
DEFAULT_COMPRESSION_CACHE_BYTES = 64 * 1024 * 1024  # QEMU's default xbzrle-cache-size
# Auto-converge as QEMU runs it (migration/ram.c): throttle the vCPUs once two bitmap
# syncs found more dirtied than THRESHOLD % of what was sent since the sync before;
# start at cpu-throttle-initial, add cpu-throttle-increment each time, never past max.
DEFAULT_THROTTLE_INITIAL = 20
DEFAULT_THROTTLE_INCREMENT = 10
MAX_CPU_THROTTLE = 99
THROTTLE_TRIGGER_THRESHOLD = 50
_BATCH_PAGES = 16  # pages per send: 64 KiB, small enough to keep page requests prompt
# The granule of a pass's order and of the guess that a written page's neighbours are
# hot too: 1 MiB, coarse enough that a few writes mark a whole hot region, fine
# enough that few cold pages beside one wait for the end of the pass.
_SEGMENT_PAGES = 256
# Hot memory comes in regions (a heap, a buffer, a page cache), so a write marks its
# segment hot and this many segments on either side: the guest is likely to write
# there next, and those pages had better wait for the end of the pass too.
_HOT_REACH_SEGMENTS = 4
_RATE_WINDOW_S = 0.25
_PASS_HISTORY = 64
LINK_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, StreamError)


class Phase(enum.Enum):
    SETUP = "setup"
    PRECOPY = "precopy"
    POSTCOPY = "postcopy"
    DONE = "done"


class MigrationFailed(Exception):
    """The migration did not complete; ``postcopy`` tells whether it had switched."""

    def __init__(self, reason: str, *, postcopy: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.postcopy = postcopy


class MigrationCancelled(Exception):
    """The migration was aborted on request before post-copy."""


ZeroRun = tuple[int, int]  # (first page, count) of a run of zero pages
PassItem = int | ZeroRun  # a page to send as data, or a zero run to send as a marker


@dataclass(slots=True)
class PassStats:
    """What one pre-copy pass did with the pages it started with (for tests and tuning)."""

    iteration: int  # the MIGRATION_ITERATION the pass belongs to
    sent: int = 0  # pages sent as data
    rewritten: int = 0  # pages skipped: written again before their turn, left to the next pass
    deferred: int = 0  # pages moved to the end of the pass because their segment was seen hot
    sent_before_tail: int | None = None  # pages sent when the deferred ones were taken up


@dataclass(slots=True)
class MigrationSettings:
    bandwidth_mib_s: int = UNLIMITED_MIB_S
    postcopy_bandwidth_mib_s: int = 0  # 0: unlimited, as QEMU's max-postcopy-bandwidth
    max_downtime_ms: int = DEFAULT_MAX_DOWNTIME_MS
    postcopy: bool = False  # started with VIR_MIGRATE_POSTCOPY
    fault: FaultSpec | None = None
    compression_cache_bytes: int = DEFAULT_COMPRESSION_CACHE_BYTES  # the xbzrle cache
    compression: CompressionSpec | None = None  # the methods pages go with (None: whole)
    auto_converge: bool = False  # VIR_MIGRATE_AUTO_CONVERGE
    throttle_initial: int = DEFAULT_THROTTLE_INITIAL
    throttle_increment: int = DEFAULT_THROTTLE_INCREMENT


class SourceObserver:
    """What the driver mirrors onto the domain; every hook defaults to nothing."""

    def iteration(self, number: int) -> None:
        """A new pre-copy pass started (MIGRATION_ITERATION)."""

    def paused(self, postcopy: bool) -> None:
        """The guest stopped for switchover (pre-copy) or for post-copy."""

    def guest_state(self) -> str:
        """What the domain is doing meanwhile: "running", "paused" (suspended) or "gone"."""
        return "running"

    def recovered(self) -> None:
        """A failed post-copy migration goes on over a new link."""


def link_error(exc: BaseException, verb: str = "write to") -> str:
    if isinstance(exc, StreamError):
        return f"invalid migration stream: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"Unable to {verb} socket: {exc.strerror}"
    return f"Unable to {verb} socket: Connection reset by peer"


# The plain one-stream link, under its historical name (tests and the benchmark use it).
Link = StreamLink


class OutgoingMigration:
    """The source side of one migration."""

    def __init__(
        self,
        guest: Guest,
        job: Job,
        settings: MigrationSettings,
        observer: SourceObserver | None = None,
    ) -> None:
        self.guest = guest
        self.job = job
        self.settings = settings
        self.observer = observer or SourceObserver()
        self.phase = Phase.SETUP
        self.bucket = TokenBucket(settings.bandwidth_mib_s)
        self._postcopy_requested = False
        self._cancel_requested = False
        self._break_requested = False
        self._scope: trio.CancelScope | None = None
        self._link_failure: str | None = None
        self._requests: collections.deque[int] = collections.deque()
        self._request_arrived = trio.Event()
        self._dest_done = trio.Event()
        self._fault_pages: dict[str, int] = {}
        # bandwidth measurement
        self._window_start = 0.0
        self._window_bytes = 0
        self.paused_at: float | None = None
        self.postcopy_missing = 0  # pages the destination lacked at the switch
        self.postcopy_pages_sent = 0
        self.wire_bytes = 0  # written to every link of this migration, recovery included
        # Post-copy: pages not sent yet (kept across a broken link for recovery).
        self._missing: set[int] = set()
        self._faults_fired: set[str] = set()
        self._dirty_rate_high = 0  # syncs that found the guest dirtying too fast
        self._recovering = False
        self._dest_missing: list[tuple[int, int]] = []
        self._dest_ready = trio.Event()
        self._data_pages = 0  # pages sent as data (whole, compressed or as deltas)
        # Pages written since the sync that started the current pass (the dirty log
        # is drained before every batch; these are all in the next pass's set).
        self._rewritten: set[int] = set()
        self.passes: list[PassStats] = []  # pass 1 and the latest ones (_PASS_HISTORY)
        self.encoder = PageEncoder(settings.compression, lambda: self.settings.compression_cache_bytes)
        if self.encoder.xbzrle is not None:
            job.counters.compression = self.encoder.xbzrle.counters
        # From the job's first stats on, all of RAM is the total and still to go.
        job.counters.start(guest.memory.total_pages)

    # -- control from the API (may be called from other tasks) ----------------------
    def request_postcopy(self) -> None:
        self._postcopy_requested = True

    def cancel(self) -> None:
        """Abort a pre-copy migration: the guest keeps running here untouched."""
        self._cancel_requested = True
        if self._scope is not None and self.phase in (Phase.SETUP, Phase.PRECOPY):
            self._scope.cancel()

    def break_postcopy(self) -> None:
        """Stop a post-copy migration where it is (ABORT_JOB_POSTCOPY): both sides fail over."""
        self._break_requested = True

    def set_bandwidth(self, mib_s: int, *, postcopy: bool = False) -> None:
        if postcopy:
            self.settings.postcopy_bandwidth_mib_s = mib_s
            if self.phase is Phase.POSTCOPY:
                self.bucket.rate_mib_s = mib_s
        else:
            self.settings.bandwidth_mib_s = mib_s
            if self.phase is not Phase.POSTCOPY:
                self.bucket.rate_mib_s = mib_s

    # -- the run ---------------------------------------------------------------------
    async def run(self, stream: trio.abc.Stream | MigrationLink) -> None:
        """Migrate the guest over ``stream``; returns once the destination has it all.

        If the caller is cancelled (its client went away), the stream is closed
        so the destination sees the migration end, and the cancellation goes on.
        """
        await self._run_link(stream)

    async def resume(self, stream: trio.abc.Stream | MigrationLink) -> None:
        """Recover a post-copy migration whose link broke: go on over ``stream``."""
        if self.phase is not Phase.POSTCOPY:
            raise MigrationFailed("migration is not in post-copy phase")
        self._recovering = True
        self._break_requested = False
        self._requests.clear()
        self._dest_done = trio.Event()
        self._dest_ready = trio.Event()
        self._dest_missing = []
        await self._run_link(stream)

    async def _run_link(self, stream: trio.abc.Stream | MigrationLink) -> None:
        link = stream if isinstance(stream, MigrationLink) else StreamLink(stream)
        try:
            failure, cancelled = await self._run(link)
        except BaseException:
            self._stop_throttling()
            self.guest.memory.stop_dirty_log()
            with trio.CancelScope(shield=True):
                await link.abort()
            raise
        self._stop_throttling()
        self.guest.memory.stop_dirty_log()
        postcopy = self.phase is Phase.POSTCOPY
        if failure is None and cancelled:
            await link.abort()
            raise MigrationCancelled()
        if failure is not None:
            await link.abort()
            raise MigrationFailed(failure, postcopy=postcopy)
        self.phase = Phase.DONE
        await link.aclose()

    async def _run(self, link: MigrationLink) -> tuple[str | None, bool]:
        """(failure reason or None, cancelled by abortJob)."""
        failure: str | None = None
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                if link.return_path:
                    nursery.start_soon(self._control_reader, link, scope)
                try:
                    if self._recovering:
                        await self._recover(link)
                    else:
                        await self._migrate(link)
                except LINK_ERRORS as exc:
                    failure = self._link_failure or link_error(exc)
                except _Interrupted as exc:
                    failure = str(exc) or "Unable to write to socket: Connection reset by peer"
            self._scope = None
            self.wire_bytes += link.sent
            if failure is None and scope.cancelled_caught:
                failure = self._link_failure
            nursery.cancel_scope.cancel()
        cancelled = scope.cancelled_caught and self._link_failure is None and self._cancel_requested
        return failure, cancelled

    async def _control_reader(self, link: MigrationLink, scope: trio.CancelScope) -> None:
        try:
            while True:
                records = await link.records()
                if records is None:
                    if not self._dest_done.is_set():
                        raise trio.BrokenResourceError("destination closed the migration stream")
                    return
                for record in records:
                    if record.kind is Kind.PAGE_REQUEST:
                        self.job.counters.memory_postcopy_requests += 1
                        self._requests.append(record.a)
                        self._request_arrived.set()
                    elif record.kind in (Kind.POSTCOPY_DONE, Kind.LOADED):
                        self._dest_done.set()
                    elif record.kind is Kind.MISSING and self._recovering and not self._dest_ready.is_set():
                        self._dest_missing.append((record.a, record.b))
                    elif record.kind is Kind.RESUME_READY and self._recovering:
                        self._dest_ready.set()
                    else:
                        raise StreamError(f"unexpected record {record.kind.name} from destination")
        except LINK_ERRORS as exc:
            if link.cut_by_us:
                return  # the sender cut it and reports why
            self._link_failure = link_error(exc)
            scope.cancel()

    async def _migrate(self, link: MigrationLink) -> None:
        now = trio.current_time()
        counters = self.job.counters
        memory = self.guest.memory
        await link.send(hello(memory.total_pages))
        memory.start_dirty_log()
        self.phase = Phase.PRECOPY
        counters.setup_time_ms = int((trio.current_time() - now) * 1000)
        self._window_start = trio.current_time()
        # Pass 1 covers all of memory; later passes the pages dirtied meanwhile.
        nonzero = memory.nonzero_pages()
        work = _pass_order(_zero_runs(nonzero, memory.total_pages), nonzero)
        # Pass 1's pages are all of RAM, already the whole initial total.
        await self._new_iteration(link, memory.total_pages)
        while True:
            pass_started = trio.current_time()
            pass_bytes_before = link.sent
            pass_pages_before = self._data_pages
            switch = await self._send_pass(link, work)
            if switch is not None:
                await self._postcopy(link, *switch)
                return
            elapsed = max(trio.current_time() - pass_started, 1e-6)
            dirty = self._take_dirty()
            counters.memory_dirty_rate = int(len(dirty) / elapsed)
            self._maybe_throttle(len(dirty) * PAGE_SIZE, link.sent - pass_bytes_before)
            # The estimate compares what the dirty pages will cost on the wire (a page's
            # bytes, or fewer once compressed: as many as a page took in this pass) with
            # the wire rate they really moved at.
            pass_bytes = link.sent - pass_bytes_before
            pass_pages = self._data_pages - pass_pages_before
            page_cost = min(pass_bytes / pass_pages, PAGE_SIZE) if pass_pages else PAGE_SIZE
            bandwidth = pass_bytes / elapsed or float(counters.memory_bps) or 1.0
            if len(dirty) * page_cost / bandwidth * 1000 <= self.settings.max_downtime_ms:
                await self._precopy_complete(link, dirty)
                return
            if self._postcopy_requested:
                await self._postcopy(link, [], [], dirty)
                return
            await self._new_iteration(link, len(dirty))
            work = _pass_order([], sorted(dirty))

    def _maybe_throttle(self, dirtied_bytes: int, sent_bytes: int) -> None:
        """Auto-converge after a bitmap sync (QEMU's migration_trigger_throttle)."""
        if not self.settings.auto_converge:
            return
        if dirtied_bytes <= sent_bytes * THROTTLE_TRIGGER_THRESHOLD // 100:
            return
        self._dirty_rate_high += 1
        if self._dirty_rate_high < 2:
            return
        self._dirty_rate_high = 0
        guest = self.guest
        guest.catch_up(trio.current_time())  # writes so far happened at the old rate
        if guest.throttle_pct == 0:
            guest.throttle_pct = self.settings.throttle_initial
        else:
            guest.throttle_pct = min(guest.throttle_pct + self.settings.throttle_increment, MAX_CPU_THROTTLE)
        self.job.counters.cpu_throttle_percentage = guest.throttle_pct

    def _stop_throttling(self) -> None:
        if self.guest.throttle_pct:
            self.guest.catch_up(trio.current_time())
        self.guest.throttle_pct = 0
        self.job.counters.cpu_throttle_percentage = 0

    def _take_dirty(self) -> set[int]:
        """Every page written since the current pass began: the next pass's pages."""
        dirty = self._rewritten
        dirty |= self.guest.memory.sync_dirty_log()
        self._rewritten = set()
        return dirty

    async def _new_iteration(self, link: MigrationLink, pending_pages: int) -> None:
        """A dirty-bitmap sync, as QEMU counts them: a new pass over ``pending_pages``.

        Every sync is an iteration with its MIGRATION_ITERATION event, the last
        stop-and-copy and the switch to post-copy included, so within one
        iteration memory_total is constant and memory_remaining only shrinks.
        What the iteration before left pending (pages written again before their
        turn, or the unsent rest of a pass cut short) is among the new pending
        pages, already counted in the total.
        """
        counters = self.job.counters
        carried = counters.memory_remaining // PAGE_SIZE
        counters.new_iteration(counters.memory_iteration + 1, pending_pages, carried)
        # The event goes with the counters, before anything can wait: a stats reader
        # never sees an iteration whose event has not been emitted.
        self.observer.iteration(counters.memory_iteration)
        await link.send(encode(Kind.ITERATION, counters.memory_iteration, pending_pages))

    async def _send_pass(
        self, link: MigrationLink, work: list[PassItem], *, switchable: bool = True
    ) -> tuple[list[ZeroRun], list[int]] | None:
        """Send one pass (``work`` in send order); stops early for post-copy, returning
        the zero runs and pages not sent yet.

        Before each batch the dirty log is drained: a page written since the pass
        began is skipped (the next pass sends it), and the unsent pages of a
        segment written meanwhile wait until the rest of the pass is out.
        """
        counters = self.job.counters
        memory = self.guest.memory
        queue = collections.deque(work)
        deferred: list[int] = []
        written_segments: set[int] = set()  # seen written in this pass
        hot_segments: set[int] = set()  # those and their neighbours
        first_pass = counters.memory_iteration <= 1
        stats = PassStats(counters.memory_iteration)
        if len(self.passes) >= _PASS_HISTORY:
            del self.passes[1]  # a migration that never converges must not grow without bound
        self.passes.append(stats)
        tail = False
        rewritten = self._rewritten  # drained into in place all pass long
        versions = memory.versions
        encoder = self.encoder
        while queue or deferred:
            if switchable and self._postcopy_requested:
                runs = [item for item in queue if isinstance(item, tuple)]
                return runs, [item for item in queue if isinstance(item, int)] + deferred
            self._follow_domain()
            written = memory.sync_dirty_log()
            if written:
                rewritten |= written
                reach = range(-_HOT_REACH_SEGMENTS, _HOT_REACH_SEGMENTS + 1)
                for segment in {number // _SEGMENT_PAGES for number in written} - written_segments:
                    written_segments.add(segment)
                    hot_segments.update(segment + offset for offset in reach)
            if not queue:
                # The tail: pages of hot segments, sent now unless written meanwhile;
                # the neighbours first, the segments really seen written last.
                deferred.sort(key=lambda number: number // _SEGMENT_PAGES in written_segments)
                queue.extend(deferred)
                deferred = []
                tail = True
                stats.sent_before_tail = stats.sent
            out = bytearray()
            sent_pages = whole_pages = zero_pages = 0
            while queue and sent_pages < _BATCH_PAGES:
                item = queue.popleft()
                if isinstance(item, tuple):
                    start, count = item
                    out += encode(Kind.ZERO_RUN, start, count)
                    zero_pages += count
                elif item in rewritten:
                    stats.rewritten += 1
                elif not tail and item // _SEGMENT_PAGES in hot_segments:
                    deferred.append(item)
                    stats.deferred += 1
                else:
                    version = versions.get(item, 0)
                    content = page_content(item, version)
                    record, whole = encoder.record(item, version, content, first_pass=first_pass)
                    out += record
                    sent_pages += 1
                    whole_pages += whole
            # Counted per batch: stats are only read while the batch is on its way.
            counters.memory_constant += zero_pages
            counters.memory_normal += whole_pages
            counters.handled(sent_pages + zero_pages)
            if out:
                await self._transmit(link, bytes(out), sent_pages, Phase.PRECOPY)
            stats.sent += sent_pages
        return None

    async def _transmit(
        self, link: MigrationLink, data: bytes, normal_pages: int, phase: Phase, *, paced: bool = False
    ) -> None:
        """Send ``data``, waiting for the rate limit unless the caller ``paced`` it already."""
        self._data_pages += normal_pages
        if not paced:
            await self.bucket.consume(len(data))
        fault = self.settings.fault
        stage = "recovery" if self._recovering else phase.value
        if fault is not None and stage in fault.stages and stage not in self._faults_fired:
            self._fault_pages[stage] = self._fault_pages.get(stage, 0) + normal_pages
            if self._fault_pages[stage] > fault.after_pages:
                self._faults_fired.add(stage)  # a test hook cuts once per stage, not every retry
                await link.cut()
                raise _Interrupted()
        await link.send_pages(data)
        self._measure(len(data))

    def _follow_domain(self) -> None:
        """Let the guest run, or not, as its domain does while pre-copy goes on."""
        now = trio.current_time()
        if self.paused_at is not None:
            return  # stopped for switchover: the engine owns the guest now
        domain = self.observer.guest_state()
        if domain == "gone":
            raise _Interrupted("domain is not running")
        if domain == "paused":
            self.guest.pause(now)
        else:
            self.guest.resume(now)
            self.guest.catch_up(now)

    def _measure(self, nbytes: int) -> None:
        now = trio.current_time()
        self._window_bytes += nbytes
        span = now - self._window_start
        if span >= _RATE_WINDOW_S:
            self.job.counters.memory_bps = int(self._window_bytes / span)
            self._window_start = now
            self._window_bytes = 0

    def _pause_guest(self, postcopy: bool) -> None:
        now = trio.current_time()
        self.guest.pause(now)
        self.paused_at = now
        self.observer.paused(postcopy)

    async def _precopy_complete(self, link: MigrationLink, dirty: set[int]) -> None:
        self._pause_guest(postcopy=False)
        final = sorted(dirty | self._take_dirty())
        await self._new_iteration(link, len(final))
        await self._send_pass(link, _pass_order([], final), switchable=False)
        await link.send(encode(Kind.COMPLETE, self.guest.cursor))
        if link.return_path:
            await self._dest_done.wait()
        else:
            await link.finish()  # no return path (tunnelled): the link confirms delivery
        self._record_downtime()

    def _record_downtime(self) -> None:
        if self.paused_at is not None:
            self.job.counters.downtime_ms = int((trio.current_time() - self.paused_at) * 1000)

    async def _postcopy(
        self,
        link: MigrationLink,
        zero_runs: list[ZeroRun],
        carried: list[int],
        dirty: set[int] | None = None,
    ) -> None:
        """Switch to post-copy: ``zero_runs`` and ``carried`` are what is left of the
        pass in progress, ``dirty`` the pages a sync just found (not yet queued)."""
        memory = self.guest.memory
        # Zero markers are nearly free: finish them in pre-copy so that only written
        # pages are left for the destination to fault on.
        if zero_runs:
            await self._send_pass(link, list(zero_runs), switchable=False)
        self._pause_guest(postcopy=True)
        missing = set(carried) | (dirty or set()) | self._take_dirty()
        memory.stop_dirty_log()
        await self._new_iteration(link, len(missing))
        order = sorted(missing)
        out = bytearray()
        for start, count in page_runs(order):
            out += encode(Kind.DISCARD, start, count)
        out += encode(Kind.POSTCOPY, self.guest.cursor)
        # Switched from here on: should the link break while the switch is under
        # way, the guest stays stopped here and recovery tells what arrived.
        self.phase = Phase.POSTCOPY
        self._missing = missing
        self.postcopy_missing = len(missing)
        await link.send(bytes(out))
        self._record_downtime()
        await self._push(link)

    async def _recover(self, link: MigrationLink) -> None:
        """Post-copy recovery: learn what the destination lacks, then push only that."""
        memory = self.guest.memory
        await link.send(hello(memory.total_pages) + encode(Kind.RESUME))
        await self._dest_ready.wait()
        lacking: set[int] = set()
        for start, count in self._dest_missing:
            if start + count > memory.total_pages:
                raise StreamError(f"missing pages {start}+{count} beyond guest memory")
            lacking.update(range(start, start + count))
        # Pages sent on the old link but lost with it count as work again.
        lost = len(lacking - self._missing)
        counters = self.job.counters
        counters.memory_total += lost * PAGE_SIZE
        counters.memory_remaining = len(lacking) * PAGE_SIZE
        self._missing = lacking
        self.observer.recovered()
        await self._push(link)

    @staticmethod
    def _take(missing: set[int], requests: collections.deque[int], limit: int) -> list[int]:
        """Requested pages still missing, up to ``limit``, taken out of ``missing``."""
        taken: list[int] = []
        while requests and len(taken) < limit:
            wanted = requests.popleft()
            if wanted in missing:
                missing.discard(wanted)
                taken.append(wanted)
        return taken

    async def _push_pages(self, link: MigrationLink, batch: list[int]) -> None:
        """One post-copy send, already paced; the pages count as handled once written."""
        if not batch:
            return
        memory = self.guest.memory
        out = bytearray()
        for number in batch:
            out += page(number, memory.version(number), _content(self.guest, number))
        try:
            await self._transmit(link, bytes(out), len(batch), Phase.POSTCOPY, paced=True)
        except BaseException:
            # Not delivered: the destination will list these again on recovery.
            self._missing.update(batch)
            raise
        counters = self.job.counters
        counters.memory_normal += len(batch)
        self.postcopy_pages_sent += len(batch)
        counters.handled(len(batch))

    async def _push(self, link: MigrationLink) -> None:
        """Send every page in ``_missing``, the destination's requests first."""
        missing = self._missing
        self.bucket = TokenBucket(self.settings.postcopy_bandwidth_mib_s or UNLIMITED_MIB_S)
        order = sorted(missing)
        position = 0
        while missing:
            if self._break_requested:
                await link.cut()
                raise _Interrupted("migration paused by client")
            # Pace first, then fill the batch; a page request that arrives while the
            # rate limit holds the push back is answered at once (its bytes still count).
            deadline = trio.current_time() + self.bucket.reserve(_BATCH_PAGES * PAGE_RECORD_SIZE)
            while trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await self._request_arrived.wait()
                self._request_arrived = trio.Event()
                urgent = self._take(missing, self._requests, _BATCH_PAGES)
                if urgent:
                    deadline += self.bucket.reserve(len(urgent) * PAGE_RECORD_SIZE)
                    await self._push_pages(link, urgent)
            batch = self._take(missing, self._requests, _BATCH_PAGES)
            while len(batch) < _BATCH_PAGES and position < len(order):
                number = order[position]
                position += 1
                if number in missing:
                    missing.discard(number)
                    batch.append(number)
            await self._push_pages(link, batch)
        await self._dest_done.wait()
        await link.send(encode(Kind.COMPLETE, self.guest.cursor))


class _Interrupted(Exception):
    """The migration must stop here: link-cut hook, domain gone, or post-copy paused by the client."""


def _content(guest: Guest, number: int) -> bytes:
    return page_content(number, guest.memory.version(number))


def _zero_runs(nonzero: list[int], total_pages: int) -> list[ZeroRun]:
    """The zero-page runs between the written pages, split at segment boundaries."""
    runs: list[ZeroRun] = []
    cursor = 0
    for number in [*nonzero, total_pages]:
        while cursor < number:
            count = min(number - cursor, _SEGMENT_PAGES - cursor % _SEGMENT_PAGES)
            runs.append((cursor, count))
            cursor += count
        cursor = number + 1
    return runs


def _pass_order(zero_runs: list[ZeroRun], pages: list[int]) -> list[PassItem]:
    """A pass's work (zero runs within one segment each, pages ascending) in send order.

    Segments go in bit-reversed order of their number, each in address order: any
    prefix of the pass covers memory evenly, so whatever the guest writes, its
    region is seen written (and its pages skipped or left for last) before most
    of it is sent.
    """
    by_segment: dict[int, list[PassItem]] = {}
    for run in zero_runs:
        by_segment.setdefault(run[0] // _SEGMENT_PAGES, []).append(run)
    for number in pages:
        by_segment.setdefault(number // _SEGMENT_PAGES, []).append(number)
    if not by_segment:
        return []
    bits = max(by_segment).bit_length()
    order: list[PassItem] = []
    for segment in sorted(by_segment, key=lambda n: _bit_reversed(n, bits)):
        items = by_segment[segment]
        items.sort(key=lambda item: item[0] if isinstance(item, tuple) else item)
        order += items
    return order


def _bit_reversed(number: int, bits: int) -> int:
    return int(format(number, f"0{bits}b")[::-1], 2) if bits else 0
