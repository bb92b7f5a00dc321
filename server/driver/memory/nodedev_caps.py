"""The node-device capabilities other than system and SCSI host, kept in libvirt's printed form.

libvirt's test driver parses a ``<capability>`` of each type with
virNodeDevCapsDefParseXML and prints it back with virNodeDeviceDefFormat.  The
printed form of these capabilities follows the element order of the input
that libvirt's own schema data uses, so each is kept as canonical lines
(libvirt's two-space indentation, single-quoted attributes), with the
defaults libvirt fills in and without what it never reads: an mdev's ``<iommuGroup number='0'/>`` and a USB
device's ``<product .../>`` written as ``<product ... />``, a storage device's
block size and count dropped.  Nested
capabilities (a PCI device's mdev_types or vpd, a CSS device's or AP matrix's
mdev_types) are remembered because listings match them (virNodeDeviceObjHasCap).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .objxml import escape_text

# Types virNodeDevCapsDefParseXML has no parser for: only ever nested or derived.
UNPARSED_TYPES = frozenset({"mdev_types", "fc_host", "vports", "scsi_generic", "vdpa", "vpd"})

# Nested capabilities a listing counts as the device's own, per outer type.
LISTED_NESTED = {
    "pci": frozenset({"mdev_types", "vpd"}),
    "css": frozenset({"mdev_types"}),
    "ap_matrix": frozenset({"mdev_types"}),
}


def _attrs(el: ET.Element) -> str:
    return "".join(f" {key}='{escape_text(value)}'" for key, value in el.attrib.items())


def element_lines(el: ET.Element) -> list[str]:
    """One element in virBuffer's style: empty elements self-closed, children indented by two."""
    children = list(el)
    text = el.text or ""
    if not children:
        if text.strip():
            return [f"<{el.tag}{_attrs(el)}>{escape_text(text)}</{el.tag}>"]
        return [f"<{el.tag}{_attrs(el)}/>"]
    lines = [f"<{el.tag}{_attrs(el)}>"]
    for child in children:
        lines.extend(f"  {line}" for line in element_lines(child))
    lines.append(f"</{el.tag}>")
    return lines


def _usb_device(el: ET.Element) -> list[str]:
    lines: list[str] = []
    for child in el:
        line = element_lines(child)
        if child.tag in ("product", "vendor") and len(line) == 1 and line[0].endswith("/>"):
            # virNodeDeviceCapUSBDevDefFormat closes a nameless id with " />".
            line = [line[0][:-2] + " />"]
        lines.extend(line)
    return lines


def _mdev(el: ET.Element) -> list[str]:
    lines: list[str] = []
    for child in el:
        if child.tag == "attr":
            continue
        lines.extend(element_lines(child))
    if el.find("iommuGroup") is None:
        lines.append("<iommuGroup number='0'/>")  # the group a parsed mdev gets unless told
    # virNodeDeviceCapMdevDefFormat prints the attributes last, in their order.
    for attr in el.findall("attr"):
        lines.append(f"<attr name='{attr.get('name', '')}' value='{attr.get('value', '')}'/>")
    return lines


# Storage sizes virNodeDevCapStorageParseXML never reads, so never prints back.
_STORAGE_UNREAD = ("logical_block_size", "num_blocks")


def _storage(el: ET.Element) -> list[str]:
    lines: list[str] = []
    for child in el:
        if child.tag in _STORAGE_UNREAD:
            continue
        if child.tag == "capability":
            child = _without(child, _STORAGE_UNREAD)
        lines.extend(element_lines(child))
    return lines


def _without(el: ET.Element, tags: tuple[str, ...]) -> ET.Element:
    copy = ET.Element(el.tag, el.attrib)
    copy.text = el.text
    copy.extend(child for child in el if child.tag not in tags)
    return copy


def body_lines(cap_type: str, el: ET.Element) -> tuple[str, ...]:
    """The inner lines of a ``<capability type=cap_type>`` as libvirt prints them."""
    if cap_type == "storage":
        return tuple(_storage(el))
    if cap_type == "usb_device":
        return tuple(_usb_device(el))
    if cap_type == "mdev":
        return tuple(_mdev(el))
    lines: list[str] = []
    for child in el:
        lines.extend(element_lines(child))
    return tuple(lines)


def nested_types(cap_type: str, el: ET.Element) -> frozenset[str]:
    """The nested capability types a listing of this device also matches."""
    listed = LISTED_NESTED.get(cap_type, frozenset())
    return frozenset(t for sub in el.findall("capability") if (t := sub.get("type", "")) in listed)
