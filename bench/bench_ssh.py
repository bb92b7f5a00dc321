"""ssh transport benchmark: virtwire.libvirt against libvirt-python over the same ssh.

Starts a real OpenSSH server on loopback with throw-away keys
(tests/fixtures/vwtestkit/sshd.py), a `virtwire serve` whose sockets the ssh
sessions reach through virtwire's virt-ssh-helper, and a real libvirtd (test
driver, tests/fixtures/libvirtd-up.sh) reached through the remote netcat
script. For each client and path it measures:

- sequential dom.info() round trips/s on one connection;
- open + close/s (each open runs ssh, the login, and the remote helper or nc).

Round-trip rows are --reps runs of --duration seconds per client; open+close
rows are --open-pairs single opens per client (one takes most of a second: ssh
starts, logs in, runs the remote command). Both in ABBA order (bench/paired.py,
the machine is shared): each side's median, the median of the per-pair ratios
virtwire / libvirt-python (>= 1.0 is as fast) and their spread [lowest-highest].
Client CPU is this process's CPU per operation (ssh and the daemons are other
processes).

    .venv/bin/python bench/bench_ssh.py --duration 2 --reps 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import libvirt as real_libvirt  # noqa: E402 - the real libvirt-python 9.0
import paired  # noqa: E402 - ABBA-paired runs (bench/paired.py)
from bench_client import Result, cpu_now, cpu_per, seq_info  # noqa: E402 - the client bench's own workloads
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers  # noqa: E402
from vwtestkit.sshd import start_sshd  # noqa: E402

import virtwire.libvirt as vlibvirt  # noqa: E402


def open_close_once(lib: Any, uri: str) -> Result:
    """One open + close: (1 / its seconds, its CPU µs, of which system µs)."""
    cpu0 = cpu_now()
    t0 = time.perf_counter()
    lib.open(uri).close()
    return (1 / (time.perf_counter() - t0), *cpu_per(cpu0, 1))


Row = tuple[str, paired.Summary, paired.Summary]


def summarise(name: str, pairs: paired.Pairs[Result]) -> Row:
    speed = paired.summarise(pairs, key=lambda r: r[0])
    cpu = paired.summarise(pairs, key=lambda r: r[1], higher_is_better=False)
    return name, speed, cpu


def report(rows: list[Row]) -> None:
    print(
        f"{'test':<56} {'libvirt-py ops/s':>16} {'virtwire ops/s':>15} {'ratio [spread]':>17} "
        f"{'lvpy cpu µs':>11} {'vw cpu µs':>10} {'cpu ratio':>9}",
        flush=True,
    )
    for name, speed, cpu in rows:
        print(
            f"{name:<56} {speed.theirs:>16.1f} {speed.ours:>15.1f} {speed.format():>17} "
            f"{cpu.theirs:>11.1f} {cpu.ours:>10.1f} {cpu.ratio:>9.2f}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--open-pairs", type=int, default=16, help="single opens per client and path")
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
        rows: list[Row] = []
        for label, uri in paths.items():
            name = f"dom.info() sequential ({label})"
            if not args.only or args.only in name:
                pairs = paired.abba(
                    args.reps,
                    lambda u=uri: seq_info(real_libvirt, u, args.duration),  # type: ignore[misc]
                    lambda u=uri: seq_info(vlibvirt, u, args.duration),  # type: ignore[misc]
                )
                rows.append(summarise(name, pairs))
                report(rows[-1:])
            name = f"open+close ({label})"
            if not args.only or args.only in name:
                pairs = paired.abba(
                    args.open_pairs,
                    lambda u=uri: open_close_once(real_libvirt, u),  # type: ignore[misc]
                    lambda u=uri: open_close_once(vlibvirt, u),  # type: ignore[misc]
                    warmup=True,
                )
                rows.append(summarise(name, pairs))
                report(rows[-1:])
        print()
        print(
            f"over ssh to 127.0.0.1: round trips {args.reps} x {args.duration}s, open+close {args.open_pairs}"
            " single opens, per client, ABBA-paired; ratio = virtwire / libvirt-python"
        )
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
