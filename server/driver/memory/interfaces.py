"""Host interface definitions: interface_conf.c's parsing and formatting.

``parse_interface_xml`` checks an ``<interface>`` document as libvirt 9.0's
virInterfaceDefParseXML does (types ethernet, bridge, bond and vlan, nested
interfaces of bridges and bonds) and builds the tree virInterfaceDefFormat
prints: start mode, mtu and protocols on the top level only, link state,
then the type's own element.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report
from ...xmlschema import validate_against_schema
from .network_xmlio import element, format_tree, parse_document

FROM = C.VIR_FROM_INTERFACE

TYPES = ("ethernet", "bridge", "bond", "vlan")
_TOP = "top"  # the parent type of a top-level interface (libvirt's VIR_INTERFACE_TYPE_LAST)
_START_MODES = ("onboot", "hotplug", "none")
_BOND_MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)
_LINK_STATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")
# Children a parent type accepts (virInterfaceDefParseXML's first check).
_ALLOWED_CHILDREN = {
    "bond": ("ethernet",),
    "bridge": ("ethernet", "bond", "vlan"),
    "ethernet": (),
    "vlan": (),
}
_ALWAYS_OPEN = frozenset({"bridge", "bond", "protocol"})


# Attributes virInterfaceDefFormat prints with a plain %s (no escaping).
_RAW_ATTRS = frozenset(
    {
        ("mac", "address"),
        ("bridge", "delay"),
        ("vlan", "tag"),
        ("ip", "address"),
        ("route", "gateway"),
        ("protocol", "family"),
        ("arpmon", "target"),
    }
)


def _raw_attr(el: ET.Element, attr: str) -> bool:
    """A vlan's <interface name=...> is printed raw; an interface's own name is escaped."""
    return (el.tag, attr) in _RAW_ATTRS or (
        el.tag == "interface" and attr == "name" and "type" not in el.attrib
    )


def _always_open(el: ET.Element) -> bool:
    """libvirt prints these as an open/close pair even when empty; a vlan's <interface name=.../> not."""
    return el.tag in _ALWAYS_OPEN or (el.tag == "interface" and "type" in el.attrib)


def _xml_error(detail: str, domain: int = FROM) -> libvirtError:
    return report(C.VIR_ERR_XML_ERROR, domain, detail)


def _cause_unknown() -> libvirtError:
    """virErrorGenericFailure: a failure nothing reported."""
    message = "An error occurred, but the cause is unknown"
    return libvirtError(
        message, (C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_NONE, message, C.VIR_ERR_ERROR, None, None, None, 0, 0)
    )


@dataclass(slots=True)
class InterfaceDef:
    """A parsed interface: its name, MAC (None for types without one) and printed form's tree."""

    name: str
    mac: str | None
    tree: ET.Element

    def xml(self) -> str:
        return format_tree(self.tree, _always_open, _raw_attr)


def parse_interface_xml(xml: str, *, validate: bool = False) -> InterfaceDef:
    """Validate an ``<interface>`` document; the normalised definition or libvirt's error.

    ``validate``: check it against interface.rng first (VIR_INTERFACE_DEFINE_VALIDATE).
    """
    src = parse_document(xml, "(interface_definition)", "interface", FROM)
    if validate:
        validate_against_schema(xml, "interface.rng")
    tree = parse_interface_element(src, _TOP)
    mac_el = tree.find("mac")
    return InterfaceDef(tree.get("name", ""), mac_el.get("address") if mac_el is not None else None, tree)


def _int_text(text: str | None) -> int | None:
    """virXPathInt's reading of an attribute: None when absent, ValueError when not an int."""
    if text is None:
        return None
    value = int(text.strip(), 10)
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(text)
    return value


def parse_interface_element(src: ET.Element, parent: str) -> ET.Element:
    if_type = src.get("type")
    if if_type is None:
        raise _xml_error("Missing required attribute 'type' in element 'interface'", C.VIR_FROM_XML)
    if if_type not in TYPES:
        raise _xml_error(
            f"Invalid value for attribute 'type' in element 'interface': '{if_type}'.", C.VIR_FROM_XML
        )
    if parent != _TOP and if_type not in _ALLOWED_CHILDREN[parent]:
        raise _xml_error(f"interface has unsupported type '{if_type}'")
    name = src.get("name")
    if name is None:
        raise _xml_error("interface has no name")
    out = element(None, "interface", {"type": if_type, "name": name})
    if parent == _TOP:
        start = src.find("start")
        mode = start.get("mode") if start is not None else None
        if mode is not None and mode not in _START_MODES:
            raise _xml_error(f"unknown interface startmode {mode}")
        mtu_el = src.find("mtu")
        mtu = 0
        size = mtu_el.get("size") if mtu_el is not None else None
        if size:
            body = size.lstrip()
            if not body.isdigit() or int(body) >= 1 << 32:
                # virXPathUInt fails without reporting; the API layer's generic error is what callers see.
                raise _cause_unknown()
            mtu = int(body)
        if mtu > 100000:
            raise _xml_error("value of the 'size' attribute of 'mtu' element must be at most 100000")
        protocols = [_parse_protocol(p) for p in src.findall("protocol")]
        if mode is not None:
            element(out, "start", {"mode": mode})
        if mtu:
            element(out, "mtu", {"size": str(mtu)})
        out.extend(protocols)
    if if_type != "bridge":
        link = src.find("link")
        if link is not None:
            link_out = _parse_link(link)
            if link_out is not None:
                out.append(link_out)
    if if_type == "ethernet":
        mac_el = src.find("mac")
        address = mac_el.get("address") if mac_el is not None else None
        if address is not None:
            element(out, "mac", {"address": address})
    elif if_type == "bridge":
        out.append(_parse_bridge(src))
    elif if_type == "bond":
        out.append(_parse_bond(src))
    else:
        out.append(_parse_vlan(src))
    return out


def _parse_link(src: ET.Element) -> ET.Element | None:
    state = src.get("state")
    if state is not None and state not in _LINK_STATES:
        raise _xml_error(f"Invalid value for attribute 'state' in element 'link': '{state}'.", C.VIR_FROM_XML)
    speed_text = src.get("speed")
    speed = 0
    if speed_text is not None:
        if not speed_text.strip().isdigit() or int(speed_text) >= 1 << 32:
            raise _xml_error(
                f"Invalid value for attribute 'speed' in element 'link': '{speed_text}'. "
                "Expected non-negative integer value",
                C.VIR_FROM_XML,
            )
        speed = int(speed_text)
    if not speed and not state:
        return None
    return element(None, "link", {"speed": str(speed) if speed else None, "state": state})


def _parse_protocol(src: ET.Element) -> ET.Element:
    family = src.get("family")
    if family is None:
        raise _xml_error("protocol misses the family attribute")
    if family not in ("ipv4", "ipv6"):
        raise _xml_error(f"unsupported protocol family '{family}'")
    out = element(None, "protocol", {"family": family})
    if family == "ipv6" and src.find("autoconf") is not None:
        element(out, "autoconf")
    dhcp = src.find("dhcp")
    if dhcp is not None:
        peerdns = dhcp.get("peerdns")
        if peerdns is not None and peerdns not in ("yes", "no"):
            raise _xml_error(
                f"Invalid value for attribute 'peerdns' in element 'dhcp': '{peerdns}'.", C.VIR_FROM_XML
            )
        element(out, "dhcp", {"peerdns": peerdns})
    for ip in src.findall("ip"):
        address = ip.get("address")
        if address is None:
            continue
        prefix_text = ip.get("prefix")
        prefix = 0
        if prefix_text is not None:
            try:
                prefix = int(prefix_text.strip())
            except ValueError:
                raise _xml_error(
                    f"Invalid value for attribute 'prefix' in element 'ip': '{prefix_text}'. "
                    "Expected integer value",
                    C.VIR_FROM_XML,
                ) from None
        element(out, "ip", {"address": address, "prefix": str(prefix) if prefix else None})
    route = src.find("route")
    gateway = route.get("gateway") if route is not None else None
    if gateway is not None:
        element(out, "route", {"gateway": gateway})
    return out


def _parse_bridge(src: ET.Element) -> ET.Element:
    bridge = src.find("bridge")
    if bridge is None:
        raise _xml_error("bridge interface misses the bridge element")
    stp = bridge.get("stp")
    # libvirt reports a bad stp value but goes on as if none was given.
    out = element(None, "bridge", {"stp": stp if stp in ("on", "off") else None})
    if stp is None or stp in ("on", "off"):
        delay = bridge.get("delay")
        if delay is not None:
            out.set("delay", delay)
        for child in bridge.findall("interface"):
            out.append(parse_interface_element(child, "bridge"))
    return out


def _parse_bond(src: ET.Element) -> ET.Element:
    bond = src.find("bond")
    if bond is None:
        raise _xml_error("bond interface misses the bond element")
    mode = bond.get("mode")
    if mode is not None and mode not in _BOND_MODES:
        raise _xml_error(f"unknown bonding mode {mode}")
    out = element(None, "bond", {"mode": mode})
    children = [parse_interface_element(child, "bond") for child in bond.findall("interface")]
    miimon = bond.find("miimon")
    arpmon = bond.find("arpmon")
    if miimon is not None:
        try:
            freq = _int_text(miimon.get("freq"))
        except ValueError:
            freq = None
        if freq is None:
            raise _xml_error("bond interface miimon freq missing or invalid")
        delays: dict[str, str | None] = {}
        for attr in ("downdelay", "updelay"):
            try:
                value = _int_text(miimon.get(attr))
            except ValueError:
                raise _xml_error(f"bond interface miimon {attr} invalid") from None
            delays[attr] = str(value) if value is not None and value > 0 else None
        carrier = miimon.get("carrier")
        if carrier is not None and carrier not in ("ioctl", "netif"):
            raise _xml_error(f"unknown mii bonding carrier {carrier}")
        element(out, "miimon", {"freq": str(freq), **delays, "carrier": carrier})
    elif arpmon is not None:
        try:
            interval = _int_text(arpmon.get("interval"))
        except ValueError:
            interval = None
        if interval is None:
            raise _xml_error("bond interface arpmon interval missing or invalid")
        target = arpmon.get("target")
        if target is None:
            raise _xml_error("bond interface arpmon target missing")
        validate = arpmon.get("validate")
        if validate is not None and validate not in ("active", "backup", "all"):
            raise _xml_error(f"unknown arp bonding validate {validate}")
        element(out, "arpmon", {"interval": str(interval), "target": target, "validate": validate})
    out.extend(children)
    return out


def _parse_vlan(src: ET.Element) -> ET.Element:
    vlan = src.find("vlan")
    if vlan is None:
        raise _xml_error("vlan interface misses the vlan element")
    tag = vlan.get("tag")
    if tag is None:
        raise _xml_error("vlan interface misses the tag attribute")
    dev = vlan.find("interface")
    dev_name = dev.get("name") if dev is not None else None
    if dev_name is None:
        raise _xml_error("vlan interface misses name attribute")
    out = element(None, "vlan", {"tag": tag})
    element(out, "interface", {"name": dev_name})
    return out
