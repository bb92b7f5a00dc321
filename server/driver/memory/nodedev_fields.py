"""The scalar fields of node-device capabilities: libvirt's checks and its printed form.

virNodeDevCapsDefParseXML reads each capability's numbers and names with its
own error for a missing and for an invalid value (in the order below), and
virNodeDeviceDefFormat prints the numbers back in one form (``<bus>2</bus>``,
``<vendor id='0x8086'>``, ``<devno>0xffff</devno>``).  ``check_and_normalise``
raises libvirt's error for the first bad field and rewrites the others in
place to the printed form.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtwire.protocol.generated import constants as C

from ...errors import report

FROM = C.VIR_FROM_NODEDEV
_UINT_MAX = 0xFFFFFFFF
_ULLONG_MAX = 0xFFFFFFFFFFFFFFFF


def strtoul(text: str, base: int, limit: int = _UINT_MAX) -> int | None:
    """virStrToLong_uip / _ullp: the whole string a non-negative number, None when it is not."""
    body = text.lstrip(" \t\n\v\f\r")
    if body.startswith("+"):
        body = body[1:]
    if base in (0, 16) and body[:2].lower() == "0x" and len(body) > 2:
        body, base = body[2:], 16
    elif base == 0:
        base = 8 if body.startswith("0") and len(body) > 1 else 10
    digits = "0123456789abcdef"[:base]
    if not body or any(c not in digits for c in body.lower()):
        return None
    value = int(body, base)
    return value if value <= limit else None


def strtol(text: str, base: int) -> int | None:
    """virStrToLong_i: the whole string a number that fits a C int (a sign allowed)."""
    body = text.lstrip(" \t\n\v\f\r")
    negative = body.startswith("-")
    value = strtoul(body[1:] if negative else body, base, 0x80000000)
    if value is None:
        return None
    value = -value if negative else value
    return value if value <= 0x7FFFFFFF else None


def as_int32(value: int) -> int:
    """An unsigned int printed with %d, as libvirt's formatter does."""
    return value - (1 << 32) if value > 0x7FFFFFFF else value


@dataclass(frozen=True, slots=True)
class Field:
    """One scalar: where it is, how libvirt reads and prints it, and its two errors."""

    tag: str
    missing: str  # formatted with name=
    invalid: str  # formatted with name= and value=
    base: int = 10
    printed: str = "{:d}"
    attr: str | None = None  # the value is this attribute of <tag>
    code: int = C.VIR_ERR_INTERNAL_ERROR
    limit: int = _UINT_MAX
    out_of_range: int | None = None  # a larger value is refused with _OUT_OF_RANGE
    signed: bool = True  # printed with %d (an unsigned value past INT_MAX prints negative)


def _uints(what: str, *tags: tuple[str, str], unsigned: tuple[str, ...] = ()) -> list[Field]:
    return [
        Field(
            tag,
            f"no {what} {label} supplied for '{{name}}'",
            f"invalid {what} {label} supplied for '{{name}}'",
            signed=tag not in unsigned,
        )
        for tag, label in tags
    ]


def _hex_id(what: str, tag: str) -> Field:
    return Field(
        tag,
        f"no {what} {tag} ID supplied for '{{name}}'",
        f"invalid {what} {tag} ID supplied for '{{name}}'",
        base=16,
        printed="0x{:04x}",
        attr="id",
        signed=False,
    )


def _ccw(tag: str, base: int, printed: str) -> Field:
    return Field(
        tag,
        f"missing {tag} value for '{{name}}'",
        f"invalid {tag} value '{{value}}' for '{{name}}'",
        base=base,
        printed=printed,
        code=C.VIR_ERR_CONFIG_UNSUPPORTED,
        signed=False,
    )


_AP_ADAPTER = _ccw("ap-adapter", 0, "0x{:02x}")
_CCW = [_ccw("cssid", 0, "0x{:x}"), _ccw("ssid", 0, "0x{:x}"), _ccw("devno", 16, "0x{:04x}")]

FIELDS: dict[str, list[Field]] = {
    "pci": [
        *_uints(
            "PCI",
            ("domain", "domain ID"),
            ("bus", "bus ID"),
            ("slot", "slot ID"),
            ("function", "function ID"),
            unsigned=("bus", "slot", "function"),  # printed %u; the domain %d
        ),
        _hex_id("PCI", "vendor"),
        _hex_id("PCI", "product"),
    ],
    "usb_device": [
        *_uints("USB", ("bus", "bus number"), ("device", "device number")),
        _hex_id("USB", "vendor"),
        _hex_id("USB", "product"),
    ],
    "usb": _uints(
        "USB interface",
        ("number", "number"),
        ("class", "class"),
        ("subclass", "subclass"),
        ("protocol", "protocol"),
    ),
    "scsi": _uints(
        "SCSI", ("host", "host ID"), ("bus", "bus ID"), ("target", "target ID"), ("lun", "LUN ID")
    ),
    "ccw": _CCW,
    "css": _CCW,
    "ap_card": [_AP_ADAPTER],
    "ap_queue": [
        _AP_ADAPTER,
        Field(
            "ap-domain",
            "missing ap-domain value for '{name}'",
            "invalid ap-domain value '{value}' for '{name}'",
            base=0,
            printed="0x{:04x}",
            code=C.VIR_ERR_CONFIG_UNSUPPORTED,
            out_of_range=255,
            signed=False,
        ),
    ],
}

# Text fields a capability cannot do without.
REQUIRED_TEXT: dict[str, tuple[str, str]] = {
    "net": ("interface", "no network interface supplied for '{name}'"),
    "scsi_target": ("target", "no target name supplied for '{name}'"),
    "storage": ("block", "no block device path supplied for '{name}'"),
}
_DRM_TYPES = ("primary", "control", "render")


def _xpath_string(el: ET.Element, field: Field) -> tuple[ET.Element | None, str]:
    """XPath's string(): the first <tag>'s text (or attribute), '' when absent."""
    node = el.find(field.tag)
    if node is None:
        return None, ""
    if field.attr is not None:
        return node, node.get(field.attr, "")
    return node, "".join(node.itertext())


def _check_field(el: ET.Element, field: Field, name: str) -> None:
    node, text = _xpath_string(el, field)
    if node is None or text == "":
        raise report(field.code, FROM, field.missing.format(name=name))
    value = strtoul(text, field.base, field.limit)
    if value is None:
        raise report(field.code, FROM, field.invalid.format(name=name, value=text))
    if field.out_of_range is not None and value > field.out_of_range:
        raise report(field.code, FROM, f"{field.tag} value '{text}' is out of range for '{name}'")
    printed = field.printed.format(as_int32(value) if field.signed else value)
    if field.attr is not None:
        node.set(field.attr, printed)
    else:
        node.text = printed


def _check_pci_class(el: ET.Element, name: str) -> None:
    node = el.find("class")
    text = "".join(node.itertext()) if node is not None else ""
    if node is None or text == "":
        return
    value = strtol(text, 16)
    if value is None or value > 0xFFFFFF:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"invalid PCI class supplied for '{name}'")
    if value < 0:
        el.remove(node)  # a negative class means none, and is not printed
    else:
        node.text = f"0x{value:06x}"


def _storage_number(parent: ET.Element, tag: str, what: str, name: str) -> None:
    node = parent.find(tag)
    text = "".join(node.itertext()) if node is not None else ""
    if node is None or text == "":
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"no {what} supplied for '{name}'")
    value = strtoul(text, 10, _ULLONG_MAX)
    if value is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"invalid {what} supplied for '{name}'")
    node.text = str(value)


def _check_storage_caps(el: ET.Element, name: str) -> None:
    """The nested hotpluggable/removable capabilities, then the size of a fixed disk."""
    removable = False
    for sub in el.findall("capability"):
        kind = sub.get("type")
        if kind is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"missing storage capability type for '{name}'")
        if kind == "removable":
            removable = True
            _storage_number(sub, "media_size", "removable media size", name)
            available = any("".join(m.itertext()) == "1" for m in sub.findall("media_available"))
            media_available = ET.Element("media_available")
            media_available.text = "1" if available else "0"
            printed = [media_available, sub.find("media_size")]
            label = sub.find("media_label")
            if label is not None and "".join(label.itertext()):
                printed.append(label)
            for child in list(sub):
                sub.remove(child)
            sub.extend([p for p in printed if p is not None])
        elif kind == "hotpluggable":
            sub.clear()  # a flag: printed empty
            sub.set("type", kind)
        else:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, FROM, f"unknown storage capability type '{kind}' for '{name}'"
            )
    if not removable:
        _storage_number(el, "size", "size", name)


def check_and_normalise(cap_type: str, el: ET.Element, name: str) -> None:
    """libvirt's checks of a capability's scalars, in its order; rewrites them as it prints them."""
    if cap_type == "pci":
        _check_pci_class(el, name)
    for field in FIELDS.get(cap_type, ()):
        _check_field(el, field, name)
    required = REQUIRED_TEXT.get(cap_type)
    if required is not None and not el.findtext(required[0]):
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, required[1].format(name=name))
    if cap_type == "storage":
        _check_storage_caps(el, name)
    if cap_type == "drm":
        kind = el.findtext("type")
        if kind not in _DRM_TYPES:
            raise report(
                C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, f"unknown drm type '{kind or '(null)'}' for '{name}'"
            )
    if cap_type == "mdev":
        _check_mdev(el, name)
    if cap_type == "net":
        _check_net(el, name)
    if cap_type == "scsi_target":
        _check_scsi_target(el, name)
    if cap_type == "css":
        require_capability_types(el)  # the nested capabilities come before the channel address
    channel = el.find("channel_dev_addr") if cap_type == "css" else None
    if channel is not None:
        for field in _CCW:
            _check_field(channel, field, name)
        kept = [channel.find(field.tag) for field in _CCW]  # printed cssid, ssid, devno
        for child in list(channel):
            channel.remove(child)
        channel.extend([child for child in kept if child is not None])


def require_capability_types(el: ET.Element) -> None:
    """Every nested <capability> of a PCI, CSS or AP matrix device needs its type."""
    if any(sub.get("type") is None for sub in el.findall("capability")):
        raise report(C.VIR_ERR_XML_ERROR, FROM, "Missing capability type")


def _check_scsi_target(el: ET.Element, name: str) -> None:
    """Nested capabilities of a SCSI target: only fc_remote_port, printed as rport and wwpn."""
    for sub in el.findall("capability"):
        kind = sub.get("type")
        if kind is None:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, FROM, f"missing type for SCSI target capability for '{name}'"
            )
        if kind != "fc_remote_port":
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, FROM, f"unknown SCSI target capability type '{kind}' for '{name}'"
            )
        kept = []
        for tag, missing in (
            ("rport", "missing rport name for '{}'"),
            ("wwpn", "missing wwpn identifier for '{}'"),
        ):
            child = sub.find(tag)
            if child is None or not "".join(child.itertext()):
                raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, missing.format(name))
            kept.append(child)
        for child in list(sub):
            sub.remove(child)
        sub.extend(kept)


def _check_mdev(el: ET.Element, name: str) -> None:
    """virNodeDevCapMdevParseXML: a type id, a valid uuid (printed canonical), a group number."""
    type_el = el.find("type")
    if type_el is None or not type_el.get("id"):
        raise report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, f"missing type id attribute for '{name}'")
    uuid_el = el.find("uuid")
    text = "".join(uuid_el.itertext()) if uuid_el is not None else ""
    if uuid_el is not None and text:
        canonical = uuid_string(text)
        if canonical is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"Invalid uuid '{text}' for new mdev device")
        uuid_el.text = canonical
    group = el.find("iommuGroup")
    number = group.get("number", "") if group is not None else ""
    if group is not None and not number:
        group.set("number", "0")
    elif group is not None:
        value = strtoul(number, 10)
        if value is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"invalid iommuGroup number attribute for '{name}'")
        group.set("number", str(value))


def uuid_string(text: str) -> str | None:
    """virUUIDParse then virUUIDFormat: 32 hex digits, dashes anywhere between, spaces around."""
    body = text.strip(" \t\n\r\v\f").replace("-", "")
    if len(body) != 32 or any(c not in "0123456789abcdefABCDEF" for c in body):
        return None
    h = body.lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def prop_uint(node: ET.Element, attr: str, base: int, required: bool = False) -> int | None:
    """virXMLPropUInt: None when absent and optional; libvirt's XML errors otherwise."""
    text = node.get(attr)
    if text is None:
        if not required:
            return None
        detail = f"Missing required attribute '{attr}' in element '{node.tag}'"
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)
    value = strtoul(text, base)
    if value is None:
        detail = (
            f"Invalid value for attribute '{attr}' in element '{node.tag}': '{text}'. "
            "Expected non-negative integer value"
        )
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)
    return value


# virNetDevFeature and virNetDevIfState names, in their enums' order.
NET_FEATURES = (
    "rx",
    "tx",
    "sg",
    "tso",
    "gso",
    "gro",
    "lro",
    "rxvlan",
    "txvlan",
    "ntuple",
    "rxhash",
    "rdma",
    "txudptnl",
    "switchdev",
)
_LINK_STATES = ("", "unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")


def _check_net(el: ET.Element, name: str) -> None:
    """virNodeDevCapNetParseXML: features (a set), the first sub-capability's type, the link."""
    features: set[str] = set()
    for feature in el.findall("feature"):
        feature_name = feature.get("name")
        if feature_name is None:
            raise report(C.VIR_ERR_XML_ERROR, FROM, "missing network device feature name")
        if feature_name not in NET_FEATURES:
            raise report(C.VIR_ERR_XML_ERROR, FROM, f"unknown network device feature '{feature_name}'")
        features.add(feature_name)
    # string(./capability/@type): the first sub-capability that has a type; empty means none.
    subtype = (
        next((t for sub in el.findall("capability") if (t := sub.get("type")) is not None), None) or None
    )
    if subtype is not None and subtype not in ("80203", "80211"):
        raise report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, f"invalid network type supplied for '{name}'")
    link = el.find("link")
    printed_link: ET.Element | None = None
    if link is not None:
        state = link.get("state")
        if state is not None and state not in _LINK_STATES:
            detail = f"Invalid value for attribute 'state' in element 'link': '{state}'."
            raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)
        speed = prop_uint(link, "speed", 10)
        attrs = {"speed": str(speed)} if speed else {}
        if state:
            attrs["state"] = state
        printed_link = ET.Element("link", attrs) if attrs else None
    kept = [el.find("interface"), el.find("address"), printed_link]
    kept += [ET.Element("feature", {"name": f}) for f in NET_FEATURES if f in features]
    kept.append(ET.Element("capability", {"type": subtype}) if subtype is not None else None)
    for child in list(el):
        el.remove(child)
    el.extend([child for child in kept if child is not None])
