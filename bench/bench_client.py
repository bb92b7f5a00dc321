"""Client benchmark: virtwire's clients against libvirt-python, same daemon, same run.

Starts a real libvirtd (test driver) with tests/fixtures/libvirtd-up.sh (or
uses --tcp-uri/--unix-uri of a running one), then measures, for each client:

- sequential dom.info() round trips/s over tcp and unix;
- lookupByName + info; open + close;
- dom.info() from 8 threads on 8 connections;
- listAllDomains with --ndomains extra domains defined;
- dom.info() from 8 and 32 threads on ONE connection (virtwire.libvirt's
  thread shell against libvirt-python);
- the trio and the asyncio API with 8 and 32 concurrent tasks on one connection
  (compared with libvirt-python's threads on one connection, the three taking
  turns run by run), and asyncio/trio; asyncio on uvloop too if it is installed;
- volume streams: a 256 MiB download and upload (--stream-mib) against a second
  libvirtd with the storage driver (vwtestkit.storaged), in MiB/s;
- client CPU per call (process CPU time / operations; the daemon is another process),
  and how much of it is the kernel's (system time: socket calls, wakeups): a
  Python client pays in user time what libvirt.so pays less of;
- the daemon's CPU per call while each client runs (when this script started the
  daemon): on 2 cores the daemon and the client share the machine, and how a
  client paces its requests changes what each of them costs the daemon.

Each row is the median of --reps runs of --duration seconds, the two clients
alternating run by run (the machine is shared); the report gives
ops/s, CPU µs per op, and the ratio virtwire / libvirt-python (>= 1.0 is as
fast; CPU ratio <= 1.0 is as cheap).

    .venv/bin/python bench/bench_client.py --duration 2 --reps 5 --ndomains 1000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import libvirt as real_libvirt  # noqa: E402 - the real libvirt-python 9.0
import virtwire.client as vclient  # noqa: E402
import virtwire.client.asyncio as vasyncio  # noqa: E402
from virtwire.client import ops  # noqa: E402
from virtwire.client import stream as vstream  # noqa: E402

import virtwire.libvirt as vlibvirt  # noqa: E402

DOMAIN_XML = """<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>
<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"""

# ops/s, client CPU µs per op, of which system µs, the daemon's CPU µs per op (nan: unknown)
Result = tuple[float, float, float, float]
Cpu = tuple[float, float, float]

# The daemon whose CPU time the rows count (its pid), while this script runs it.
daemon_pid: int | None = None
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def daemon_cpu() -> float:
    """The daemon's CPU seconds so far (user + system, all its threads); nan if unknown."""
    if daemon_pid is None:
        return math.nan
    try:
        with open(f"/proc/{daemon_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def cpu_now() -> Cpu:
    """CPU seconds so far: (this process's user + system, its system, the daemon's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime, daemon_cpu()


def cpu_per(start: Cpu, count: float) -> Cpu:
    """CPU µs (total, system, daemon) per unit of `count` since `start` (a cpu_now())."""
    now = cpu_now()
    total, system, daemon = ((now[i] - start[i]) / count * 1e6 for i in range(3))
    return total, system, daemon


def measure(duration: float, body: Callable[[], int]) -> Result:
    """Run `body` (returns ops done per invocation) for `duration` seconds."""
    ops = 0
    cpu0 = cpu_now()
    t0 = time.perf_counter()
    end = t0 + duration
    while time.perf_counter() < end:
        ops += body()
    wall = time.perf_counter() - t0
    return (ops / wall, *cpu_per(cpu0, ops))


def threaded(duration: float, nthreads: int, make_worker: Callable[[int], Callable[[], None]]) -> Result:
    counts = [0] * nthreads
    stop = threading.Event()
    workers = [make_worker(i) for i in range(nthreads)]

    def run(i: int) -> None:
        fn = workers[i]
        n = 0
        while not stop.is_set():
            fn()
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
    cpu0 = cpu_now()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = sum(counts)
    return (total / wall, *cpu_per(cpu0, max(total, 1)))


def interleaved(reps: int, theirs: Callable[[], Result], ours: Callable[[], Result]) -> tuple[Result, Result]:
    """Alternate the two clients rep by rep, so that load from elsewhere on the
    machine hits both alike; the median of each."""
    a: list[Result] = []
    b: list[Result] = []
    for _ in range(reps):
        a.append(theirs())
        b.append(ours())
    return median(a), median(b)


def rotated(reps: int, runs: list[Callable[[], Result]]) -> list[Result]:
    """As `interleaved`, for several clients: every rep runs each once, in turn
    forwards and backwards (ABC CBA ...), so that drifting load evens out; the
    median of each."""
    results: list[list[Result]] = [[] for _ in runs]
    for rep in range(reps):
        order = list(enumerate(runs))
        for i, run in order if rep % 2 == 0 else reversed(order):
            results[i].append(run())
    return [median(r) for r in results]


def median(results: list[Result]) -> Result:
    rate, cpu, system, daemon = (statistics.median(r[i] for r in results) for i in range(4))
    return rate, cpu, system, daemon


# -- workloads (each returns a Result) ----------------------------------------


def seq_info(lib: Any, uri: str, duration: float) -> Result:
    conn = lib.open(uri)
    dom = conn.lookupByName("test")

    def body() -> int:
        for _ in range(50):
            dom.info()
        return 50

    try:
        return measure(duration, body)
    finally:
        conn.close()


def lookup_info(lib: Any, uri: str, duration: float) -> Result:
    conn = lib.open(uri)

    def body() -> int:
        for _ in range(25):
            conn.lookupByName("test").info()
        return 25

    try:
        return measure(duration, body)
    finally:
        conn.close()


def open_close(lib: Any, uri: str, duration: float) -> Result:
    def body() -> int:
        lib.open(uri).close()
        return 1

    return measure(duration, body)


def threads_own_conns(lib: Any, uri: str, duration: float, n: int = 8) -> Result:
    conns = [lib.open(uri) for _ in range(n)]
    doms = [c.lookupByName("test") for c in conns]
    try:
        return threaded(duration, n, lambda i: doms[i].info)
    finally:
        for c in conns:
            c.close()


def threads_one_conn(lib: Any, uri: str, duration: float, n: int) -> Result:
    conn = lib.open(uri)
    dom = conn.lookupByName("test")
    try:
        return threaded(duration, n, lambda i: dom.info)
    finally:
        conn.close()


def list_all(lib: Any, uri: str, duration: float) -> Result:
    conn = lib.open(uri)

    def body() -> int:
        conn.listAllDomains()
        return 1

    try:
        return measure(duration, body)
    finally:
        conn.close()


def trio_tasks(uri: str, duration: float, ntasks: int) -> Result:
    async def main() -> tuple[int, float]:
        async with await vclient.connect(uri, keepalive=False) as conn:
            dom = await conn.lookup_by_name("test")
            counts = [0] * ntasks
            t0 = trio.current_time()

            async def worker(i: int) -> None:
                while trio.current_time() - t0 < duration:
                    await dom.info()
                    counts[i] += 1

            async with trio.open_nursery() as nursery:
                for i in range(ntasks):
                    nursery.start_soon(worker, i)
            return sum(counts), trio.current_time() - t0

    cpu0 = cpu_now()
    total, wall = trio.run(main)
    return (total / wall, *cpu_per(cpu0, max(total, 1)))


def asyncio_tasks(
    uri: str,
    duration: float,
    ntasks: int,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> Result:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        async with await vasyncio.connect(uri, keepalive=False) as conn:
            dom = await conn.lookup_by_name("test")
            counts = [0] * ntasks
            t0 = loop.time()

            async def worker(i: int) -> None:
                while loop.time() - t0 < duration:
                    await dom.info()
                    counts[i] += 1

            await asyncio.gather(*(worker(i) for i in range(ntasks)))
            return sum(counts), loop.time() - t0

    cpu0 = cpu_now()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        total, wall = runner.run(main())
    return (total / wall, *cpu_per(cpu0, max(total, 1)))


def async_shells() -> list[tuple[str, Callable[[str, float, int], Result]]]:
    """trio and asyncio; asyncio on uvloop too when uvloop happens to be installed
    (shown for information: plain asyncio is the yardstick, uvloop no dependency)."""
    shells: list[tuple[str, Callable[[str, float, int], Result]]] = [
        ("trio", trio_tasks),
        ("asyncio", asyncio_tasks),
    ]
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return shells
    shells.append(("asyncio+uvloop", partial(asyncio_tasks, loop_factory=uvloop.new_event_loop)))
    return shells


# -- streams (a libvirtd with the storage driver) --------------------------------

STREAM_POOL = f"vwbench-{uuid.uuid4().hex[:8]}"
CHUNK = 262120  # libvirt-python's virStorageVol.streamBufSize


def _bind(lib: Any, conn: Any, name: str, upload: bool, size: int) -> Any:
    """A stream bound to volume `name`'s download or upload, for either library."""
    stream = conn.newStream(0)
    if lib is real_libvirt:
        vol = conn.storagePoolLookupByName(STREAM_POOL).storageVolLookupByName(name)
        (vol.upload if upload else vol.download)(stream, 0, size, 0)
        return stream
    pool = conn._run(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=STREAM_POOL))
    vol = conn._run(ops.call("STORAGE_VOL_LOOKUP_BY_NAME", ops.field("vol"), pool=pool, name=name))
    start = vstream.storage_vol_upload if upload else vstream.storage_vol_download
    start(stream, conn._sock, False, vol, 0, size, 0)
    return stream


def stream_download(lib: Any, uri: str, size: int) -> Result:
    conn = lib.open(uri)
    try:
        got = [0]
        cpu0 = cpu_now()
        t0 = time.perf_counter()
        stream = _bind(lib, conn, "bench.img", False, size)
        stream.recvAll(lambda _st, buf, got: got.__setitem__(0, got[0] + len(buf)), got)
        stream.finish()
        wall = time.perf_counter() - t0
        assert got[0] == size, got
        mib = size / (1024 * 1024)
        return (mib / wall, *cpu_per(cpu0, mib))
    finally:
        conn.close()


def stream_upload(lib: Any, uri: str, size: int, payload: bytes) -> Result:
    conn = lib.open(uri)
    try:
        view = memoryview(payload)
        pos = [0]

        def source(_st: Any, n: int, _opaque: Any) -> bytes:
            start = pos[0]
            pos[0] = min(size, start + n)
            return bytes(view[start : pos[0]])

        cpu0 = cpu_now()
        t0 = time.perf_counter()
        stream = _bind(lib, conn, "bench.img", True, size)
        stream.sendAll(source, None)
        stream.finish()
        wall = time.perf_counter() - t0
        mib = size / (1024 * 1024)
        return (mib / wall, *cpu_per(cpu0, mib))
    finally:
        conn.close()


def stream_rows(reps: int, size: int) -> list[tuple[str, Result, Result]]:
    from vwtestkit.storaged import storage_libvirtd

    rows: list[tuple[str, Result, Result]] = []
    workdir = Path(tempfile.mkdtemp(prefix="vw-bench-storage-"))
    global daemon_pid
    outer = daemon_pid
    with storage_libvirtd(workdir) as daemon:
        daemon_pid = daemon.pid  # these rows count the storage daemon
        conn = real_libvirt.open(daemon.uri)
        target = f"<target><path>{daemon.pool_dir}</path></target>"
        pool = conn.storagePoolCreateXML(f"<pool type='dir'><name>{STREAM_POOL}</name>{target}</pool>", 0)
        try:
            pool.createXML(
                f"<volume><name>bench.img</name><capacity>{size}</capacity>"
                "<target><format type='raw'/></target></volume>",
                0,
            )
            payload = os.urandom(size)
            mib = size // (1024 * 1024)
            name = f"unix stream upload {mib} MiB (MiB/s)"
            # ABBA (rotated), not AB AB: a transfer leaves the daemon's disk and page
            # cache busy (writeback of an upload) for whichever run comes next.
            theirs, ours = rotated(
                reps,
                [
                    partial(stream_upload, real_libvirt, daemon.uri, size, payload),
                    partial(stream_upload, vlibvirt, daemon.uri, size, payload),
                ],
            )
            rows.append((name, theirs, ours))
            report(rows[-1:])
            name = f"unix stream download {mib} MiB (MiB/s)"
            theirs, ours = rotated(
                reps,
                [
                    partial(stream_download, real_libvirt, daemon.uri, size),
                    partial(stream_download, vlibvirt, daemon.uri, size),
                ],
            )
            rows.append((name, theirs, ours))
            report(rows[-1:])
        finally:
            pool.destroy()
            conn.close()
    daemon_pid = outer
    return rows


# -- driver ---------------------------------------------------------------------


def define_domains(uri: str, n: int) -> None:
    conn = real_libvirt.open(uri)
    try:
        have = len(conn.listAllDomains())
        for i in range(have - 1, n):
            conn.defineXML(DOMAIN_XML.format(name=f"bench-{i:05d}", uuid=uuid.uuid4()))
    finally:
        conn.close()


def _on(workload: Callable[[Any, str, float], Result], uri: str, duration: float, lib: Any) -> Result:
    return workload(lib, uri, duration)


def report(rows: list[tuple[str, Result, Result]]) -> None:
    print(
        f"{'test':<44} {'libvirt-py ops/s':>16} {'virtwire ops/s':>15} {'ratio':>6} "
        f"{'lvpy cpu µs':>11} {'vw cpu µs':>10} {'cpu ratio':>9} {'lvpy sys µs':>11} {'vw sys µs':>10} "
        f"{'lvpy daemon µs':>14} {'vw daemon µs':>12}",
        flush=True,
    )
    for name, theirs, ours in rows:
        print(
            f"{name:<44} {theirs[0]:>16.0f} {ours[0]:>15.0f} {ours[0] / theirs[0]:>6.2f} "
            f"{theirs[1]:>11.1f} {ours[1]:>10.1f} {ours[1] / theirs[1]:>9.2f} "
            f"{theirs[2]:>11.1f} {ours[2]:>10.1f} {theirs[3]:>14.1f} {ours[3]:>12.1f}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--ndomains", type=int, default=1000)
    parser.add_argument("--tcp-uri")
    parser.add_argument("--unix-uri")
    parser.add_argument("--only", help="substring filter on test names")
    parser.add_argument("--stream-mib", type=int, default=256, help="size of the stream rows' volume")
    args = parser.parse_args()
    global daemon_pid
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)

    daemon = None
    if args.tcp_uri and args.unix_uri:
        tcp_uri, unix_uri = args.tcp_uri, args.unix_uri
    else:
        from vwtestkit import start_libvirtd, stop_libvirtd

        daemon = start_libvirtd(Path(tempfile.mkdtemp(prefix="vw-bench-client-")), hold=True)
        tcp_uri, unix_uri = daemon.tcp_uri, daemon.unix_uri
        daemon_pid = daemon.pid
    d, reps = args.duration, args.reps
    try:
        cases: list[tuple[str, Callable[[Any], Result]]] = []
        for label, uri in (("tcp", tcp_uri), ("unix", unix_uri)):
            cases += [
                (f"{label} dom.info() sequential", partial(_on, seq_info, uri, d)),
                (f"{label} lookupByName+info", partial(_on, lookup_info, uri, d)),
                (f"{label} open+close", partial(_on, open_close, uri, d)),
                (f"{label} dom.info() 8 threads x own conn", partial(_on, threads_own_conns, uri, d)),
            ]
        rows: list[tuple[str, Result, Result]] = []
        for name, fn in cases:
            if args.only and args.only not in name:
                continue
            theirs, ours = interleaved(reps, partial(fn, real_libvirt), partial(fn, vlibvirt))
            rows.append((name, theirs, ours))
            report(rows[-1:])
        for n in (8, 32):
            name = f"tcp dom.info() {n} threads on one conn"
            if not args.only or args.only in name:
                theirs, ours = interleaved(
                    reps,
                    partial(threads_one_conn, real_libvirt, tcp_uri, d, n),
                    partial(threads_one_conn, vlibvirt, tcp_uri, d, n),
                )
                rows.append((name, theirs, ours))
                report(rows[-1:])
        shells: list[tuple[str, Result, Result]] = []
        for n in (8, 32):
            # libvirt-python's threads, the trio shell and the asyncio shell take turns
            # run by run, so the asyncio/trio ratio compares runs under the same load.
            runs = {
                shell: partial(run, tcp_uri, d, n)
                for shell, run in async_shells()
                if not args.only or args.only in f"tcp dom.info() {n} on one conn ({shell} tasks)"
            }
            if not runs:
                continue
            threads = partial(threads_one_conn, real_libvirt, tcp_uri, d, n)
            lvpy, *shell_results = rotated(reps, [threads, *runs.values()])
            by_shell = dict(zip(runs, shell_results, strict=True))
            for shell, result in by_shell.items():
                rows.append((f"tcp dom.info() {n} on one conn ({shell} tasks)", lvpy, result))
                report(rows[-1:])
            if "trio" in by_shell and "asyncio" in by_shell:  # (uvloop may add a third)
                shells.append((f"{n} tasks: asyncio vs trio", by_shell["trio"], by_shell["asyncio"]))
        if not args.only or "stream" in args.only:
            rows += stream_rows(reps, args.stream_mib * 1024 * 1024)
        name = f"tcp listAllDomains ({args.ndomains + 1} domains)"
        if not args.only or args.only in name:
            define_domains(tcp_uri, args.ndomains)
            theirs, ours = interleaved(
                reps, lambda: list_all(real_libvirt, tcp_uri, d), lambda: list_all(vlibvirt, tcp_uri, d)
            )
            rows.append((name, theirs, ours))
        print()
        print(
            f"median of {reps} x {d}s; ratio = virtwire / libvirt-python (ops/s higher is better, "
            "cpu lower is better)"
        )
        report(rows)
        if shells:
            print("\nasyncio shell against the trio shell (ratio = asyncio / trio)")
            report(shells)
    finally:
        if daemon is not None:
            from vwtestkit import stop_libvirtd

            stop_libvirtd(daemon)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
