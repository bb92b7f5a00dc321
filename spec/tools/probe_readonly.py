"""Measure libvirt 9.0's read-only policy and compare it with spec/remote.x.

Usage: python spec/tools/probe_readonly.py [--spec spec/remote.x] [--markdown]

libvirt enforces read-only connections in its public entry points
(virCheckReadOnlyGoto in src/libvirt-*.c, and flag-dependent checks such as
virDomainGetXMLDesc's with VIR_DOMAIN_XML_SECURE). This tool asks the
installed libvirt.so itself: in a worker process it opens test:///default
read-only, builds handles for every object kind with libvirt's private
virGet* constructors, and calls the @api of every procedure with placeholder
arguments. A call refused with VIR_ERR_OPERATION_DENIED (29) is `deny`; the
check runs before any argument is used, so placeholders are enough. For the
others, each bit of `flags` is tried alone to find `deny-flags` masks.

Placeholders: object arguments get the handles, `flags` the probed value, an
`fd` a socket, `source` 0 (see below), other integers 1, strings "x", callbacks NULL, every other
pointer a zeroed buffer. Internal functions (not in libvirt-api.xml) get their
first object and zeros. Calls that are allowed run against the throw-away
test driver of the worker. The worker is restarted after a call that crashes
or hangs; such a call is tried twice, then counts as "not denied" (a refused
call returns before doing anything). Not used at run time.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_api_names import DEFAULT_API_XML, DEFAULT_SPEC, procedure_annotations

VIR_ERR_OPERATION_DENIED = 29
# Connection management is not subject to the read-only check.
NOT_PROBED = {"virConnectOpen", "virConnectOpenAuth", "virConnectClose"}
# Internal migration steps whose first argument is a domain (the rest take a connection).
DOMAIN_FIRST = ("virDomainMigrateBegin", "virDomainMigratePerform", "virDomainMigrateConfirm")
HANG_SECONDS = 15.0
# A call that crashes or hangs is tried this often before it counts as "not denied".
ATTEMPTS = 2

Signature = list[tuple[str, str]]  # (argument name, C type)


def signatures(api_xml: Path) -> dict[str, Signature]:
    return {
        f.get("name", ""): [(a.get("name", ""), a.get("type", "")) for a in f.findall("arg")]
        for f in ET.parse(api_xml).iter("function")
    }


# ----------------------------------------------------------------- worker side


class _Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("domain", ctypes.c_int), ("message", ctypes.c_char_p)]


def _declare(lib: ctypes.CDLL, name: str, res: Any, args: list[Any]) -> Any:
    func = getattr(lib, name)
    func.restype = res
    func.argtypes = args
    return func


def _handles(lib: ctypes.CDLL) -> dict[str, int]:
    vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    uuid = bytes(range(16))
    conn = _declare(lib, "virConnectOpenReadOnly", vp, [cp])(b"test:///default")
    if not conn:
        raise SystemExit("cannot open test:///default read-only")
    dom = _declare(lib, "virGetDomain", vp, [vp, cp, cp, ci])(conn, b"test", uuid, 1)
    net = _declare(lib, "virGetNetwork", vp, [vp, cp, cp])(conn, b"default", uuid)
    handles = {
        "virConnectPtr": conn,
        "virDomainPtr": dom,
        "virNetworkPtr": net,
        "virNetworkPortPtr": _declare(lib, "virGetNetworkPort", vp, [vp, cp])(net, uuid),
        "virInterfacePtr": _declare(lib, "virGetInterface", vp, [vp, cp, cp])(
            conn, b"eth1", b"aa:bb:cc:dd:ee:ff"
        ),
        "virStoragePoolPtr": _declare(lib, "virGetStoragePool", vp, [vp, cp, cp, vp, vp])(
            conn, b"default-pool", uuid, None, None
        ),
        "virStorageVolPtr": _declare(lib, "virGetStorageVol", vp, [vp, cp, cp, cp, vp, vp])(
            conn, b"default-pool", b"vol", b"key", None, None
        ),
        "virNodeDevicePtr": _declare(lib, "virGetNodeDevice", vp, [vp, cp])(conn, b"computer"),
        "virSecretPtr": _declare(lib, "virGetSecret", vp, [vp, cp, ci, cp])(conn, uuid, 0, b""),
        "virStreamPtr": _declare(lib, "virGetStream", vp, [vp])(conn),
        "virNWFilterPtr": _declare(lib, "virGetNWFilter", vp, [vp, cp, cp])(conn, b"f", uuid),
        "virNWFilterBindingPtr": _declare(lib, "virGetNWFilterBinding", vp, [vp, cp, cp])(conn, b"p", b"f"),
        "virDomainSnapshotPtr": _declare(lib, "virGetDomainSnapshot", vp, [vp, cp])(dom, b"s"),
        "virDomainCheckpointPtr": _declare(lib, "virGetDomainCheckpoint", vp, [vp, cp])(dom, b"c"),
    }
    missing = [kind for kind, ptr in handles.items() if not ptr]
    if missing:
        raise SystemExit(f"cannot build handles: {missing}")
    return handles


def _worker() -> None:
    """Read `api flags` lines, print one JSON result line per call."""
    lib = ctypes.CDLL("libvirt.so.0")
    handles = _handles(lib)
    sigs = signatures(DEFAULT_API_XML)
    last_error = _declare(lib, "virGetLastError", ctypes.c_void_p, [])
    reset_error = _declare(lib, "virResetLastError", None, [])
    keep: list[Any] = []

    def argument(name: str, ctype: str, flags: int) -> Any:
        if ctype in handles:
            return ctypes.c_void_p(handles[ctype])
        if name == "flags" and ctype == "unsigned int":
            return ctypes.c_uint(flags)
        if name == "fd":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            keep.append(sock)
            return ctypes.c_int(sock.fileno())
        if name == "source" and ctype == "unsigned int":
            # virDomainInterfaceAddresses refuses a read-only caller only for source
            # AGENT (1): lease (0) is what a read-only client may ask.  The spec says
            # allow and the driver refuses the agent source itself.
            return ctypes.c_uint(0)
        if ctype in ("int", "unsigned int"):
            return ctypes.c_int(1)
        if ctype in ("long", "unsigned long", "size_t"):
            return ctypes.c_long(1)
        if ctype in ("long long", "unsigned long long"):
            return ctypes.c_longlong(1)
        if "Callback" in ctype or "Func" in ctype or ctype == "void *":
            return ctypes.c_void_p(None)
        buf = ctypes.create_string_buffer(b"x" if ctype == "const char *" else b"", 1 << 16)
        keep.append(buf)
        return ctypes.cast(buf, ctypes.c_void_p)

    for line in sys.stdin:
        api, flag_text = line.split()
        flags = int(flag_text)
        func = getattr(lib, api)
        func.restype = ctypes.c_void_p
        if api in sigs:
            args = [argument(n, t, flags) for n, t in sigs[api]]
        else:
            first = handles["virDomainPtr" if api.startswith(DOMAIN_FIRST) else "virConnectPtr"]
            args = [ctypes.c_void_p(first)] + [ctypes.c_void_p(None)] * 12
        reset_error()
        print(json.dumps({"api": api, "flags": flags, "started": True}), flush=True)
        func(*args)
        err_ptr = last_error()
        err = _Err.from_address(err_ptr) if err_ptr else None
        rec = {
            "api": api,
            "flags": flags,
            "code": err.code if err else 0,
            "domain": err.domain if err else 0,
            "message": (err.message or b"").decode() if err else "",
        }
        print(json.dumps(rec), flush=True)


# ----------------------------------------------------------------- driver side


@dataclass(frozen=True)
class Outcome:
    """The error a probe call left behind (code 0: none)."""

    code: int
    domain: int
    message: str


@dataclass(frozen=True)
class Measured:
    policy: str  # allow | deny | deny-flags 0xMASK
    refusal: Outcome | None  # the error of a refused call, for deny and deny-flags


def run_probes(jobs: list[tuple[str, int]]) -> dict[tuple[str, int], Outcome | None]:
    """Run (api, flags) probes in worker processes; None = crashed or hung."""
    results: dict[tuple[str, int], Outcome | None] = {}
    failures: dict[tuple[str, int], int] = {}
    todo = list(jobs)
    while todo:
        with tempfile.TemporaryFile("w+") as jobs_file, tempfile.TemporaryFile("w+") as out_file:
            jobs_file.write("".join(f"{api} {flags}\n" for api, flags in todo))
            jobs_file.seek(0)
            proc = subprocess.Popen(
                [sys.executable, __file__, "--worker"],
                stdin=jobs_file,
                stdout=out_file,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            # The worker writes a line per step; no new line for a while means it hangs.
            size, last_change = -1, time.monotonic()
            while proc.poll() is None:
                time.sleep(0.05)
                now_size = os.fstat(out_file.fileno()).st_size
                if now_size != size:
                    size, last_change = now_size, time.monotonic()
                elif time.monotonic() - last_change > HANG_SECONDS:
                    proc.kill()
                    proc.wait()
            out_file.seek(0)
            started: tuple[str, int] | None = None
            for line in out_file:
                if not line.endswith("\n"):
                    break
                rec = json.loads(line)
                key = (rec["api"], rec["flags"])
                if rec.get("started"):
                    started = key
                    continue
                started = None
                results[key] = Outcome(rec["code"], rec["domain"], rec["message"])
        if started is not None:
            failures[started] = failures.get(started, 0) + 1
            if failures[started] >= ATTEMPTS:
                results[started] = None
        todo = [job for job in todo if job not in results]
    return results


def _refused(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.code == VIR_ERR_OPERATION_DENIED


def measure(apis: list[str], sigs: dict[str, Signature]) -> dict[str, Measured]:
    """Policy per API as libvirt.so enforces it, with the error of a refusal."""
    base = run_probes([(api, 0) for api in apis])
    result = {api: Measured("deny", base[(api, 0)]) for api in apis if _refused(base[(api, 0)])}
    flagged = [
        api
        for api in apis
        if api not in result and any(n == "flags" and t == "unsigned int" for n, t in sigs.get(api, []))
    ]
    bits = run_probes([(api, 1 << bit) for api in flagged for bit in range(32)])
    for api in apis:
        if api in result:
            continue
        refusals = {f: o for (a, f), o in bits.items() if a == api and _refused(o)}
        if refusals:
            result[api] = Measured(f"deny-flags {sum(refusals):#x}", refusals[min(refusals)])
        else:
            result[api] = Measured("allow", None)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    ap.add_argument("--markdown", action="store_true", help="print the policy table of every probed API")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker()
        return 0
    notes = procedure_annotations(args.spec.read_text(encoding="utf-8"))
    spec_policy: dict[str, str] = {}
    for entry in notes.values():
        if "api" in entry and entry["api"] not in NOT_PROBED:
            spec_policy[entry["api"]] = entry["readonly"]
    sigs = signatures(DEFAULT_API_XML)
    measured = measure(sorted(spec_policy), sigs)
    if args.markdown:
        print("| API | measured policy | error domain | error message |\n|---|---|---|---|")
        for api, m in sorted(measured.items()):
            domain, message = (m.refusal.domain, m.refusal.message) if m.refusal else ("", "")
            print(f"| {api} | {m.policy} | {domain} | {message} |")
    mismatches = [
        (api, spec_policy[api], m.policy)
        for api, m in sorted(measured.items())
        if spec_policy[api] != m.policy
    ]
    for api, want, got in mismatches:
        print(f"MISMATCH {api}: spec says {want}, libvirt.so does {got}", file=sys.stderr)
    print(f"{len(measured)} APIs probed, {len(mismatches)} mismatches", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
