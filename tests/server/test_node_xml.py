"""Reading a node description in libvirt's test-driver format (--node-xml)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from virtwire.protocol.generated import constants as C
from virtwire.server.driver.memory import nodexml
from vwtestkit import VirtwireServer

DATA = Path(__file__).with_name("data") / "node"


def test_lab_node_is_read_with_included_files() -> None:
    node = nodexml.load(DATA / "lab.xml")
    assert node.cpu == nodexml.NodeCPU(nodes=1, sockets=1, cores=4, threads=2, mhz=3000, model="x86_64")
    assert node.memory_kib == 16777216
    web, db = node.domains
    assert (web.runstate, web.transient, web.has_managed_save) == (C.VIR_DOMAIN_RUNNING, False, False)
    assert (db.runstate, db.has_managed_save) == (C.VIR_DOMAIN_SHUTOFF, True)
    assert "<name>db1</name>" in db.xml and "runstate" not in db.xml  # test: elements are taken out
    assert len(node.networks) == 1 and "labnet" in node.networks[0]
    [pool] = node.pools
    assert "lab-pool" in pool.xml and "<volume" not in pool.xml
    assert len(pool.volumes) == 1 and "web1.qcow2" in pool.volumes[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<nodes/>", "expected root element 'node'"),
        ("<node><cpu><mhz>fast</mhz></cpu></node>", "invalid node cpu mhz value"),
        ("<node><memory>-1</memory></node>", "invalid node memory value"),
        (
            "<node><auth><user password='x'> </user></auth></node>",
            "missing username in /node/auth/user field",
        ),
        ("<node><domain file='missing.xml'/></node>", "failed to read file"),
        (
            "<node><domain xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>t</name>"
            "<test:transient/><test:runstate>5</test:runstate></domain></node>",
            "transient domain cannot have runstate 'shutoff'",
        ),
        (
            "<node><domain xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>t</name>"
            "<test:runstate>99</test:runstate></domain></node>",
            "runstate '99' out of range",
        ),
        ("<node><domain>", "XML error"),
    ],
)
def test_bad_node_files_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "node.xml"
    path.write_text(body)
    with pytest.raises(nodexml.NodeXMLError, match=message):
        nodexml.load(path)


COMMANDS = [
    ["list", "--all"],
    ["nodeinfo"],
    ["net-list", "--all"],
    ["net-dumpxml", "labnet"],
    ["pool-list", "--all"],
    ["vol-list", "lab-pool"],
    ["vol-dumpxml", "--pool", "lab-pool", "web1.qcow2"],
    ["dumpxml", "web1"],
    ["domstate", "--reason", "db1"],
    ["domstate", "--reason", "web1"],
]


def _masked(text: str) -> str:
    # CPU time is the wall clock in the test driver.
    return re.sub(r"CPU time:.*", "CPU time: X", text)


def test_served_node_matches_libvirts_test_driver_on_the_same_file(
    virtwire_server: Callable[..., VirtwireServer], run_virsh: Callable[..., Any]
) -> None:
    """virsh against `virtwire serve --node-xml F` and against libvirt's own test:///F."""
    node = (DATA / "lab.xml").resolve()
    server = virtwire_server("--node-xml", str(node), ro=False, tls=False)
    for command in [*COMMANDS, ["dominfo", "db1"], ["dominfo", "web1"]]:
        ours = run_virsh(server.tcp_uri, *command)
        theirs = run_virsh(f"test://{node}", *command)
        assert (ours.returncode, _masked(ours.stdout)) == (theirs.returncode, _masked(theirs.stdout)), command


def test_a_bad_node_file_stops_the_server_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "node.xml"
    bad.write_text(
        "<node><domain><name>x</name></domain><network><name>n</name><bridge name='b'/>"
        "<forward mode='bogus'/></network></node>"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "virtwire.server", "serve", "--tcp", "127.0.0.1:0", "--node-xml", str(bad)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"--node-xml {bad}" in proc.stderr
