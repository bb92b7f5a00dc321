"""Stock clients no one here wrote, against `virtwire serve` and a real libvirtd side by side.

* virt-install (Debian's virtinst, Python over libvirt.so): installs a guest,
  creates a volume through the storage APIs (``--disk size=``, which also defines
  and builds virt-install's "default" pool), refuses a name in use, installs a
  transient guest.  Exit status, what it prints and the guest it leaves behind
  must match.
* Perl Sys::Virt (Debian's libsys-virt-perl): tests/server/data/sys_virt_smoke.pl
  prints what it sees through every object family, errors, events and a
  read-only refusal; the two transcripts must match (ours also serves the
  volume download stream that libvirt's test driver does not have).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from vwtestkit.env import unavailable
from vwtestkit.libvirtd import RealLibvirtd
from vwtestkit.server import VirtwireServer

DATA = Path(__file__).parent / "data"
INSTALL = ["--memory", "128", "--vcpus", "1", "--import", "--osinfo", "generic", "--noautoconsole"]


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        unavailable(f"{tool} is not installed (Debian's {package}; scripts/test.sh installs it)")
    return path


def _run(argv: list[str]) -> tuple[int, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _virt_install(uri: str, *args: str) -> tuple[int, list[str]]:
    """Exit status and virt-install's messages (progress bars and timings left out)."""
    rc, text = _run([_need("virt-install", "virtinst"), "--connect", uri, *args])
    lines = [line.strip() for line in text.replace(uri, "URI").splitlines()]
    kept = [re.sub(r"\s+", " ", line) for line in lines if line and "|" not in line]
    return rc, kept


def _virsh(uri: str, *args: str) -> str:
    rc, text = _run(["virsh", "-c", uri, *args])
    assert rc == 0, text
    return text


def _masked_xml(xml: str) -> str:
    xml = re.sub(r"<uuid>[^<]*</uuid>", "<uuid/>", xml)
    xml = re.sub(r"<mac address='[0-9a-f:]+'/>", "<mac/>", xml)
    return re.sub(r"<domain type='test' id='\d+'>", "<domain type='test'>", xml)


def _scenario(uri: str) -> list[object]:
    seen: list[object] = []
    seen.append(_virt_install(uri, "--name", "vi-one", "--disk", "none", *INSTALL))
    seen.append(_masked_xml(_virsh(uri, "dumpxml", "vi-one")))
    seen.append(_virsh(uri, "domstate", "vi-one").strip())
    seen.append(_virt_install(uri, "--name", "vi-one", "--disk", "none", *INSTALL))  # name in use
    seen.append(_virt_install(uri, "--name", "vi-disk", "--disk", "size=1", *INSTALL))
    seen.append(_masked_xml(_virsh(uri, "dumpxml", "vi-disk")))
    seen.append(_virsh(uri, "vol-info", "--pool", "default", "vi-disk.qcow2"))
    seen.append(_virt_install(uri, "--name", "vi-temp", "--disk", "none", "--transient", *INSTALL))
    info = _virsh(uri, "dominfo", "vi-temp").replace(_virsh(uri, "domuuid", "vi-temp").strip(), "UUID")
    seen.append(re.sub(r"CPU time: +[0-9.]+s", "CPU time: *", info))  # the test driver's clock
    seen.append(_virt_install(uri, "--name", "vi-dry", "--disk", "none", "--dry-run", *INSTALL))
    seen.append(_virsh(uri, "list", "--all", "--name"))
    return seen


def test_virt_install_against_both_servers(
    fresh_libvirtd: Callable[..., RealLibvirtd], virtwire_server: Callable[..., VirtwireServer]
) -> None:
    _need("virt-install", "virtinst")
    real = fresh_libvirtd()
    ours = virtwire_server(tls=False)
    theirs_seen = _scenario(real.unix_uri)
    ours_seen = _scenario(ours.unix_uri)
    assert ours_seen == theirs_seen
    first, again = theirs_seen[0], theirs_seen[3]
    assert isinstance(first, tuple) and isinstance(again, tuple)
    assert first[0] == 0 and again[0] != 0  # the scenario did what it says


def _perl_transcript(uri: str, ro_uri: str, *extra: str) -> list[str]:
    rc, text = _run([_need("perl", "perl"), str(DATA / "sys_virt_smoke.pl"), uri, ro_uri, *extra])
    assert rc == 0, text
    return text.splitlines()


def test_perl_sys_virt_against_both_servers(
    fresh_libvirtd: Callable[..., RealLibvirtd], virtwire_server: Callable[..., VirtwireServer]
) -> None:
    rc, _ = _run(["perl", "-MSys::Virt", "-e", "1"])
    if rc != 0:
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
