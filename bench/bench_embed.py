#!/usr/bin/env python3
"""How fast a host is ready: an in-process virtwire host vs a real libvirtd, side by side.

"Ready" = started and answering a first call (connect + getHostname through
libvirt-python).  In-process hosts run on a thread (virtwire.server.embed, what
the pytest plugin uses); libvirtd is started the way the test suite starts it.

    .venv/bin/python bench/bench_embed.py [--starts 100] [--libvirtd-starts 5]

This is a script, not a test; the issue's target is a median ≤ 50 ms in-process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import libvirt  # noqa: E402
from virtwire.server.embed import ServerThread  # noqa: E402
from vwtestkit import make_pki, start_libvirtd, stop_libvirtd  # noqa: E402


def _quiet(ctx: object, err: object) -> None:
    pass


def time_inprocess(starts: int) -> list[float]:
    times = []
    for _ in range(starts):
        t0 = time.perf_counter()
        with ServerThread(unix=False) as host:
            conn = libvirt.open(host.uri)
            conn.getHostname()
            times.append(time.perf_counter() - t0)
            conn.close()
    return times


def time_libvirtd(starts: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp, "pki"))
        for i in range(starts):
            t0 = time.perf_counter()
            daemon = start_libvirtd(Path(tmp, f"d{i}"), pki=pki, hold=False)
            try:
                conn = libvirt.open(daemon.tcp_uri)
                conn.getHostname()
                times.append(time.perf_counter() - t0)
                conn.close()
            finally:
                stop_libvirtd(daemon)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=100)
    ap.add_argument("--libvirtd-starts", type=int, default=5)
    args = ap.parse_args()
    libvirt.registerErrorHandler(_quiet, None)
    ours = time_inprocess(args.starts)
    theirs = time_libvirtd(args.libvirtd_starts)
    ours_ms, theirs_ms = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    print(f"{'host ready (median)':<28}{'ms':>10}")
    print(
        f"{'virtwire in-process':<28}{ours_ms:>10.1f}   ({args.starts} starts, p90 "
        f"{sorted(ours)[int(len(ours) * 0.9) - 1] * 1e3:.1f} ms)"
    )
    print(f"{'libvirtd (test driver)':<28}{theirs_ms:>10.1f}   ({args.libvirtd_starts} starts)")
    print(f"{'ratio libvirtd / virtwire':<28}{theirs_ms / ours_ms:>10.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
