"""The installed program end to end: `virtwire --version`, `virtwire serve`, our own client.

Also run by scripts/packaging.sh in a fresh virtualenv per Python version, where
virtwire comes from the wheel: it needs nothing but the package and its
dependencies (no libvirt on the machine).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from vwtestkit.activation import NotifyReceiver, spawn_serve, stop

import virtwire
import virtwire.libvirt as libvirt

SCRIPT = Path(sys.executable).parent / "virtwire"  # the console script of this environment
DOMAIN = "<domain type='test'><name>smoke</name><memory>1024</memory><os><type>hvm</type></os></domain>"


@pytest.fixture
def rundir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vw-smoke-", dir="/tmp"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_version_is_the_distributions() -> None:
    assert virtwire.__version__ == metadata.version("virtwire")
    out = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == f"virtwire {virtwire.__version__}"


def test_serve_and_our_client(rundir: Path) -> None:
    sock = rundir / "sock"
    log = rundir / "serve.log"
    with NotifyReceiver() as notify:
        server = spawn_serve(
            ["--unix", str(sock), "--unix-ro", str(rundir / "sock-ro")],
            log_path=log,
            env={"NOTIFY_SOCKET": str(notify.path)},
        )
        try:
            notify.wait_for("READY=1")
            conn = libvirt.open(f"test+unix:///default?socket={sock}")
            try:
                assert [d.name() for d in conn.listAllDomains()] == ["test"]
                dom = conn.defineXML(DOMAIN)
                dom.create()
                assert dom.isActive() == 1
                assert sorted(
                    conn.listDefinedDomains() + [conn.lookupByID(i).name() for i in conn.listDomainsID()]
                ) == [
                    "smoke",
                    "test",
                ]
            finally:
                conn.close()
            ro = libvirt.openReadOnly(f"test+unix:///default?socket={rundir / 'sock-ro'}")
            with pytest.raises(libvirt.libvirtError, match="read only access prevents virDomainSuspend"):
                ro.lookupByName("smoke").suspend()
            ro.close()
        finally:
            status = stop(server)
        assert status == 0, log.read_text()
        assert notify.wait_for("STOPPING=1")[-1] == "STOPPING=1"
