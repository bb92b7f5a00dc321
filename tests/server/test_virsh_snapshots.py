"""Stock virsh's snapshot-* commands against ``virtwire serve``, output compared with
the same commands against a real libvirtd's test driver (clock times normalised)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_libvirtd, start_server, stop_libvirtd, stop_servers

COMMANDS: list[tuple[str, ...]] = [
    ("snapshot-list", "test"),
    ("snapshot-current", "test"),
    ("snapshot-create-as", "test", "base", "--description", "the base"),
    ("snapshot-create-as", "test", "--name", "second"),
    ("snapshot-create-as", "test", "third", "--disk-only"),
    ("snapshot-create-as", "test", "base"),
    ("suspend", "test"),
    ("snapshot-create-as", "test", "paused"),
    ("resume", "test"),
    ("snapshot-list", "test"),
    ("snapshot-list", "test", "--tree"),
    ("snapshot-list", "test", "--parent"),
    ("snapshot-list", "test", "--roots"),
    ("snapshot-list", "test", "--leaves"),
    ("snapshot-list", "test", "--no-leaves"),
    ("snapshot-list", "test", "--active"),
    ("snapshot-list", "test", "--inactive"),
    ("snapshot-list", "test", "--internal"),
    ("snapshot-list", "test", "--external"),
    ("snapshot-list", "test", "--topological"),
    ("snapshot-list", "test", "--from", "base"),
    ("snapshot-list", "test", "--from", "base", "--descendants"),
    ("snapshot-list", "test", "--current"),
    ("snapshot-list", "test", "--name"),
    ("snapshot-current", "test", "--name"),
    ("snapshot-info", "test", "base"),
    ("snapshot-info", "test", "--current"),
    ("snapshot-parent", "test", "paused"),
    ("snapshot-parent", "test", "base"),
    ("snapshot-dumpxml", "test", "base"),
    ("snapshot-dumpxml", "test", "nosuch"),
    ("snapshot-revert", "test", "paused"),
    ("domstate", "test", "--reason"),
    ("snapshot-revert", "test", "base", "--running"),
    ("domstate", "test", "--reason"),
    ("snapshot-current", "test", "second"),
    ("snapshot-current", "test", "--name"),
    ("snapshot-delete", "test", "second", "--metadata"),
    ("snapshot-delete", "test", "second"),
    ("snapshot-list", "test", "--tree"),
    ("snapshot-delete", "test", "base", "--children-only"),
    ("snapshot-list", "test", "--tree"),
    ("snapshot-delete", "test", "base", "--children"),
    ("snapshot-list", "test"),
]
_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}|\b1\d{9}\b")


@pytest.fixture(scope="module")
def real_daemon(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[RealLibvirtd]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("virsh-snapshot-libvirtd"), pki=pki, hold=True)
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


def _run_all(run_virsh: Callable[..., Any], uri: str) -> list[tuple[int, str, str]]:
    results = []
    for command in COMMANDS:
        proc = run_virsh(uri, *command)
        # Column widths follow the (clock-made) names' lengths, so spaces are squeezed too.
        out = re.sub(r" +", " ", _TIME.sub("TIME", proc.stdout))
        results.append((proc.returncode, out, _TIME.sub("TIME", proc.stderr)))
    return results


def test_snapshot_commands_print_what_libvirt_prints(
    run_virsh: Callable[..., Any], real_daemon: RealLibvirtd, our_server: VirtwireServer
) -> None:
    theirs = _run_all(run_virsh, real_daemon.tcp_uri)
    ours = _run_all(run_virsh, our_server.tcp_uri)
    for command, mine, real in zip(COMMANDS, ours, theirs, strict=True):
        assert mine == real, command
    assert ours[2] == (0, "Domain snapshot base created\n", "")
