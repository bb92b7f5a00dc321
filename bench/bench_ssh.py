"""ssh transport benchmark: virtwire.libvirt against libvirt-python over the same ssh.

Starts a real OpenSSH server on loopback with throw-away keys
(tests/fixtures/vwtestkit/sshd.py), a `virtwire serve` whose sockets the ssh
sessions reach through virtwire's virt-ssh-helper, and a real libvirtd (test
driver, tests/fixtures/libvirtd-up.sh) reached through the remote netcat
script. For each client and path it measures:

- sequential dom.info() round trips/s on one connection;
- open + close/s (each open runs ssh, the login, and the remote helper or nc).

Each row is the median of --reps runs of --duration seconds, the two clients
alternating run by run (the machine is shared); ratio = virtwire /
libvirt-python (>= 1.0 is as fast). Client CPU is this process's CPU per
operation (ssh and the daemons are other processes).

    .venv/bin/python bench/bench_ssh.py --duration 2 --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import libvirt as real_libvirt  # noqa: E402 - the real libvirt-python 9.0
from bench_client import Result, open_close, seq_info  # noqa: E402 - the client bench's own workloads
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers  # noqa: E402
from vwtestkit.sshd import start_sshd  # noqa: E402

import virtwire.libvirt as vlibvirt  # noqa: E402


def interleaved(reps: int, theirs: Callable[[], Result], ours: Callable[[], Result]) -> tuple[Result, Result]:
    a: list[Result] = []
    b: list[Result] = []
    for _ in range(reps):
        a.append(theirs())
        b.append(ours())
    return _median(a), _median(b)


def _median(results: list[Result]) -> Result:
    ops, cpu, system = zip(*results, strict=True)
    return statistics.median(ops), statistics.median(cpu), statistics.median(system)


def report(rows: list[tuple[str, Result, Result]]) -> None:
    print(
        f"{'test':<46} {'libvirt-py ops/s':>16} {'virtwire ops/s':>15} {'ratio':>6} "
        f"{'lvpy cpu µs':>11} {'vw cpu µs':>10} {'cpu ratio':>9}",
        flush=True,
    )
    for name, theirs, ours in rows:
        print(
            f"{name:<46} {theirs[0]:>16.1f} {ours[0]:>15.1f} {ours[0] / theirs[0]:>6.2f} "
            f"{theirs[1]:>11.1f} {ours[1]:>10.1f} {ours[1] / theirs[1]:>9.2f}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", help="substring filter on test names")
    args = parser.parse_args()
    sshd = start_sshd()
    server = None
    daemon = None
    try:
        server = start_server(pki=None, tls=False)
        assert server.unix_ro_path is not None
        os.symlink(server.unix_path, sshd.rundir / "libvirt-sock")
        daemon = start_libvirtd(Path(tempfile.mkdtemp(prefix="vw-bench-ssh-")), hold=True)
        paths = {
            "virtwire serve, virt-ssh-helper": sshd.uri(proxy="native"),
            "virtwire serve, netcat": sshd.uri(socket=str(server.unix_path)),
            "libvirtd, netcat": sshd.uri(socket=str(daemon.unix_path)),
        }
        rows: list[tuple[str, Result, Result]] = []
        for label, uri in paths.items():
            for what, workload in (("dom.info() sequential", seq_info), ("open+close", open_close)):
                name = f"{what} ({label})"
                if args.only and args.only not in name:
                    continue
                theirs, ours = interleaved(
                    args.reps,
                    lambda w=workload, u=uri: w(real_libvirt, u, args.duration),  # type: ignore[misc]
                    lambda w=workload, u=uri: w(vlibvirt, u, args.duration),  # type: ignore[misc]
                )
                rows.append((name, theirs, ours))
                report(rows[-1:])
        print()
        print(f"median of {args.reps} x {args.duration}s over ssh to 127.0.0.1", end="; ")
        print("ratio = virtwire / libvirt-python")
        report(rows)
    finally:
        if daemon is not None:
            stop_libvirtd(daemon)
        if server is not None:
            stop_servers([server])
        sshd.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
