"""Stock clients no one here wrote, against `virtwire serve` and a real libvirtd side by side.

* virt-install, virt-xml and virt-clone (Debian's virtinst over libvirt.so):
  install guests, create and clone volumes through the storage APIs (which also
  defines and builds virt-install's "default" pool), edit a definition, refuse a
  name in use, install a transient guest (vwtestkit.virtinst.scenario).  What
  they print and what they leave behind must match.
* Perl Sys::Virt (Debian's libsys-virt-perl): tests/server/data/sys_virt_smoke.pl
  prints what it sees through every object family, errors, events and a
  read-only refusal; the two transcripts must match (ours also serves the
  volume download stream that libvirt's test driver does not have).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from vwtestkit.env import unavailable
from vwtestkit.libvirtd import RealLibvirtd
from vwtestkit.server import VirtwireServer
from vwtestkit.virtinst import require_virtinst, scenario

DATA = Path(__file__).parent / "data"


def test_virtinst_tools_against_both_servers(
    fresh_libvirtd: Callable[..., RealLibvirtd], virtwire_server: Callable[..., VirtwireServer]
) -> None:
    require_virtinst()
    theirs = scenario(fresh_libvirtd().unix_uri)
    ours = scenario(virtwire_server(tls=False).unix_uri)
    assert ours == theirs
    first, again = theirs[0], theirs[3]
    assert isinstance(first, tuple) and isinstance(again, tuple)
    assert first[0] == 0 and again[0] != 0  # the scenario did what it says


def _perl_transcript(uri: str, ro_uri: str, *extra: str) -> list[str]:
    argv = ["perl", str(DATA / "sys_virt_smoke.pl"), uri, ro_uri, *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_perl_sys_virt_against_both_servers(
    fresh_libvirtd: Callable[..., RealLibvirtd], virtwire_server: Callable[..., VirtwireServer]
) -> None:
    probe = subprocess.run(["perl", "-MSys::Virt", "-e", "1"], capture_output=True, check=False)
    if probe.returncode != 0:
        unavailable(
            "Perl's Sys::Virt is not installed (Debian's libsys-virt-perl; scripts/test.sh installs it)"
        )
    real = fresh_libvirtd()
    ours = virtwire_server(tls=False)
    theirs = _perl_transcript(real.unix_uri, real.unix_ro_uri)
    mine = _perl_transcript(ours.unix_uri, ours.unix_ro_uri, "streams")
    assert "downloaded 1048576 bytes" in mine
    assert [line for line in mine if not line.startswith("downloaded")] == theirs
    assert theirs[-1] == "done" and any(line.startswith("events: perl2:2:0 perl2:5:1") for line in theirs)
