#!/usr/bin/env python3
"""Benchmark `virtwire serve` against a real libvirtd (test driver), side by side.

The client is the real libvirt-python (C libvirt underneath), run in worker
subprocesses, so both servers face the same client.  Both daemons start fresh
in this run, on this machine; every workload runs against each in turn and the
table reports ratios (virtwire / libvirtd; higher is better for ops/s, lower
for CPU per call).  Server CPU comes from /proc/PID/stat (utime + stime).

    .venv/bin/python bench/bench_server.py [--duration 3] [--reps 5] [--ndomains 1000] [--only tcp]
                                            [--workload info]

The sequential dom.info() row also runs against a third server, `virtwire serve
--metrics` (Prometheus counters on), and reports its ratio to the same server
without metrics: the price of the metrics on the cheapest call.

This is a script, not a test: numbers on a shared 2-core box move by ±15 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from vwtestkit import start_libvirtd, start_server, stop_libvirtd  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
METERED = "virtwire --metrics"

# The worker: runs one workload with libvirt-python and prints a JSON line.
WORKER = textwrap.dedent(
    r"""
    import json, sys, threading, time
    import libvirt
    libvirt.registerErrorHandler(lambda *a: None, None)
    uri, test, duration, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    # Redefined over and over (same name and UUID): one schema check per call with the flag.
    DOMAIN_XML = (
        "<domain type='test'><name>bench-define</name>"
        "<uuid>6a3c1f5e-2b7d-4c1a-9e8f-0d2b4a6c8e10</uuid><memory>1048576</memory>"
        "<vcpu>2</vcpu><os><type>hvm</type></os><devices>"
        "<disk type='file' device='disk'><source file='/guest/bench.img'/><target dev='vda'/></disk>"
        "<interface type='network'><source network='default'/></interface></devices></domain>"
    )

    def run(conn, stop_at, lat):
        dom = conn.lookupByName("test")
        n = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return n
            if test == "info":
                dom.info()
            elif test == "lookup_info":
                conn.lookupByName("test").info()
            elif test == "listall":
                conn.listAllDomains(0)
            elif test == "allstats":
                conn.getAllDomainStats(0, 0)
            elif test == "open_close":
                libvirt.open(uri).close()
            elif test == "define":
                conn.defineXMLFlags(DOMAIN_XML, 0)
            elif test == "define_validate":
                conn.defineXMLFlags(DOMAIN_XML, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            lat.append(time.perf_counter() - t0)
            n += 1

    conns = [libvirt.open(uri) for _ in range(threads)]
    lats = [[] for _ in range(threads)]
    counts = [0] * threads
    for c in conns:  # warm up
        c.lookupByName("test").info()
    start = time.perf_counter()
    stop_at = start + duration
    def body(i):
        counts[i] = run(conns[i], stop_at, lats[i])
    ts = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    elapsed = time.perf_counter() - start
    all_lat = sorted(x for l in lats for x in l)
    def pct(p):
        return all_lat[min(len(all_lat) - 1, int(p * len(all_lat)))] * 1e6 if all_lat else 0.0
    print(json.dumps({"ops": sum(counts), "elapsed": elapsed, "p50": pct(0.50), "p99": pct(0.99)}))
    for c in conns: c.close()
    """
)

# Workloads measured a third time, against `virtwire serve --metrics` (their labels).
METRICS_WORKLOADS = {"dom.info(), sequential"}

WORKLOADS = [
    ("dom.info(), sequential", "info", 1),
    ("lookupByName+info", "lookup_info", 1),
    ("open+close", "open_close", 1),
    ("dom.info(), 8 conns", "info", 8),
    ("dom.info(), 32 conns", "info", 32),
    ("listAllDomains", "listall", 1),
    ("getAllDomainStats", "allstats", 1),
    ("defineXMLFlags", "define", 1),
    ("defineXMLFlags VALIDATE", "define_validate", 1),
]


@dataclass
class Result:
    ops_s: float
    p50: float
    p99: float
    cpu_us: float  # server CPU per call


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def run_workload(
    python: str, worker: Path, uri: str, pid: int, test: str, threads: int, duration: float
) -> Result:
    before = cpu_ticks(pid)
    out = subprocess.run(
        [python, str(worker), uri, test, str(duration), str(threads)],
        capture_output=True,
        text=True,
        timeout=duration * 10 + 120,
        check=True,
    )
    used = cpu_ticks(pid) - before
    data = json.loads(out.stdout.strip().splitlines()[-1])
    ops = max(data["ops"], 1)
    calls = ops * (2 if test == "lookup_info" else 5 if test == "open_close" else 1)
    return Result(ops / data["elapsed"], data["p50"], data["p99"], used / CLK_TCK * 1e6 / calls)


def define_many(python: str, uri: str, n: int) -> None:
    script = textwrap.dedent(
        f"""
        import libvirt
        c = libvirt.open({uri!r})
        for i in range({n}):
            c.defineXML("<domain type='test'><name>bench%05d</name><memory>1024</memory>"
                        "<os><type>hvm</type></os></domain>" % i)
        """
    )
    subprocess.run([python, "-c", script], check=True, timeout=600)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ndomains", type=int, default=1000)
    ap.add_argument("--only", choices=["tcp", "unix"], default=None)
    ap.add_argument("--python", default=sys.executable, help="interpreter that has libvirt-python")
    ap.add_argument(
        "--workload",
        action="append",
        choices=sorted({test for _, test, _ in WORKLOADS}),
        help="run only these workloads (repeatable); default all",
    )
    args = ap.parse_args()
    workloads = [w for w in WORKLOADS if args.workload is None or w[1] in args.workload]

    work = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    worker = work / "worker.py"
    worker.write_text(WORKER)
    real = start_libvirtd(
        work / "libvirtd", hold=True, conf_extra="max_client_requests = 5\nmax_workers = 20"
    )
    ours = start_server(pki=None, tls=False, ro=False)
    metered = start_server("--metrics", "127.0.0.1:0", pki=None, tls=False, ro=False)
    try:
        servers = {
            "libvirtd": (real.pid, {"tcp": real.tcp_uri, "unix": real.unix_uri}),
            "virtwire": (ours.pid, {"tcp": ours.tcp_uri, "unix": ours.unix_uri}),
            METERED: (metered.pid, {"tcp": metered.tcp_uri, "unix": metered.unix_uri}),
        }
        for _, uris in servers.values():
            define_many(args.python, uris["tcp"], args.ndomains)
        rows: list[tuple[str, str, dict[str, Result]]] = []
        metered_ratios: list[tuple[str, str, float, float, float]] = []
        transports = [args.only] if args.only else ["tcp", "unix"]
        for transport in transports:
            for label, test, threads in workloads:
                names = ["libvirtd", "virtwire"] + ([METERED] if label in METRICS_WORKLOADS else [])
                results: dict[str, list[Result]] = {name: [] for name in names}
                for _ in range(args.reps):  # alternate, so drift in machine load hits all
                    for name in names:
                        pid, uris = servers[name]
                        results[name].append(
                            run_workload(
                                args.python, worker, uris[transport], pid, test, threads, args.duration
                            )
                        )
                med = {
                    name: Result(
                        statistics.median(r.ops_s for r in rs),
                        statistics.median(r.p50 for r in rs),
                        statistics.median(r.p99 for r in rs),
                        statistics.median(r.cpu_us for r in rs),
                    )
                    for name, rs in results.items()
                }
                rows.append((transport, label, med))
                print_row(transport, label, med, flush=True)
                if METERED in med:
                    with_metrics = {"libvirtd": med["libvirtd"], "virtwire": med[METERED]}
                    rows.append((transport, f"{label}, --metrics", with_metrics))
                    print_row(transport, f"{label}, --metrics", with_metrics, flush=True)
                    # Paired per rep (the two ran back to back): drift in machine load cancels out.
                    pairs = list(zip(results["virtwire"], results[METERED], strict=True))
                    metered_ratios.append((
                        transport,
                        label,
                        statistics.median(on.ops_s / off.ops_s for off, on in pairs),
                        statistics.median(on.p50 / off.p50 for off, on in pairs if off.p50),
                        statistics.median(on.cpu_us / off.cpu_us for off, on in pairs if off.cpu_us),
                    ))  # fmt: skip
    finally:
        for server in (ours, metered):
            server.stop()
            server.cleanup()
        stop_libvirtd(real)
    print()
    print_table(rows, args)
    print()
    # On a loaded box two identical servers differ by up to 20 % in ops/s (a few
    # slow calls move the mean); the median latency (p50) is the steadier measure.
    for transport, label, ops_ratio, p50_ratio, cpu_ratio in metered_ratios:
        print(
            f"{transport} {label}: --metrics on/off, median of paired reps: ops/s {ops_ratio:.3f},"
            f" p50 latency {p50_ratio:.3f}, server CPU per call {cpu_ratio:.3f}"
        )
    return 0


HEAD = (
    f"| {'transport':9} | {'workload':24} | {'libvirtd ops/s':>14} | {'virtwire ops/s':>14} | {'ratio':>5} "
    f"| {'p50 µs lv/vw':>13} | {'p99 µs lv/vw':>13} | {'CPU µs/call lv/vw':>17} |"
)


def _fmt(transport: str, label: str, m: dict[str, Result]) -> str:
    lv, vw = m["libvirtd"], m["virtwire"]
    ratio = vw.ops_s / lv.ops_s if lv.ops_s else 0.0
    return (
        f"| {transport:9} | {label:24} | {lv.ops_s:14.0f} | {vw.ops_s:14.0f} | {ratio:5.2f} "
        f"| {lv.p50:6.0f}/{vw.p50:<6.0f} | {lv.p99:6.0f}/{vw.p99:<6.0f} "
        f"| {lv.cpu_us:8.0f}/{vw.cpu_us:<8.0f} |"
    )


def print_row(transport: str, label: str, m: dict[str, Result], *, flush: bool = False) -> None:
    print(_fmt(transport, label, m), file=sys.stderr, flush=flush)


def print_table(rows: list[tuple[str, str, dict[str, Result]]], args: argparse.Namespace) -> None:
    print(
        f"virtwire serve vs libvirtd 9.0 (test driver), libvirt-python client; {args.reps} reps x "
        f"{args.duration:g}s, medians; listAllDomains and getAllDomainStats with {args.ndomains + 1} domains;"
        f" {time.ctime()}"
    )
    print(HEAD)
    print("|" + "|".join("-" * (len(c)) for c in HEAD.split("|")[1:-1]) + "|")
    for transport, label, m in rows:
        print(_fmt(transport, label, m))


if __name__ == "__main__":
    sys.exit(main())
