"""Client CPU per open+close and per ssh round trip in instructions, both clients, one run.

The open-path companion of bench_client_cpu.py (per call). Each row runs a
small client under valgrind's callgrind twice: once with N counted operations
after a warm-up, once with the warm-up only; the difference divided by N is
what one operation costs the client process (interpreter, libvirt.so, libc
wrappers; not the kernel, not the daemon, not the ssh process: those are
other processes). Load-independent, so it compares the clients on a shared
machine where wall-clock rates are noise.

Rows:
- unix open+close, no authentication (libvirtd's read-write socket);
- unix open+close with SASL PLAIN (openAuth with a credential callback; a
  libvirtd whose unix socket wants SASL, one connection kept open so that no
  close tears the test driver down);
- dom.info() round trips over ssh (+ssh URI, the remote netcat to libvirtd),
  and over ssh to `virtwire serve` through virt-ssh-helper;
- ssh open+close (the client's share only: ssh itself is another process).

    .venv/bin/python bench/bench_open_cpu.py --opens 50 --calls 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import callgrind  # bench/callgrind.py

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ("libvirt-python", "virtwire")
KINDS = ("open", "open-plain", "info")
WARMUP_OPENS = 10  # opens before the counted ones: lazy imports, caches, first-call paths
WARMUP_CALLS = 200
SASL_USER, SASL_PASSWORD = "alice", "secret1"


def _credentials(creds: list[list[Any]], _: Any) -> int:
    for cred in creds:
        cred[4] = SASL_USER if cred[0] == 2 else SASL_PASSWORD  # VIR_CRED_AUTHNAME is 2
    return 0


def worker(client: str, kind: str, uri: str, count: int) -> None:
    """The process callgrind counts: warm up, then `count` operations of `kind`."""
    if client == "virtwire":
        import virtwire.libvirt as lib
    else:
        import libvirt as lib  # type: ignore[no-redef]
    if kind == "info":
        conn = lib.open(uri)
        info = conn.lookupByName("test").info
        for _ in range(WARMUP_CALLS + count):
            info()
        conn.close()
        return
    if kind == "open-plain":
        auth = [[lib.VIR_CRED_AUTHNAME, lib.VIR_CRED_PASSPHRASE], _credentials, None]
        for _ in range(WARMUP_OPENS + count):
            lib.openAuth(uri, auth, 0).close()
        return
    for _ in range(WARMUP_OPENS + count):
        lib.open(uri).close()


def per_operation(client: str, kind: str, uri: str, count: int) -> float:
    def worker_argv(n: int) -> list[str]:
        return [__file__, "--worker", client, "--kind", kind, "--uri", uri, "--count", str(n)]

    return callgrind.per_operation(worker_argv, count)


def main() -> int:
    parser = callgrind.worker_parser(__doc__, CLIENTS)
    parser.add_argument("--opens", type=int, default=50, help="counted opens per run")
    parser.add_argument("--calls", type=int, default=1000, help="counted ssh round trips per run")
    parser.add_argument("--ssh-opens", type=int, default=10, help="counted ssh opens per run")
    parser.add_argument("--only", help="substring filter on row names")
    parser.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.kind, args.uri, args.count)
        return 0

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    import libvirt as real_libvirt
    from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers
    from vwtestkit.sasl import make_sasldb
    from vwtestkit.sshd import start_sshd

    work = Path(tempfile.mkdtemp(prefix="vw-bench-open-"))
    plain = start_libvirtd(work / "plain", hold=True)
    sasl = start_libvirtd(
        work / "sasl",
        hold=False,
        conf_extra='auth_unix_rw = "sasl"\n',
        sasl_conf=make_sasldb(work / "sasldb", {SASL_USER: SASL_PASSWORD}),
    )
    plain_uri = sasl.unix_uri + "&auth=sasl.PLAIN"
    keeper = real_libvirt.openAuth(
        plain_uri, [[real_libvirt.VIR_CRED_AUTHNAME, real_libvirt.VIR_CRED_PASSPHRASE], _credentials, None], 0
    )
    sshd = start_sshd()
    server = start_server(pki=None, tls=False)
    os.symlink(server.unix_path, sshd.rundir / "libvirt-sock")
    rows = [
        ("unix open+close", "open", plain.unix_uri, args.opens),
        ("unix SASL PLAIN open+close", "open-plain", plain_uri, args.opens),
        ("ssh dom.info() (netcat, libvirtd)", "info", sshd.uri(socket=str(plain.unix_path)), args.calls),
        ("ssh dom.info() (virt-ssh-helper, serve)", "info", sshd.uri(proxy="native"), args.calls),
        ("ssh open+close (netcat, libvirtd)", "open", sshd.uri(socket=str(plain.unix_path)), args.ssh_opens),
    ]
    try:
        print(
            f"{'instructions per operation':<42} {'libvirt-python':>14} {'virtwire':>10} {'ratio':>6}",
            flush=True,
        )
        for name, kind, uri, count in rows:
            if args.only and args.only not in name:
                continue
            theirs = per_operation("libvirt-python", kind, uri, count)
            ours = per_operation("virtwire", kind, uri, count)
            print(f"{name:<42} {theirs:>14.0f} {ours:>10.0f} {ours / theirs:>6.2f}", flush=True)
        print("ratio = virtwire / libvirt-python instructions (<= 1.0: virtwire costs no more)")
    finally:
        keeper.close()
        stop_servers([server])
        sshd.stop()
        stop_libvirtd(sasl)
        stop_libvirtd(plain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
