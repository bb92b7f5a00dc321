"""Fixtures for the ssh transport tests: a real sshd on loopback and a `virtwire serve` behind it.

sshd -> vwtestkit.sshd.SshServer (session)
    Debian's OpenSSH server on a free 127.0.0.1 port with throw-away keys (see
    vwtestkit/sshd.py). `sshd.uri(path, driver, transport, **params)` builds a
    +ssh URI through its recording ssh wrapper with the authorized key.

ssh_daemon -> VirtwireServer (session)
    `virtwire serve --hostname vw-behind-ssh` whose sockets are linked into the
    sshd sessions' VIRTWIRE_RUNTIME_DIR as libvirt-sock and libvirt-sock-ro, so
    virt-ssh-helper (ours, first on the sessions' PATH) reaches it; the host
    name tells that a connection really went through to it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from vwtestkit import VirtwireServer, hangguard, start_server, stop_servers, unavailable
from vwtestkit.sshd import SSHD, SshdStartError, SshServer, start_sshd

BEHIND_SSH = "vw-behind-ssh"


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    for tool in (str(SSHD), "ssh", "nc"):
        if shutil.which(tool) is None:
            unavailable(
                f"{tool} is not installed (scripts/test.sh installs openssh-server and netcat-openbsd)"
            )
    try:
        server = start_sshd()
    except SshdStartError as exc:
        pytest.fail(f"could not start sshd: {exc}", pytrace=False)
    hangguard.on_abort(server, server.stop)
    try:
        yield server
    finally:
        hangguard.forget_on_abort(server)
        server.stop()


@pytest.fixture(scope="session")
def ssh_daemon(sshd: SshServer) -> Iterator[VirtwireServer]:
    server = start_server(pki=None, tls=False, hostname=BEHIND_SSH)
    assert server.unix_ro_path is not None
    os.symlink(server.unix_path, sshd.rundir / "libvirt-sock")
    os.symlink(server.unix_ro_path, sshd.rundir / "libvirt-sock-ro")
    hangguard.on_abort(server, server.cleanup)
    try:
        yield server
    finally:
        hangguard.forget_on_abort(server)
        stop_servers([server])
        for name in ("libvirt-sock", "libvirt-sock-ro"):
            (sshd.rundir / name).unlink(missing_ok=True)
