"""A PCI capability's nested parts, rewritten as virNodeDeviceCapPCIDefFormat prints them.

SR-IOV functions and IOMMU group members are PCI addresses, read in any base
and printed as ``domain='0x0000' bus='0x02' slot='0x10' function='0x7'``; a
virt_functions maxCount of 0 is not printed; an IOMMU group without members
is not printed; a PCIe link prints its attributes as validity, port, speed,
width; of several header-type capabilities only the first counts; mediated
device types print name, deviceAPI and availableInstances, and an empty list
is not printed; VPD fields print in libvirt's order.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C

from ...errors import report
from .nodedev_fields import as_int32, prop_uint, require_capability_types, strtol, strtoul

FROM = C.VIR_FROM_NODEDEV
_HEADER_TYPES = ("pci-bridge", "cardbus-bridge")  # virPCIHeader's printed values


def _address(el: ET.Element) -> ET.Element:
    """virPCIDeviceAddressParseXML (any base; all zero means absent), printed in libvirt's form."""
    d, b, s, f = (prop_uint(el, attr, 0) or 0 for attr in ("domain", "bus", "slot", "function"))
    if d or b or s:  # an all-zero address is taken as unset, not checked
        problem = None
        if b > 0xFF:
            problem = f"Invalid PCI address bus='0x{b:x}', must be <= 0xFF"
        elif s > 0x1F:
            problem = f"Invalid PCI address slot='0x{s:x}', must be <= 0x1F"
        elif f > 7:
            problem = f"Invalid PCI address function=0x{f:x}, must be <= 7"
        if problem is not None:
            raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_NONE, problem)
    attrs = {"domain": f"0x{d:04x}", "bus": f"0x{b:02x}", "slot": f"0x{s:02x}", "function": f"0x{f}"}
    return ET.Element("address", attrs)


def _with_addresses(el: ET.Element, addresses: list[ET.Element], attrs: dict[str, str]) -> ET.Element:
    out = ET.Element(el.tag, attrs)
    out.extend([_address(a) for a in addresses])
    return out


def _phys_function(el: ET.Element) -> ET.Element:
    first = el.find("address")
    if first is None:
        raise report(C.VIR_ERR_XML_ERROR, FROM, "Missing address in 'phys_function' capability")
    return _with_addresses(el, [first], {"type": "phys_function"})


def _virt_functions(el: ET.Element) -> ET.Element:
    attrs = {"type": "virt_functions"}
    text = el.get("maxCount")
    if text is not None:
        count = strtoul(text, 10)
        if count is None:
            raise report(C.VIR_ERR_XML_ERROR, FROM, "Malformed 'maxCount' parameter")
        if count:
            attrs["maxCount"] = str(count)
    return _with_addresses(el, el.findall("address"), attrs)


def _iommu_group(el: ET.Element) -> ET.Element | None:
    number = prop_uint(el, "number", 10, required=True)
    members = [_address(a) for a in el.findall("address")]
    if not members:
        return None  # printed only with members
    out = ET.Element("iommuGroup", {"number": str(as_int32(number or 0))})  # printed with %d
    out.extend(members)
    return out


_LINK_SPEEDS = ("", "2.5", "5", "8", "16", "32", "64")  # virPCIELinkSpeed


def _pci_express(el: ET.Element) -> ET.Element:
    """virPCIEDeviceInfoParseXML: the 'cap' and 'sta' links, printed validity, port, speed, width."""
    out = ET.Element("pci-express")
    for validity in ("cap", "sta"):
        link = el.find(f"link[@validity='{validity}']")
        if link is None:
            continue
        width = prop_uint(link, "width", 0, required=True)
        speed = link.get("speed")
        if speed is not None and speed not in _LINK_SPEEDS:
            detail = f"Invalid value for attribute 'speed' in element 'link': '{speed}'."
            raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)
        port = _prop_int(link, "port")
        attrs = {"validity": validity}
        if port is not None and port >= 0:
            attrs["port"] = str(port)
        if speed:
            attrs["speed"] = speed
        attrs["width"] = str(as_int32(width or 0))  # printed with %d
        ET.SubElement(out, "link", attrs)
    return out


def _prop_int(node: ET.Element, attr: str) -> int | None:
    """virXMLPropInt, base 10."""
    text = node.get(attr)
    if text is None:
        return None
    value = strtol(text, 10)
    if value is None:
        detail = (
            f"Invalid value for attribute '{attr}' in element '{node.tag}': '{text}'. Expected integer value"
        )
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)
    return value


def mdev_types(el: ET.Element) -> ET.Element | None:
    """virNodeDevCapMdevTypesParseXML, printed: each type's name, deviceAPI, availableInstances."""
    out = ET.Element("capability", {"type": "mdev_types"})
    for kind in el.findall("type"):
        type_id = kind.get("id", "")
        if not type_id:
            raise report(
                C.VIR_ERR_XML_ERROR, FROM, "missing 'id' attribute for mediated device's <type> element"
            )
        api = kind.findtext("deviceAPI")
        if not api:
            raise report(
                C.VIR_ERR_XML_ERROR, FROM, f"missing device API for mediated device type '{type_id}'"
            )
        instances = kind.find("availableInstances")
        count = strtoul("".join(instances.itertext()), 10) if instances is not None else None
        if count is None:
            raise report(
                C.VIR_ERR_XML_ERROR,
                FROM,
                f"missing number of available instances for mediated device type '{type_id}'",
            )
        copy = ET.SubElement(out, "type", {"id": type_id})
        name = kind.findtext("name")
        if name:
            ET.SubElement(copy, "name").text = name
        ET.SubElement(copy, "deviceAPI").text = api
        ET.SubElement(copy, "availableInstances").text = str(count)
    return out if len(out) else None


_VPD_READONLY = ("change_level", "manufacture_id", "part_number", "serial_number")  # printed order


def _custom_fields(fields: ET.Element, tag: str) -> list[ET.Element]:
    """vendor_field/system_field by one-character index: first position, last value wins."""
    by_index: dict[str, str] = {}
    for field in fields.findall(f"{tag}[@index]"):
        index = field.get("index", "")
        if len(index) != 1 or not field.text or not ("A" <= index <= "Z" or "0" <= index <= "9"):
            continue  # libvirt reports or logs it and goes on
        by_index[index] = field.text
    out = []
    for index, value in by_index.items():
        node = ET.Element(tag, {"index": index})
        node.text = value
        out.append(node)
    return out


def _vpd(el: ET.Element) -> ET.Element:
    """virNodeDeviceCapVPDParseXML, printed: name, then read-only and read-write fields."""
    name = el.findtext("name")
    if not name:
        raise report(C.VIR_ERR_XML_ERROR, FROM, "Could not read a device name from the <name> element")
    sections: dict[str, ET.Element] = {}
    for fields in el.findall("fields[@access]"):
        access = fields.get("access", "")
        if access == "readonly":
            tags: tuple[str, ...] = _VPD_READONLY
        elif access == "readwrite":
            tags = ("asset_tag",)
        else:
            raise report(C.VIR_ERR_XML_ERROR, FROM, f"Unsupported VPD field access type specified {access}")
        section = ET.Element("fields", {"access": access})
        values = {tag: fields.findtext(tag) for tag in tags}
        system = _custom_fields(fields, "system_field") if access == "readwrite" else []
        for field in [f for f in system if f.get("index") == "A"]:
            values["asset_tag"] = field.text  # keyword YA is the asset tag
            system.remove(field)
        for tag in tags:
            if values[tag]:
                ET.SubElement(section, tag).text = values[tag]
        section.extend(_custom_fields(fields, "vendor_field"))
        section.extend(system)
        sections[access] = section  # a later section of one access replaces the earlier
    out = ET.Element("capability", {"type": "vpd"})
    ET.SubElement(out, "name").text = name
    out.extend([sections[a] for a in ("readonly", "readwrite") if a in sections])
    return out


def _numa(el: ET.Element, name: str) -> ET.Element | None:
    """virXPathInt on the node attribute: printed when it is 0 or more."""
    text = el.get("node", "")
    if text == "":
        return None
    value = strtol(text, 10)
    if value is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"invalid NUMA node ID supplied for '{name}'")
    return ET.Element("numa", {"node": str(value)}) if value >= 0 else None


def normalise_pci(el: ET.Element, name: str) -> None:
    """Rewrite the nested parts of a PCI capability in place."""
    header_seen = False
    require_capability_types(el)
    for child in list(el):
        kind = child.get("type") if child.tag == "capability" else None
        replacement: ET.Element | None = child
        if kind == "phys_function":
            replacement = _phys_function(child)
        elif kind == "virt_functions":
            replacement = _virt_functions(child)
        elif kind == "mdev_types":
            replacement = mdev_types(child)
        elif kind == "vpd":
            replacement = _vpd(child)
        elif kind in _HEADER_TYPES:
            replacement = None if header_seen else ET.Element("capability", {"type": kind})
            header_seen = True
        elif child.tag == "iommuGroup":
            replacement = _iommu_group(child)
        elif child.tag == "numa":
            replacement = _numa(child, name)
        elif child.tag == "pci-express":
            replacement = _pci_express(child)
        if replacement is not child:
            index = list(el).index(child)
            el.remove(child)
            if replacement is not None:
                el.insert(index, replacement)


def normalise_nested(cap_type: str, el: ET.Element, name: str) -> None:
    """The nested parts of a PCI, CSS or AP matrix capability, as libvirt prints them."""
    if cap_type == "pci":
        normalise_pci(el, name)
    elif cap_type in ("css", "ap_matrix"):
        require_capability_types(el)
        for child in el.findall("capability[@type='mdev_types']"):
            index = list(el).index(child)
            el.remove(child)
            replacement = mdev_types(child)
            if replacement is not None:
                el.insert(index, replacement)
