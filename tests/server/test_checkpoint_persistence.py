"""Checkpoints of persistent domains survive a restart with ``--state-dir``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DOMAIN = """<domain type='test'><name>held</name><uuid>6e0c9e6a-1f2b-4c3d-8e4f-5a6b7c8d9e0f</uuid>
<memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/h.img'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>"""


def test_checkpoints_survive_a_restart(
    real_libvirt: ModuleType, virtwire_server: Callable[..., Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    server = virtwire_server(state_dir=state)
    conn = real_libvirt.open(server.tcp_uri)
    dom = conn.defineXML(DOMAIN)
    dom.create()
    for name in ("one", "two", "three"):
        dom.checkpointCreateXML(f"<domaincheckpoint><name>{name}</name></domaincheckpoint>", 0)
    dom.checkpointLookupByName("two", 0).delete(0)
    before = {c.getName(): c.getXMLDesc(0) for c in dom.listAllCheckpoints(0)}
    conn.close()
    server.stop()

    again = virtwire_server(state_dir=state)
    conn = real_libvirt.open(again.tcp_uri)
    try:
        dom = conn.lookupByName("held")
        assert {c.getName(): c.getXMLDesc(0) for c in dom.listAllCheckpoints(0)} == before
        assert dom.checkpointLookupByName("three", 0).getParent(0).getName() == "one"
        # Checkpoints loaded from disk forbid a snapshot before anything else looked at them.
        with pytest.raises(real_libvirt.libvirtError) as err:
            dom.snapshotCreateXML("<domainsnapshot/>", 0)
        assert "cannot create snapshot while checkpoint exists" in str(err.value)
        # The current checkpoint came back too: a new one hangs under it.
        dom.create()
        made = dom.checkpointCreateXML("<domaincheckpoint><name>four</name></domaincheckpoint>", 0)
        assert made.getParent(0).getName() == "three"
        dom.destroy()
        # Undefining the domain forgets its checkpoints: a new domain of the same UUID has none.
        dom.undefine()
        assert not list((state / "checkpoints").glob("*.xml"))
        assert conn.defineXML(DOMAIN).listAllCheckpoints(0) == []
    finally:
        conn.close()
