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

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
SHELLS = ("trio", "asyncio")
WARMUP = 200  # calls before the counted ones: caches, lazy imports, first-call paths


def shares(calls: int, ntasks: int) -> list[int]:
    return [calls // ntasks + (1 if i < calls % ntasks else 0) for i in range(ntasks)]


def worker(shell: str, uri: str, calls: int, ntasks: int) -> None:
    """Open, warm up, make `calls` dom.info() calls from `ntasks` tasks, close."""
    if shell == "trio":
        import virtwire.client as vtrio

        async def trio_main() -> None:
            async with await vtrio.connect(uri, keepalive=False) as conn:
                dom = await conn.lookup_by_name("test")
                for _ in range(WARMUP):
                    await dom.info()

                async def run(n: int) -> None:
                    for _ in range(n):
                        await dom.info()

                async with trio.open_nursery() as nursery:
                    for n in shares(calls, ntasks):
                        nursery.start_soon(run, n)

        trio.run(trio_main)
        return
    import virtwire.client.asyncio as vasyncio

    async def asyncio_main() -> None:
        async with await vasyncio.connect(uri, keepalive=False) as conn:
            dom = await conn.lookup_by_name("test")
            for _ in range(WARMUP):
                await dom.info()

            async def run(n: int) -> None:
                for _ in range(n):
                    await dom.info()

            await asyncio.gather(*(run(n) for n in shares(calls, ntasks)))

    asyncio.run(asyncio_main())


def _worker_cmd(shell: str, uri: str, calls: int, ntasks: int) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--worker",
        shell,
        "--uri",
        uri,
        "--calls",
        str(calls),
        "--tasks",
        str(ntasks),
    ]


def instructions(shell: str, uri: str, calls: int, ntasks: int) -> int:
    """Instructions callgrind counts in the whole worker process."""
    with tempfile.TemporaryDirectory(prefix="vw-cg-async-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        cmd += _worker_cmd(shell, uri, calls, ntasks)
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        text = out.read_text()
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no instruction total in callgrind's output")
    return int(match.group(1))


def per_call(shell: str, uri: str, calls: int, ntasks: int) -> float:
    # Once outside valgrind first: a module edited since its last import is
    # compiled here, not inside one of the two counted runs.
    subprocess.run(_worker_cmd(shell, uri, 0, 1), check=True, stdout=subprocess.DEVNULL)
    return (instructions(shell, uri, calls, ntasks) - instructions(shell, uri, 0, ntasks)) / calls


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="counted dom.info() calls per run")
    parser.add_argument("--tasks", type=int, nargs="*", default=[8, 32], help="task counts on one connection")
    parser.add_argument("--tcp-uri", help="a running libvirtd's tcp URI (default: start one)")
    parser.add_argument("--worker", choices=SHELLS, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
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
