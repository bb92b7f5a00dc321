"""go-libvirt (Debian's golang-github-digitalocean-go-libvirt-dev) works against
`virtwire serve` as against libvirtd 9.0.

tests/hardening/golibvirt/main.go is built offline against the Debian source
(GOPATH mode, no module proxy), then run against our server and against a real
libvirtd: it connects (go-libvirt sends CONNECT_OPEN's optional-data flag as
0x01000000), lists, looks up, defines, starts, destroys and undefines a domain,
receives its lifecycle events, and calls the migration job APIs.  Both runs
must print the same lines.

Needs go and the go-libvirt source: skipped without them, a failure with CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, unavailable

PROGRAM_DIR = Path(__file__).parent / "golibvirt"
GO_LIBVIRT_SRC = Path("/usr/share/gocode/src/github.com/digitalocean/go-libvirt")
GOPATH = GO_LIBVIRT_SRC.parents[3]
# Go's build cache survives between runs beside the venv (a cold build takes seconds).
GO_CACHE = Path(__file__).resolve().parents[2] / ".venv" / "cache" / "go-build"


@pytest.fixture(scope="module")
def golibvirt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not (GO_LIBVIRT_SRC / "libvirt.go").is_file():
        unavailable("go / golang-github-digitalocean-go-libvirt-dev not installed")
    out = tmp_path_factory.mktemp("golibvirt") / "golibvirt"
    GO_CACHE.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GO111MODULE": "off",  # GOPATH mode: imports resolve in Debian's /usr/share/gocode
        "GOPATH": str(GOPATH),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOCACHE": str(GO_CACHE),
    }
    subprocess.run([go, "build", "-o", str(out), "."], cwd=PROGRAM_DIR, env=env, check=True, timeout=600)
    return out


def run_program(program: Path, port: int) -> list[str]:
    done = subprocess.run(
        [str(program), "127.0.0.1", str(port)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"golibvirt failed ({done.returncode}): {done.stderr}\n{done.stdout}"
    return done.stdout.splitlines()


def test_go_libvirt_against_virtwire_as_against_libvirtd(
    golibvirt: Path,
    virtwire_server: Callable[..., VirtwireServer],
    fresh_libvirtd: Callable[..., RealLibvirtd],
) -> None:
    ours = run_program(golibvirt, virtwire_server(ro=False, tls=False).tcp_port)
    theirs = run_program(golibvirt, fresh_libvirtd().tcp_port)
    # libvirtd's test driver has no migration jobs (error 3 for each); ours
    # migrates for real, so those lines are checked on their own.
    job_steps = ("job info", "job stats", "abort job", "set max", "max speed", "max downtime")
    ours_jobs = [line for line in ours if line.startswith(job_steps)]
    assert [line for line in ours if line not in ours_jobs] == [
        line for line in theirs if not line.startswith(job_steps)
    ]
    assert ours_jobs == [
        "job info: type 0",  # VIR_DOMAIN_JOB_NONE
        "job stats: type 0, 0 params",
        "abort job: error 55: Requested operation is not valid: no job is active on the domain",
        "set max speed: ok",
        "max speed: 100",
        "set max downtime: ok",
        "max downtime: 250",
    ]
    # the walk really happened (not two identical failures)
    assert "lookup test: test id 1" in ours
    assert "event: golibvirt event 2 detail 0" in ours  # started, booted
    assert "lookup undefined: error 42: Domain not found" in ours
