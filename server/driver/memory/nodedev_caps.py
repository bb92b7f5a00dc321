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


# virNodeDeviceDefFormat's order of each capability's children ("capability:T" is a nested
# <capability type='T'>); children it never reads are not printed back.
PRINTED_ORDER: dict[str, tuple[str, ...]] = {
    "pci": (
        "class",
        "domain",
        "bus",
        "slot",
        "function",
        "product",
        "vendor",
        "capability:phys_function",
        "capability:virt_functions",
        "capability:pci-bridge",
        "capability:cardbus-bridge",
        "capability:mdev_types",
        "capability:vpd",
        "iommuGroup",
        "numa",
        "pci-express",
    ),
    "usb_device": ("bus", "device", "product", "vendor"),
    "usb": ("number", "class", "subclass", "protocol", "description"),
    "net": ("interface", "address", "link", "feature", "capability:80203", "capability:80211"),
    "scsi_target": ("target", "capability:fc_remote_port"),
    "scsi": ("host", "bus", "target", "lun", "type"),
    "storage": (
        "block",
        "bus",
        "drive_type",
        "model",
        "vendor",
        "serial",
        "capability:removable",
        "size",
        "capability:hotpluggable",
    ),
    "drm": ("type",),
    "mdev": ("type", "uuid", "iommuGroup", "attr"),  # parent_addr is never read
    "ccw": ("cssid", "ssid", "devno"),
    "css": ("cssid", "ssid", "devno", "channel_dev_addr", "capability:mdev_types"),
    "ap_card": ("ap-adapter",),
    "ap_queue": ("ap-adapter", "ap-domain"),
    "ap_matrix": ("capability:mdev_types",),
}
_REPEATED = frozenset({"feature", "attr"})


def _key(child: ET.Element) -> str:
    return f"capability:{child.get('type', '')}" if child.tag == "capability" else child.tag


def printed_children(cap_type: str, el: ET.Element) -> list[ET.Element]:
    """The children libvirt reads (the first of each, all features/attrs), in its printed order."""
    order = PRINTED_ORDER.get(cap_type)
    if order is None:
        return list(el)
    seen: set[str] = set()
    kept: list[ET.Element] = []
    for child in el:
        key = _key(child)
        if key not in order or (key in seen and key not in _REPEATED):
            continue
        if not child.attrib and not len(child) and not (child.text or "") and child.tag != "pci-express":
            continue  # a text field read as an empty string, which libvirt takes as absent
        seen.add(key)
        kept.append(child)

    return sorted(kept, key=lambda child: order.index(_key(child)))


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


def _usb_device(children: list[ET.Element]) -> list[str]:
    lines: list[str] = []
    for child in children:
        line = element_lines(child)
        if child.tag in ("product", "vendor") and len(line) == 1 and line[0].endswith("/>"):
            # virNodeDeviceCapUSBDevDefFormat closes a nameless id with " />".
            line = [line[0][:-2] + " />"]
        lines.extend(line)
    return lines


def _mdev(children: list[ET.Element]) -> list[str]:
    """virNodeDeviceCapMdevDefFormat: type id, uuid, IOMMU group (0 unless told), attributes."""
    lines: list[str] = []
    group = "0"
    for child in children:
        if child.tag == "type":
            lines.append(f"<type id='{escape_text(child.get('id', ''))}'/>")
        elif child.tag == "uuid":
            lines.extend(element_lines(child))
        elif child.tag == "iommuGroup":
            group = child.get("number", "0")
    lines.append(f"<iommuGroup number='{group}'/>")
    for attr in (child for child in children if child.tag == "attr"):
        name, value = attr.get("name"), attr.get("value")
        if name and value:  # libvirt skips an attribute without both
            lines.append(f"<attr name='{name}' value='{value}'/>")
    return lines


# Storage sizes virNodeDevCapStorageParseXML never reads, so never prints back.
_STORAGE_UNREAD = ("logical_block_size", "num_blocks")


def _storage(children: list[ET.Element]) -> list[str]:
    # A removable device prints its media size inside, and no <size>.
    removable = any(_key(child) == "capability:removable" for child in children)
    lines: list[str] = []
    for child in children:
        if child.tag == "size" and removable:
            continue
        if child.tag == "capability":
            child = _without(child, _STORAGE_UNREAD)
        lines.extend(element_lines(child))
    return lines


def _without(el: ET.Element, tags: tuple[str, ...]) -> ET.Element:
    copy = ET.Element(el.tag, el.attrib)
    copy.text = el.text
    copy.extend([child for child in el if child.tag not in tags])
    return copy


def body_lines(cap_type: str, el: ET.Element) -> tuple[str, ...]:
    """The inner lines of a ``<capability type=cap_type>`` as libvirt prints them."""
    children = printed_children(cap_type, el)
    if cap_type == "storage":
        return tuple(_storage(children))
    if cap_type == "usb_device":
        return tuple(_usb_device(children))
    if cap_type == "mdev":
        return tuple(_mdev(children))
    lines: list[str] = []
    for child in children:
        lines.extend(element_lines(child))
    return tuple(lines)


def nested_types(cap_type: str, el: ET.Element) -> frozenset[str]:
    """The nested capability types a listing of this device also matches."""
    listed = LISTED_NESTED.get(cap_type, frozenset())
    return frozenset(t for sub in el.findall("capability") if (t := sub.get("type", "")) in listed)
