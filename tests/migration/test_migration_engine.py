"""The migration engine alone: a source and a destination over a loopback TCP socket."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from virtwire.server.driver.memory.guest import PAGE_SIZE, FaultSpec, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation
from virtwire.server.driver.memory.migration import (
    MigrationCancelled,
    MigrationFailed,
    MigrationSettings,
    OutgoingMigration,
    SourceObserver,
)
from virtwire.server.driver.memory.migration_incoming import DestinationObserver, IncomingMigration
from virtwire.server.driver.memory.migration_ratelimit import UNLIMITED_MIB_S, TokenBucket

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


def make_guest(memory_mib: int, ws_mib: int, rate: int) -> Guest:
    guest = Guest(memory_mib * MIB_PAGES, WorkloadSpec(dirty_rate=rate, working_set_pages=ws_mib * MIB_PAGES))
    guest.resume(trio.current_time())
    return guest


async def migrate(
    source_guest: Guest,
    settings: MigrationSettings,
    recorder: Recorder,
    *,
    control: object = None,
) -> Outcome:
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

    async with trio.open_nursery() as nursery:
        nursery.start_soon(destination)
        if callable(control):
            nursery.start_soon(control, out)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            await out.run(stream)
        except (MigrationFailed, MigrationCancelled) as exc:
            outcome.source_error = exc
    return outcome


async def test_precopy_converges_and_destination_holds_the_exact_memory() -> None:
    guest = make_guest(memory_mib=64, ws_mib=4, rate=200)
    rec = Recorder()
    result = await migrate(guest, MigrationSettings(bandwidth_mib_s=40), rec)
    assert result.source_error is None and result.destination_error is None
    assert not guest.running
    # Every page arrived, checked against its (page, version) content.
    assert result.destination.guest.memory.versions == guest.memory.versions
    c = result.source.job.counters
    assert c.memory_total == 64 * 1024 * 1024
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
    # The destination counted the same traffic.
    d = result.destination.job.counters
    assert (d.memory_normal, d.memory_constant) == (c.memory_normal, c.memory_constant)


async def test_precopy_does_not_converge_when_dirtying_outpaces_bandwidth_then_postcopy_does() -> None:
    guest = make_guest(memory_mib=32, ws_mib=2, rate=4 * 256 * 8)  # 8 MiB/s into a 2 MiB set
    rec = Recorder()

    async def control(out: OutgoingMigration) -> None:
        while out.job.counters.memory_iteration < 4:
            await trio.sleep(0.01)
        out.request_postcopy()

    settings = MigrationSettings(bandwidth_mib_s=4, postcopy=True, postcopy_bandwidth_mib_s=4)
    result = await migrate(guest, settings, rec, control=control)
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


async def test_postcopy_requested_in_first_pass_switches_mid_pass() -> None:
    guest = make_guest(memory_mib=16, ws_mib=4, rate=1000)
    rec = Recorder()

    async def control(out: OutgoingMigration) -> None:
        while out.job.counters.memory_normal < 100:
            await trio.sleep(0.005)
        out.request_postcopy()

    result = await migrate(guest, MigrationSettings(bandwidth_mib_s=8, postcopy=True), rec, control=control)
    assert result.source_error is None and result.destination_error is None
    assert result.source.job.counters.memory_iteration == 2  # the switch syncs the bitmap
    assert rec.events == ["iteration 1", "paused postcopy", "iteration 2", "destination running"]
    assert result.source.job.counters.memory_constant == 12 * MIB_PAGES
    assert set(result.destination.guest.memory.versions) == set(guest.memory.versions)


async def test_abort_in_precopy_leaves_source_running_and_fails_destination() -> None:
    guest = make_guest(memory_mib=32, ws_mib=8, rate=20000)
    before = dict(guest.memory.versions)

    async def control(out: OutgoingMigration) -> None:
        while out.job.counters.memory_iteration < 2:
            await trio.sleep(0.01)
        out.cancel()

    result = await migrate(guest, MigrationSettings(bandwidth_mib_s=16), Recorder(), control=control)
    assert isinstance(result.source_error, MigrationCancelled)
    assert isinstance(result.destination_error, MigrationFailed)
    assert not result.destination_error.postcopy
    assert guest.running and not guest.memory.dirty_logging
    assert set(guest.memory.versions) == set(before)


@pytest.mark.parametrize("phase", ["precopy", "postcopy"])
async def test_link_cut_fails_both_sides_in_the_right_phase(phase: str) -> None:
    guest = make_guest(memory_mib=16, ws_mib=4, rate=2000)
    settings = MigrationSettings(bandwidth_mib_s=32, postcopy=True, fault=FaultSpec(phase, 200))

    async def control(out: OutgoingMigration) -> None:
        if phase == "postcopy":
            while out.job.counters.memory_normal < 50:
                await trio.sleep(0.005)
            out.request_postcopy()

    result = await migrate(guest, settings, Recorder(), control=control)
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


class CountingStream(trio.abc.Stream):
    """Passes everything through and counts the bytes the source really sent."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_stats_are_the_bytes_that_crossed_and_move_like_qemus() -> None:
    guest = make_guest(memory_mib=32, ws_mib=2, rate=3000)
    dest = IncomingMigration(
        Guest.empty(guest.memory.total_pages, guest.workload), Job(JobOperation.MIGRATION_IN, 0)
    )
    out = OutgoingMigration(
        guest, Job(JobOperation.MIGRATION_OUT, trio.current_time()), MigrationSettings(bandwidth_mib_s=8)
    )
    samples: list[tuple[int, int, int]] = []
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def destination() -> None:
        stream = await listeners[0].accept()
        await listeners[0].aclose()
        await dest.run(stream)

    async def sampler() -> None:
        while True:
            c = out.job.counters
            samples.append((c.memory_iteration, c.memory_processed, c.memory_remaining))
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(destination)
        nursery.start_soon(sampler)
        counting = CountingStream(await trio.open_tcp_stream("127.0.0.1", port))
        await out.run(counting)
        nursery.cancel_scope.cancel()
    c = out.job.counters
    # Memory records are all but a few hundred bytes of control records.
    assert 0 <= counting.sent - c.memory_processed < 1024
    assert c.memory_processed == dest.job.counters.memory_processed
    processed = [p for _, p, _ in samples]
    assert processed == sorted(processed)
    for iteration in {i for i, _, _ in samples if i}:
        remaining = [r for i, _, r in samples if i == iteration]
        assert remaining == sorted(remaining, reverse=True)  # shrinks within a pass
