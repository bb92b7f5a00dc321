"""Reading a node description in libvirt's test-driver format (--node-xml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtwire.protocol.generated import constants as C
from virtwire.server.driver.memory import nodexml

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
