"""Snapshots of persistent domains survive a restart with ``--state-dir``: the tree,
each snapshot's XML and the current one; undefining the domain forgets them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

DOMAIN = """<domain type='test'><name>keeper</name><uuid>5e0c9e6a-1f2b-4c3d-8e4f-5a6b7c8d9e0f</uuid>
<memory>65536</memory><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='/k.img'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>"""


def _tree(dom: Any) -> dict[str, Any]:
    out = {}
    for snap in dom.listAllSnapshots(0):
        try:
            parent = snap.getParent(0).getName()
        except Exception:
            parent = None
        out[snap.getName()] = (parent, snap.isCurrent(0), snap.getXMLDesc(0))
    return out


def test_snapshots_survive_a_restart(
    real_libvirt: ModuleType, virtwire_server: Callable[..., Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    server = virtwire_server(state_dir=state)
    conn = real_libvirt.open(server.tcp_uri)
    dom = conn.defineXML(DOMAIN)
    dom.snapshotCreateXML("<domainsnapshot><name>a &amp; b</name></domainsnapshot>", 0)
    dom.create()
    dom.snapshotCreateXML(
        "<domainsnapshot><name>running</name><description>d</description></domainsnapshot>", 0
    )
    dom.snapshotCreateXML("<domainsnapshot><name>doomed</name></domainsnapshot>", 0).delete(0)
    dom.revertToSnapshot(dom.snapshotLookupByName("a & b", 0), 0)
    before = _tree(dom)
    # A transient domain's snapshots are not kept.
    passing = conn.createXML(
        "<domain type='test'><name>passing</name><memory>1024</memory><os><type>hvm</type></os></domain>", 0
    )
    passing.snapshotCreateXML("<domainsnapshot><name>gone</name></domainsnapshot>", 0)
    conn.close()
    server.stop()
    assert sorted(p.name for p in (state / "snapshots").glob("*.xml")) == [f"{dom.UUIDString()}.xml"]

    again = virtwire_server(state_dir=state)
    conn = real_libvirt.open(again.tcp_uri)
    try:
        dom = conn.lookupByName("keeper")
        assert _tree(dom) == before
        assert before["running"][0] == "a & b" and before["a & b"][1] == 1
        assert dom.snapshotCurrent(0).getName() == "a & b"
        dom.undefineFlags(real_libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        assert not list((state / "snapshots").glob("*.xml"))
    finally:
        conn.close()
