"""Network definitions: parse a ``<network>`` the way network_conf.c does, print it back.

``parse_network_xml`` checks what libvirt 9.0's virNetworkDefParseXML checks
(in its order, with its errors) and builds the definition as virNetworkDefFormat
would print it: elements in libvirt's order, defaults filled in (a generated
UUID, the bridge's stp/delay), addresses in canonical form.  This module holds
the top level, ``<forward>`` and ``<portgroup>``; addresses, DNS and device
settings have modules of their own (network_ip, network_dns, network_netdev).
Metadata is carried over as given.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtwire.protocol.generated import constants as C

from ...errors import report
from ...xmlschema import validate_against_schema
from .network_dns import parse_dns
from .network_errors import FROM, internal, tristate, unsupported, xml_error
from .network_ip import check_route_gateways, parse_ip, parse_route
from .network_netdev import parse_bandwidth, parse_pci_address, parse_virtualport, parse_vlan
from .network_xmlio import (
    copy_tree,
    element,
    format_mac,
    format_tree,
    is_multicast,
    parse_addr,
    parse_document,
    parse_mac,
    parse_uuid,
    text_element,
    uuid_string,
)

FORWARD_MODES = ("none", "nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev")
# Modes that route on the host's own bridge (stp/delay/zone/mtu make sense there).
_L3_MODES = frozenset({"none", "nat", "route", "open"})
_DRIVER_NAMES = ("default", "kvm", "vfio")
_MAC_TABLE_MANAGERS = ("kernel", "libvirt")
_ALWAYS_OPEN = frozenset({"ip", "portgroup", "bandwidth"})


# Attributes virNetworkDefFormat prints with a plain %s (no escaping).
_RAW_ATTRS = frozenset(
    {
        ("domain", "name"),
        ("host", "mac"),
        ("host", "id"),
        ("host", "name"),
        ("portgroup", "name"),
        ("ip", "family"),
        ("route", "family"),
        ("parameters", "profileid"),
    }
)


def _raw_attr(el: ET.Element, attr: str) -> bool:
    return (el.tag, attr) in _RAW_ATTRS


def _always_open(el: ET.Element) -> bool:
    return el.tag in _ALWAYS_OPEN


@dataclass(slots=True)
class NetworkDef:
    """One parsed network definition: identity, the bridge name and the printed form's tree."""

    name: str
    uuid: bytes
    tree: ET.Element
    uuid_given: bool = True

    @property
    def bridge(self) -> str | None:
        el = self.tree.find("bridge")
        return el.get("name") if el is not None else None

    @property
    def uuid_string(self) -> str:
        return uuid_string(self.uuid)

    def xml(self) -> str:
        return format_tree(self.tree, _always_open, _raw_attr)

    def copy(self) -> NetworkDef:
        return NetworkDef(self.name, self.uuid, copy_tree(self.tree), self.uuid_given)


def parse_network_xml(xml: str, *, validate: bool = False) -> NetworkDef:
    """Validate a ``<network>`` document; the normalised definition or libvirt's error.

    ``validate``: check it against network.rng first (the VALIDATE flags).
    """
    src = parse_document(xml, "(network_definition)", "network", FROM)
    if validate:
        validate_against_schema(xml, "network.rng")
    return parse_network_element(src)


def parse_network_element(src: ET.Element) -> NetworkDef:
    name_el = src.find("name")
    name = name_el.text if name_el is not None and name_el.text else None
    if not name:
        raise report(C.VIR_ERR_NO_NAME, FROM)
    if "/" in name:
        raise report(C.VIR_ERR_XML_DETAIL, C.VIR_FROM_XML, "invalid char in name: /")
    uuid_el = src.find("uuid")
    uuid_text = uuid_el.text or "" if uuid_el is not None else None
    if uuid_text is None:
        uuid, uuid_given = uuidlib.uuid4().bytes, False
    else:
        parsed_uuid = parse_uuid(uuid_text)
        if parsed_uuid is None:
            raise internal("malformed uuid element")
        uuid, uuid_given = parsed_uuid, True

    out = ET.Element("network")
    ipv6 = src.get("ipv6")
    if ipv6 is not None:
        if ipv6 not in ("yes", "no"):
            raise xml_error(f"Invalid ipv6 setting '{ipv6}' in network '{name}'")
        if ipv6 == "yes":
            out.set("ipv6", "yes")
    trust = tristate(src, "trustGuestRxFilters")
    if trust is not None:
        out.set("trustGuestRxFilters", trust)

    domain_el = src.find("domain")
    local_only = tristate(domain_el, "localOnly")
    bandwidth_el = src.find("bandwidth")
    bandwidth = parse_bandwidth(bandwidth_el) if bandwidth_el is not None else None
    vlan_el = src.find("vlan")
    vlan = parse_vlan(vlan_el) if vlan_el is not None else None
    bridge_el = src.find("bridge")
    bridge_name = bridge_el.get("name") if bridge_el is not None else None
    bridge_zone = bridge_el.get("zone") if bridge_el is not None else None
    stp = bridge_el.get("stp") if bridge_el is not None else None
    delay_text = bridge_el.get("delay") if bridge_el is not None else None
    delay = 0
    if delay_text is not None:
        stripped = delay_text.strip()
        if not stripped.isdigit():
            raise xml_error(f"Invalid delay value in network '{name}'")
        delay = int(stripped)
    mac_table = bridge_el.get("macTableManager") if bridge_el is not None else None
    if mac_table is not None and mac_table not in _MAC_TABLE_MANAGERS:
        raise xml_error(f"Invalid macTableManager setting '{mac_table}' in network '{name}'")
    mac_el = src.find("mac")
    mac_text = mac_el.get("address") if mac_el is not None else None
    mac: bytes | None = None
    if mac_text is not None:
        mac = parse_mac(mac_text)
        if mac is None:
            raise xml_error(f"Invalid bridge mac address '{mac_text}' in network '{name}'")
        if is_multicast(mac):
            raise xml_error(f"Invalid multicast bridge mac address '{mac_text}' in network '{name}'")
    mtu_el = src.find("mtu")
    mtu_text = mtu_el.get("size") if mtu_el is not None else None
    mtu = 0
    if mtu_text is not None:
        if not mtu_text.strip().isdigit() or int(mtu_text) >= 1 << 32:
            raise xml_error(f"Invalid mtu size '{mtu_text}' in network '{name}'")
        mtu = int(mtu_text)
    virtualport_el = src.find("virtualport")
    virtualport = parse_virtualport(virtualport_el, require_type=True) if virtualport_el is not None else None
    dns_el = src.find("dns")
    dns_out = parse_dns(name, dns_el) if dns_el is not None else None
    portgroups = [parse_portgroup(name, pg) for pg in src.findall("portgroup")]
    ips = [parse_ip(name, ip) for ip in src.findall("ip")]
    routes = [parse_route(name, route) for route in src.findall("route")]
    check_route_gateways(name, routes, ips)
    forward_el = src.find("forward")
    forward = parse_forward(name, forward_el) if forward_el is not None else None
    mode = forward.get("mode", "none") if forward is not None else "none"
    _check_forward_mode(name, mode, forward, ips, bridge_name, bridge_zone, mac_table, stp, delay)
    if mtu and mode not in _L3_MODES:
        raise xml_error(
            f"mtu size only allowed in open, route, nat, and isolated mode, not in {mode} (network '{name}')"
        )

    text_element(out, "name", name)
    text_element(out, "uuid", uuid_string(uuid))
    metadata = src.find("metadata")
    if metadata is not None:
        out.append(copy_tree(metadata))
    if forward is not None:
        out.append(forward)
    has_bridge = mode in _L3_MODES
    if has_bridge or bridge_name or mac_table:
        bridge_out = element(out, "bridge", {"name": bridge_name, "zone": bridge_zone})
        if has_bridge:
            bridge_out.set("stp", "off" if stp == "off" else "on")
            bridge_out.set("delay", str(delay))
        if mac_table is not None:
            bridge_out.set("macTableManager", mac_table)
    if mtu:
        element(out, "mtu", {"size": str(mtu)})
    if mac is not None:
        element(out, "mac", {"address": format_mac(mac)})
    domain_name = domain_el.get("name") if domain_el is not None else None
    if domain_name is not None:
        element(out, "domain", {"name": domain_name, "localOnly": local_only})
    if dns_out is not None:
        out.append(dns_out)
    if vlan is not None:
        out.append(vlan)
    if bandwidth is not None:
        out.append(bandwidth)
    port_el = src.find("port")
    isolated = tristate(port_el, "isolated")
    if isolated is not None:
        element(out, "port", {"isolated": isolated})
    out.extend(ips)
    out.extend(routes)
    if virtualport is not None:
        out.append(virtualport)
    out.extend(portgroups)
    return NetworkDef(name, uuid, out, uuid_given)


def _check_forward_mode(
    name: str,
    mode: str,
    forward: ET.Element | None,
    ips: list[ET.Element],
    bridge: str | None,
    zone: str | None,
    mac_table: str | None,
    stp: str | None,
    delay: int,
) -> None:
    """The checks virNetworkDefParseXML makes of the rest against the forward mode."""
    nifs = len(forward.findall("interface")) + len(forward.findall("address")) if forward is not None else 0
    npfs = len(forward.findall("pf")) if forward is not None else 0
    if mode in ("route", "nat", "open"):
        if not ips:
            raise xml_error(f"{mode} forwarding requested, but no IP address provided for network '{name}'")
        if nifs > 1:
            raise xml_error(
                f"multiple forwarding interfaces specified for network '{name}', only one is supported"
            )
        if mode == "open" and nifs:
            raise xml_error(f"forward dev not allowed for network '{name}' with forward mode='{mode}'")
    elif mode != "none":
        if mode != "bridge":
            if bridge:
                raise xml_error(f"bridge name not allowed in {mode} mode (network '{name}')")
            if zone:
                raise xml_error(f"bridge zone not allowed in {mode} mode (network '{name}')")
            if mac_table:
                raise xml_error(
                    f"bridge macTableManager setting not allowed in {mode} mode (network '{name}')"
                )
        if delay or stp is not None or zone:
            raise xml_error(
                f"bridge delay/stp/zone options only allowed in route, nat, and isolated mode, "
                f"not in {mode} (network '{name}')"
            )
        if bridge and (nifs or npfs):
            raise xml_error(
                f"A network with forward mode='{mode}' can specify a bridge name or a forward dev, "
                f"but not both (network '{name}')"
            )


# --- <forward> --------------------------------------------------------------------------


def parse_forward(name: str, src: ET.Element) -> ET.Element:
    """virNetworkForwardDefParseXML, printed as virNetworkDefFormatBuf prints <forward>."""
    mode = src.get("mode")
    if mode is None:
        mode = "nat"
    elif mode not in FORWARD_MODES:
        raise unsupported(f"unknown forwarding type '{mode}'")
    managed = (src.get("managed") or "").lower() == "yes"
    driver_name = None
    driver_el = src.find("driver")
    if driver_el is not None and driver_el.get("name") is not None:
        driver_name = driver_el.get("name")
        if driver_name not in _DRIVER_NAMES or driver_name == "default":
            raise unsupported(f"Unknown forward <driver name='{driver_name}'/> in network {name}")
    if_nodes = src.findall("interface")
    addr_nodes = src.findall("address")
    pf_nodes = src.findall("pf")
    nat_nodes = src.findall("nat")
    if len(nat_nodes) > 1:
        raise xml_error(f"Only one <nat> element is allowed in <forward> of network {name}")
    nat_out = _parse_nat(name, mode, nat_nodes[0]) if nat_nodes else None
    dev = src.get("dev")
    if dev is not None and (addr_nodes or pf_nodes):
        raise xml_error(
            "the <forward> 'dev' attribute cannot be used when <address> or <pf> sub-elements are present "
            "in network %s"
        )
    ifs: list[str] = []
    addresses: list[ET.Element] = []
    pf: str | None = None
    if if_nodes or dev is not None:
        if dev is not None:
            ifs.append(dev)
        for i, node in enumerate(if_nodes):
            dev_i = node.get("dev")
            if dev_i is None:
                raise xml_error(
                    f"Missing required dev attribute in <forward> <interface> element of network {name}"
                )
            if i == 0 and dev is not None:
                if dev_i != dev:
                    raise xml_error(
                        f"<forward dev='{dev}'> must match first <interface dev='{dev_i}'/> in network {name}"
                    )
                continue
            if dev_i in ifs:
                raise xml_error(f"interface '{dev_i}' can only be listed once in network {name}")
            ifs.append(dev_i)
    elif addr_nodes:
        for node in addr_nodes:
            addr_type = node.get("type")
            if addr_type is None:
                raise xml_error(f"missing address type in network {name}")
            if addr_type not in ("pci", "netdev"):
                raise unsupported(f"unknown address type '{addr_type}' in network {name}")
            if addr_type != "pci":
                raise xml_error(f"unsupported address type '{addr_type}' in network {name}")
            address = parse_pci_address(node)
            if any(a.attrib == address.attrib for a in addresses):
                bdf = "{}:{}:{}.{}".format(
                    *(address.get(k, "")[2:] for k in ("domain", "bus", "slot", "function"))
                )
                raise xml_error(f"PCI device '{bdf}' can only be listed once in network {name}")
            addresses.append(address)
    elif len(pf_nodes) > 1:
        raise xml_error(f"Only one <pf> element is allowed in <forward> of network {name}")
    elif pf_nodes:
        pf = pf_nodes[0].get("dev")
        if pf is None:
            raise xml_error(f"Missing required dev attribute in <pf> element of network '{name}'")

    out = element(None, "forward", {"dev": ifs[0] if ifs and pf is None else None, "mode": mode})
    if mode == "hostdev":
        out.set("managed", "yes" if managed else "no")
    if driver_name is not None:
        element(out, "driver", {"name": driver_name})
    if mode == "nat" and nat_out is not None:
        out.append(nat_out)
    if pf is not None:
        element(out, "pf", {"dev": pf})
    for dev_name in ifs:
        element(out, "interface", {"dev": dev_name})
    out.extend(addresses)
    return out


def _parse_nat(name: str, mode: str, src: ET.Element) -> ET.Element | None:
    if mode != "nat":
        raise xml_error(
            f"The <nat> element can only be used when <forward> 'mode' is 'nat' in network {name}"
        )
    ipv6 = tristate(src, "ipv6")
    addrs = src.findall("address")
    if len(addrs) > 1:
        raise xml_error(f"Only one <address> element is allowed in <nat> in <forward> in network {name}")
    start = end = None
    if addrs:
        start_text, end_text = addrs[0].get("start"), addrs[0].get("end")
        if start_text is None:
            raise xml_error(
                f"missing 'start' attribute in <address> element in <nat> in <forward> in network {name}"
            )
        if end_text is None:
            raise xml_error(
                f"missing 'end' attribute in <address> element in <nat> in <forward> in network {name}"
            )
        start, end = parse_addr(start_text), parse_addr(end_text)
        if start is None or not start.ipv4:
            raise xml_error(
                f"Bad ipv4 start address '{start_text}' in <nat> in <forward> in network '{name}'"
            )
        if end is None or not end.ipv4:
            raise xml_error(f"Bad ipv4 end address '{end_text}' in <nat> in <forward> in network '{name}'")
    ports = src.findall("port")
    if len(ports) > 1:
        raise xml_error(f"Only one <port> element is allowed in <nat> in <forward> in network {name}")
    port_start = port_end = 0
    if ports:
        text = ports[0].get("start") or ""
        if not text.isdigit() or int(text) >= 1 << 16:
            raise report(
                C.VIR_ERR_XML_DETAIL,
                FROM,
                f"Missing or invalid 'start' attribute in <port> in <nat> in <forward> in network {name}",
            )
        port_start = int(text)
        end_text_p = ports[0].get("end") or ""
        if not end_text_p.isdigit() or int(end_text_p) >= 1 << 16 or int(end_text_p) < port_start:
            raise report(
                C.VIR_ERR_XML_DETAIL,
                FROM,
                f"Missing or invalid 'end' attribute in <port> in <nat> in <forward> in network {name}",
            )
        port_end = int(end_text_p)
    if start is None and end is None and not port_start and not port_end and ipv6 is None:
        return None
    out = element(None, "nat", {"ipv6": ipv6})
    if start is not None:
        element(out, "address", {"start": str(start), "end": str(end) if end is not None else None})
    if port_start or port_end:
        element(out, "port", {"start": str(port_start), "end": str(port_end) if port_end else None})
    return out


# --- <portgroup> ---


def parse_portgroup(name: str, src: ET.Element) -> ET.Element:
    pg_name = src.get("name")
    if pg_name is None:
        raise xml_error("Missing required name attribute in portgroup")
    is_default = src.get("default")
    trust = tristate(src, "trustGuestRxFilters")
    out = element(
        None,
        "portgroup",
        {
            "name": pg_name,
            "default": "yes" if is_default and is_default.lower() == "yes" else None,
            "trustGuestRxFilters": trust,
        },
    )
    virtualport_el = src.find("virtualport")
    virtualport = (
        parse_virtualport(virtualport_el, require_type=False) if virtualport_el is not None else None
    )
    bandwidth_el = src.find("bandwidth")
    bandwidth = parse_bandwidth(bandwidth_el) if bandwidth_el is not None else None
    vlan_el = src.find("vlan")
    if vlan_el is not None:
        out.append(parse_vlan(vlan_el))
    if virtualport is not None:
        out.append(virtualport)
    if bandwidth is not None:
        out.append(bandwidth)
    return out
