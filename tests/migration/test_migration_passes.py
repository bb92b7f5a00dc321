"""What a pre-copy pass sends: pages written again before their turn are skipped, hot
regions go last, wherever the guest's hot set lies and however it writes it.

The runs here use trio's MockClock over in-memory streams: the guest's writes, the
rate limit and the page requests all follow virtual time, so a run is exactly
repeatable and independent of the machine's load, and the counts can be exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing
from virtwire.server.driver.memory.guest import PAGE_SIZE, RANDOM, SWEEP, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation
from virtwire.server.driver.memory.migration import (
    _PASS_HISTORY,
    _SEGMENT_PAGES,
    MigrationCancelled,
    MigrationFailed,
    MigrationSettings,
    OutgoingMigration,
    SourceObserver,
    _pass_order,
    _zero_runs,
)
from virtwire.server.driver.memory.migration_incoming import IncomingMigration

MIB_PAGES = 1024 * 1024 // PAGE_SIZE
MEMORY_PAGES = 32 * MIB_PAGES
WORKING_SET = 8 * MIB_PAGES
HOT = 2 * MIB_PAGES
# Sending the hot set takes 500 ms, over the 300 ms downtime: a guest that keeps
# it dirty never lets pre-copy converge.
BANDWIDTH_MIB_S = 4
PAGES_PER_S = BANDWIDTH_MIB_S * MIB_PAGES
# Where the hot set starts in the working set, by layout.
OFFSETS = {"start": 0, "middle": (WORKING_SET - HOT) // 2 + 100, "end": WORKING_SET - HOT}


@dataclass
class Run:
    source: OutgoingMigration
    destination: IncomingMigration
    source_at_switch: dict[int, int]
    pass_one_pages: list[int]  # data pages in the order pass 1 sent them


class Observer(SourceObserver):
    def __init__(self, switch_at: int | None, guest: Guest) -> None:
        self.switch_at = switch_at
        self.guest = guest
        self.engine: OutgoingMigration | None = None
        self.at_switch: dict[int, int] = {}

    def iteration(self, number: int) -> None:
        if self.engine is not None and number == self.switch_at:
            self.engine.request_postcopy()

    def paused(self, postcopy: bool) -> None:
        self.at_switch = dict(self.guest.memory.versions)


class RecordingEncoder:
    """Wraps the engine's page encoder to log the pages pass 1 sends, in order."""

    def __init__(self, engine: OutgoingMigration, log: list[int], switch_after: int | None) -> None:
        self.inner = engine.encoder
        self.engine = engine
        self.log = log
        self.switch_after = switch_after

    def record(self, number: int, version: int, content: bytes, *, first_pass: bool) -> tuple[bytes, bool]:
        if self.engine.job.counters.memory_iteration == 1:
            self.log.append(number)
            if len(self.log) == self.switch_after:
                self.engine.request_postcopy()  # taken up before the next batch
        return self.inner.record(number, version, content, first_pass=first_pass)


def make_guest(factor: float, layout: str, pattern: str = SWEEP) -> Guest:
    workload = WorkloadSpec(
        dirty_rate=int(PAGES_PER_S * factor),
        working_set_pages=WORKING_SET,
        dirty_set_pages=HOT,
        dirty_set_offset=OFFSETS[layout],
        pattern=pattern,
    )
    return Guest(MEMORY_PAGES, workload)


def run_virtual(
    guest: Guest, *, postcopy: bool, switch_at: int | None, switch_after_pages: int | None = None
) -> Run:
    """One migration in virtual time; post-copy is asked for on the ``switch_at`` event,
    or once pass 1 has sent ``switch_after_pages`` pages."""

    async def main() -> Run:
        guest.resume(trio.current_time())
        observer = Observer(switch_at, guest)
        now = trio.current_time()
        settings = MigrationSettings(
            bandwidth_mib_s=BANDWIDTH_MIB_S, postcopy_bandwidth_mib_s=BANDWIDTH_MIB_S, postcopy=postcopy
        )
        out = OutgoingMigration(guest, Job(JobOperation.MIGRATION_OUT, now), settings, observer)
        observer.engine = out
        pass_one: list[int] = []
        out.encoder = RecordingEncoder(out, pass_one, switch_after_pages)  # type: ignore[assignment]
        dest_guest = Guest.empty(MEMORY_PAGES, guest.workload)
        inc = IncomingMigration(dest_guest, Job(JobOperation.MIGRATION_IN, now))
        source_end, destination_end = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(inc.run, destination_end)
            await out.run(source_end)
        return Run(out, inc, observer.at_switch, pass_one)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def hot_pages(guest: Guest) -> range:
    start = guest.workload.hot_start
    return range(start, start + guest.workload.hot_pages)


def assert_destination_has_the_guest(run: Run, guest: Guest, *, postcopy: bool) -> None:
    """No page lost: the destination holds what the source had when it stopped the
    guest, plus (in post-copy) what the guest wrote since, running there."""
    dest = run.destination.guest.memory.versions
    if not postcopy:
        assert dest == guest.memory.versions
        return
    assert set(dest) == set(run.source_at_switch) == set(guest.memory.versions)
    assert all(dest[page] >= version for page, version in run.source_at_switch.items())
    assert guest.memory.versions == run.source_at_switch  # the source stopped at the switch
    assert not run.destination.missing


@pytest.mark.parametrize("layout", ["start", "middle", "end"])
def test_pass_one_skips_pages_written_again_and_sends_the_rest_once(layout: str) -> None:
    # The guest writes twice as fast as the link carries: it laps its hot set every
    # 250 ms while pass 1 takes two seconds.
    guest = make_guest(2, layout)
    run = run_virtual(guest, postcopy=True, switch_at=2)
    assert_destination_has_the_guest(run, guest, postcopy=True)
    first = run.source.passes[0]
    # Every page of pass 1 either went once or was left to the next pass.
    assert sorted(run.pass_one_pages) == sorted(set(run.pass_one_pages))
    assert first.sent == len(run.pass_one_pages)
    assert first.sent + first.rewritten == WORKING_SET
    assert first.rewritten > HOT // 2
    # Every page skipped was written in the pass, so the switch took it along, and
    # post-copy sent each missing page once.
    assert run.source.postcopy_missing >= first.rewritten
    assert run.source.postcopy_pages_sent == run.source.postcopy_missing
    # Hot pages sent in pass 1 (before any write to them could be seen) are few;
    # in address order all of a hot set at the start would have gone in pass 1.
    sent_hot = set(run.pass_one_pages) & set(hot_pages(guest))
    assert len(sent_hot) < HOT // 4
    # What crossed as data: the working set once, plus the hot pages pass 1 sent
    # (the guest wrote them afterwards) and whatever pass 2 sent before the switch.
    extra = run.source.job.counters.memory_normal - WORKING_SET
    assert 0 <= extra <= len(sent_hot) + run.source.passes[1].sent
    assert extra < HOT // 4


@pytest.mark.parametrize("layout", ["start", "middle", "end"])
def test_random_writes_into_the_hot_set_are_seen_and_left_for_last(layout: str) -> None:
    guest = make_guest(0.5, layout, RANDOM)
    run = run_virtual(guest, postcopy=True, switch_at=2)
    assert_destination_has_the_guest(run, guest, postcopy=True)
    first = run.source.passes[0]
    assert first.sent + first.rewritten == WORKING_SET
    # The random writes mark the hot segments within milliseconds: their pages wait
    # for the end of the pass, and most of them are written by then.
    assert first.deferred > 0
    assert first.rewritten > HOT // 2
    # Before the deferred pages' turn, pass 1 sent no hot page but for its first
    # batch, sent before a single write could be seen.
    hot = set(hot_pages(guest))
    assert first.sent_before_tail is not None
    before_tail = run.pass_one_pages[: first.sent_before_tail]
    assert len([page for page in before_tail if page in hot]) <= 16
    assert len(set(run.pass_one_pages) & hot) < HOT // 4


@pytest.mark.parametrize("pattern", [SWEEP, RANDOM])
def test_switch_in_pass_one_carries_the_deferred_and_skipped_pages_to_postcopy(pattern: str) -> None:
    # Switched with pass 1 half done: the pages left for its end, those skipped
    # and those not reached yet all go in post-copy, each once.
    guest = make_guest(1, "middle", pattern)
    run = run_virtual(guest, postcopy=True, switch_at=None, switch_after_pages=WORKING_SET // 2)
    assert_destination_has_the_guest(run, guest, postcopy=True)
    first = run.source.passes[0]
    assert first.sent == len(run.pass_one_pages) == WORKING_SET // 2
    assert first.deferred > 0 and first.rewritten > 0
    out = run.source
    c = out.job.counters
    assert c.memory_iteration == 2  # the switch is a sync of its own
    # Post-copy sent every page pass 1 had not sent, and the pages it sent that the
    # guest wrote again.
    rewritten_after_send = {page for page in run.pass_one_pages if run.source_at_switch[page] > 1}
    assert out.postcopy_missing == WORKING_SET - first.sent + len(rewritten_after_send)
    assert out.postcopy_pages_sent == out.postcopy_missing
    assert c.memory_total == (MEMORY_PAGES + len(rewritten_after_send)) * PAGE_SIZE == c.memory_processed
    assert c.memory_constant == MEMORY_PAGES - WORKING_SET


@pytest.mark.parametrize(("layout", "pattern"), [("start", SWEEP), ("end", SWEEP), ("middle", RANDOM)])
def test_precopy_with_skips_converges_to_the_exact_memory(layout: str, pattern: str) -> None:
    # Slower than the link: pre-copy converges; the skipped pages go in later passes.
    guest = make_guest(0.5, layout, pattern)
    run = run_virtual(guest, postcopy=False, switch_at=None)
    assert_destination_has_the_guest(run, guest, postcopy=False)
    c = run.source.job.counters
    # Each page queued in an iteration crossed once for it: the skipped pages were
    # still pending when the next iteration queued them, and counted once.
    assert c.memory_total == (MEMORY_PAGES + c.memory_normal - WORKING_SET) * PAGE_SIZE
    assert c.memory_processed == c.memory_total and c.memory_remaining == 0
    assert sum(p.sent for p in run.source.passes) == c.memory_normal
    assert run.source.passes[0].rewritten > 0


def test_pass_order_covers_every_page_once_segment_by_segment_spread_over_memory() -> None:
    pages = [*range(0, 300), *range(700, 1100), 4000]
    total = 16 * _SEGMENT_PAGES
    runs = _zero_runs(pages, total)
    order = _pass_order(runs, pages)
    zero = [item for item in order if isinstance(item, tuple)]
    data = [item for item in order if isinstance(item, int)]
    assert sorted(data) == pages
    covered = sorted(page for start, count in zero for page in range(start, start + count))
    assert covered == sorted(set(range(total)) - set(pages))
    # Zero runs stay within a segment; each segment's items go together, in address order.
    assert all(start // _SEGMENT_PAGES == (start + count - 1) // _SEGMENT_PAGES for start, count in zero)
    segments = [(item[0] if isinstance(item, tuple) else item) // _SEGMENT_PAGES for item in order]
    visits = [s for i, s in enumerate(segments) if i == 0 or segments[i - 1] != s]
    # Bit-reversed: every prefix spreads over memory.
    assert visits == [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15]
    for segment in visits:
        starts = [
            item[0] if isinstance(item, tuple) else item
            for item, s in zip(order, segments, strict=True)
            if s == segment
        ]
        assert starts == sorted(starts)


def test_pass_history_keeps_pass_one_and_the_latest_passes_only() -> None:
    # Faster than the link, pre-copy only: it never converges; the operator gives up.
    guest = make_guest(2, "start")
    passes = _PASS_HISTORY + 6

    class GiveUp(SourceObserver):
        engine: OutgoingMigration | None = None

        def iteration(self, number: int) -> None:
            if self.engine is not None and number > passes:
                self.engine.cancel()

    async def main() -> OutgoingMigration:
        guest.resume(trio.current_time())
        observer = GiveUp()
        settings = MigrationSettings(bandwidth_mib_s=BANDWIDTH_MIB_S)
        out = OutgoingMigration(guest, Job(JobOperation.MIGRATION_OUT, 0), settings, observer)
        observer.engine = out
        inc = IncomingMigration(Guest.empty(MEMORY_PAGES, guest.workload), Job(JobOperation.MIGRATION_IN, 0))
        source_end, destination_end = trio.testing.memory_stream_pair()

        async def receive() -> None:
            with pytest.raises(MigrationFailed):  # the source went away
                await inc.run(destination_end)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            with pytest.raises(MigrationCancelled):
                await out.run(source_end)
        return out

    out = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert out.job.counters.memory_iteration == passes + 1
    assert len(out.passes) == _PASS_HISTORY
    assert out.passes[0].iteration == 1 and out.passes[0].sent + out.passes[0].rewritten == WORKING_SET
    assert [p.iteration for p in out.passes[1:]] == list(range(passes - _PASS_HISTORY + 2, passes + 1))
