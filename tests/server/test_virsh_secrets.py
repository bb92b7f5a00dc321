"""Stock virsh's secret-* commands against ``virtwire serve``, output compared with
virsh against libvirt 9.0's own secret driver (embedded: ``secret:///embed?root=DIR``,
see test_diff_secrets.py for why and for what embedding cannot run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import VirtwireServer, start_server, stop_servers

UUID = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
OTHER = "5b7e7f1e-62d1-4c36-a7c0-9d1e2f3a4b5c"
DEFINITIONS = {
    "ceph.xml": f"<secret ephemeral='no' private='no'><uuid>{UUID}</uuid><description>key</description>"
    "<usage type='ceph'><name>client.admin secret</name></usage></secret>",
    "vol.xml": f"<secret private='yes'><uuid>{OTHER}</uuid>"
    "<usage type='volume'><volume>/var/lib/a.img</volume></usage></secret>",
    "bad.xml": "<secret><usage type='nfs'/></secret>",
}
# (arguments, what to compare): virsh's stdout, stderr and exit status.
COMMANDS: list[tuple[str, ...]] = [
    ("secret-list",),
    ("secret-define", "{dir}/ceph.xml"),
    ("secret-define", "{dir}/vol.xml"),
    ("secret-define", "{dir}/bad.xml"),
    ("secret-list",),
    ("secret-list", "--private"),
    ("secret-list", "--no-private"),
    ("secret-list", "--no-ephemeral"),
    ("secret-dumpxml", UUID),
    ("secret-dumpxml", "11111111-2222-3333-4444-555555555555"),
    ("secret-get-value", UUID),
    ("secret-set-value", "--secret", UUID, "--file", "{dir}/value.txt", "--plain"),
    ("secret-get-value", UUID),
    ("secret-get-value", "--plain", UUID),
    ("secret-set-value", UUID, "c2VjcmV0"),
    ("secret-set-value", "--secret", OTHER, "--file", "{dir}/value.txt", "--plain"),
    ("secret-get-value", UUID),
]


@pytest.fixture(scope="module")
def server(pki: Path) -> Iterator[VirtwireServer]:
    started = start_server(pki=pki)
    try:
        yield started
    finally:
        stop_servers([started])


def _run_all(run_virsh: Callable[..., Any], uri: str, files: Path) -> list[tuple[int, str, str]]:
    results = []
    for command in COMMANDS:
        proc = run_virsh(uri, *(arg.format(dir=files) for arg in command))
        results.append((proc.returncode, proc.stdout, proc.stderr))
    return results


def test_secret_commands_print_what_libvirt_prints(
    run_virsh: Callable[..., Any], server: VirtwireServer, tmp_path: Path, real_libvirt: Any
) -> None:
    for name, text in DEFINITIONS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "value.txt").write_text("open sesame")
    theirs = _run_all(run_virsh, f"secret:///embed?root={tmp_path / 'root'}", tmp_path)
    ours = _run_all(run_virsh, server.tcp_uri, tmp_path)
    for command, mine, real in zip(COMMANDS, ours, theirs, strict=True):
        assert mine == real, command
    assert ours[1] == (0, f"Secret {UUID} created\n\n", "")
    assert ours[10][0] == 1 and "does not have a value" in ours[10][2]
    assert ours[12] == (0, "b3BlbiBzZXNhbWU=\n", "")


def test_secret_undefine(run_virsh: Callable[..., Any], server: VirtwireServer, tmp_path: Path) -> None:
    # libvirt 9.0's embedded driver crashes on undefine; virsh-secret.c's output is the reference.
    (tmp_path / "eph.xml").write_text(
        "<secret ephemeral='yes' private='no'><usage type='tls'><name>virsh-undefine</name></usage></secret>"
    )
    created = run_virsh(server.tcp_uri, "secret-define", str(tmp_path / "eph.xml"), check=True).stdout
    uuid = created.split()[1]
    assert created == f"Secret {uuid} created\n\n"
    listed = run_virsh(server.tcp_uri, "secret-list", "--ephemeral", check=True).stdout
    assert f" {uuid}   tls virsh-undefine\n" in listed
    gone = run_virsh(server.tcp_uri, "secret-undefine", uuid)
    assert (gone.returncode, gone.stdout) == (0, f"Secret {uuid} deleted\n\n")
    again = run_virsh(server.tcp_uri, "secret-undefine", uuid)
    assert again.returncode == 1
    assert f"error: failed to get secret '{uuid}'" in again.stderr
    assert f"no secret with matching uuid '{uuid}'" in again.stderr
