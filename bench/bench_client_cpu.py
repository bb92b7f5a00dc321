"""Client CPU per call in instructions: virtwire.libvirt against libvirt-python, one run.

Wall-clock and even process CPU time are noisy on a shared machine; the number
of instructions a call executes is not. Each measurement runs a small client
under valgrind's callgrind twice, once making N dom.info() calls and once
making none (everything else alike: import, open, lookup, warm-up, threads,
close); the difference divided by N is what one call costs the client process,
the interpreter, libvirt.so and the kernel-facing libc wrappers included (not
the kernel itself, not the daemon: another process).

Rows: sequential calls over tcp and unix, and T threads sharing one tcp
connection (callgrind runs one thread at a time, so this counts the
instructions of the hand-offs between threads — locks, wake-ups, the reader
role — not how they would overlap on several cores).

    .venv/bin/python bench/bench_client_cpu.py --calls 2000 --threads 8

The worker side of the script (--worker) is what runs under valgrind.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

import callgrind  # bench/callgrind.py

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ("libvirt-python", "virtwire")
WARMUP = 200  # calls before the counted ones: caches, lazy imports, first-call paths


def worker(client: str, uri: str, calls: int, nthreads: int) -> None:
    """Open, warm up, make `calls` dom.info() calls over `nthreads` threads, close."""
    if client == "virtwire":
        import virtwire.libvirt as lib
    else:
        import libvirt as lib  # type: ignore[no-redef]
    conn = lib.open(uri)
    dom = conn.lookupByName("test")
    for _ in range(WARMUP):
        dom.info()
    share = [calls // nthreads + (1 if i < calls % nthreads else 0) for i in range(nthreads)]
    start = threading.Barrier(nthreads + 1) if nthreads > 1 else None

    def run(n: int) -> None:
        if start is not None:
            start.wait()
        info = dom.info
        for _ in range(n):
            info()

    if start is None:
        run(share[0])
    else:
        threads = [threading.Thread(target=run, args=(n,)) for n in share]
        for t in threads:
            t.start()
        start.wait()
        for t in threads:
            t.join()
    conn.close()


def per_call(client: str, uri: str, calls: int, nthreads: int) -> float:
    def worker_argv(n: int) -> list[str]:
        return [__file__, "--worker", client, "--uri", uri, "--calls", str(n), "--threads", str(nthreads)]

    return callgrind.per_operation(worker_argv, calls)


def main() -> int:
    parser = callgrind.worker_parser(__doc__, CLIENTS)
    parser.add_argument("--calls", type=int, default=2000, help="counted dom.info() calls per run")
    parser.add_argument("--threads", type=int, nargs="*", default=[8], help="thread counts on one connection")
    parser.add_argument("--tcp-uri")
    parser.add_argument("--unix-uri")
    parser.add_argument("--only", help="substring filter on row names")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.uri, args.calls, args.threads[0])
        return 0

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    from vwtestkit import start_libvirtd, stop_libvirtd

    daemon = None
    if args.tcp_uri and args.unix_uri:
        tcp_uri, unix_uri = args.tcp_uri, args.unix_uri
    else:
        daemon = start_libvirtd(Path(tempfile.mkdtemp(prefix="vw-bench-cpu-")), hold=True)
        tcp_uri, unix_uri = daemon.tcp_uri, daemon.unix_uri
    rows = [("tcp dom.info() sequential", tcp_uri, 1), ("unix dom.info() sequential", unix_uri, 1)]
    rows += [(f"tcp dom.info() {n} threads on one conn", tcp_uri, n) for n in args.threads]
    try:
        header = f"{'instructions per call':<40} {'libvirt-python':>14} {'virtwire':>10} {'ratio':>6}"
        print(header, flush=True)
        for name, uri, nthreads in rows:
            if args.only and args.only not in name:
                continue
            theirs = per_call("libvirt-python", uri, args.calls, nthreads)
            ours = per_call("virtwire", uri, args.calls, nthreads)
            print(f"{name:<40} {theirs:>14.0f} {ours:>10.0f} {ours / theirs:>6.2f}", flush=True)
    finally:
        if daemon is not None:
            stop_libvirtd(daemon)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
