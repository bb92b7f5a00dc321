"""A network's addresses: ``<ip>`` with its DHCP ranges, hosts and leases, and ``<route>``.

network_conf.c's virNetworkIPDefParseXML, virNetworkDHCP*ParseXML and
networkcommon_conf.c's route parsing, printed as virNetworkIPDefFormat and
virNetDevIPRouteFormat print them, with virSocketAddrGetRange's range checks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C

from ...errors import report
from .network_errors import FROM, internal, tristate, uint_attr, unsupported, xml_error
from .network_xmlio import (
    SocketAddr,
    addr_parse_error,
    element,
    is_multicast,
    mask_of,
    netmask_prefix,
    parse_addr,
    parse_mac,
)

_LEASE_UNITS = ("seconds", "minutes", "hours")


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


# --- <route> --------------------------------------------------------


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


def check_route_gateways(name: str, routes: list[ET.Element], ips: list[ET.Element]) -> None:
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
