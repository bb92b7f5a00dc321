#!/usr/bin/env python3
"""Server memory (RSS) side by side with a real libvirtd (test driver).

Rows, for each server started fresh the same way:

* start: after one client connected, opened and left (both servers warm);
* 1000 idle connections: that many clients connected and CONNECT_OPENed, and
  the cost per connection;
* peak under a hostile mix: clients sending mutated and hostile frames (fixed
  seed), clients that send calls for 256 KiB replies and never read, and clients
  reading bursts of them, all at once; RSS sampled throughout;
* after: every client gone, RSS ``--settle`` seconds later (default 30);
* churn: then ``--churn`` connections (8 at a time) each pipelining ``--calls``
  calls, RSS ``--settle`` seconds after the last one closed.

    .venv/bin/python bench/bench_memory.py [--idle 1000] [--settle 30] [--only virtwire]

This is a script, not a test: the numbers depend on the machine's allocator
and load.  Targets: every row at or below libvirtd's.

The floor under the start row (CPython 3.11.7, glibc, VmRSS, .pyc files present;
measured December 2026): a bare interpreter with site 10.7 MiB; ``import trio``
24.8 (it brings ssl, threads, attrs); the generated codec on top 32.5 (about 700
dataclasses: their classes and generated ``__init__`` are 2.8 MiB, code objects
2.4 MiB); the whole server 39.5 (its own code, 3.6 MiB of code objects), 41
serving.  libvirtd starts at 14.  An idle connection is parked after 0.1 s
(server/parking.py): it then has no trio task and costs about 1.8 KiB (its
Connection, context, identity, auth, stream I/O and socket objects, 1.5 KiB by
tracemalloc, plus allocator overhead); with a task waiting on each it was 7 KiB,
of which the task, its nursery, two cancel scopes and the suspended coroutine
frames were 4.5.  libvirtd needs 2.6.  The idle row is read ``--idle-settle``
seconds after the last connection opened, for both servers.  After a burst,
RSS comes back to within a few MiB of the start: what stays is pymalloc arenas
pinned by a few long-lived objects made meanwhile, and glibc's free pages are
returned (server/memtrim.py).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from virtwire.protocol.generated import remote as R  # noqa: E402
from vwtestkit import start_libvirtd, start_server, stop_libvirtd  # noqa: E402
from vwtestkit.bigdomain import define_big, opened, xml_desc_calls  # noqa: E402
from vwtestkit.hostile import MODES, hostile_args  # noqa: E402
from vwtestkit.rawrpc import CALL, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, encode_packet  # noqa: E402

MiB = 1 << 20
SEED = 1202


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def hostile_frames(rng: random.Random, count: int) -> list[bytes]:
    procs = [p for p in R.PROCEDURES.values() if p.name not in ("CONNECT_CLOSE", "CONNECT_OPEN")]
    frames = []
    for serial in range(count):
        proc = rng.choice(procs)
        payload = hostile_args(proc, rng.choice(MODES))
        packet = encode_packet(REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, proc.number, CALL, serial, 0, payload)
        frame = bytearray(packet)
        if rng.random() < 0.5 and len(frame) > 32:
            frame[rng.randrange(28, len(frame))] ^= 0xFF
        frames.append(bytes(frame))
    return frames


class Sampler:
    """The peak RSS of a process while it runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))


def hostile_mix(port: int, dom: R.remote_nonnull_domain, clients: int, frames: int) -> None:
    """Fuzzing, hostile-argument, never-reading and burst-reading clients at once."""
    rng = random.Random(SEED)
    batches = [hostile_frames(random.Random(rng.getrandbits(32)), frames) for _ in range(clients)]
    burst = xml_desc_calls(dom, 200)

    def fuzzer(batch: list[bytes]) -> None:
        try:
            with opened(port) as c:
                for frame in batch:
                    c.send(frame)
                    c.sock.settimeout(0.001)
                    try:
                        while c.sock.recv(1 << 16):
                            pass
                    except (TimeoutError, BlockingIOError):
                        pass
        except OSError:
            pass

    def never_reader() -> None:
        try:
            with opened(port) as c:
                c.sock.settimeout(5)
                c.send(burst)
        except OSError:
            pass

    def burst_reader() -> None:
        try:
            with opened(port) as c:
                c.send(burst)
                for _ in range(200):
                    c.recv_reply()
        except (OSError, EOFError):
            pass

    workers: list[Callable[[], None]] = [lambda b=b: fuzzer(b) for b in batches]  # type: ignore[misc]
    workers += [never_reader] * 4 + [burst_reader] * 4
    threads = [threading.Thread(target=w) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def churn(port: int, connections: int, calls: int, parallel: int = 8) -> None:
    """``connections`` clients, ``parallel`` at a time, each pipelining ``calls`` calls."""
    version = REMOTE_PROTOCOL_VERSION
    proc = R.remote_procedure.REMOTE_PROC_CONNECT_GET_HOSTNAME
    pipeline = b"".join(encode_packet(REMOTE_PROGRAM, version, proc, CALL, s, 0) for s in range(calls))

    def worker(count: int) -> None:
        for _ in range(count):
            with opened(port) as c:
                c.send(pipeline)
                for _ in range(calls):
                    c.recv_reply()

    threads = [threading.Thread(target=worker, args=(connections // parallel,)) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(name: str, pid: int, port: int, args: argparse.Namespace) -> dict[str, float]:
    with opened(port):
        pass
    dom = define_big(port)
    start = rss(pid)
    idle = [opened(port) for _ in range(args.idle)]
    time.sleep(args.idle_settle)  # idle means idle for a while: both servers get the same pause
    with_idle = rss(pid)
    for c in idle:
        c.close()
    with Sampler(pid) as sampler:
        hostile_mix(port, dom, args.clients, args.frames)
    time.sleep(args.settle)
    after = rss(pid)
    churn(port, args.churn, args.calls)
    time.sleep(args.settle)
    after_churn = rss(pid)
    row = {
        "start": start / MiB,
        "idle": with_idle / MiB,
        "per_conn_kib": (with_idle - start) / args.idle / 1024,
        "peak": sampler.peak / MiB,
        "after": after / MiB,
        "churn": after_churn / MiB,
    }
    print(f"{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument(
        "--idle-settle", type=float, default=3.0, help="seconds idle before the idle RSS is read"
    )
    ap.add_argument("--clients", type=int, default=16, help="fuzzing clients in the hostile mix")
    ap.add_argument("--frames", type=int, default=300, help="frames per fuzzing client")
    ap.add_argument("--settle", type=float, default=30.0)
    ap.add_argument("--churn", type=int, default=1000, help="connections in the churn phase")
    ap.add_argument("--calls", type=int, default=1000, help="calls per churn connection")
    ap.add_argument("--only", choices=["libvirtd", "virtwire"], default=None)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.idle + 256)), hard))

    work = Path(tempfile.mkdtemp(prefix="vw-bench-mem-"))
    rows: dict[str, dict[str, float]] = {}
    room = args.idle + 100
    limits = f"max_clients = {room}\nmax_anonymous_clients = {room}\nmax_queued_clients = 1000"
    if args.only in (None, "libvirtd"):
        real = start_libvirtd(work / "libvirtd", hold=False, conf_extra=limits)
        try:
            rows["libvirtd"] = measure("libvirtd", real.pid, real.tcp_port, args)
        finally:
            stop_libvirtd(real)
    if args.only in (None, "virtwire"):
        ours = start_server(pki=None, tls=False, ro=False)
        try:
            rows["virtwire"] = measure("virtwire", ours.pid, ours.tcp_port, args)
        finally:
            ours.stop()
            ours.cleanup()
    print()
    print(f"| {'RSS (MiB)':32} | " + " | ".join(f"{n:>9}" for n in rows) + " |")
    print(f"|{'-' * 34}|" + "|".join("-" * 11 for _ in rows) + "|")
    for key, label in [
        ("start", "start"),
        ("idle", f"{args.idle} idle connections"),
        ("per_conn_kib", "per idle connection (KiB)"),
        ("peak", "peak under the hostile mix"),
        ("after", f"{args.settle:g} s after all closed"),
        ("churn", f"{args.churn} conns x {args.calls} calls, {args.settle:g} s on"),
    ]:
        print(f"| {label:32} | " + " | ".join(f"{rows[n][key]:9.1f}" for n in rows) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
