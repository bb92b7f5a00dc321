#!/usr/bin/env python3
"""A bystander's latency while another client bursts large replies, side by side
with a real libvirtd (test driver).

The burster sends ``--calls`` DOMAIN_GET_XML_DESC calls back to back for a
domain whose XML is 256 KiB, and reads every reply; meanwhile the bystander
calls CONNECT_GET_HOSTNAME in a loop, one call at a time.  Reported: the
bystander's p50 / p99 / max latency during the burst, and the burst's time.

    .venv/bin/python bench/bench_fairness.py [--calls 2000] [--reps 3]

This is a script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from virtwire.protocol.generated import remote as R  # noqa: E402
from vwtestkit import start_libvirtd, start_server, stop_libvirtd  # noqa: E402
from vwtestkit.bigdomain import define_big, opened, xml_desc_calls  # noqa: E402

P = R.remote_procedure


def one_run(port: int, dom: R.remote_nonnull_domain, calls: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    done = threading.Event()
    burst = xml_desc_calls(dom, calls)

    def burster(elapsed: list[float]) -> None:
        with opened(port) as c:
            t0 = time.perf_counter()
            sender = threading.Thread(target=c.send, args=(burst,))
            sender.start()
            for _ in range(calls):
                c.recv_reply()
            sender.join()
            elapsed.append(time.perf_counter() - t0)
        done.set()

    with opened(port) as bystander:
        elapsed: list[float] = []
        thread = threading.Thread(target=burster, args=(elapsed,))
        thread.start()
        while not done.is_set():
            t0 = time.perf_counter()
            bystander.call(P.REMOTE_PROC_CONNECT_GET_HOSTNAME)
            latencies.append(time.perf_counter() - t0)
        thread.join()
    return latencies, elapsed[0]


def summary(name: str, runs: list[tuple[list[float], float]]) -> str:
    lat = sorted(x for run, _ in runs for x in run)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3

    burst = statistics.median(t for _, t in runs)
    cells = f"{len(lat):9} | {pct(0.5):8.2f} | {pct(0.99):8.2f} | {lat[-1] * 1e3:8.2f} | {burst:9.2f}"
    return f"| {name:9} | {cells} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vw-bench-fair-"))
    real = start_libvirtd(work / "libvirtd", hold=True)
    ours = start_server(pki=None, tls=False, ro=False)
    try:
        targets = {"libvirtd": real.tcp_port, "virtwire": ours.tcp_port}
        doms = {name: define_big(port) for name, port in targets.items()}
        runs: dict[str, list[tuple[list[float], float]]] = {name: [] for name in targets}
        for _ in range(args.reps):  # alternate, so drift in machine load hits both
            for name, port in targets.items():
                runs[name].append(one_run(port, doms[name], args.calls))
    finally:
        ours.stop()
        ours.cleanup()
        stop_libvirtd(real)
    print(f"| {'server':9} | {'calls':>9} | {'p50 ms':>8} | {'p99 ms':>8} | {'max ms':>8} | {'burst s':>9} |")
    print("|-----------|-----------|----------|----------|----------|-----------|")
    for name, rs in runs.items():
        print(summary(name, rs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
