"""The address the test driver gives a guest NIC on a network (testDomainInterfaceAddresses).

``_network_lease_address`` is what a domain's InterfaceAddresses needs from the
networks; its answers are checked against a real libvirtd's for IPv4 (the
``default`` network, domain ``test``) and IPv6 networks.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from virtwire.server.driver.memory.driver import MemoryDriver
from virtwire.server.driver.memory.networks import parse_network_xml
from vwtestkit import RealLibvirtd

V6_NETWORK = """<network><name>v6net</name><uuid>6b6b6b6b-0000-4000-8000-000000000006</uuid>
  <ip family='ipv6' address='fd00:1::1' prefix='64'>
    <dhcp><range start='fd00:1::f0' end='fd00:1::ff'/></dhcp>
  </ip>
  <ip address='10.6.0.1' prefix='24'/>
</network>"""
V4_NO_RANGE = """<network><name>plain</name><uuid>6b6b6b6b-0000-4000-8000-000000000007</uuid>
  <ip address='172.20.3.250' netmask='255.255.0.0'/>
</network>"""
GUEST = """<domain type='test'><name>{name}</name><memory>1024</memory><os><type>hvm</type></os>
  <devices>
    <interface type='network'><mac address='52:54:00:00:00:0{n}'/><source network='{net}'/></interface>
    <interface type='network'><mac address='52:54:00:00:01:0{n}'/><source network='{net}'/></interface>
  </devices>
</domain>"""


def _addresses(dom: Any) -> list[tuple[int, str, int]]:
    found = dom.interfaceAddresses(1)  # VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE
    by_mac = sorted(found.values(), key=lambda v: v["hwaddr"])
    return [(a["type"], a["addr"], a["prefix"]) for v in by_mac for a in v["addrs"]]


def test_lease_addresses_match_the_test_drivers(
    real_libvirt: ModuleType, fresh_libvirtd: Callable[..., RealLibvirtd]
) -> None:
    daemon = fresh_libvirtd()
    conn = real_libvirt.open(daemon.tcp_uri)
    ours = MemoryDriver(hostname="lease-test")
    try:
        assert _addresses(conn.lookupByName("test")) == [ours._network_lease_address("default", 1)]
        for n, (net_xml, net_name) in enumerate([(V6_NETWORK, "v6net"), (V4_NO_RANGE, "plain")], start=2):
            conn.networkDefineXML(net_xml).create()
            ours.networks.assign(parse_network_xml(net_xml), live=False, check_live=False)
            guest = conn.defineXML(GUEST.format(name=f"g{n}", n=n, net=net_name))
            guest.create()
            offset = 20 * (guest.ID() - 1)
            expected = [ours._network_lease_address(net_name, offset + i + 1) for i in range(2)]
            # Sorted by MAC, the guest's NICs come in definition order (offsets +1, +2).
            assert _addresses(guest) == expected
    finally:
        conn.close()
