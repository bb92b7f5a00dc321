"""virtwire's virt-ssh-helper: which socket it picks, its errors, and the bridge itself.

The bridge runs here without ssh, as a `+ext` command (libvirt runs it the
same way ssh's remote shell does: stdin/stdout are the connection), used by
the real libvirt-python and by virtwire.libvirt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from virtwire.server import sshhelper
from vwtestkit import VirtwireServer

import virtwire.libvirt as vlibvirt

HELPER = Path(sys.executable).parent / "virt-ssh-helper"


def _run(*args: str, rundir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRTWIRE_RUNTIME_DIR": str(rundir)}
    return subprocess.run(
        [str(HELPER), *args], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def test_socket_choice_follows_libvirts_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert sshhelper.socket_path("test:///default", False, tmp_path) == tmp_path / "libvirt-sock"
    assert sshhelper.socket_path("qemu:///system", True, tmp_path) == tmp_path / "libvirt-sock-ro"
    assert sshhelper.socket_path("qemu+unix:///system", False, tmp_path) == tmp_path / "libvirt-sock"
    # A driver's own daemon socket wins when it exists (mode auto).
    (tmp_path / "virtqemud-sock-ro").touch()
    assert sshhelper.socket_path("qemu:///system", True, tmp_path) == tmp_path / "virtqemud-sock-ro"
    # A session daemon (non-root, /session) has one socket, read-only or not.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert sshhelper.socket_path("qemu:///session", True, tmp_path) == tmp_path / "libvirt-sock"


def test_helper_refusals_and_version(tmp_path: Path) -> None:
    missing = _run("test:///default", rundir=tmp_path)
    sock = tmp_path / "libvirt-sock"
    assert missing.returncode == 1
    assert missing.stderr == (
        f"virt-ssh-helper: cannot connect to '{sock}': "
        f"Failed to connect socket to '{sock}': No such file or directory\n"
    )
    remote = _run("test+tcp://h/default", rundir=tmp_path)
    assert remote.returncode == 1
    assert remote.stderr == "virt-ssh-helper: unexpected URI transport 'test+tcp://h/default'\n"
    assert _run(rundir=tmp_path).returncode == 1  # no URI: usage
    version = _run("-V", rundir=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("virt-ssh-helper (virtwire) ")


def test_virtwire_cli_runs_the_helper(tmp_path: Path) -> None:
    env = {**os.environ, "VIRTWIRE_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "virtwire"), "ssh-helper", "-r", "test:///default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"virtwire ssh-helper: cannot connect to '{tmp_path / 'libvirt-sock-ro'}'")


@pytest.mark.parametrize("readonly", [False, True])
def test_bridge_carries_libvirt_python_and_ours(
    ssh_daemon: VirtwireServer, real_libvirt: ModuleType, tmp_path: Path, readonly: bool
) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()
    target = ssh_daemon.unix_ro_path if readonly else ssh_daemon.unix_path
    assert target is not None
    (rundir / ("libvirt-sock-ro" if readonly else "libvirt-sock")).symlink_to(target)
    script = tmp_path / "helper"
    script.write_text(
        f"#!/bin/sh\nVIRTWIRE_RUNTIME_DIR='{rundir}' exec '{HELPER}' {'-r ' if readonly else ''}test:///default\n"
    )
    script.chmod(0o755)
    uri = f"test+ext:///default?command={script}"
    direct = vlibvirt.open(ssh_daemon.unix_uri)
    capabilities = direct.getCapabilities()
    direct.close()
    for module in (real_libvirt, vlibvirt):
        conn = module.open(uri)
        try:
            assert conn.getHostname() == "vw-behind-ssh"
            dom = conn.lookupByName("test")
            # A large reply crosses the bridge whole (capabilities, the domain's XML).
            assert conn.getCapabilities() == capabilities
            if readonly:
                with pytest.raises(module.libvirtError) as info:
                    dom.suspend()
                assert info.value.get_error_code() == module.VIR_ERR_OPERATION_DENIED
            else:
                assert dom.isActive() == 1
        finally:
            conn.close()
