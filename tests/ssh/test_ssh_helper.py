"""virtwire's virt-ssh-helper: which socket it picks, its errors, and the bridge itself.

The bridge runs here without ssh, as a `+ext` command (libvirt runs it the
same way ssh's remote shell does: stdin/stdout are the connection), used by
the real libvirt-python and by virtwire.libvirt.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest
from virtwire.server import sshhelper
from vwtestkit import VirtwireServer

import virtwire.libvirt as vlibvirt

HELPER = Path(sys.executable).parent / "virt-ssh-helper"
HANG_LIMIT = 120.0  # seconds: only a deadlock takes this long (not a speed check)


def _run(*args: str, rundir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRTWIRE_RUNTIME_DIR": str(rundir)}
    return subprocess.run(
        [str(HELPER), *args], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def test_socket_choice_follows_libvirts_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rundir = str(tmp_path)

    def choice(uri: str, readonly: bool) -> str:
        return os.path.basename(sshhelper.socket_path(uri, readonly, rundir))

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert choice("test:///default", False) == "libvirt-sock"
    assert choice("qemu:///system", True) == "libvirt-sock-ro"
    assert choice("qemu+unix:///system", False) == "libvirt-sock"
    # A driver's own daemon socket wins when it exists (mode auto).
    (tmp_path / "virtqemud-sock-ro").touch()
    assert sshhelper.socket_path("qemu:///system", True, rundir) == str(tmp_path / "virtqemud-sock-ro")
    # A session daemon (non-root, /session) has one socket, read-only or not.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert choice("qemu:///session", True) == "libvirt-sock"


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
    # GOption's answers, as libvirt's helper gives them.
    usage = _run(rundir=tmp_path)  # no URI
    assert usage.returncode == 1 and usage.stderr.startswith("Usage:\n  virt-ssh-helper [OPTION…] URI")
    assert _run("a", "b", rundir=tmp_path).stderr == usage.stderr
    unknown = _run("-x", "test:///default", rundir=tmp_path)
    assert (unknown.returncode, unknown.stderr) == (1, "option parsing failed: Unknown option -x\n")
    helped = _run("--help", rundir=tmp_path)
    assert (helped.returncode, helped.stdout) == (0, usage.stderr)
    version = _run("-V", rundir=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("virt-ssh-helper (virtwire) ")


HELPER_IMPORT_PROBE = (
    "import sys; before = set(sys.modules); {run}; print(' '.join(sorted(set(sys.modules) - before)))"
)


@pytest.mark.parametrize(
    "run",
    [
        "import virtwire.server.sshhelper",
        # `virtwire ssh-helper -V` through the installed command's entry point
        "sys.argv = ['virtwire', 'ssh-helper', '-V']; import virtwire.server.launcher as l; l.main()",
    ],
    ids=["virt-ssh-helper", "virtwire-ssh-helper"],
)
def test_helper_imports_nothing_heavy(run: str) -> None:
    """It starts on every ssh open: no trio, codec, socket wrapper, threads or argparse."""
    added = set(
        subprocess.run(
            [sys.executable, "-c", HELPER_IMPORT_PROBE.format(run=run)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    assert "virtwire.server.sshhelper" in added
    heavy = {
        "trio",
        "socket",
        "threading",
        "argparse",
        "tempfile",
        "pathlib",
        "virtwire.protocol",
        "virtwire.client",
    }
    assert not added & heavy


def test_bridge_moves_both_ways_while_one_side_is_full() -> None:
    """A daemon that sends a lot before it reads (libvirtd stops reading a client with
    requests in flight) and a client that sends a lot while it reads: the bridge
    keeps the replies moving while the requests wait, so neither side stalls."""
    size = 8 * 1024 * 1024
    to_daemon = os.urandom(size)
    to_client = os.urandom(size)
    client, helper_stdio = socket.socketpair()
    daemon, helper_sock = socket.socketpair()
    received: dict[str, bytes] = {}

    def read_exactly(sock: socket.socket, name: str) -> None:
        chunks: list[bytes] = []
        left = size
        while left and (chunk := sock.recv(min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
        received[name] = b"".join(chunks)

    def daemon_side() -> None:
        daemon.sendall(to_client)  # first all of its replies...
        read_exactly(daemon, "daemon")  # ...then the requests
        daemon.close()  # the end: the bridge returns

    def client_side() -> None:
        client.sendall(to_daemon)

    helper = threading.Thread(
        target=sshhelper.bridge, args=(helper_sock.fileno(), helper_stdio.fileno(), helper_stdio.fileno())
    )
    threads = [
        threading.Thread(target=daemon_side),
        threading.Thread(target=client_side),
        threading.Thread(target=read_exactly, args=(client, "client")),
    ]
    helper.start()
    for thread in threads:
        thread.start()
    for thread in (*threads, helper):
        thread.join(HANG_LIMIT)
        assert not thread.is_alive(), "the bridge stalled"
    for sock in (client, helper_stdio, helper_sock):
        sock.close()
    assert received == {"client": to_client, "daemon": to_daemon}


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
