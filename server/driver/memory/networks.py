"""Network definitions: parse a ``<network>`` the way network_conf.c does, print it back.

``parse_network_xml`` checks what libvirt 9.0's virNetworkDefParseXML checks
(in its order, with its errors) and builds the definition as virNetworkDefFormat
would print it: elements in libvirt's order, defaults filled in (a generated
UUID, the bridge's stp/delay), addresses in canonical form.  Elements libvirt
keeps without interpreting them here (vlan, bandwidth, virtualport, PCI
addresses of a hostdev pool) are carried over as given.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report
from .network_dns import parse_dns
from .network_netdev import parse_bandwidth, parse_pci_address, parse_virtualport, parse_vlan
from .network_xmlio import (
    SocketAddr,
    addr_parse_error,
    copy_tree,
    element,
    format_mac,
    format_tree,
    is_multicast,
    mask_of,
    netmask_prefix,
    parse_addr,
    parse_document,
    parse_mac,
    parse_uuid,
    text_element,
    uuid_string,
)

FROM = C.VIR_FROM_NETWORK

FORWARD_MODES = ("none", "nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev")
# Modes that route on the host's own bridge (stp/delay/zone/mtu make sense there).
_L3_MODES = frozenset({"none", "nat", "route", "open"})
_DRIVER_NAMES = ("default", "kvm", "vfio")
_TRISTATE = ("yes", "no")
_MAC_TABLE_MANAGERS = ("kernel", "libvirt")
_LEASE_UNITS = ("seconds", "minutes", "hours")
_ALWAYS_OPEN = frozenset({"ip", "portgroup", "bandwidth"})


def _always_open(el: ET.Element) -> bool:
    return el.tag in _ALWAYS_OPEN


def xml_error(detail: str, domain: int = FROM) -> libvirtError:
    return report(C.VIR_ERR_XML_ERROR, domain, detail)


def unsupported(detail: str) -> libvirtError:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, detail)


def internal(detail: str, domain: int = FROM) -> libvirtError:
    return report(C.VIR_ERR_INTERNAL_ERROR, domain, detail)


def bad_attr(attr: str, tag: str, value: str) -> libvirtError:
    """virXMLProp*'s error for a value outside the attribute's type."""
    return xml_error(f"Invalid value for attribute '{attr}' in element '{tag}': '{value}'.", C.VIR_FROM_XML)


def tristate(el: ET.Element | None, attr: str) -> str | None:
    """A yes/no attribute (virXMLPropTristateBool); None when absent."""
    if el is None:
        return None
    value = el.get(attr)
    if value is None:
        return None
    if value not in _TRISTATE:
        raise bad_attr(attr, el.tag, value)
    return value


def uint_attr(el: ET.Element, attr: str, *, bits: int = 32) -> int | None:
    """An unsigned decimal attribute (virXMLPropUInt); None when absent."""
    value = el.get(attr)
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or int(text) >= 1 << bits:
        raise xml_error(
            f"Invalid value for attribute '{attr}' in element '{el.tag}': '{value}'. "
            "Expected non-negative integer value",
            C.VIR_FROM_XML,
        )
    return int(text)


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
        return format_tree(self.tree, _always_open)

    def copy(self) -> NetworkDef:
        return NetworkDef(self.name, self.uuid, copy_tree(self.tree), self.uuid_given)


def parse_network_xml(xml: str) -> NetworkDef:
    """Validate a ``<network>`` document; the normalised definition or libvirt's error."""
    src = parse_document(xml, "(network_definition)", "network", FROM)
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
        if ipv6 not in _TRISTATE:
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
    _check_route_gateways(name, routes, ips)
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


# --- <ip> -------------------------------------------------------------------------------


def ip_prefix(ip: ET.Element) -> int:
    """virNetworkIPDefPrefix: the prefix, else the netmask's, else the class default."""
    prefix = ip.get("prefix")
    if prefix is not None and int(prefix) > 0:
        return int(prefix)
    netmask = ip.get("netmask")
    if netmask is not None:
        mask = parse_addr(netmask)
        found = netmask_prefix(mask) if mask is not None else None
        return found if found is not None else -1
    address = parse_addr(ip.get("address", ""))
    if address is None:
        return -1
    if address.ipv4:
        first = address.packed[0]
        if first < 128:
            return 8
        if first < 192:
            return 16
        if first < 224:
            return 24
        return -1
    return 64


def parse_ip(name: str, src: ET.Element) -> ET.Element:
    """virNetworkIPDefParseXML, printed as virNetworkIPDefFormat prints it."""
    family = src.get("family")
    address_text = src.get("address")
    if address_text is None:
        raise xml_error(f"Missing required address attribute in network '{name}'")
    address = parse_addr(address_text)
    if address is None:
        raise xml_error(f"Invalid address '{address_text}' in network '{name}'")
    netmask_text = src.get("netmask")
    netmask = None
    if netmask_text is not None:
        netmask = parse_addr(netmask_text)
        if netmask is None:
            raise xml_error(f"Invalid netmask '{netmask_text}' in network '{name}'")
    prefix = uint_attr(src, "prefix") or 0
    local_ptr = tristate(src, "localPtr")
    if family is None or family == "ipv4":
        if not address.ipv4:
            raise unsupported(
                f"{'no' if family is None else 'ipv4'} family specified for non-IPv4 address "
                f"'{address_text}' in network '{name}'"
            )
        if netmask is not None:
            if not netmask.ipv4:
                raise unsupported(
                    f"Invalid netmask '{netmask_text}' for address '{address_text}' "
                    f"in network '{name}' (both must be IPv4)"
                )
            if prefix > 0:
                raise unsupported(f"Network '{name}' IP address cannot have both a prefix and a netmask")
        elif prefix > 32:
            raise unsupported(f"Invalid IPv4 prefix '{prefix}' in network '{name}'")
    elif family == "ipv6":
        if address.ipv4:
            raise unsupported(
                f"Family 'ipv6' specified for non-IPv6 address '{address_text}' in network '{name}'"
            )
        if netmask is not None:
            raise unsupported(f"netmask not allowed for IPv6 address '{address_text}' in network '{name}'")
        if prefix > 128:
            raise unsupported(f"Invalid IPv6 prefix '{prefix}' in network '{name}'")
    else:
        raise xml_error(f"Unrecognized family '{family}' in network '{name}'")

    out = element(
        None,
        "ip",
        {
            "family": family,
            "address": str(address),
            "netmask": str(netmask) if netmask is not None else None,
            "prefix": str(prefix) if prefix > 0 else None,
            "localPtr": local_ptr,
        },
    )
    dhcp = src.find("dhcp")
    dhcp_out = parse_dhcp(name, out, dhcp) if dhcp is not None else None
    tftp = src.find("tftp")
    if tftp is not None:
        if not address.ipv4:
            raise unsupported(f"Unsupported <tftp> element in an IPv6 element in network '{name}'")
        root = tftp.get("root")
        if root is not None:
            element(out, "tftp", {"root": root})
    if dhcp_out is not None:
        out.append(dhcp_out)
    return out


def parse_dhcp(name: str, ip: ET.Element, src: ET.Element) -> ET.Element | None:
    """The <dhcp> ranges, hosts and bootp of one <ip>; None when there is nothing to print."""
    address = parse_addr(ip.get("address", ""))
    assert address is not None
    ranges: list[ET.Element] = []
    hosts: list[ET.Element] = []
    bootp: ET.Element | None = None
    for child in src:
        if child.tag == "range":
            ranges.append(parse_dhcp_range(name, ip, child))
        elif child.tag == "host":
            hosts.append(parse_dhcp_host(name, ip, child, partial=False))
        elif child.tag == "bootp" and address.ipv4:
            file = child.get("file")
            if file is None:
                continue
            server_text = child.get("server")
            server = None
            if server_text is not None:
                server = parse_addr(server_text)
                if server is None:
                    raise addr_parse_error(server_text)
            bootp = element(None, "bootp", {"file": file, "server": str(server) if server else None})
    if not ranges and not hosts:
        return None
    out = element(None, "dhcp")
    out.extend(ranges)
    out.extend(hosts)
    if bootp is not None:
        out.append(bootp)
    return out


def parse_dhcp_range(name: str, ip: ET.Element, src: ET.Element) -> ET.Element:
    start_text = src.get("start")
    if start_text is None:
        raise xml_error(f"Missing 'start' attribute in dhcp range for network '{name}'")
    start = parse_addr(start_text)
    if start is None:
        raise addr_parse_error(start_text)
    end_text = src.get("end")
    if end_text is None:
        raise xml_error(f"Missing 'end' attribute in dhcp range for network '{name}'")
    end = parse_addr(end_text)
    if end is None:
        raise addr_parse_error(end_text)
    network = parse_addr(ip.get("address", ""))
    assert network is not None
    check_range(start, end, network, ip_prefix(ip))
    out = element(None, "range", {"start": str(start), "end": str(end)})
    lease = _parse_lease(src)
    if lease is not None:
        out.append(lease)
    return out


def check_range(start: SocketAddr, end: SocketAddr, network: SocketAddr, prefix: int) -> None:
    """virSocketAddrGetRange's checks of a DHCP range against its network."""
    span = f"{start} - {end}"
    if start.family != network.family:
        raise internal(f"mismatch of address family in range {span} for network {network}", C.VIR_FROM_NONE)
    if prefix < 0 or prefix > network.bits:
        raise internal(
            f"bad prefix {prefix} for network {network} when  checking range {span}", C.VIR_FROM_NONE
        )
    mask = mask_of(prefix, network.bits)
    if (start.value & mask) != (network.value & mask) or (end.value & mask) != (network.value & mask):
        raise internal(f"range {span} is not entirely within network {network}/{prefix}", C.VIR_FROM_NONE)
    if start.ipv4:
        if start.value == network.value & mask:
            raise internal(
                f"start of range {span} in network {network}/{prefix} is the network address", C.VIR_FROM_NONE
            )
        if end.value == (network.value & mask) | (~mask & 0xFFFFFFFF):
            raise internal(
                f"end of range {span} in network {network}/{prefix} is the broadcast address", C.VIR_FROM_NONE
            )
        if start.packed[:2] != end.packed[:2]:
            raise internal(f"range {span} is too large (> 65535)", C.VIR_FROM_NONE)
        if end.value < start.value:
            raise internal(f"range {span} is reversed ", C.VIR_FROM_NONE)
    else:
        if start.packed[:14] != end.packed[:14]:
            raise internal(f"range {span} is too large (> 65535)", C.VIR_FROM_NONE)
        if end.value < start.value:
            raise internal(f"range {span} is reversed ", C.VIR_FROM_NONE)


def _parse_lease(src: ET.Element) -> ET.Element | None:
    lease_el = src.find("lease")
    if lease_el is None:
        return None
    expiry = uint_attr(lease_el, "expiry", bits=64)
    if expiry is None:
        return None
    unit = lease_el.get("unit", "minutes")
    if unit not in _LEASE_UNITS:
        raise xml_error(f"Invalid value for attribute 'unit' in element 'lease': '{unit}'.", C.VIR_FROM_XML)
    if expiry and ((unit == "seconds" and expiry < 120) or (unit == "minutes" and expiry < 2)):
        raise unsupported("The minimum lease time should be greater than 2 minutes")
    if not expiry:
        return element(None, "lease", {"expiry": "0"})
    return element(None, "lease", {"expiry": str(expiry), "unit": unit})


def parse_dhcp_host(name: str, ip: ET.Element, src: ET.Element, *, partial: bool) -> ET.Element:
    """virNetworkDHCPHostDefParseXML; ``partial`` is the form a match needs (update/delete)."""
    address = parse_addr(ip.get("address", ""))
    ipv6 = address is not None and not address.ipv4
    mac_text = src.get("mac")
    if mac_text is not None:
        if ipv6:
            raise xml_error(
                f"Invalid to specify MAC address '{mac_text}' in network '{name}' IPv6 static host definition"
            )
        mac = parse_mac(mac_text)
        if mac is None:
            raise xml_error(f"Cannot parse MAC address '{mac_text}' in network '{name}'")
        if is_multicast(mac):
            raise xml_error(f"expected unicast mac address, found multicast '{mac_text}' in network '{name}'")
    host_id = src.get("id")
    if host_id is not None:
        bad = next((ch for ch in host_id if ch not in "0123456789abcdefABCDEF:"), None)
        if bad is not None:
            raise xml_error(f"Invalid character '{bad}' in id '{host_id}' of network '{name}'")
    host_name = src.get("name")
    if host_name is not None and not (host_name[:1].isascii() and host_name[:1].isalnum()):
        raise xml_error(f"Cannot use host name '{host_name}' in network '{name}'")
    ip_text = src.get("ip")
    host_ip = None
    if ip_text is not None:
        host_ip = parse_addr(ip_text)
        if host_ip is None:
            raise xml_error(f"Invalid IP address in static host definition for network '{name}'")
    if partial:
        if not (mac_text or host_name or ip_text):
            raise xml_error(
                "At least one of name, mac, or ip attribute must be specified for static host definition "
                f"in network '{name}' "
            )
    else:
        if ipv6:
            if not (host_id or host_name):
                raise xml_error(
                    f"Static host definition in IPv6 network '{name}' must have id or name attribute"
                )
        elif not (mac_text or host_name):
            raise xml_error(
                f"Static host definition in IPv4 network '{name}' must have mac or name attribute"
            )
        if ip_text is None:
            raise xml_error(f"Missing IP address in static host definition for network '{name}'")
    out = element(
        None,
        "host",
        {
            "mac": mac_text,
            "id": host_id,
            "name": host_name,
            "ip": str(host_ip) if host_ip is not None else None,
        },
    )
    lease = _parse_lease(src)
    if lease is not None:
        out.append(lease)
    return out


# --- <route>, <portgroup> --------------------------------------------------------


def parse_route(name: str, src: ET.Element) -> ET.Element:
    detail = name
    address_text = src.get("address")
    gateway_text = src.get("gateway")
    if address_text is None:
        raise xml_error(f"{detail}: Missing required address attribute in route definition")
    if gateway_text is None:
        raise xml_error(f"{detail}: Missing required gateway attribute in route definition")
    address = parse_addr(address_text)
    if address is None:
        raise xml_error(f"{detail}: Bad network address '{address_text}' in route definition")
    gateway = parse_addr(gateway_text)
    if gateway is None:
        raise xml_error(f"{detail}: Bad gateway address '{gateway_text}' in route definition")
    netmask_text = src.get("netmask")
    netmask = parse_addr(netmask_text) if netmask_text is not None else None
    prefix = uint_attr(src, "prefix")
    metric = uint_attr(src, "metric")
    if metric == 0:
        raise xml_error(
            "Invalid value for attribute 'metric' in element 'route': Zero is not permitted", C.VIR_FROM_XML
        )
    return element(
        None,
        "route",
        {
            "family": src.get("family"),
            "address": str(address),
            "netmask": str(netmask) if netmask is not None else None,
            "prefix": str(prefix) if prefix is not None else None,
            "gateway": str(gateway),
            "metric": str(metric) if metric else None,
        },
    )


def _check_route_gateways(name: str, routes: list[ET.Element], ips: list[ET.Element]) -> None:
    """Every static route's gateway must be directly reachable on one of the network's addresses."""
    for route in routes:
        gateway = parse_addr(route.get("gateway", ""))
        assert gateway is not None
        for ip in ips:
            address = parse_addr(ip.get("address", ""))
            if address is None or address.family != gateway.family:
                continue
            prefix = ip_prefix(ip)
            if prefix < 0:
                continue
            mask = mask_of(prefix, address.bits)
            if address.value & mask == gateway.value & mask:
                break
        else:
            raise report(
                C.VIR_ERR_CONFIG_UNSUPPORTED,
                FROM,
                f"unreachable static route gateway '{gateway}' specified for network '{name}'",
            )


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
