#!/usr/bin/env python3
"""Benchmark: pre-copy vs post-copy live migration of the simulated guest.

Runs the migration engine of virtwire's memory driver between two endpoints over
a real loopback TCP connection, with the stream paced at a fixed bandwidth, for
guest dirty rates of 0.25, 0.5, 1 and 2 x that bandwidth:

* ``precopy``      pre-copy only; gives up (aborts) after --max-passes passes;
* ``postcopy@2``   virsh's --postcopy-after-precopy: switch when pass 2 starts;
* ``postcopy@1``   switch to post-copy right after the first batch of pass 1.

The physical floor is the guest's touched memory (its working set) divided by the
bandwidth: no migration can move the guest faster. ``x needed`` divides instead by
the time the pages this strategy had to send (every page version that crossed)
take at the bandwidth: it measures the engine's own overhead. Real libvirt has no
migration in its test driver, so there is no libvirt column; the yardstick is the floor.

    .venv/bin/python bench/bench_migration.py [--bandwidth 16] [--working-set 16]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass

import trio
from virtwire.server.driver.memory.guest import PAGE_SIZE, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation
from virtwire.server.driver.memory.migration import (
    MigrationCancelled,
    MigrationFailed,
    MigrationSettings,
    OutgoingMigration,
)
from virtwire.server.driver.memory.migration_incoming import IncomingMigration

MIB = 1024 * 1024


@dataclass
class Row:
    mode: str
    factor: float
    converged: bool
    seconds: float
    downtime_ms: int | None
    bytes_sent: int
    normal_pages: int
    requests: int
    passes: int


async def run_one(mode: str, factor: float, args: argparse.Namespace) -> Row:
    pages_per_s = args.bandwidth * MIB // PAGE_SIZE
    ws_pages = args.working_set * MIB // PAGE_SIZE
    memory_pages = args.memory * MIB // PAGE_SIZE
    workload = WorkloadSpec(dirty_rate=int(pages_per_s * factor), working_set_pages=ws_pages)
    guest = Guest(memory_pages, workload)
    guest.resume(trio.current_time())
    settings = MigrationSettings(
        bandwidth_mib_s=args.bandwidth,
        postcopy_bandwidth_mib_s=args.bandwidth,
        postcopy=mode != "precopy",
    )
    start = trio.current_time()
    out = OutgoingMigration(guest, Job(JobOperation.MIGRATION_OUT, start), settings)
    dest = IncomingMigration(Guest.empty(memory_pages, workload), Job(JobOperation.MIGRATION_IN, start))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    converged = True

    async def destination() -> None:
        stream = await listeners[0].accept()
        await listeners[0].aclose()
        with contextlib.suppress(MigrationFailed):
            await dest.run(stream)

    async def driver() -> None:
        # What the management layer does: switch to post-copy, or give up on pre-copy.
        while True:
            iteration = out.job.counters.memory_iteration
            if mode == "postcopy@2" and iteration >= 2:
                out.request_postcopy()
                return
            if mode == "postcopy@1" and out.job.counters.memory_normal > 0:
                out.request_postcopy()
                return
            if mode == "precopy" and iteration > args.max_passes:
                out.cancel()
                return
            await trio.sleep(0.002)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(destination)
        nursery.start_soon(driver)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            await out.run(stream)
        except (MigrationCancelled, MigrationFailed):
            converged = False
        nursery.cancel_scope.cancel()
    c = out.job.counters
    return Row(
        mode,
        factor,
        converged,
        trio.current_time() - start,
        c.downtime_ms,
        c.memory_processed,
        c.memory_normal,
        c.memory_postcopy_requests,
        c.memory_iteration,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bandwidth", type=int, default=16, help="MiB/s (default 16)")
    parser.add_argument("--working-set", type=int, default=16, help="guest working set, MiB (default 16)")
    parser.add_argument("--memory", type=int, default=1024, help="guest memory, MiB (default 1024)")
    parser.add_argument("--max-passes", type=int, default=8, help="pre-copy gives up after this many")
    parser.add_argument("--factors", default="0.25,0.5,1,2", help="dirty rate / bandwidth")
    args = parser.parse_args()
    floor = args.working_set / args.bandwidth
    print(
        f"bandwidth {args.bandwidth} MiB/s, working set {args.working_set} MiB of {args.memory} MiB, "
        f"floor {floor:.2f} s"
    )
    header = (
        f"{'mode':<11} {'dirty/bw':>8} {'converged':>9} {'total s':>8} {'x floor':>7} {'x needed':>8} "
        f"{'downtime ms':>11} {'MiB sent':>8} {'requests':>8} {'passes':>6}"
    )
    print(header)
    print("-" * len(header))
    for factor in (float(f) for f in args.factors.split(",")):
        for mode in ("precopy", "postcopy@2", "postcopy@1"):
            row = trio.run(run_one, mode, factor, args)
            downtime = "-" if row.downtime_ms is None else str(row.downtime_ms)
            total = f"{row.seconds:8.2f}" if row.converged else f"{'(' + format(row.seconds, '.2f') + ')':>8}"
            ratio = f"{row.seconds / floor:7.2f}" if row.converged else f"{'-':>7}"
            needed_s = row.normal_pages * PAGE_SIZE / (args.bandwidth * MIB)
            efficiency = f"{row.seconds / needed_s:8.2f}" if row.converged else f"{'-':>8}"
            converged = "yes" if row.converged else "NO"
            print(
                f"{row.mode:<11} {row.factor:>8.2f} {converged:>9} {total} {ratio} {efficiency} "
                f"{downtime:>11} {row.bytes_sent / MIB:8.1f} {row.requests:8d} {row.passes:6d}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
