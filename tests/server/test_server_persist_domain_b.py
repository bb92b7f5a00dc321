"""A restart with --state-dir keeps managed saves, metadata, lifecycle actions and renames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from vwtestkit import VirtwireServer

NS = "http://example.org/p/"


def _xml(name: str, uuid_tail: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>11111111-2222-3333-4444-5555555555{uuid_tail}</uuid>"
        "<memory>65536</memory><os><type>hvm</type></os></domain>"
    )


def test_restart_keeps_managed_save_metadata_and_names(
    real_libvirt: ModuleType, virtwire_server: Callable[..., VirtwireServer], tmp_path: Path
) -> None:
    lv = real_libvirt
    state = tmp_path / "state"
    server = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = lv.open(server.tcp_uri)
    saved = conn.defineXML(_xml("saved", "10"))
    saved.create()
    saved.managedSave(0)
    dropped = conn.defineXML(_xml("dropped", "11"))
    dropped.create()
    dropped.managedSave(0)
    dropped.managedSaveRemove(0)
    meta = conn.defineXML(_xml("meta", "12"))
    meta.setMetadata(lv.VIR_DOMAIN_METADATA_TITLE, "kept title", None, None, 0)
    meta.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, "<cfg v='1'/>", "p", NS, 0)
    meta.setLifecycleAction(lv.VIR_DOMAIN_LIFECYCLE_REBOOT, lv.VIR_DOMAIN_LIFECYCLE_ACTION_DESTROY, 0)
    conn.defineXML(_xml("oldname", "13")).rename("newname", 0)
    running = conn.lookupByName("test")
    running.setMetadata(
        lv.VIR_DOMAIN_METADATA_DESCRIPTION, "live only", None, None, lv.VIR_DOMAIN_AFFECT_LIVE
    )
    running.setMetadata(lv.VIR_DOMAIN_METADATA_TITLE, "config too", None, None, lv.VIR_DOMAIN_AFFECT_CONFIG)
    before = {
        name: conn.lookupByName(name).XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE) for name in ("meta", "newname")
    }
    conn.close()
    server.stop()
    assert (state / "managedsave").is_dir()

    again = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = lv.open(again.tcp_uri)
    try:
        assert conn.lookupByName("saved").hasManagedSaveImage(0) == 1
        assert conn.lookupByName("dropped").hasManagedSaveImage(0) == 0
        assert conn.lookupByName("saved").state() == [lv.VIR_DOMAIN_SHUTOFF, lv.VIR_DOMAIN_SHUTOFF_UNKNOWN]
        meta = conn.lookupByName("meta")
        assert meta.metadata(lv.VIR_DOMAIN_METADATA_TITLE, None, 0) == "kept title"
        assert meta.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, NS, 0) == '<cfg v="1"/>'
        assert {n: conn.lookupByName(n).XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE) for n in before} == before
        assert "<on_reboot>destroy</on_reboot>" in before["meta"]
        assert [d.name() for d in conn.listAllDomains(0) if d.name() == "oldname"] == []
        test = conn.lookupByName("test")
        assert test.metadata(lv.VIR_DOMAIN_METADATA_TITLE, None, 0) == "config too"
        try:
            test.metadata(lv.VIR_DOMAIN_METADATA_DESCRIPTION, None, 0)
            raise AssertionError("a live-only description survived the restart")
        except lv.libvirtError as exc:
            assert exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN_METADATA
        # Starting a domain drops its managed save, and that is durable too.
        conn.lookupByName("saved").create()
    finally:
        conn.close()
    again.stop()
    third = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = lv.open(third.tcp_uri)
    try:
        assert conn.lookupByName("saved").hasManagedSaveImage(0) == 0
    finally:
        conn.close()
