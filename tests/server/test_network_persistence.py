"""Networks and interfaces survive a restart with ``--state-dir``.

Persistent networks keep their definition and autostart flag (autostart ones
come back running, as does test:///default's ``default``); transient networks
are gone.  Interfaces keep their definitions and whether they were up.  A
removed default object stays removed (the directory rules once seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from vwtestkit import VirtwireServer


def test_networks_and_interfaces_survive_restart(
    real_libvirt: ModuleType, virtwire_server: Callable[..., VirtwireServer], tmp_path: Path
) -> None:
    lv = real_libvirt
    state = tmp_path / "state"
    server = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = lv.open(server.tcp_uri)
    kept = conn.networkDefineXML(
        "<network><name>kept</name><uuid>3c3c3c3c-0000-4000-8000-000000000001</uuid>"
        "<bridge name='keptbr'/></network>"
    )
    kept.setAutostart(1)
    quiet = conn.networkDefineXML(
        "<network><name>quiet</name><forward mode='bridge'/><bridge name='br7'/></network>"
    )
    quiet_xml = quiet.XMLDesc()
    conn.networkCreateXML("<network><name>gone</name></network>")
    conn.networkLookupByName("default").update(
        lv.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
        lv.VIR_NETWORK_SECTION_DNS_TXT,
        -1,
        "<txt name='k' value='v'/>",
        lv.VIR_NETWORK_UPDATE_AFFECT_CONFIG | lv.VIR_NETWORK_UPDATE_AFFECT_LIVE,
    )
    conn.interfaceDefineXML(
        "<interface type='ethernet' name='eth0.5/x'><mac address='52:54:00:00:00:05'/></interface>"
    )
    conn.interfaceLookupByName("eth0.5/x").create()
    conn.interfaceLookupByName("eth1").destroy()
    before_default = conn.networkLookupByName("default").XMLDesc()
    before_ifaces = {i.name(): (i.isActive(), i.XMLDesc()) for i in conn.listAllInterfaces()}
    conn.close()
    server.stop()

    again = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = lv.open(again.tcp_uri)
    try:
        nets = {n.name(): (n.isActive(), n.isPersistent(), n.autostart()) for n in conn.listAllNetworks()}
        assert nets == {"default": (1, 1, 0), "kept": (1, 1, 1), "quiet": (0, 1, 0)}
        assert conn.networkLookupByName("quiet").XMLDesc() == quiet_xml
        assert conn.networkLookupByName("default").XMLDesc() == before_default
        assert "<txt name='k' value='v'/>" in before_default
        ifaces = {i.name(): (i.isActive(), i.XMLDesc()) for i in conn.listAllInterfaces()}
        assert ifaces == before_ifaces
        assert ifaces["eth1"][0] == 0
        conn.networkLookupByName("quiet").undefine()
        conn.interfaceLookupByName("eth1").undefine()
    finally:
        conn.close()
    again.stop()

    third = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = lv.open(third.tcp_uri)
    try:
        assert sorted(n.name() for n in conn.listAllNetworks()) == ["default", "kept"]
        assert sorted(i.name() for i in conn.listAllInterfaces()) == ["eth0.5/x"]
    finally:
        conn.close()
