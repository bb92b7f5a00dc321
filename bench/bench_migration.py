#!/usr/bin/env python3
"""Benchmark: pre-copy vs post-copy live migration of the simulated guest.

Runs the migration engine of virtwire's memory driver between two endpoints over
a real loopback TCP connection, with the stream paced at a fixed bandwidth, for
guest dirty rates of 0.25, 0.5, 1 and 2 x that bandwidth. The guest has touched
(made non-zero) its working set W; its writes sweep a hot dirty set D inside it.

* ``precopy``     pre-copy only; gives up (aborts) after --max-passes iterations;
* ``postcopy@1``  post-copy after one iteration, as virsh --postcopy-after-precopy
                  does it: when the MIGRATION_ITERATION event for iteration 2
                  fires, the management side calls migrateStartPostCopy;
* ``in-pass``     extra: switch right after the first batch of pass 1.
* ``recovery``    ``postcopy@1`` whose link is cut halfway through the post-copy
                  push; the engine recovers over a new link (VIR_MIGRATE_POSTCOPY_RESUME)
                  and sends only what the destination lacks. Its "vs uncut" column
                  compares the bytes on both links with the uncut ``postcopy@1`` run.

For the post-copy modes the destination times every page request (fault) until
its page arrives; p50/p99 are printed beside the link's round-trip time.

The physical floor is the touched memory divided by the bandwidth (W / B): no
migration moves the guest faster. The parameters are chosen so that sending D
takes longer than the allowed downtime: pre-copy cannot converge once the guest
dirties faster than the link carries, and converges below. At exactly the link's
rate it converges too: a pass skips the pages the guest writes before their turn,
so the link and the guest share the dirty set, and the next pass holds about half
of D, which fits the downtime.

Post-copy after one iteration would send W and then D once more, (W + D) / B, if
pass 1 sent every page: the guest rewrites all of D during the 4 s pass. The
engine does not: it drains the dirty log before every batch and skips a page
written since the pass began (the next pass, here post-copy, sends it), and it
walks memory in bit-reversed 1 MiB segments, leaving the segments seen written,
and their neighbours, for the end of the pass. So wherever D lies, pass 1 sends
of D only the pages it reaches before the guest writes in or near their segment;
those cross twice. An order blind to where D lies sends about L / 2T of D that
way (L = D / rate, the sweep's lap, shorter than the pass T = W / B); marking the
neighbours hot too cuts that to about 1/8 of D at 0.25 x B, nothing at 1 and 2 x B
with D at the start (in virtual time: 1.016 x W at most for D at the start,
middle or end, 1.002 for random writes). Leaving the pages of hot segments for
post-copy instead of the end of pass 1 would not shorten a post-copy after one
iteration: they go out just before the switch either way.
``--hot-at`` and ``--pattern`` move D inside W and write it at random.

Times are wall-clock (the link is paced in real time, and both ends share this
process's CPU), so a loaded machine stretches them; ``--repeat N`` runs every
cell N times, interleaved, and reports the fastest. "sent/W" is the data that
crossed over the working set, which does not depend on load.
Real libvirt has no migration in its test driver, so there is no libvirt column;
the yardstick is the floor.

    .venv/bin/python bench/bench_migration.py [--bandwidth 32] [--working-set 128] [--repeat 3]
        [--hot-at start|middle|end] [--pattern sweep|random]
    .venv/bin/python bench/bench_migration.py --links [ARGS]   (compression, parallel, tunnelled:
                                                                bench_migration_links.py)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from dataclasses import dataclass

import trio
from virtwire.server.driver.memory.guest import PAGE_SIZE, RANDOM, SWEEP, FaultSpec, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation
from virtwire.server.driver.memory.migration import (
    DEFAULT_MAX_DOWNTIME_MS,
    MigrationCancelled,
    MigrationFailed,
    MigrationSettings,
    OutgoingMigration,
    SourceObserver,
)
from virtwire.server.driver.memory.migration_incoming import IncomingMigration

MIB = 1024 * 1024
MODES = ("precopy", "postcopy@1", "in-pass", "recovery")


@dataclass
class Row:
    """One run; ``wire_bytes`` counts every link the migration used."""

    mode: str
    factor: float
    converged: bool
    seconds: float
    downtime_ms: int | None
    wire_bytes: int
    requests: int
    iterations: int
    latencies: list[float]
    sent_pages: int  # pages that crossed as data, post-copy included


class CountingStream(trio.abc.Stream):
    """The source's end of the link, counting every byte it writes."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        self.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class EventForwarder(SourceObserver):
    """Delivers MIGRATION_ITERATION events to the management side, as libvirt's event loop does."""

    def __init__(self, sink: trio.MemorySendChannel[int]) -> None:
        self.sink = sink

    def iteration(self, number: int) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.sink.send_nowait(number)


async def run_one(mode: str, factor: float, args: argparse.Namespace) -> Row:
    pages_per_s = args.bandwidth * MIB // PAGE_SIZE
    working_set = args.working_set * MIB // PAGE_SIZE
    dirty_set = args.dirty_set * MIB // PAGE_SIZE
    offsets = {"start": 0, "middle": (working_set - dirty_set) // 2, "end": working_set - dirty_set}
    workload = WorkloadSpec(
        dirty_rate=int(pages_per_s * factor),
        working_set_pages=working_set,
        dirty_set_pages=dirty_set,
        dirty_set_offset=offsets[args.hot_at],
        pattern=args.pattern,
    )
    memory_pages = args.memory * MIB // PAGE_SIZE
    guest = Guest(memory_pages, workload)
    guest.resume(trio.current_time())
    settings = MigrationSettings(
        bandwidth_mib_s=args.bandwidth,
        postcopy_bandwidth_mib_s=args.bandwidth,
        max_downtime_ms=args.downtime,
        postcopy=mode != "precopy",
    )
    if mode == "recovery":
        # Cut once, halfway through the dirty set's post-copy push.
        settings.fault = FaultSpec("postcopy", after_pages=args.dirty_set * MIB // PAGE_SIZE // 2)
    events_in, events_out = trio.open_memory_channel[int](64)
    start = trio.current_time()
    job = Job(JobOperation.MIGRATION_OUT, start)
    out = OutgoingMigration(guest, job, settings, EventForwarder(events_in))
    dest = IncomingMigration(Guest.empty(memory_pages, workload), Job(JobOperation.MIGRATION_IN, start))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    converged = True

    async def destination() -> None:
        stream = await listeners[0].accept()
        await listeners[0].aclose()
        with contextlib.suppress(MigrationFailed):
            await dest.run(stream)

    async def management() -> None:
        """What virsh (or Nova) does on each iteration event."""
        async for iteration in events_out:
            if mode in ("postcopy@1", "recovery") and iteration == 2:
                out.request_postcopy()  # virsh migrate --postcopy-after-precopy
            if mode == "precopy" and iteration > args.max_passes:
                out.cancel()  # the operator gives up on a migration that cannot converge

    async def in_pass_switch() -> None:
        while out.job.counters.memory_normal == 0:
            await trio.sleep(0.002)
        out.request_postcopy()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(destination)
        nursery.start_soon(management)
        if mode == "in-pass":
            nursery.start_soon(in_pass_switch)
        stream = CountingStream(await trio.open_tcp_stream("127.0.0.1", port))
        streams = [stream]
        try:
            await out.run(stream)
        except MigrationFailed as exc:
            if mode == "recovery" and exc.postcopy:
                streams.append(await recover(out, dest, nursery))
            else:
                converged = False
        except MigrationCancelled:
            converged = False
        nursery.cancel_scope.cancel()
    c = out.job.counters
    row = Row(
        mode,
        factor,
        converged,
        trio.current_time() - start,
        c.downtime_ms,
        stream.sent,
        c.memory_postcopy_requests,
        c.memory_iteration,
        dest.request_latencies,
        c.memory_normal,
    )
    row.wire_bytes = sum(link.sent for link in streams)
    return row


async def recover(out: OutgoingMigration, dest: IncomingMigration, nursery: trio.Nursery) -> CountingStream:
    """Post-copy recovery over a new link, as the five steps with POSTCOPY_RESUME run it."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def destination() -> None:
        stream = await listeners[0].accept()
        await listeners[0].aclose()
        await dest.resume(stream)

    nursery.start_soon(destination)
    stream = CountingStream(await trio.open_tcp_stream("127.0.0.1", port))
    await out.resume(stream)
    return stream


async def link_rtt() -> list[float]:
    """Round trips of a small message over a loopback TCP connection (the link's RTT)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    times: list[float] = []

    async def echo() -> None:
        peer = await listeners[0].accept()
        while data := await peer.receive_some(64):
            await peer.send_all(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        for _ in range(500):
            started = trio.current_time()
            await client.send_all(b"x" * 17)
            got = 0
            while got < 17:
                got += len(await client.receive_some(64))
            times.append(trio.current_time() - started)
        await client.aclose()
        nursery.cancel_scope.cancel()
    return times


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * pct / 100), len(ordered) - 1)]


def main() -> int:
    if "--links" in sys.argv[1:]:
        # bench_migration_links.py beside this script (its directory is on sys.path).
        links = importlib.import_module("bench_migration_links")
        return int(links.main([arg for arg in sys.argv[1:] if arg != "--links"]))
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bandwidth", type=int, default=32, help="link bandwidth, MiB/s (default 32)")
    parser.add_argument("--working-set", type=int, default=128, help="touched memory, MiB (default 128)")
    parser.add_argument("--dirty-set", type=int, default=0, help="hot set, MiB (default working set / 8)")
    parser.add_argument("--memory", type=int, default=1024, help="guest memory, MiB (default 1024)")
    parser.add_argument(
        "--downtime", type=int, default=DEFAULT_MAX_DOWNTIME_MS, help="max downtime, ms (default QEMU's 300)"
    )
    parser.add_argument("--max-passes", type=int, default=8, help="pre-copy gives up after this many")
    parser.add_argument("--factors", default="0.25,0.5,1,2", help="dirty rate / bandwidth")
    parser.add_argument("--modes", default=",".join(MODES), help="which strategies to run")
    parser.add_argument("--hot-at", choices=("start", "middle", "end"), default="start", help="D's place")
    parser.add_argument("--pattern", choices=(SWEEP, RANDOM), default=SWEEP, help="how the guest writes D")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (interleaved), fastest shown")
    args = parser.parse_args()
    if args.dirty_set <= 0:
        args.dirty_set = max(args.working_set // 8, 1)
    floor = args.working_set / args.bandwidth
    print(
        f"bandwidth {args.bandwidth} MiB/s, guest {args.memory} MiB, working set (touched) "
        f"{args.working_set} MiB, dirty set {args.dirty_set} MiB ({args.pattern} writes, at the "
        f"{args.hot_at} of the working set), max downtime {args.downtime} ms"
    )
    address_order = (args.working_set + args.dirty_set) / args.bandwidth
    print(
        f"floor W/B {floor:.2f} s; dirty set send time D/B {args.dirty_set / args.bandwidth * 1000:.0f} ms; "
        f"post-copy after a full pass 1, (W+D)/B {address_order:.2f} s = {address_order / floor:.3f} x floor"
    )
    header = (
        f"{'mode':<10} {'dirty/bw':>8} {'converged':>9} {'total s':>8} {'floor s':>7} {'x floor':>7} "
        f"{'sent/W':>6} {'downtime ms':>11} {'MiB sent':>8} {'vs uncut':>8} {'pc requests':>11} "
        f"{'iterations':>10} {'fault p50 ms':>12} {'fault p99 ms':>12}"
    )
    rtt = trio.run(link_rtt)
    rtt50, rtt99 = percentile(rtt, 50) * 1000, percentile(rtt, 99) * 1000
    print(f"link round trip (loopback TCP): p50 {rtt50:.3f} ms, p99 {rtt99:.3f} ms")
    print(header)
    print("-" * len(header))
    for factor in (float(f) for f in args.factors.split(",")):
        uncut: int | None = None
        modes = args.modes.split(",")
        runs: dict[str, list[Row]] = {mode: [] for mode in modes}
        for repeat in range(args.repeat):
            # Interleaved, alternating the order (ABBA), so load drifts hit every mode alike.
            for mode in modes if repeat % 2 == 0 else modes[::-1]:
                runs[mode].append(trio.run(run_one, mode, factor, args))
        for mode in modes:
            row = min(runs[mode], key=lambda run: (not run.converged, run.seconds))
            if mode == "postcopy@1":
                uncut = row.wire_bytes
            versus = f"{row.wire_bytes / uncut:8.4f}" if mode == "recovery" and uncut else f"{'-':>8}"
            if row.latencies:
                p50 = f"{percentile(row.latencies, 50) * 1000:12.2f}"
                p99 = f"{percentile(row.latencies, 99) * 1000:12.2f}"
            else:
                p50 = p99 = f"{'-':>12}"
            downtime = "-" if row.downtime_ms is None else str(row.downtime_ms)
            total = f"{row.seconds:8.2f}" if row.converged else f"{'(' + format(row.seconds, '.2f') + ')':>8}"
            ratio = f"{row.seconds / floor:7.2f}" if row.converged else f"{'-':>7}"
            converged = "yes" if row.converged else "NO"
            sent = row.sent_pages * PAGE_SIZE / MIB / args.working_set
            print(
                f"{row.mode:<10} {row.factor:>8.2f} {converged:>9} {total} {floor:7.2f} {ratio} {sent:6.3f} "
                f"{downtime:>11} {row.wire_bytes / MIB:8.1f} {versus} {row.requests:11d} "
                f"{row.iterations:10d} {p50} {p99}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
