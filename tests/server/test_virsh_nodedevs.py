"""Stock virsh's nodedev-* commands against ``virtwire serve``, output compared with
the same commands against a real libvirtd's test driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_libvirtd, start_server, stop_libvirtd, stop_servers

VHBA = """<device>
  <parent>scsi_host1</parent>
  <capability type='scsi_host'>
    <capability type='fc_host'>
      <wwnn>2001001b32a9da4e</wwnn>
      <wwpn>2101001b32a90002</wwpn>
    </capability>
  </capability>
</device>
"""
COMMANDS: list[tuple[str, ...]] = [
    ("nodedev-list",),
    ("nodedev-list", "--all"),
    ("nodedev-list", "--all", "--tree"),
    ("nodedev-list", "--all", "--cap", "scsi_host"),
    ("nodedev-list", "--all", "--cap", "fc_host,system"),
    ("nodedev-list", "--all", "--cap", "vports"),
    ("nodedev-list", "--all", "--cap", "toaster"),
    ("nodedev-dumpxml", "computer"),
    ("nodedev-dumpxml", "scsi_host1"),
    ("nodedev-dumpxml", "nosuch"),
    ("nodedev-info", "scsi_host11"),
    ("nodedev-info", "computer"),
    ("nodedev-create", "{vhba}"),
    ("nodedev-dumpxml", "scsi_host12"),
    ("nodedev-list", "--all", "--tree"),
    ("nodedev-destroy", "scsi_host12"),
    ("nodedev-destroy", "scsi_host12"),
    ("nodedev-define", "{vhba}"),
    ("nodedev-start", "scsi_host1"),
    ("nodedev-autostart", "scsi_host1"),
    ("nodedev-undefine", "scsi_host1"),
]


@pytest.fixture(scope="module")
def real_daemon(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[RealLibvirtd]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("virsh-nodedev-libvirtd"), pki=pki, hold=True)
    try:
        yield daemon
    finally:
        stop_libvirtd(daemon)


@pytest.fixture(scope="module")
def our_server(pki: Path) -> Iterator[VirtwireServer]:
    server = start_server(pki=pki)
    try:
        yield server
    finally:
        stop_servers([server])


def _run_all(run_virsh: Callable[..., Any], uri: str, vhba: Path) -> list[tuple[int, str, str]]:
    results = []
    for command in COMMANDS:
        proc = run_virsh(uri, *(arg.format(vhba=vhba) for arg in command))
        results.append((proc.returncode, proc.stdout, proc.stderr))
    return results


def test_nodedev_commands_print_what_libvirt_prints(
    run_virsh: Callable[..., Any], real_daemon: RealLibvirtd, our_server: VirtwireServer, tmp_path: Path
) -> None:
    vhba = tmp_path / "vhba.xml"
    vhba.write_text(VHBA)
    theirs = _run_all(run_virsh, real_daemon.tcp_uri, vhba)
    ours = _run_all(run_virsh, our_server.tcp_uri, vhba)
    for command, mine, real in zip(COMMANDS, ours, theirs, strict=True):
        assert mine == real, command
    assert ours[12][1].startswith("Node device scsi_host12 created from ")
