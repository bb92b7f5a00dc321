"""Client CPU per call in instructions for the two async shells (trio, asyncio).

The async rows of bench_client.py measure throughput, which on a shared machine
moves with the load; the instructions one call costs the client process do not.
As bench_client_cpu.py does for the thread shell, each measurement runs a small
client under valgrind's callgrind twice, once making N dom.info() calls from T
tasks on one connection and once making none (import, open, lookup, warm-up and
close alike); the difference divided by N is one call's cost in the client
process (interpreter, event loop and libc wrappers included; not the kernel,
not the daemon). Under valgrind the client is far slower than the daemon, so
replies arrive in full batches: this is the cost in the batched regime.

    .venv/bin/python bench/bench_async_cpu.py --calls 2000 --tasks 8 32

The worker side (--worker) is what runs under valgrind.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import callgrind  # bench/callgrind.py
import trio

ROOT = Path(__file__).resolve().parents[1]
SHELLS = ("trio", "asyncio")
WARMUP = 200  # calls before the counted ones: caches, lazy imports, first-call paths

Job = Callable[[], Awaitable[None]]


def shares(calls: int, ntasks: int) -> list[int]:
    return [calls // ntasks + (1 if i < calls % ntasks else 0) for i in range(ntasks)]


async def _session(
    connect: Callable[[], Awaitable[Any]],
    calls: int,
    ntasks: int,
    together: Callable[[list[Job]], Awaitable[None]],
) -> None:
    """Open, warm up, make `calls` dom.info() calls from `ntasks` tasks run `together`, close."""
    async with await connect() as conn:
        dom = await conn.lookup_by_name("test")
        for _ in range(WARMUP):
            await dom.info()

        async def run(n: int) -> None:
            for _ in range(n):
                await dom.info()

        await together([partial(run, n) for n in shares(calls, ntasks)])


async def _trio_together(jobs: list[Job]) -> None:
    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(job)


async def _asyncio_together(jobs: list[Job]) -> None:
    await asyncio.gather(*(job() for job in jobs))


def worker(shell: str, uri: str, calls: int, ntasks: int) -> None:
    if shell == "trio":
        import virtwire.client as vtrio

        trio.run(_session, partial(vtrio.connect, uri, keepalive=False), calls, ntasks, _trio_together)
        return
    import virtwire.client.asyncio as vasyncio

    asyncio.run(_session(partial(vasyncio.connect, uri, keepalive=False), calls, ntasks, _asyncio_together))


def per_call(shell: str, uri: str, calls: int, ntasks: int) -> float:
    def worker_argv(n: int) -> list[str]:
        return [__file__, "--worker", shell, "--uri", uri, "--calls", str(n), "--tasks", str(ntasks)]

    return callgrind.per_operation(worker_argv, calls)


def main() -> int:
    parser = callgrind.worker_parser(__doc__, SHELLS)
    parser.add_argument("--calls", type=int, default=2000, help="counted dom.info() calls per run")
    parser.add_argument("--tasks", type=int, nargs="*", default=[8, 32], help="task counts on one connection")
    parser.add_argument("--tcp-uri", help="a running libvirtd's tcp URI (default: start one)")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.uri, args.calls, args.tasks[0])
        return 0

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    from vwtestkit import start_libvirtd, stop_libvirtd

    daemon = None
    if args.tcp_uri:
        tcp_uri = args.tcp_uri
    else:
        daemon = start_libvirtd(Path(tempfile.mkdtemp(prefix="vw-bench-async-cpu-")), hold=True)
        tcp_uri = daemon.tcp_uri
    try:
        header = f"{'instructions per dom.info()':<36} {'trio':>10} {'asyncio':>10} {'asyncio/trio':>12}"
        print(header, flush=True)
        for ntasks in args.tasks:
            trio_cost = per_call("trio", tcp_uri, args.calls, ntasks)
            asyncio_cost = per_call("asyncio", tcp_uri, args.calls, ntasks)
            print(
                f"{f'tcp, {ntasks} tasks on one conn':<36} {trio_cost:>10.0f} {asyncio_cost:>10.0f} "
                f"{asyncio_cost / trio_cost:>12.2f}",
                flush=True,
            )
    finally:
        if daemon is not None:
            stop_libvirtd(daemon)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
