"""Device settings a network definition carries, parsed and printed as libvirt does.

Bandwidth limits (netdev_bandwidth_conf.c; no ``floor`` in a network's own or
a portgroup's bandwidth), vlan tags (netdev_vlan_conf.c), virtual port profiles
(netdev_vport_profile_conf.c) and PCI addresses (device_conf.c), with their
errors.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report
from .network_xmlio import element, parse_uuid, uuid_string

_RATE_ATTRS = ("average", "peak", "floor", "burst")


def _unsupported(detail: str) -> libvirtError:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, C.VIR_FROM_NONE, detail)


def _detail(detail: str) -> libvirtError:
    return report(C.VIR_ERR_XML_DETAIL, C.VIR_FROM_NONE, detail)


def _ull(text: str) -> int | None:
    """virStrToLong_ullp: a decimal unsigned long long (blanks before allowed), else None."""
    body = text.lstrip()
    if not body.isdigit() or int(body) >= 1 << 64:
        return None
    return int(body)


def _parse_rate(src: ET.Element) -> dict[str, int]:
    average, peak, burst, floor = (src.get(a) for a in ("average", "peak", "burst", "floor"))
    rate: dict[str, int] = {}
    if average is not None:
        value = _ull(average)
        if value is None:
            raise _unsupported(f"could not convert bandwidth average value '{average}'")
        rate["average"] = value
    elif floor is None:
        raise _detail("Missing mandatory average or floor attributes")
    if (peak is not None or burst is not None) and average is None:
        raise _unsupported("'peak' and 'burst' require 'average' attribute")
    for attr, text in (("peak", peak), ("burst", burst), ("floor", floor)):
        if text is not None:
            value = _ull(text)
            if value is None:
                raise _unsupported(f"could not convert bandwidth {attr} value '{text}'")
            rate[attr] = value
    return rate


def parse_bandwidth(src: ET.Element, *, allow_floor: bool = False) -> ET.Element | None:
    """A ``<bandwidth>`` as libvirt prints it back; None when it sets no limit at all."""
    if src.get("classID") is not None:
        raise _detail("classID attribute not supported on <bandwidth> in this usage context")
    inbound = outbound = None
    for child in src:
        if child.tag == "inbound":
            if inbound is not None:
                raise _detail("Only one child <inbound> element allowed")
            inbound = child
        elif child.tag == "outbound":
            if outbound is not None:
                raise _detail("Only one child <outbound> element allowed")
            outbound = child
    rates: list[tuple[str, dict[str, int]]] = []
    if inbound is not None:
        rate = _parse_rate(inbound)
        if rate.get("floor") and not allow_floor:
            raise _unsupported("floor attribute is not supported for this config")
        rates.append(("inbound", rate))
    if outbound is not None:
        rate = _parse_rate(outbound)
        if rate.get("floor"):
            raise _unsupported("'floor' attribute allowed only in <inbound> element")
        rates.append(("outbound", rate))
    if not rates:
        return None
    out = element(None, "bandwidth")
    for tag, rate in rates:
        if rate.get("average") or rate.get("floor"):
            element(out, tag, {a: str(rate[a]) for a in _RATE_ATTRS if rate.get(a)})
    return out


def _pci_field(src: ET.Element, attr: str) -> int:
    """virXMLPropUInt with base 0 (0x hex, leading-0 octal, else decimal)."""
    text = src.get(attr)
    if text is None:
        return 0
    body = text.strip()
    try:
        if body.lower().startswith("0x"):
            value = int(body[2:], 16)
        elif body.startswith("0") and len(body) > 1:
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
        if body.startswith(("-", "+")) or not 0 <= value < 1 << 32:
            raise ValueError(text)
    except ValueError:
        raise report(
            C.VIR_ERR_XML_ERROR,
            C.VIR_FROM_XML,
            f"Invalid value for attribute '{attr}' in element 'address': '{text}'. "
            "Expected non-negative integer value",
        ) from None
    return value


def parse_pci_address(src: ET.Element) -> ET.Element:
    """A PCI ``<address>`` in virPCIDeviceAddressFormat's canonical hex form."""
    domain, bus, slot, function = (_pci_field(src, a) for a in ("domain", "bus", "slot", "function"))
    if domain or bus or slot or function:
        if bus > 0xFF:
            raise report(
                C.VIR_ERR_XML_ERROR, C.VIR_FROM_NONE, f"Invalid PCI address bus='0x{bus:x}', must be <= 0xFF"
            )
        if slot > 0x1F:
            raise report(
                C.VIR_ERR_XML_ERROR,
                C.VIR_FROM_NONE,
                f"Invalid PCI address slot='0x{slot:x}', must be <= 0x1F",
            )
        if function > 7:
            raise report(
                C.VIR_ERR_XML_ERROR,
                C.VIR_FROM_NONE,
                f"Invalid PCI address function=0x{function:x}, must be <= 7",
            )
        if not (domain or bus or slot):
            raise report(
                C.VIR_ERR_XML_ERROR,
                C.VIR_FROM_NONE,
                "Invalid PCI address 0000:00:00, at least one of domain, bus, or slot must be > 0",
            )
    return element(
        None,
        "address",
        {
            "type": "pci",
            "domain": f"0x{domain:04x}",
            "bus": f"0x{bus:02x}",
            "slot": f"0x{slot:02x}",
            "function": f"0x{function:x}",
        },
    )


def _vlan_error(detail: str) -> libvirtError:
    return report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_NONE, detail)


def parse_vlan(src: ET.Element) -> ET.Element:
    """netdev_vlan_conf.c's virNetDevVlanParse, printed as virNetDevVlanFormat prints it."""
    tags = src.findall("tag")
    if not tags:
        raise _vlan_error("missing tag id - each <vlan> must have at least one <tag id='n'/> subelement")
    ids: list[int] = []
    native: tuple[int, str] | None = None
    for tag in tags:
        text = tag.get("id")
        if text is None:
            raise report(
                C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, "Missing required attribute 'id' in element 'tag'"
            )
        body = text.strip()
        if not body.isdigit() or int(body) >= 1 << 32:
            raise report(
                C.VIR_ERR_XML_ERROR,
                C.VIR_FROM_XML,
                f"Invalid value for attribute 'id' in element 'tag': '{text}'. "
                "Expected non-negative integer value",
            )
        tag_id = int(body)
        if tag_id > 4095:
            raise _vlan_error(f"vlan tag id {tag_id} too large (maximum 4095)")
        mode = tag.get("nativeMode")
        if mode is not None:
            if mode not in ("tagged", "untagged"):
                raise report(
                    C.VIR_ERR_XML_ERROR,
                    C.VIR_FROM_XML,
                    f"Invalid value for attribute 'nativeMode' in element 'tag': '{mode}'.",
                )
            if native is not None:
                raise _vlan_error("duplicate native vlan setting")
            native = (tag_id, mode)
        ids.append(tag_id)
    trunk = len(ids) > 1
    trunk_text = src.get("trunk")
    if trunk_text is not None:
        trunk = trunk_text.lower() == "yes"
        if not trunk:
            if len(ids) > 1:
                raise _vlan_error(
                    f"invalid \"trunk='{trunk_text}'\" in <vlan> - "
                    "trunk='yes' is required for more than one vlan tag"
                )
            if native is not None:
                raise _vlan_error(
                    "invalid configuration in <vlan> - \"trunk='no'\" is not allowed with a native vlan id"
                )
            if trunk_text.lower() != "no":
                raise _vlan_error(f"invalid \"trunk='{trunk_text}'\" in <vlan> - must be yes or no")
    out = element(None, "vlan", {"trunk": "yes" if trunk else None})
    for tag_id in ids:
        mode_attr = native[1] if native is not None and native[0] == tag_id else None
        element(out, "tag", {"id": str(tag_id), "nativeMode": mode_attr})
    return out


_VPORT_TYPES = ("802.1Qbg", "802.1Qbh", "openvswitch", "midonet")
# Which parameters each type prints (virNetDevVPortProfileFormat); None is "no type".
_VPORT_PRINTS: dict[str | None, tuple[str, ...]] = {
    None: ("managerid", "typeid", "typeidversion", "instanceid", "interfaceid", "profileid"),
    "802.1Qbg": ("managerid", "typeid", "typeidversion", "instanceid"),
    "802.1Qbh": ("profileid",),
    "openvswitch": ("interfaceid", "profileid"),
    "midonet": ("interfaceid",),
}
# Parameters a type refuses, in the order virNetDevVPortProfileCheckNoExtras looks.
_VPORT_EXTRAS: dict[str | None, tuple[str, ...]] = {
    "802.1Qbg": ("profileid", "interfaceid"),
    "802.1Qbh": ("managerid", "typeid", "typeidversion", "instanceid", "interfaceid"),
    "openvswitch": ("managerid", "typeid", "typeidversion", "instanceid"),
}
# LIBVIRT_IFLA_VF_PORT_PROFILE_MAX: the profile id's buffer, NUL included.
_PROFILE_ID_MAX = 40


def _c_uint(text: str) -> int | None:
    """virStrToLong_ui with base 0, or None."""
    body = text.lstrip()
    try:
        if body.lower().startswith("0x"):
            value = int(body[2:], 16)
        elif body.startswith("0") and len(body) > 1:
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
    except ValueError:
        return None
    return value if 0 <= value < 1 << 32 and not body.startswith(("+", "-")) else None


def parse_virtualport(src: ET.Element, *, require_type: bool) -> ET.Element | None:
    """virNetDevVPortProfileParse and Format; None when libvirt prints nothing."""
    vtype = src.get("type")
    if vtype is not None and vtype not in _VPORT_TYPES:
        raise _unsupported(f"unknown virtualport type {vtype}")
    if vtype is None and require_type:
        raise _vlan_error("missing required virtualport type")
    params = src.find("parameters")
    given = dict(params.attrib) if params is not None else {}
    values: dict[str, str] = {}
    for attr, limit in (("managerid", 0xFF), ("typeid", 0xFFFFFF), ("typeidversion", 0xFF)):
        text = given.get(attr)
        if text is None:
            continue
        value = _c_uint(text)
        if value is None:
            raise _vlan_error(f"cannot parse value of {attr} parameter")
        if value > limit:
            raise _vlan_error(f"value {'for' if attr == 'typeid' else 'of'} {attr} out of range")
        values[attr] = str(value)
    if "instanceid" in given:
        raw = parse_uuid(given["instanceid"])
        if raw is None:
            raise _vlan_error("cannot parse instanceid parameter as a uuid")
        values["instanceid"] = uuid_string(raw)
    profile = given.get("profileid")
    if profile is not None:
        if len(profile.encode()) >= _PROFILE_ID_MAX:
            raise _vlan_error("profileid parameter too long")
        if profile:
            values["profileid"] = profile
    if "interfaceid" in given:
        raw = parse_uuid(given["interfaceid"])
        if raw is None:
            raise _vlan_error("cannot parse interfaceid parameter as a uuid")
        values["interfaceid"] = uuid_string(raw)
    for extra in _VPORT_EXTRAS.get(vtype, ()):
        if extra in values:
            raise _vlan_error(f"extra {extra} unsupported in <virtualport type='{vtype}'>")
    if not values and vtype is None:
        return None
    out = element(None, "virtualport", {"type": vtype})
    if values:
        element(out, "parameters", {k: values.get(k) for k in _VPORT_PRINTS[vtype]})
    return out
