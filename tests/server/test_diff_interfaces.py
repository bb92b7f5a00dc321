"""Host interfaces, differentially: real libvirtd's test driver vs ``virtwire serve``.

The same libvirt-python calls go to both; results, XML and errors must be the
same.  One private daemon and one private server serve the whole module; every
test leaves the interface list as it found it (or as both sides agree).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import Pair


@pytest.fixture(scope="module")
def pair(real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Pair]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-interfaces"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    both = Pair(real_libvirt, daemon.tcp_uri, server.tcp_uri)
    try:
        yield both
    finally:
        both.close()
        stop_servers([server])
        stop_libvirtd(daemon)


def state(conn: Any) -> list[tuple[str, str, int, str]]:
    return [
        (i.name(), i.MACString(), i.isActive(), i.XMLDesc())
        for i in sorted(conn.listAllInterfaces(), key=lambda i: i.name())
    ]


def same_state(pair: Pair) -> None:
    assert state(pair.ours) == state(pair.real)


def test_default_interface_eth1(pair: Pair) -> None:
    xml = pair.same(lambda c: c.interfaceLookupByName("eth1").XMLDesc())
    assert "<mac address='aa:bb:cc:dd:ee:ff'/>" in xml[1]
    pair.same(lambda c: c.interfaceLookupByMACString("aa:bb:cc:dd:ee:ff").name())
    pair.same(lambda c: c.interfaceLookupByMACString("AA:BB:CC:DD:EE:FF").MACString())
    pair.same(lambda c: c.interfaceLookupByMACString("00:00:00:00:00:01").name())
    pair.same(lambda c: c.interfaceLookupByName("eth1").isActive())
    pair.same(
        lambda c: (
            c.numOfInterfaces(),
            c.listInterfaces(),
            c.numOfDefinedInterfaces(),
            c.listDefinedInterfaces(),
        )
    )
    pair.same(lambda c: c.interfaceLookupByName("eth1").XMLDesc(), readonly=True)
    same_state(pair)


VALID = [
    "<interface type='ethernet' name='e0'><mac address='52:54:00:AA:00:01'/><link state='down'/></interface>",
    """<interface type='bond' name='bond0'><start mode='hotplug'/>
  <bond mode='active-backup'><miimon freq='100' updelay='10' downdelay='0' carrier='ioctl'/>
    <interface type='ethernet' name='eth2'><mac address='ab:cd:ef:00:11:22'/></interface>
    <interface type='ethernet' name='eth3'/>
  </bond></interface>""",
    """<interface type='bond' name='bond1'>
  <bond><arpmon interval='10' target='1.2.3.4' validate='all'/></bond>
  </interface>""",
    """<interface type='vlan' name='v0'><start mode='onboot'/>
  <protocol family='ipv6'><dhcp peerdns='no'/><autoconf/><ip address='::1' prefix='64'/><route gateway='::2'/>
  </protocol><protocol family='ipv4'><dhcp/><ip address='1.2.3.4'/></protocol>
  <link state='up' speed='1000'/><vlan tag='42'><interface name='eth0'/></vlan></interface>""",
    """<interface type='bridge' name='br0'><mtu size='1500'/><start mode='none'/>
  <bridge stp='off' delay='0.01'><interface type='ethernet' name='eth9'><mac address='ab:bb:cc:dd:ee:f1'/>
  </interface><interface type='vlan' name='eth9.5'><vlan tag='5'><interface name='eth9'/></vlan></interface>
  </bridge></interface>""",
    "<interface type='bridge' name='br1'><bridge stp='maybe' delay='3'/></interface>",
]


@pytest.mark.parametrize("xml", VALID)
def test_definitions_print_back_and_life_cycle(pair: Pair, xml: str) -> None:
    name = pair.same(lambda c: c.interfaceDefineXML(xml).name())[1]
    pair.same(lambda c: c.interfaceLookupByName(name).XMLDesc())
    pair.same(lambda c: c.interfaceLookupByName(name).MACString())
    pair.same(lambda c: c.interfaceLookupByName(name).isActive())
    pair.same(lambda c: c.interfaceLookupByName(name).destroy())
    pair.same(lambda c: c.interfaceLookupByName(name).create())
    pair.same(lambda c: c.interfaceLookupByName(name).create())
    pair.same(lambda c: sorted(i.name() for i in c.listAllInterfaces(1)))
    pair.same(lambda c: sorted(i.name() for i in c.listAllInterfaces(2)))
    pair.same(lambda c: c.interfaceLookupByMACString("aa:bb:cc:dd:ee:ff").name())
    pair.same(lambda c: c.interfaceDefineXML(xml).name())  # redefining keeps it running
    pair.same(lambda c: c.interfaceLookupByName(name).isActive())
    pair.same(lambda c: c.interfaceLookupByName(name).destroy())
    pair.same(lambda c: c.interfaceLookupByName(name).undefine())
    pair.same(lambda c: c.interfaceLookupByName(name).undefine())
    same_state(pair)


BAD = [
    "<interface/>",
    "<iface type='ethernet' name='x'/>",
    "<interface type='foo' name='x'/>",
    "<interface type='ethernet'/>",
    "<interface type='ethernet' name='e0'><start mode='bad'/></interface>",
    "<interface type='ethernet' name='e0'><mtu size='200000'/></interface>",
    "<interface type='ethernet' name='e0'><protocol/></interface>",
    "<interface type='ethernet' name='e0'><protocol family='ipx'/></interface>",
    "<interface type='ethernet' name='e0'><link state='sideways'/></interface>",
    "<interface type='bridge' name='br1'/>",
    "<interface type='bridge' name='br1'><bridge><interface type='bridge' name='x'><bridge/></interface>"
    "</bridge>"
    "</interface>",
    "<interface type='bond' name='b'/>",
    "<interface type='bond' name='b'><bond mode='wild'/></interface>",
    "<interface type='bond' name='b'><bond><miimon/></bond></interface>",
    "<interface type='bond' name='b'><bond><miimon freq='1' carrier='x'/></bond></interface>",
    "<interface type='bond' name='b'><bond><arpmon interval='1'/></bond></interface>",
    "<interface type='bond' name='b'><bond><interface type='vlan' name='v'/></bond></interface>",
    "<interface type='vlan' name='v'/>",
    "<interface type='vlan' name='v'><vlan/></interface>",
    "<interface type='vlan' name='v'><vlan tag='1'/></interface>",
]


@pytest.mark.parametrize("xml", BAD)
def test_bad_definitions_get_libvirts_error_and_change_nothing(pair: Pair, xml: str) -> None:
    result = pair.same(lambda c: c.interfaceDefineXML(xml).name())
    assert result[0] == "error"
    same_state(pair)


def test_unknown_objects_flags_and_read_only(pair: Pair) -> None:
    pair.same(lambda c: c.interfaceLookupByName("nope"))
    pair.same(lambda c: c.interfaceLookupByName("eth1").XMLDesc(1))
    pair.same(lambda c: c.listAllInterfaces(4))
    pair.same(lambda c: c.interfaceDefineXML("<interface type='ethernet' name='f'/>", 2))
    pair.same(lambda c: c.interfaceLookupByName("eth1").create(1))
    pair.same(lambda c: c.changeBegin(1))
    pair.same(lambda c: c.changeCommit())
    pair.same(lambda c: c.changeRollback())
    readonly_calls: list[Any] = [
        lambda c: c.interfaceDefineXML("<interface type='ethernet' name='ro'/>"),
        lambda c: c.interfaceLookupByName("eth1").undefine(),
        lambda c: c.interfaceLookupByName("eth1").destroy(),
        lambda c: c.interfaceLookupByName("eth1").create(),
        lambda c: c.changeBegin(),
    ]
    for call in readonly_calls:
        assert pair.same(call, readonly=True)[0] == "error"
    same_state(pair)


def test_change_transactions_snapshot_the_list(pair: Pair) -> None:
    steps: list[Any] = [
        lambda c: c.changeBegin(),
        lambda c: c.changeBegin(),
        lambda c: c.interfaceDefineXML("<interface type='ethernet' name='tx0'/>").name(),
        lambda c: c.interfaceLookupByName("tx0").create(),
        lambda c: c.interfaceLookupByName("eth1").destroy(),
        lambda c: sorted((i.name(), i.isActive()) for i in c.listAllInterfaces()),
        lambda c: c.changeRollback(),  # the snapshot comes back, every interface inactive
        lambda c: sorted((i.name(), i.isActive()) for i in c.listAllInterfaces()),
        lambda c: c.changeRollback(),
        lambda c: c.changeBegin(),
        lambda c: c.interfaceDefineXML("<interface type='ethernet' name='tx1'/>").name(),
        lambda c: c.changeCommit(),
        lambda c: c.changeCommit(),
        lambda c: sorted((i.name(), i.isActive()) for i in c.listAllInterfaces()),
        lambda c: c.interfaceLookupByName("tx1").undefine(),
        lambda c: c.interfaceLookupByName("eth1").create(),
    ]
    for step in steps:
        pair.same(step)
    same_state(pair)


# One document per entry of the data file, entries separated by lines of "----".
MORE_DEFINITIONS = [
    doc.strip()
    for doc in Path(__file__).with_name("test_interface_definitions.txt").read_text().split("\n----\n")
    if doc.strip()
]


@pytest.mark.parametrize("xml", MORE_DEFINITIONS)
def test_more_definitions_accepted_or_refused_alike(pair: Pair, xml: str) -> None:
    def define(conn: Any) -> tuple[str, str]:
        iface = conn.interfaceDefineXML(xml)
        try:
            return str(iface.XMLDesc()), str(iface.MACString())
        finally:
            iface.undefine()

    pair.same(define)
    same_state(pair)
