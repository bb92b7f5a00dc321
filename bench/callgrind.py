"""Instructions a benchmark worker executes, counted by valgrind's callgrind.

The *_cpu benchmarks compare the CPU cost of one operation where wall-clock
rates are noise (a shared machine): a script runs itself as a worker
(``SCRIPT --worker ...``) under callgrind twice, once with N counted
operations and once with none (import, open, warm-up and close alike); the
difference divided by N is one operation's cost in the worker process
(interpreter, libraries and libc wrappers included; not the kernel, not the
daemon, not the worker's children: other processes).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


def worker_parser(description: str | None, clients: Sequence[str]) -> argparse.ArgumentParser:
    """The benchmark's parser, with the worker side's hidden flags: --worker CLIENT, --uri."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=clients, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    return parser


def instructions(worker_argv: list[str]) -> int:
    """Instructions callgrind counts in the worker process itself (not its children).

    worker_argv: what follows the interpreter, the script first.
    """
    with tempfile.TemporaryDirectory(prefix="vw-cg-") as tmp:
        # %p: a forked child (libvirt's ssh, before its exec) writes its own file.
        pattern = Path(tmp) / "callgrind.out.%p"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={pattern}",
            sys.executable,
            *worker_argv,
        ]
        env = dict(os.environ, PYTHONHASHSEED="0")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if proc.wait() != 0:
            raise RuntimeError(f"worker failed: {' '.join(cmd)}")
        text = (Path(tmp) / f"callgrind.out.{proc.pid}").read_text()
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no instruction total in callgrind's output")
    return int(match.group(1))


def per_operation(worker_argv: Callable[[int], list[str]], count: int) -> float:
    """Instructions of one operation: (a run of `count` - a run of none) / count.

    worker_argv(n): the worker's arguments for n counted operations.
    """
    # One run outside valgrind first: modules edited since their last import are
    # compiled there, not inside one of the two counted runs (a compile there is
    # millions of instructions counted as the operations').
    subprocess.run([sys.executable, *worker_argv(0)], check=True, stdout=subprocess.DEVNULL)
    return (instructions(worker_argv(count)) - instructions(worker_argv(0))) / count
