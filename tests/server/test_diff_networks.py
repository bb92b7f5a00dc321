"""Networks, differentially: real libvirtd's test driver vs ``virtwire serve``.

The same libvirt-python calls go to both; results, XML, errors (code, domain,
message) and network lifecycle events must be the same.  One private daemon and
one private server serve the whole module; every test puts back what it changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import EventLoop, NetworkEventLog, Pair

DEFAULT_UUID = "dd8fe884-6c02-601e-7551-cca97df1c5df"
UUID_RE = re.compile(r"<uuid>[0-9a-f-]{36}</uuid>")


@pytest.fixture(scope="module")
def pair(real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Pair]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-networks"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    loop = EventLoop(real_libvirt)
    both = Pair(real_libvirt, daemon.tcp_uri, server.tcp_uri)
    try:
        yield both
    finally:
        both.close()
        loop.stop()
        stop_servers([server])
        stop_libvirtd(daemon)


@pytest.fixture
def events(real_libvirt: ModuleType, pair: Pair) -> Iterator[tuple[NetworkEventLog, NetworkEventLog]]:
    real, ours = NetworkEventLog(real_libvirt, pair.real), NetworkEventLog(real_libvirt, pair.ours)
    try:
        yield real, ours
    finally:
        real.close()
        ours.close()


def state(conn: Any) -> list[tuple[str, str, int, int, int, str]]:
    """Everything observable about every network (uuid, flags, XML)."""
    return [
        (n.name(), n.UUIDString(), n.isActive(), n.isPersistent(), n.autostart(), n.XMLDesc())
        for n in sorted(conn.listAllNetworks(), key=lambda n: n.name())
    ]


def same_state(pair: Pair) -> None:
    assert state(pair.ours) == state(pair.real)


def test_default_network_as_test_default_has_it(pair: Pair) -> None:
    xml = pair.same(lambda c: c.networkLookupByName("default").XMLDesc())
    assert "<bridge name='virbr0' stp='on' delay='0'/>" in xml[1]
    pair.same(lambda c: c.networkLookupByUUIDString(DEFAULT_UUID).name())
    pair.same(lambda c: c.networkLookupByName("default").bridgeName())
    pair.same(lambda c: c.networkLookupByName("default").autostart())
    pair.same(lambda c: c.networkLookupByName("default").isActive())
    pair.same(lambda c: c.networkLookupByName("default").isPersistent())
    pair.same(
        lambda c: (c.numOfNetworks(), c.listNetworks(), c.numOfDefinedNetworks(), c.listDefinedNetworks())
    )
    pair.same(lambda c: c.networkLookupByName("default").XMLDesc(), readonly=True)
    same_state(pair)


LIST_FLAGS = [0, 1, 2, 3, 4, 8, 12, 16, 32, 48, 1 | 4 | 16, 2 | 8 | 32, 64]


def test_list_all_networks_every_filter(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    made = """<network><name>{name}</name><uuid>{uuid}</uuid></network>"""
    for conn in (pair.real, pair.ours):
        conn.networkDefineXML(made.format(name="lst-inactive", uuid="0d7b0b3e-1f1c-4b0e-9a43-000000000001"))
        auto = conn.networkDefineXML(
            made.format(name="lst-auto", uuid="0d7b0b3e-1f1c-4b0e-9a43-000000000002")
        )
        auto.setAutostart(1)
        conn.networkCreateXML(made.format(name="lst-transient", uuid="0d7b0b3e-1f1c-4b0e-9a43-000000000003"))
    try:
        for flags in LIST_FLAGS:

            def names(conn: Any, flags: int = flags) -> list[str]:
                return sorted(n.name() for n in conn.listAllNetworks(flags))

            pair.same(names)
        pair.same(lambda c: (c.numOfNetworks(), sorted(c.listNetworks())))
        pair.same(lambda c: (c.numOfDefinedNetworks(), sorted(c.listDefinedNetworks())))
        same_state(pair)
    finally:
        for conn in (pair.real, pair.ours):
            conn.networkLookupByName("lst-transient").destroy()
            conn.networkLookupByName("lst-auto").undefine()
            conn.networkLookupByName("lst-inactive").undefine()
    assert lv.VIR_CONNECT_LIST_NETWORKS_AUTOSTART == 16


def test_life_cycle_results_xml_and_events(
    pair: Pair, events: tuple[NetworkEventLog, NetworkEventLog]
) -> None:
    uuid = "5b3e6f2a-8c1d-4e4f-9a0b-1c2d3e4f5a6b"
    first = f"<network><name>lc</name><uuid>{uuid}</uuid><bridge name='lcbr0'/></network>"
    second = (
        f"<network><name>lc</name><uuid>{uuid}</uuid><forward mode='route'/>"
        "<ip address='10.9.8.1' prefix='24'/></network>"
    )
    steps: list[Any] = [
        lambda c: c.networkDefineXML(first).name(),
        lambda c: c.networkLookupByName("lc").XMLDesc(),
        lambda c: c.networkLookupByName("lc").create(),
        lambda c: c.networkLookupByName("lc").create(),
        lambda c: c.networkLookupByName("lc").isActive(),
        lambda c: c.networkDefineXML(second).name(),  # redefined while running: the live XML stays
        lambda c: c.networkLookupByName("lc").XMLDesc(),
        lambda c: c.networkLookupByName("lc").setAutostart(1),
        lambda c: c.networkLookupByName("lc").autostart(),
        lambda c: c.networkLookupByName("lc").undefine(),
        lambda c: c.networkLookupByName("lc").destroy(),
        lambda c: c.networkLookupByName("lc").destroy(),  # the test driver stops it again
        lambda c: c.networkLookupByName("lc").XMLDesc(),
        lambda c: c.networkLookupByName("lc").bridgeName(),
        lambda c: c.networkLookupByName("lc").setAutostart(0),
        lambda c: c.networkLookupByName("lc").undefine(),
        lambda c: c.networkLookupByName("lc").undefine(),
        lambda c: c.networkCreateXML(first).name(),
        lambda c: c.networkLookupByName("lc").isPersistent(),
        lambda c: c.networkLookupByName("lc").XMLDesc(),
        lambda c: c.networkCreateXML(first).name(),
        lambda c: c.networkLookupByName("lc").undefine(),
        lambda c: c.networkLookupByName("lc").destroy(),
        lambda c: c.networkLookupByName("lc").name(),
        lambda c: c.networkCreateXMLFlags(first, 0).name(),
        lambda c: c.networkLookupByName("lc").destroy(),
        lambda c: c.networkDefineXMLFlags(first, 0).name(),
        lambda c: c.networkLookupByName("lc").undefine(),
    ]
    for step in steps:
        pair.same(step)
    real_log, our_log = events
    real_events, our_events = real_log.drain(), our_log.drain()
    assert our_events == real_events
    assert [e[1] for e in our_events[:2]] == [0, 2]  # DEFINED, STARTED
    same_state(pair)


BAD_DEFINITIONS = [
    "<network/>",
    "<net><name>a</name></net>",
    "<network><name>a/b</name></network>",
    "<network><name>a</name><uuid>zz</uuid></network>",
    "<network ipv6='maybe'><name>a</name></network>",
    "<network trustGuestRxFilters='x'><name>a</name></network>",
    "<network><name>a</name><forward mode='bogus'/></network>",
    "<network><name>a</name><forward/></network>",
    "<network><name>a</name><forward mode='open' dev='eth0'/><ip address='1.2.3.4' prefix='24'/></network>",
    "<network><name>a</name><forward mode='bridge'/><bridge name='b' stp='on'/></network>",
    "<network><name>a</name><forward mode='bridge'/><mtu size='1500'/></network>",
    "<network><name>a</name><forward dev='x'><interface dev='y'/></forward><ip address='1.2.3.4'/></network>",
    "<network><name>a</name><ip address='1.2.3.x'/></network>",
    "<network><name>a</name><ip/></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='40'/></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24' netmask='255.0.0.0'/></network>",
    "<network><name>a</name><ip family='ipv6' address='1.2.3.4'/></network>",
    "<network><name>a</name><ip family='ipx' address='1.2.3.4'/></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'><dhcp><range start='1.2.4.1' end='1.2.4.5'/>"
    "</dhcp></ip></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'><dhcp><range start='1.2.3.9' end='1.2.3.5'/>"
    "</dhcp></ip></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'><dhcp><range start='1.2.3.9'/></dhcp></ip>"
    "</network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'><dhcp><host ip='1.2.3.7'/></dhcp></ip>"
    "</network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'><dhcp><host mac='01:00:00:00:00:01' "
    "ip='1.2.3.7'/></dhcp></ip></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'><dhcp><range start='1.2.3.5' end='1.2.3.9'>"
    "<lease expiry='1'/></range></dhcp></ip></network>",
    "<network><name>a</name><bridge delay='x'/></network>",
    "<network><name>a</name><bridge macTableManager='x'/></network>",
    "<network><name>a</name><mac address='01:00:00:00:00:00'/></network>",
    "<network><name>a</name><mac address='zz'/></network>",
    "<network><name>a</name><mtu size='x'/></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'/><route address='5.6.7.0' prefix='24' "
    "gateway='9.9.9.9'/></network>",
    "<network><name>a</name><ip address='1.2.3.4' prefix='24'/><route gateway='1.2.3.5'/></network>",
    "<network><name>default</name></network>",
    f"<network><name>other</name><uuid>{DEFAULT_UUID}</uuid></network>",
]


@pytest.mark.parametrize("xml", BAD_DEFINITIONS)
def test_bad_definitions_get_libvirts_error_and_change_nothing(pair: Pair, xml: str) -> None:
    result = pair.same(lambda c: c.networkDefineXML(xml).name())
    assert result[0] == "error"
    pair.same(lambda c: c.networkCreateXML(xml).name())
    same_state(pair)


def test_unparsable_document_is_an_xml_error_of_the_network_driver(pair: Pair) -> None:
    real, ours = pair.both(lambda c: c.networkDefineXML("<network").name())
    # libxml2's wording differs from expat's; code and domain are libvirt's.
    assert ours[:3] == real[:3] == ("error", 35, 19)
    same_state(pair)


def test_wrong_state_and_unknown_objects(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    pair.same(lambda c: c.networkLookupByName("nope"))
    pair.same(lambda c: c.networkLookupByUUIDString("11111111-2222-3333-4444-555555555555"))
    pair.same(lambda c: c.networkLookupByName("default").create())
    pair.same(lambda c: c.networkLookupByName("default").undefine())
    pair.same(lambda c: c.networkLookupByName("default").XMLDesc(lv.VIR_NETWORK_XML_INACTIVE))
    pair.same(lambda c: c.listAllNetworks(1 << 10))
    pair.same(lambda c: c.networkCreateXML(c.networkLookupByName("default").XMLDesc()).name())
    pair.same(lambda c: c.networkDefineXMLFlags("<network><name>f</name></network>", 4).name())
    pair.same(lambda c: c.networkCreateXMLFlags("<network><name>f</name></network>", 4).name())
    pair.same(lambda c: c.networkLookupByName("default").DHCPLeases())
    pair.same(lambda c: c.networkLookupByName("default").listAllPorts())
    pair.same(lambda c: c.networkLookupByName("default").portCreateXML("<networkport/>"))
    same_state(pair)


def test_read_only_connections_are_refused_changes(pair: Pair) -> None:
    xml = "<network><name>ro</name></network>"
    calls: list[Any] = [
        lambda c: c.networkDefineXML(xml),
        lambda c: c.networkCreateXML(xml),
        lambda c: c.networkLookupByName("default").destroy(),
        lambda c: c.networkLookupByName("default").undefine(),
        lambda c: c.networkLookupByName("default").setAutostart(1),
        lambda c: c.networkLookupByName("default").update(3, 4, -1, "<host/>", 0),
        lambda c: c.networkLookupByName("default").create(),
    ]
    for call in calls:
        result = pair.same(call, readonly=True)
        assert result[0] == "error"
    pair.same(lambda c: sorted(n.name() for n in c.listAllNetworks()), readonly=True)
    same_state(pair)


VALID_DEFINITIONS = [
    "<network><name>v1</name><uuid>c0ffee00-0000-4000-8000-000000000001</uuid></network>",
    """<network ipv6='yes' trustGuestRxFilters='no'>
  <name>v2</name><uuid>c0ffee00-0000-4000-8000-000000000002</uuid>
  <metadata><app:foo xmlns:app="http://app.org/">bar</app:foo></metadata>
  <forward mode='route' dev='eth0'><interface dev='eth0'/></forward>
  <bridge name='br9' stp='off' delay='2' macTableManager='libvirt' zone='z'/>
  <mtu size='9000'/><mac address='52:54:00:AB:22:3'/>
  <domain name='example.com' localOnly='yes'/>
  <dns enable='yes' forwardPlainNames='no'>
    <forwarder addr='8.8.8.8'/><forwarder domain='x.org' addr='8.8.4.4'/>
    <txt name='ex' value='v'/>
    <host ip='192.168.5.7'><hostname>h1</hostname><hostname>h2</hostname></host>
    <srv service='name' protocol='tcp' domain='d' target='t' port='1' priority='10' weight='10'/>
  </dns>
  <ip address='192.168.5.1' prefix='24' localPtr='yes'>
    <tftp root='/srv/tftp'/>
    <dhcp>
      <range start='192.168.5.2' end='192.168.5.100'><lease expiry='1' unit='hours'/></range>
      <range start='192.168.5.150' end='192.168.5.160'><lease expiry='0'/></range>
      <host mac='00:16:3e:77:e2:ed' name='foo' ip='192.168.5.10'/>
      <bootp file='pxelinux.0' server='192.168.5.1'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='2001:DB8:ca2:2:0::1' prefix='64'>
    <dhcp><range start='2001:db8:ca2:2::10' end='2001:db8:ca2:2::ff'/>
      <host id='0:1:2' name='h6' ip='2001:db8:ca2:2::20'/></dhcp>
  </ip>
  <route address='192.168.222.0' prefix='24' gateway='192.168.5.2' metric='3'/>
  <route family='ipv6' address='2001:db8:ca2:3::' prefix='64' gateway='2001:db8:ca2:2::2'/>
  <portgroup name='engineering' default='yes'>
    <bandwidth><inbound average='1000' peak='5000' burst='5120'/></bandwidth>
  </portgroup>
  <portgroup name='sales' trustGuestRxFilters='yes'/>
</network>""",
    """<network><name>v3</name><uuid>c0ffee00-0000-4000-8000-000000000003</uuid>
  <forward mode='nat'><nat ipv6='yes'><address start='1.2.3.4' end='1.2.3.10'/>
    <port start='500' end='1000'/></nat></forward>
  <ip address='10.1.0.1' netmask='255.255.0.0'/></network>""",
    """<network><name>v4</name><uuid>c0ffee00-0000-4000-8000-000000000004</uuid>
  <forward mode='bridge'/><bridge name='br0'/></network>""",
    """<network><name>v5</name><uuid>c0ffee00-0000-4000-8000-000000000005</uuid>
  <forward mode='hostdev' managed='yes'><pf dev='eth3'/></forward></network>""",
    """<network><name>v6</name><uuid>c0ffee00-0000-4000-8000-000000000006</uuid>
  <forward mode='passthrough'><interface dev='eth10'/><interface dev='eth11'/></forward></network>""",
    """<network><name>v7</name><uuid>c0ffee00-0000-4000-8000-000000000007</uuid>
  <forward mode='open'/><ip address='10.2.0.1'/><port isolated='yes'/></network>""",
]


@pytest.mark.parametrize("xml", VALID_DEFINITIONS)
def test_definitions_print_back_as_libvirt_prints_them(pair: Pair, xml: str) -> None:
    result = pair.same(lambda c: c.networkDefineXML(xml).XMLDesc())
    assert result[0] == "ok"
    name = re.search(r"<name>(.*?)</name>", xml)
    assert name is not None
    pair.same(lambda c: c.networkLookupByName(name.group(1)).create())
    pair.same(lambda c: c.networkLookupByName(name.group(1)).bridgeName())
    pair.same(lambda c: c.networkLookupByName(name.group(1)).destroy())
    pair.same(lambda c: c.networkLookupByName(name.group(1)).undefine())


def test_generated_uuid_is_filled_in_where_libvirt_puts_it(pair: Pair) -> None:
    xml = "<network><name>gen</name><bridge name='genbr'/></network>"
    real, ours = pair.both(lambda c: c.networkDefineXML(xml).XMLDesc())
    assert real[0] == ours[0] == "ok"
    assert UUID_RE.sub("<uuid/>", ours[1]) == UUID_RE.sub("<uuid/>", real[1])
    pair.same(lambda c: c.networkLookupByName("gen").undefine())


# Definitions without a UUID (compared with the generated UUID masked): accepted or refused alike.
# One document per entry of the data file, entries separated by lines of "----".
MORE_DEFINITIONS = [
    doc.strip()
    for doc in (Path(__file__).with_name("test_network_definitions.txt")).read_text().split("\n----\n")
    if doc.strip()
]


@pytest.mark.parametrize("xml", MORE_DEFINITIONS)
def test_more_definitions_accepted_or_refused_alike(pair: Pair, xml: str) -> None:
    def define(conn: Any) -> str:
        net = conn.networkDefineXML(xml)
        try:
            return UUID_RE.sub("<uuid/>", str(net.XMLDesc()))
        finally:
            net.undefine()

    pair.same(define)
    same_state(pair)


UPDATES: list[tuple[int, int, int, str, int]] = [
    # (command, section, parentIndex, xml, flags)
    (3, 4, -1, "<host mac='00:16:3e:77:e2:ee' name='bar' ip='192.168.122.10'/>", 0),
    (3, 4, -1, "<host mac='00:16:3e:77:e2:ee' name='bar' ip='192.168.122.10'/>", 0),
    (4, 4, 0, "<host mac='00:16:3e:77:e2:ef' name='baz' ip='192.168.122.11'/>", 1),
    (1, 4, -1, "<host mac='00:16:3e:77:e2:ef' name='qux' ip='192.168.122.12'/>", 0),
    (1, 4, -1, "<host mac='00:16:3e:77:e2:aa' name='none' ip='192.168.122.99'/>", 0),
    (2, 4, -1, "<host name='bar'/>", 0),
    (2, 4, -1, "<host name='bar'/>", 0),
    (3, 4, -1, "<host ip='192.168.122.13'/>", 0),
    (3, 4, 5, "<host mac='00:16:3e:77:e2:e1' ip='192.168.122.13'/>", 0),
    (3, 4, -1, "<range start='192.168.122.2' end='192.168.122.3'/>", 0),
    (3, 5, -1, "<range start='192.168.122.2' end='192.168.122.254'/>", 0),
    (1, 5, -1, "<range start='192.168.122.2' end='192.168.122.254'/>", 0),
    (4, 5, -1, "<range start='192.168.122.2' end='192.168.122.20'/>", 0),
    (2, 5, -1, "<range start='192.168.122.2' end='192.168.122.20'/>", 0),
    (2, 5, -1, "<range start='192.168.122.2' end='192.168.122.20'/>", 0),
    (3, 11, -1, "<txt name='t1' value='v1'/>", 0),
    (3, 11, -1, "<txt name='t1' value='v1'/>", 0),
    (4, 11, -1, "<txt name='t0' value='v0'/>", 0),
    (2, 11, -1, "<txt name='t1'/>", 0),
    (1, 11, -1, "<txt name='t0' value='x'/>", 0),
    (3, 10, -1, "<host ip='192.168.122.50'><hostname>web</hostname></host>", 0),
    (3, 10, -1, "<host ip='192.168.122.50'><hostname>other</hostname></host>", 0),
    (2, 10, -1, "<host><hostname>web</hostname></host>", 0),
    (3, 12, -1, "<srv service='s' protocol='tcp' target='t' port='5'/>", 0),
    (3, 12, -1, "<srv service='s' protocol='tcp'/>", 0),
    (2, 12, -1, "<srv service='s' protocol='tcp'/>", 0),
    (3, 9, -1, "<portgroup name='pg1' default='yes'/>", 0),
    (3, 9, -1, "<portgroup name='pg2' default='yes'/>", 0),
    (1, 9, -1, "<portgroup name='pg1'><bandwidth><inbound average='10'/></bandwidth></portgroup>", 0),
    (2, 9, -1, "<portgroup name='pg1'/>", 0),
    (3, 7, -1, "<interface dev='eth5'/>", 0),
    (1, 1, -1, "<bridge name='x'/>", 0),
    (1, 2, -1, "<domain name='x'/>", 0),
    (1, 3, -1, "<ip address='1.1.1.1'/>", 0),
    (1, 6, -1, "<forward/>", 0),
    (1, 8, -1, "<pf dev='x'/>", 0),
    (1, 99, -1, "<x/>", 0),
    (9, 4, -1, "<host mac='00:16:3e:77:e2:e2' ip='192.168.122.14'/>", 0),
    (3, 11, -1, "<host/>", 0),
    (3, 11, -1, "<txt", 0),
    (3, 11, -1, "<txt name='t9' value='v'/>", 8),
    (3, 11, -1, "<txt name='t9' value='v'/>", 2),
    (3, 11, -1, "<txt name='t9' value='v'/>", 3),
]


def test_network_update_sections_as_the_test_driver(pair: Pair) -> None:
    for command, section, index, xml, flags in UPDATES:

        def update(
            conn: Any, args: tuple[int, int, int, str, int] = (command, section, index, xml, flags)
        ) -> Any:
            return conn.networkLookupByName("default").update(*args)

        real, ours = pair.both(update)
        if xml == "<txt":
            assert ours[:3] == real[:3]
        else:
            assert ours == real, (command, section, index, xml, flags)
        pair.same(lambda c: c.networkLookupByName("default").XMLDesc())
    # Put the shared definition back: the live one is what XMLDesc shows, so rebuild from ours.
    for conn in (pair.real, pair.ours):
        net = conn.networkLookupByName("default")
        net.destroy()
    pair.same(lambda c: c.networkLookupByName("default").update(3, 11, -1, "<txt name='c' value='v'/>", 0))
    pair.same(lambda c: c.networkLookupByName("default").update(3, 11, -1, "<txt name='c2' value='v'/>", 1))
    pair.same(lambda c: c.networkLookupByName("default").XMLDesc())
    pair.same(lambda c: c.networkLookupByName("default").update(2, 11, -1, "<txt name='c'/>", 2))
    pair.same(lambda c: c.networkLookupByName("default").create())
    transient = "<network><name>tr</name><uuid>c0ffee00-0000-4000-8000-0000000000aa</uuid></network>"
    pair.same(lambda c: c.networkCreateXML(transient).name())
    pair.same(lambda c: c.networkLookupByName("tr").update(3, 11, -1, "<txt name='c' value='v'/>", 2))
    pair.same(lambda c: c.networkLookupByName("tr").update(3, 11, -1, "<txt name='c' value='v'/>", 0))
    pair.same(lambda c: c.networkLookupByName("tr").destroy())
    same_state(pair)
