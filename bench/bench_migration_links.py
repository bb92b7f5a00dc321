#!/usr/bin/env python3
"""Benchmark: the migration link kinds (part of bench_migration.py, ``--links``; runnable alone).

1. compression -- a static guest whose pages compress (as the simulated guest's
   do: a 16-byte stamp repeated) migrates over one loopback link, plain and with
   each method; page bytes / wire bytes is the ratio. ``xbzrle`` is measured on a
   dirtying guest under a cap, where pages are sent again (its only use).
2. parallel -- every connection capped at --cap MiB/s (the link-cap hook, a
   per-flow network limit): one plain link against N parallel data connections.
3. tunnelled -- two ``virtwire serve`` processes; the same guest migrated
   peer-to-peer directly (own TCP link) and tunnelled (inside the libvirt
   connection), unlimited bandwidth, best of --repeat runs each.

Real libvirt's test driver cannot migrate, so the yardsticks are the ratios.

    .venv/bin/python bench/bench_migration_links.py [--working-set 64] [--cap 8] [--channels 4]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import trio
from virtwire.server.driver.memory.guest import PAGE_SIZE, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation
from virtwire.server.driver.memory.migration import MigrationFailed, MigrationSettings, OutgoingMigration
from virtwire.server.driver.memory.migration_codec import CompressionSpec
from virtwire.server.driver.memory.migration_connect import LinkPlan, accept_incoming, open_outgoing
from virtwire.server.driver.memory.migration_incoming import IncomingMigration

MIB = 1024 * 1024
NS = "https://virtwire.dev/xmlns/1"


@dataclass
class Result:
    seconds: float
    wire_bytes: int
    page_bytes: int
    xbzrle_pages: int = 0


async def migrate(make: Callable[[], Guest], settings: MigrationSettings, plan: LinkPlan) -> Result:
    guest = make()
    start = trio.current_time()
    out = OutgoingMigration(guest, Job(JobOperation.MIGRATION_OUT, start), settings)
    dest = IncomingMigration(
        Guest.empty(guest.memory.total_pages, guest.workload), Job(JobOperation.MIGRATION_IN, start)
    )
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    wire = 0

    async def receive() -> None:
        async with accept_incoming(listener, plan) as link:
            await listener.aclose()
            with contextlib.suppress(MigrationFailed):
                await dest.run(link)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        async with open_outgoing("127.0.0.1", port, plan) as link:
            try:
                await out.run(link)
            finally:
                wire = link.sent
    if dest.guest.memory.versions != guest.memory.versions:
        raise SystemExit("benchmark migration lost pages")
    c = out.job.counters
    xbzrle = c.compression.pages if c.compression is not None else 0
    return Result(trio.current_time() - start, wire, (c.memory_normal + xbzrle) * PAGE_SIZE, xbzrle)


def guest(working_set_mib: int, dirty_rate: int = 0, dirty_set_mib: int | None = None) -> Callable[[], Guest]:
    """A guest of twice its working set, made (and started) inside the benchmark's trio run."""
    pages = working_set_mib * MIB // PAGE_SIZE
    workload = WorkloadSpec(
        dirty_rate=dirty_rate,
        working_set_pages=pages,
        dirty_set_pages=None if dirty_set_mib is None else dirty_set_mib * MIB // PAGE_SIZE,
    )

    def make() -> Guest:
        g = Guest(2 * pages, workload)
        g.resume(trio.current_time())
        return g

    return make


def compression(args: argparse.Namespace) -> None:
    print(
        f"\n1. compression: static guest, working set {args.working_set} MiB, one loopback link (unlimited)"
    )
    print(f"{'method':<22} {'seconds':>8} {'page MiB':>9} {'wire MiB':>9} {'ratio':>7} {'x plain time':>12}")
    plain_time = 0.0
    rows = [
        ("none", None, LinkPlan()),
        ("mt (level 1)", CompressionSpec(("mt",)), LinkPlan()),
        ("zlib (parallel, 2)", CompressionSpec(("zlib",)), LinkPlan(channels=2, multifd="zlib")),
        ("zstd (parallel, 2)", CompressionSpec(("zstd",)), LinkPlan(channels=2, multifd="zstd")),
    ]
    for label, spec, plan in rows:
        r = trio.run(migrate, guest(args.working_set), MigrationSettings(compression=spec), plan)
        plain_time = plain_time or r.seconds
        print(
            f"{label:<22} {r.seconds:8.2f} {r.page_bytes / MIB:9.1f} {r.wire_bytes / MIB:9.2f} "
            f"{r.page_bytes / r.wire_bytes:7.1f} {r.seconds / plain_time:12.2f}"
        )
        sys.stdout.flush()
    # xbzrle: a guest rewriting all of its working set, capped so that passes repeat.
    # It laps it in two seconds, four times as long as pass 1 takes (and slowly enough
    # for pre-copy to converge even when the deltas' encoding is starved of CPU on a
    # loaded machine; pre-copy that cannot converge goes on until cancelled, and
    # nobody cancels here): most pages cross in pass 1
    # and are written after, so they go again, as deltas. (A page written before its
    # turn is skipped, and crosses once, whole: a guest that laps a small hot set
    # faster than pass 1 leaves xbzrle nothing to do.)
    settings = MigrationSettings(bandwidth_mib_s=args.cap * 4, compression=CompressionSpec(("xbzrle",)))
    dirtying_mib = max(args.working_set // 4, 1)
    lap_rate = dirtying_mib * MIB // PAGE_SIZE // 2
    dirtying = guest(dirtying_mib, dirty_rate=lap_rate, dirty_set_mib=dirtying_mib)
    r = trio.run(migrate, dirtying, settings, LinkPlan())
    print(
        f"{'xbzrle (dirtying)':<22} {r.seconds:8.2f} {r.page_bytes / MIB:9.1f} {r.wire_bytes / MIB:9.2f} "
        f"{r.page_bytes / r.wire_bytes:7.1f} {'':>12}  ({r.xbzrle_pages} pages as deltas, "
        f"{args.cap * 4} MiB/s, working set {args.working_set // 4} MiB)"
    )


def parallel(args: argparse.Namespace) -> None:
    print(f"\n2. parallel: every connection capped at {args.cap} MiB/s, working set {args.working_set} MiB")
    one = trio.run(migrate, guest(args.working_set), MigrationSettings(), LinkPlan(cap_mib_s=args.cap))
    many = trio.run(
        migrate,
        guest(args.working_set),
        MigrationSettings(),
        LinkPlan(channels=args.channels, cap_mib_s=args.cap),
    )
    for label, r in (("1 link", one), (f"{args.channels} parallel links", many)):
        print(f"{label:<20} {r.seconds:7.2f} s  {r.page_bytes / MIB / r.seconds:7.1f} MiB/s of pages")
    print(f"ratio {args.channels} links / 1 link: {one.seconds / many.seconds:.2f} x (target >= 3.5)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(hostname: str) -> tuple[subprocess.Popen[bytes], str]:
    # TCP: libvirt refuses a peer-to-peer destination URI without a host (a local socket).
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "virtwire.server",
            "serve",
            "--tcp",
            f"127.0.0.1:{port}",
            "--hostname",
            hostname,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"virtwire serve ({hostname}) did not start")
        time.sleep(0.1)
    return proc, f"test+tcp://127.0.0.1:{port}/default"


def tunnelled(args: argparse.Namespace) -> None:
    import virtwire.libvirt as libvirt

    print(f"\n3. tunnelled vs direct: two virtwire serve, p2p, working set {args.working_set} MiB, unlimited")
    procs = [_serve(name) for name in ("bench-a", "bench-b")]
    uris = [uri for _, uri in procs]
    best: dict[str, float] = {}
    try:
        conns = [libvirt.open(uri) for uri in uris]
        xml = (
            f"<domain type='test'><name>bench</name><uuid>{uuid.uuid4()}</uuid><metadata>"
            f"<virtwire:workload xmlns:virtwire='{NS}' dirty-rate='0' working-set-mib='{args.working_set}'/>"
            f"</metadata><memory unit='MiB'>{2 * args.working_set}</memory><vcpu>1</vcpu>"
            "<os><type>hvm</type></os></domain>"
        )
        conns[0].createXML(xml, 0)
        where = 0
        base = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
        for _ in range(args.repeat):
            for mode, flags in (("direct", base), ("tunnelled", base | libvirt.VIR_MIGRATE_TUNNELLED)):
                dom = conns[where].lookupByName("bench")
                started = time.perf_counter()
                dom.migrateToURI3(uris[1 - where], {}, flags)
                elapsed = time.perf_counter() - started
                best[mode] = min(best.get(mode, elapsed), elapsed)
                where = 1 - where
        for conn in conns:
            conn.close()
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=30)
    for mode in ("direct", "tunnelled"):
        print(f"{mode:<10} {best[mode]:6.2f} s  {args.working_set / best[mode]:7.1f} MiB/s of working set")
    print(f"ratio tunnelled / direct throughput: {best['direct'] / best['tunnelled']:.2f} x (target >= 0.8)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--working-set", type=int, default=64, help="touched memory, MiB (default 64)")
    parser.add_argument("--cap", type=int, default=8, help="per-connection cap, MiB/s (default 8)")
    parser.add_argument("--channels", type=int, default=4, help="parallel data connections (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="tunnelled/direct runs each (default 3)")
    parser.add_argument("--only", default="compression,parallel,tunnelled", help="which sections to run")
    args = parser.parse_args(argv)
    sections = {"compression": compression, "parallel": parallel, "tunnelled": tunnelled}
    for name in args.only.split(","):
        sections[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
