"""SASL benchmark: open + authenticate + close per second, side by side.

Starts a real libvirtd (test driver) whose read-write unix socket and TLS port
require SASL (a sasldb made by saslpasswd2, SCRAM-SHA-256 / SCRAM-SHA-1 / PLAIN),
and a `virtwire serve` configured alike (a users file from `virtwire passwd`).

Client rows: virtwire.libvirt vs the real libvirt-python against the same real
libvirtd (openAuth with a credential callback, then close).  Server rows: the
real libvirt-python against `virtwire serve` vs against libvirtd.  Each row is
--reps runs of --duration seconds per side in ABBA order (bench/paired.py): the
medians of each side, the median of the per-pair ratios and their spread
[lowest-highest]; ratio >= 1.0 means virtwire is as fast. CPU is this process's
CPU time per open (the client's cost; both daemons are other processes).

    .venv/bin/python bench/bench_sasl.py --duration 2 --reps 5 [--only PLAIN]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import libvirt as real_libvirt  # noqa: E402 - the real libvirt-python 9.0
import paired  # noqa: E402 - ABBA-paired runs (bench/paired.py)
from vwtestkit import make_pki, start_libvirtd, start_server, stop_libvirtd, stop_servers  # noqa: E402
from vwtestkit.sasl import AUTHNAME, PASSPHRASE, make_sasldb, make_users_file  # noqa: E402

import virtwire.libvirt as vlibvirt  # noqa: E402

USERS = {"alice": "secret1"}


def _callback(creds: list[list[Any]], _: Any) -> int:
    for cred in creds:
        cred[4] = "alice" if cred[0] == AUTHNAME else "secret1"
    return 0


AUTH = [[AUTHNAME, PASSPHRASE], _callback, None]


def open_close(lib: Any, uri: str, duration: float) -> tuple[float, float]:
    """Authenticated opens (and closes) per second, and this process's CPU µs per open."""
    n = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    end = t0 + duration
    while time.perf_counter() < end:
        lib.openAuth(uri, AUTH, 0).close()
        n += 1
    elapsed = time.perf_counter() - t0
    return n / elapsed, (time.process_time() - cpu0) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", help="substring filter on rows (e.g. PLAIN, client)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sasl-"))
    pki = make_pki(work / "pki")
    sasl_conf = make_sasldb(work / "sasl", USERS)
    daemon = start_libvirtd(
        work / "libvirtd",
        pki=pki,
        hold=False,
        conf_extra='auth_unix_rw = "sasl"\nauth_tls = "sasl"\n',
        sasl_conf=sasl_conf,
    )
    server = start_server(
        "--auth-unix-rw",
        "sasl",
        "--auth-tls",
        "sasl",
        "--sasl-users-file",
        str(make_users_file(work / "users", USERS)),
        pki=pki,
    )
    rows: list[tuple[str, str, paired.Summary, paired.Summary]] = []
    # One connection stays open, as libvirtd-up.sh's holder does for the other benchmarks
    # (it cannot here: its socket wants SASL): otherwise each close frees libvirtd's test
    # driver and the next open builds it again, which is what a fast client would measure.
    keeper = real_libvirt.openAuth(daemon.unix_uri, AUTH, 0)
    try:
        d, reps = args.duration, args.reps
        for label, real_uri, our_uri in (
            ("unix SCRAM-SHA-256", daemon.unix_uri, server.unix_uri),
            ("tls SCRAM-SHA-256", daemon.tls_uri, server.tls_uri),
            ("unix PLAIN", daemon.unix_uri + "&auth=sasl.PLAIN", server.unix_uri + "&auth=sasl.PLAIN"),
        ):
            real_client = partial(open_close, real_libvirt, real_uri, d)
            for what, ours in (
                (
                    "client: virtwire.libvirt / libvirt-python -> libvirtd",
                    partial(open_close, vlibvirt, real_uri, d),
                ),
                (
                    "server: libvirt-python -> virtwire serve / libvirtd",
                    partial(open_close, real_libvirt, our_uri, d),
                ),
            ):
                if args.only and args.only not in f"{what} {label}":
                    continue
                pairs = paired.abba(reps, real_client, ours, warmup=True)
                rows.append(
                    (
                        what,
                        label,
                        paired.summarise(pairs, key=lambda r: r[0]),
                        paired.summarise(pairs, key=lambda r: r[1], higher_is_better=False),
                    )
                )
    finally:
        keeper.close()
        stop_servers([server])
        stop_libvirtd(daemon)
    print(f"SASL open+close per second ({args.reps} x {args.duration:g}s per side, ABBA-paired)")
    print(
        f"{'comparison':55} {'transport, mechanism':20} {'libvirt':>8} {'virtwire':>8} "
        f"{'ratio [spread]':>17} {'cpu µs lv/vw':>13} {'cpu ratio':>17}"
    )
    for what, label, speed, cpu in rows:
        print(
            f"{what:55} {label:20} {speed.theirs:8.1f} {speed.ours:8.1f} {speed.format():>17} "
            f"{cpu.theirs:6.0f}/{cpu.ours:<6.0f} {cpu.format():>17}"
        )
    print(
        "ratio = virtwire / libvirt (median of per-pair ratios); cpu ratio = libvirt / virtwire CPU per open"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
