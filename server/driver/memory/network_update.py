"""virNetworkUpdate on a definition: network_conf.c's virNetworkDefUpdateSection.

Each section handler edits a copy of the definition's tree; the result then goes
through a print/parse cycle (as libvirt's virNetworkObjUpdate does), which also
puts new elements in libvirt's order and drops emptied containers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report
from .network_dns import parse_dns_host, parse_dns_srv, parse_dns_txt
from .network_errors import FROM, xml_error
from .network_ip import parse_dhcp_host, parse_dhcp_range
from .network_xmlio import copy_tree, element, parse_addr, parse_document_any
from .networks import (
    NetworkDef,
    parse_network_element,
    parse_portgroup,
)

MODIFY = C.VIR_NETWORK_UPDATE_COMMAND_MODIFY
DELETE = C.VIR_NETWORK_UPDATE_COMMAND_DELETE
ADD_LAST = C.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
ADD_FIRST = C.VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST
_ADD = (ADD_FIRST, ADD_LAST)


def _invalid(detail: str) -> libvirtError:
    return report(C.VIR_ERR_OPERATION_INVALID, FROM, detail)


def _unsupported(detail: str) -> libvirtError:
    return report(C.VIR_ERR_OPERATION_UNSUPPORTED, FROM, detail)


def _unknown_command(command: int) -> libvirtError:
    return _unsupported(f"unrecognized network update command code {command}")


def _check_name(defn: NetworkDef, node: ET.Element, section: str) -> None:
    if node.tag != section:
        raise xml_error(
            f"unexpected element <{node.tag}>, expecting <{section}>, while updating network '{defn.name}'"
        )


def _insert(parent: ET.Element, siblings: list[ET.Element], new: ET.Element, command: int) -> None:
    """Put ``new`` before the first or after the last of ``siblings`` (of its kind) in ``parent``."""
    if not siblings:
        parent.append(new)
    elif command == ADD_FIRST:
        parent.insert(list(parent).index(siblings[0]), new)
    else:
        parent.insert(list(parent).index(siblings[-1]) + 1, new)


def update_definition(
    defn: NetworkDef, command: int, section: int, parent_index: int, xml: str
) -> NetworkDef:
    """``defn`` with one section changed; libvirt's error when the change is refused."""
    node = parse_document_any(xml, "network_update_xml", FROM)
    handler = _SECTIONS.get(section)
    if handler is None:
        raise _unsupported("can't update unrecognized section of network")
    tree = copy_tree(defn.tree)
    handler(defn, tree, command, parent_index, node)
    updated = parse_network_element(tree)
    return NetworkDef(updated.name, updated.uuid, updated.tree, defn.uuid_given)


def _no_support(label: str) -> Callable[[NetworkDef, ET.Element, int, int, ET.Element], None]:
    def refuse(defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element) -> None:
        raise _unsupported(f"can't update '{label}' section of network '{defn.name}'")

    return refuse


# --- <ip><dhcp> ----------------------------------------------------------------------


def _has_dhcp(ip: ET.Element) -> bool:
    dhcp = ip.find("dhcp")
    return dhcp is not None and (dhcp.find("range") is not None or dhcp.find("host") is not None)


def _ip_by_index(defn: NetworkDef, tree: ET.Element, parent_index: int) -> ET.Element:
    ips = tree.findall("ip")
    if parent_index >= 0:
        if parent_index >= len(ips):
            raise _invalid(
                f"couldn't update dhcp host entry - no <ip> element found at index {parent_index} "
                f"in network '{defn.name}'"
            )
        return ips[parent_index]
    for ip in ips:
        if _has_dhcp(ip):
            return ip
    for want_v4 in (True, False):
        for ip in ips:
            addr = parse_addr(ip.get("address", ""))
            if addr is not None and addr.ipv4 == want_v4:
                return ip
    raise _invalid(f"couldn't update dhcp host entry - no <ip> element found in network '{defn.name}'")


def _check_multi_dhcp(tree: ET.Element, ipdef: ET.Element) -> None:
    family = parse_addr(ipdef.get("address", ""))
    assert family is not None
    for ip in tree.findall("ip"):
        addr = parse_addr(ip.get("address", ""))
        if ip is not ipdef and addr is not None and addr.ipv4 == family.ipv4 and _has_dhcp(ip):
            raise _invalid(
                f"dhcp is supported only for a single {'IPv4' if family.ipv4 else 'IPv6'} "
                "address on each network"
            )


def _dhcp_of(ip: ET.Element) -> ET.Element:
    dhcp = ip.find("dhcp")
    return dhcp if dhcp is not None else element(ip, "dhcp")


def _update_dhcp_host(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    ipdef = _ip_by_index(defn, tree, parent_index)
    _check_name(defn, node, "host")
    partial = command == DELETE
    host = parse_dhcp_host(defn.name, ipdef, node, partial=partial)
    ip_family = parse_addr(ipdef.get("address", ""))
    host_ip = parse_addr(host.get("ip", "")) if host.get("ip") else None
    if not partial and (host_ip is None or ip_family is None or host_ip.family != ip_family.family):
        raise _invalid(
            "the address family of a host entry IP must match the address family of the dhcp element's parent"
        )
    dhcp = _dhcp_of(ipdef)
    hosts = dhcp.findall("host")
    mac, name, ip_text = host.get("mac"), host.get("name"), host.get("ip")

    def same_mac(other: ET.Element) -> bool:
        return (
            mac is not None and other.get("mac") is not None and other.get("mac", "").lower() == mac.lower()
        )

    if command == MODIFY:
        for other in hosts:
            if (
                same_mac(other)
                or (ip_text is not None and other.get("ip") == ip_text)
                or (name is not None and other.get("name") == name)
            ):
                dhcp.insert(list(dhcp).index(other), host)
                dhcp.remove(other)
                return
        raise _invalid(
            f"couldn't locate an existing dhcp host entry with \"mac='{mac or 'unknown'}'\" "
            f"\"name='{name or '(null)'}'\" \"ip='{ip_text or 'unknown'}'\" in network '{defn.name}'"
        )
    if command in _ADD:
        _check_multi_dhcp(tree, ipdef)
        for other in hosts:
            if (
                same_mac(other)
                or (name is not None and other.get("name") == name)
                or (ip_text is not None and other.get("ip") == ip_text)
            ):
                raise _invalid(
                    f"there is an existing dhcp host entry in network '{defn.name}' that matches "
                    f"\"<host mac='{mac or 'unknown'}' name='{name or '(null)'}' "
                    f"ip='{ip_text or 'unknown'}'/>\""
                )
        _insert(dhcp, hosts, host, command)
        return
    if command == DELETE:
        for other in hosts:
            if (
                (mac is None or other.get("mac") is None or other.get("mac", "").lower() == mac.lower())
                and (name is None or other.get("name") == name)
                and (ip_text is None or other.get("ip") == ip_text)
            ):
                dhcp.remove(other)
                return
        raise _invalid(f"couldn't locate a matching dhcp host entry in network '{defn.name}'")
    raise _unknown_command(command)


def _update_dhcp_range(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    _check_name(defn, node, "range")
    ipdef = _ip_by_index(defn, tree, parent_index)
    if command == MODIFY:
        raise _unsupported("dhcp ranges cannot be modified, only added or deleted")
    new = parse_dhcp_range(defn.name, ipdef, node)
    dhcp = _dhcp_of(ipdef)
    ranges = dhcp.findall("range")
    match = next(
        (r for r in ranges if r.get("start") == new.get("start") and r.get("end") == new.get("end")), None
    )
    if command in _ADD:
        _check_multi_dhcp(tree, ipdef)
        if match is not None:
            raise _invalid(
                f"there is an existing dhcp range entry in network '{defn.name}' that matches "
                f"\"<range start='{new.get('start')}' end='{new.get('end')}'/>\""
            )
        _insert(dhcp, ranges, new, command)
        return
    if command == DELETE:
        if match is None:
            raise _invalid(f"couldn't locate a matching dhcp range entry in network '{defn.name}'")
        dhcp.remove(match)
        return
    raise _unknown_command(command)


# --- <forward><interface>, <portgroup> ---------------------------------------------------


def _update_forward_interface(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    _check_name(defn, node, "interface")
    if command == MODIFY:
        raise _unsupported("forward interface entries cannot be modified, only added or deleted")
    dev = node.get("dev")
    if dev is None:
        raise xml_error("missing dev attribute in <interface> element")
    forward = tree.find("forward")
    ifaces = forward.findall("interface") if forward is not None else []
    match = next((i for i in ifaces if i.get("dev") == dev), None)
    if command in _ADD:
        if match is not None:
            raise _invalid(
                f"there is an existing interface entry in network '{defn.name}' "
                f"that matches \"<interface dev='{dev}'>\""
            )
        if forward is None:
            forward = element(None, "forward")
            tree.insert(2, forward)
        _insert(forward, ifaces, element(None, "interface", {"dev": dev}), command)
    elif command == DELETE:
        if match is None or forward is None:
            raise _invalid(
                f"couldn't find an interface entry in network '{defn.name}' matching <interface dev='{dev}'>"
            )
        forward.remove(match)
    else:
        raise _unknown_command(command)
    if forward is not None:
        # <forward dev=...> names the first interface; the reparse checks they agree.
        first = forward.find("interface")
        if first is not None and forward.find("pf") is None:
            forward.set("dev", first.get("dev", ""))
        else:
            forward.attrib.pop("dev", None)


def _update_portgroup(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    _check_name(defn, node, "portgroup")
    new = parse_portgroup(defn.name, node)
    groups = tree.findall("portgroup")
    name = new.get("name")
    found = next((g for g in groups if g.get("name") == name), None)
    default = next((g for g in groups if g.get("default") == "yes"), None)
    if found is None and command in (MODIFY, DELETE):
        raise _invalid(
            f"couldn't find a portgroup entry in network '{defn.name}' matching <portgroup name='{name}'>"
        )
    if found is not None and command in _ADD:
        raise _invalid(
            f"there is an existing portgroup entry in network '{defn.name}' "
            f"that matches \"<portgroup name='{name}'>\""
        )
    if command != DELETE and new.get("default") == "yes" and default is not None and default is not found:
        raise _invalid(
            f"a different portgroup entry in network '{defn.name}' is already set as the default. "
            "Only one default is allowed."
        )
    if command == MODIFY:
        assert found is not None
        tree.insert(list(tree).index(found), new)
        tree.remove(found)
    elif command in _ADD:
        _insert(tree, groups, new, command)
    elif command == DELETE:
        assert found is not None
        tree.remove(found)
    else:
        raise _unknown_command(command)


# --- <dns> -------------------------------------------------------------------------------


def _dns_of(tree: ET.Element) -> ET.Element:
    dns = tree.find("dns")
    if dns is None:
        dns = element(tree, "dns")
    return dns


def _update_dns_host(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    is_add = command in _ADD
    if command == MODIFY:
        raise _unsupported("DNS HOST records cannot be modified, only added or deleted")
    _check_name(defn, node, "host")
    new = parse_dns_host(defn.name, node, partial=not is_add)
    dns = _dns_of(tree)
    hosts = dns.findall("host")
    new_names = {h.text for h in new.findall("hostname")}
    found = [
        h
        for h in hosts
        if (new.get("ip") is not None and h.get("ip") == new.get("ip"))
        or (not is_add and new_names & {n.text for n in h.findall("hostname")})
    ]
    if is_add:
        if found:
            raise _invalid(
                f"there is already at least one DNS HOST record with a matching field in network {defn.name}"
            )
        _insert(dns, hosts, new, command)
    elif command == DELETE:
        if not found:
            raise _invalid(f"couldn't locate a matching DNS HOST record in network {defn.name}")
        if len(found) > 1:
            raise _invalid(f"multiple matching DNS HOST records were found in network {defn.name}")
        dns.remove(found[0])
    else:
        raise _unknown_command(command)


def _update_dns_srv(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    is_add = command in _ADD
    if command == MODIFY:
        raise _unsupported("DNS SRV records cannot be modified, only added or deleted")
    _check_name(defn, node, "srv")
    new = parse_dns_srv(defn.name, node, partial=not is_add)
    dns = _dns_of(tree)
    srvs = dns.findall("srv")
    keys = ("domain", "service", "protocol", "target")
    found = [s for s in srvs if all(new.get(k) is None or new.get(k) == s.get(k) for k in keys)]
    if is_add:
        if found:
            raise _invalid(
                "there is already at least one DNS SRV record matching all specified fields "
                f"in network {defn.name}"
            )
        _insert(dns, srvs, new, command)
    elif command == DELETE:
        if not found:
            raise _invalid(f"couldn't locate a matching DNS SRV record in network {defn.name}")
        if len(found) > 1:
            raise _invalid(
                f"multiple DNS SRV records matching all specified fields were found in network {defn.name}"
            )
        dns.remove(found[0])
    else:
        raise _unknown_command(command)


def _update_dns_txt(
    defn: NetworkDef, tree: ET.Element, command: int, parent_index: int, node: ET.Element
) -> None:
    is_add = command in _ADD
    if command == MODIFY:
        raise _unsupported("DNS TXT records cannot be modified, only added or deleted")
    _check_name(defn, node, "txt")
    new = parse_dns_txt(defn.name, node, partial=not is_add)
    dns = _dns_of(tree)
    txts = dns.findall("txt")
    match = next((t for t in txts if t.get("name") == new.get("name")), None)
    if is_add:
        if match is not None:
            raise _invalid(
                f"there is already a DNS TXT record with name '{new.get('name')}' in network {defn.name}"
            )
        _insert(dns, txts, new, command)
    elif command == DELETE:
        if match is None:
            raise _invalid(f"couldn't locate a matching DNS TXT record in network {defn.name}")
        dns.remove(match)
    else:
        raise _unknown_command(command)


_SECTIONS: dict[int, Callable[[NetworkDef, ET.Element, int, int, ET.Element], None]] = {
    C.VIR_NETWORK_SECTION_BRIDGE: _no_support("bridge"),
    C.VIR_NETWORK_SECTION_DOMAIN: _no_support("domain"),
    C.VIR_NETWORK_SECTION_IP: _no_support("ip"),
    C.VIR_NETWORK_SECTION_IP_DHCP_HOST: _update_dhcp_host,
    C.VIR_NETWORK_SECTION_IP_DHCP_RANGE: _update_dhcp_range,
    C.VIR_NETWORK_SECTION_FORWARD: _no_support("forward"),
    C.VIR_NETWORK_SECTION_FORWARD_INTERFACE: _update_forward_interface,
    C.VIR_NETWORK_SECTION_FORWARD_PF: _no_support("forward pf"),
    C.VIR_NETWORK_SECTION_PORTGROUP: _update_portgroup,
    C.VIR_NETWORK_SECTION_DNS_HOST: _update_dns_host,
    C.VIR_NETWORK_SECTION_DNS_TXT: _update_dns_txt,
    C.VIR_NETWORK_SECTION_DNS_SRV: _update_dns_srv,
}
