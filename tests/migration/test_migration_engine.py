"""The migration engine alone: a source and a destination over a loopback TCP socket."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from virtwire.server.driver.memory.guest import PAGE_SIZE, FaultSpec, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation, params_dict
from virtwire.server.driver.memory.migration import (
    MigrationCancelled,
    MigrationFailed,
    MigrationSettings,
    OutgoingMigration,
    SourceObserver,
)
from virtwire.server.driver.memory.migration_incoming import DestinationObserver, IncomingMigration
from virtwire.server.driver.memory.migration_ratelimit import UNLIMITED_MIB_S, TokenBucket
from virtwire.server.driver.memory.migration_stream import Kind, RecordReader

MIB_PAGES = 1024 * 1024 // PAGE_SIZE


@dataclass
class Recorder(SourceObserver, DestinationObserver):
    events: list[str] = field(default_factory=list)
    snapshot: dict[int, int] | None = None
    source: Guest | None = None
    on_iteration: object = None

    def iteration(self, number: int) -> None:
        self.events.append(f"iteration {number}")
        if callable(self.on_iteration):
            self.on_iteration(number)

    def paused(self, postcopy: bool) -> None:
        self.events.append("paused postcopy" if postcopy else "paused")

    def postcopy_running(self) -> None:
        self.events.append("destination running")


@dataclass
class Outcome:
    source: OutgoingMigration
    destination: IncomingMigration
    source_error: BaseException | None = None
    destination_error: BaseException | None = None


Trail = Any  # conftest.JobStatsTrail


def make_guest(memory_mib: int, ws_mib: int, rate: int, ds_mib: int | None = None) -> Guest:
    workload = WorkloadSpec(
        dirty_rate=rate,
        working_set_pages=ws_mib * MIB_PAGES,
        dirty_set_pages=None if ds_mib is None else ds_mib * MIB_PAGES,
    )
    guest = Guest(memory_mib * MIB_PAGES, workload)
    guest.resume(trio.current_time())
    return guest


def job_stats(job: Job) -> dict[str, Any]:
    """What virDomainGetJobStats returns for this job right now."""
    return {"type": int(job.status.job_type), **params_dict(job.to_params(trio.current_time()))}


async def migrate(
    source_guest: Guest,
    settings: MigrationSettings,
    recorder: Recorder,
    *,
    control: object = None,
    trail: Trail = None,
    stream_wrapper: Callable[[trio.abc.Stream], trio.abc.Stream] | None = None,
) -> Outcome:
    """Run one migration; ``trail`` (a JobStatsTrail) gets a stats sample every few ms,
    and the last one is checked as completed stats against the iteration events."""
    dest_guest = Guest.empty(source_guest.memory.total_pages, source_guest.workload)
    now = trio.current_time()
    out = OutgoingMigration(source_guest, Job(JobOperation.MIGRATION_OUT, now), settings, recorder)
    inc = IncomingMigration(dest_guest, Job(JobOperation.MIGRATION_IN, now), recorder)
    outcome = Outcome(out, inc)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def destination() -> None:
        stream = await listeners[0].accept()
        await listeners[0].aclose()
        try:
            await inc.run(stream)
        except MigrationFailed as exc:
            outcome.destination_error = exc

    sampling = trio.CancelScope()

    async def sampler() -> None:
        with sampling:
            while True:
                trail.add(job_stats(out.job))
                await trio.sleep(0.003)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(destination)
        if callable(control):
            nursery.start_soon(control, out)
        if trail is not None:
            nursery.start_soon(sampler)
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
        if stream_wrapper is not None:
            stream = stream_wrapper(stream)
        try:
            await out.run(stream)
        except (MigrationFailed, MigrationCancelled) as exc:
            outcome.source_error = exc
        sampling.cancel()  # the destination task ends on its own
    if trail is not None:
        iterations = sum(1 for event in recorder.events if event.startswith("iteration"))
        if outcome.source_error is None:
            trail.completed(job_stats(out.job), iterations)
        else:
            assert trail.add(job_stats(out.job))["memory_iteration"] == iterations
    return outcome


async def test_precopy_converges_and_destination_holds_the_exact_memory(
    stats_trail: Callable[[], Trail],
) -> None:
    guest = make_guest(memory_mib=64, ws_mib=4, rate=200)
    rec = Recorder()
    trail = stats_trail()
    result = await migrate(guest, MigrationSettings(bandwidth_mib_s=40), rec, trail=trail)
    assert result.source_error is None and result.destination_error is None
    assert not guest.running
    # Every page arrived, checked against its (page, version) content.
    assert result.destination.guest.memory.versions == guest.memory.versions
    c = result.source.job.counters
    # Iteration 1 is all of RAM; each later one adds the pages it queued again.
    assert c.memory_total == 64 * 1024 * 1024 + (c.memory_normal - 4 * MIB_PAGES) * PAGE_SIZE
    assert c.memory_processed == c.memory_total
    assert c.memory_constant == 60 * MIB_PAGES  # untouched pages went as markers only
    assert c.memory_normal >= 4 * MIB_PAGES
    assert c.memory_normal_bytes == c.memory_normal * PAGE_SIZE
    assert c.memory_remaining == 0
    assert c.downtime_ms is not None and c.downtime_ms < 1000
    assert rec.events[0] == "iteration 1"
    # The stop-and-copy pass is an iteration of its own (QEMU syncs the bitmap there).
    assert rec.events[-2:] == ["paused", f"iteration {c.memory_iteration}"]
    assert rec.events.count("paused") == 1
    assert [e for e in rec.events if e.startswith("iteration")] == [
        f"iteration {n}" for n in range(1, c.memory_iteration + 1)
    ]
    # The destination counted the same traffic and the same progress.
    d = result.destination.job.counters
    assert (d.memory_normal, d.memory_constant) == (c.memory_normal, c.memory_constant)
    assert (d.memory_total, d.memory_processed, d.memory_remaining) == (c.memory_total, c.memory_processed, 0)
    assert d.memory_iteration == c.memory_iteration
    assert len(trail.samples) > 1


async def test_precopy_does_not_converge_when_dirtying_outpaces_bandwidth_then_postcopy_does(
    stats_trail: Callable[[], Trail],
) -> None:
    # 8 MiB/s into a hot set of 2 MiB: resending it takes 500 ms at 4 MiB/s, over the 300 ms downtime.
    guest = make_guest(memory_mib=32, ws_mib=2, rate=4 * 256 * 8, ds_mib=2)
    rec = Recorder()
    trail = stats_trail()

    async def control(out: OutgoingMigration) -> None:
        while out.job.counters.memory_iteration < 4:
            await trio.sleep(0.01)
        out.request_postcopy()

    settings = MigrationSettings(bandwidth_mib_s=4, postcopy=True, postcopy_bandwidth_mib_s=4)
    result = await migrate(guest, settings, rec, control=control, trail=trail)
    assert result.source_error is None and result.destination_error is None
    assert "paused" not in rec.events  # never converged in pre-copy
    assert rec.events.index("paused postcopy") < rec.events.index("destination running")
    out, inc = result.source, result.destination
    # Each missing page crossed exactly once, and the guest faulted some of them.
    assert out.postcopy_pages_sent == out.postcopy_missing > 0
    assert out.job.counters.memory_postcopy_requests > 0
    assert inc.job.counters.memory_postcopy_requests == out.job.counters.memory_postcopy_requests
    assert not inc.missing
    source_pages = guest.memory.versions
    dest_pages = inc.guest.memory.versions
    assert set(dest_pages) == set(source_pages)
    assert all(dest_pages[p] >= v for p, v in source_pages.items())


async def test_postcopy_requested_in_first_pass_switches_mid_pass(stats_trail: Callable[[], Trail]) -> None:
    guest = make_guest(memory_mib=16, ws_mib=4, rate=1000)
    rec = Recorder()
    trail = stats_trail()

    async def control(out: OutgoingMigration) -> None:
        while out.job.counters.memory_normal < 100:
            await trio.sleep(0.005)
        out.request_postcopy()

    settings = MigrationSettings(bandwidth_mib_s=8, postcopy=True)
    result = await migrate(guest, settings, rec, control=control, trail=trail)
    assert result.source_error is None and result.destination_error is None
    assert result.source.job.counters.memory_iteration == 2  # the switch syncs the bitmap
    # The switch carried the unsent rest of pass 1 over: the total grew only by the
    # pages written again after they were sent.
    c = result.source.job.counters
    assert c.memory_total == (16 * MIB_PAGES + c.memory_normal - 4 * MIB_PAGES) * PAGE_SIZE
    assert rec.events == ["iteration 1", "paused postcopy", "iteration 2", "destination running"]
    assert result.source.job.counters.memory_constant == 12 * MIB_PAGES
    assert set(result.destination.guest.memory.versions) == set(guest.memory.versions)


async def test_abort_in_precopy_leaves_source_running_and_fails_destination(
    stats_trail: Callable[[], Trail],
) -> None:
    guest = make_guest(memory_mib=32, ws_mib=8, rate=20000, ds_mib=8)
    before = dict(guest.memory.versions)

    async def control(out: OutgoingMigration) -> None:
        while out.job.counters.memory_iteration < 2:
            await trio.sleep(0.01)
        out.cancel()

    settings = MigrationSettings(bandwidth_mib_s=16)
    result = await migrate(guest, settings, Recorder(), control=control, trail=stats_trail())
    assert isinstance(result.source_error, MigrationCancelled)
    assert isinstance(result.destination_error, MigrationFailed)
    assert not result.destination_error.postcopy
    assert guest.running and not guest.memory.dirty_logging
    assert set(guest.memory.versions) == set(before)


@pytest.mark.parametrize("phase", ["precopy", "postcopy"])
async def test_link_cut_fails_both_sides_in_the_right_phase(
    phase: str, stats_trail: Callable[[], Trail]
) -> None:
    guest = make_guest(memory_mib=16, ws_mib=4, rate=2000)
    settings = MigrationSettings(bandwidth_mib_s=32, postcopy=True, fault=FaultSpec(phase, 200))

    async def control(out: OutgoingMigration) -> None:
        if phase == "postcopy":
            while out.job.counters.memory_normal < 50:
                await trio.sleep(0.005)
            out.request_postcopy()

    result = await migrate(guest, settings, Recorder(), control=control, trail=stats_trail())
    assert isinstance(result.source_error, MigrationFailed)
    assert isinstance(result.destination_error, MigrationFailed)
    assert result.source_error.postcopy is (phase == "postcopy")
    assert result.destination_error.postcopy is (phase == "postcopy")
    assert "socket" in result.source_error.reason
    assert guest.running is (phase == "precopy")


def test_token_bucket_paces_at_the_configured_rate() -> None:
    # Virtual time: the bucket's sleeps are measured exactly, nothing depends on load.
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> float:
        bucket = TokenBucket(8)
        start = trio.current_time()
        for _ in range(128):
            await bucket.consume(64 * 1024)  # 8 MiB in total
        bucket.rate_mib_s = UNLIMITED_MIB_S
        await bucket.consume(1 << 30)  # unlimited: no wait at all
        return trio.current_time() - start

    elapsed = trio.run(main, clock=clock)
    assert 0.94 <= elapsed <= 1.0  # one second at 8 MiB/s, less the initial burst


class CapturingStream(trio.abc.Stream):
    """Passes everything through and keeps the bytes that really crossed, both ways."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent = bytearray()
        self.received = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        self.sent += data

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.received += data
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


def records(data: bytes | bytearray) -> list[tuple[Kind, int, int, int]]:
    """(kind, a, b, page bytes carried) of every record in ``data``, which must parse whole."""
    reader = RecordReader()
    reader.feed(data)
    out = []
    while (record := reader.next()) is not None:
        out.append((record.kind, record.a, record.b, len(record.data)))
    assert reader.pending == 0
    return out


async def test_stats_are_the_pages_that_crossed_and_progress_adds_up(
    stats_trail: Callable[[], Trail],
) -> None:
    # Post-copy after one iteration (switched on the iteration-2 event, as virsh
    # --postcopy-after-precopy does), slow enough that the destination faults pages in.
    guest = make_guest(memory_mib=32, ws_mib=2, rate=3000, ds_mib=2)
    rec = Recorder()
    trail = stats_trail()
    captured: list[CapturingStream] = []
    engines: list[OutgoingMigration] = []

    def capture(stream: trio.abc.Stream) -> trio.abc.Stream:
        captured.append(CapturingStream(stream))
        return captured[0]

    async def control(out: OutgoingMigration) -> None:
        engines.append(out)

    def switch_on_second_iteration(number: int) -> None:
        if number == 2:
            engines[0].request_postcopy()

    rec.on_iteration = switch_on_second_iteration
    # The 2 MiB hot set takes 500 ms at 4 MiB/s: more than the downtime, no convergence.
    settings = MigrationSettings(bandwidth_mib_s=4, postcopy=True, postcopy_bandwidth_mib_s=2)
    result = await migrate(guest, settings, rec, control=control, trail=trail, stream_wrapper=capture)
    assert result.source_error is None and result.destination_error is None
    c = result.source.job.counters
    sent, received = records(captured[0].sent), records(captured[0].received)
    # The wire accounting is exactly what crossed the socket.
    assert c.memory_normal == sum(1 for kind, *_ in sent if kind is Kind.PAGE)
    assert c.memory_normal_bytes == sum(size for *_, size in sent)
    assert c.memory_constant == sum(count for kind, _, count, _ in sent if kind is Kind.ZERO_RUN)
    assert c.memory_postcopy_requests == sum(1 for kind, *_ in received if kind is Kind.PAGE_REQUEST) > 0
    assert 0 < c.memory_bps <= 1.5 * 4 * 1024 * 1024  # wire rate, held under the 4 MiB/s bucket
    # Progress: each page counted once per iteration that queued it.
    assert c.memory_processed == (c.memory_normal + c.memory_constant) * PAGE_SIZE == c.memory_total
    iterations = [(a, b) for kind, a, b, _ in sent if kind is Kind.ITERATION]
    assert [number for number, _ in iterations] == [1, 2, 3] == list(range(1, c.memory_iteration + 1))
    # Iteration 3 (the switch) carried over what iteration 2 had not sent, and
    # iteration 2 the pages pass 1 skipped (written again before their turn): the
    # total is RAM plus the pages left for post-copy plus those pass 2 sent, less
    # the skipped ones, counted once although pending in two iterations.
    ram_pages = 32 * MIB_PAGES
    first, second = result.source.passes[:2]
    assert iterations[0][1] == ram_pages and iterations[1][1] > 0
    assert iterations[2][1] >= iterations[1][1] - second.sent
    assert c.memory_total == (ram_pages + iterations[2][1] + second.sent - first.rewritten) * PAGE_SIZE
    assert result.source.postcopy_pages_sent == iterations[2][1]
    d = result.destination.job.counters
    assert (d.memory_total, d.memory_processed, d.memory_normal) == (
        c.memory_total,
        c.memory_processed,
        c.memory_normal,
    )
