"""Node devices of test:///default: the model, libvirt's XML, and the default devices.

libvirt's test driver knows four devices (src/test/test_driver.c's default
node): ``computer`` (a system), the fibre-channel SCSI hosts ``scsi_host1`` and
``scsi_host2`` (vport capable) and the vHBA ``scsi_host11``.  Creating a device
mocks a vHBA: a copy of ``scsi_host11`` named ``scsi_host12`` with the new
WWNs.  The XML is what node_device_conf.c prints (what the real daemon answers:
vport counts read back as 0).  Errors are VIR_FROM_NODEDEV.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from virtwire.protocol.generated import constants as C

from ...errors import report
from ...xmlschema import validate_against_schema
from .nodedev_caps import UNPARSED_TYPES, body_lines, nested_types
from .nodedev_fields import as_int32, check_and_normalise, strtol, strtoul
from .nodedev_pci import normalise_nested
from .objxml import escape_text, parse_document, xpath_string

FROM = C.VIR_FROM_NODEDEV

# virNodeDevCapType names; a name's index is its bit in VIR_CONNECT_LIST_NODE_DEVICES_CAP_*.
CAP_TYPES = (
    "system",
    "pci",
    "usb_device",
    "usb",
    "net",
    "scsi_host",
    "scsi_target",
    "scsi",
    "storage",
    "fc_host",
    "vports",
    "scsi_generic",
    "drm",
    "mdev_types",
    "mdev",
    "ccw",
    "css",
    "vdpa",
    "ap_card",
    "ap_queue",
    "ap_matrix",
    "vpd",
)
CAP_FILTERS = (1 << len(CAP_TYPES)) - 1  # VIR_CONNECT_LIST_NODE_DEVICES_FILTERS_CAP


@dataclass(slots=True)
class ScsiHost:
    """A scsi_host capability (virNodeDevCapSCSIHost)."""

    host: int
    unique_id: int = -1
    fc_host: bool = False
    wwnn: str | None = None
    wwpn: str | None = None
    fabric_wwn: str | None = None
    vport_ops: bool = False
    max_vports: int = 0
    vports: int = 0

    def format(self) -> list[str]:
        lines = [f"<host>{self.host}</host>"]
        if self.unique_id != -1:
            lines.append(f"<unique_id>{self.unique_id}</unique_id>")
        if self.fc_host:
            lines.append("<capability type='fc_host'>")
            for tag, value in (("wwnn", self.wwnn), ("wwpn", self.wwpn), ("fabric_wwn", self.fabric_wwn)):
                if value is not None:
                    lines.append(f"  <{tag}>{escape_text(value)}</{tag}>")
            lines.append("</capability>")
        if self.vport_ops:
            lines.append("<capability type='vport_ops'>")
            lines.append(f"  <max_vports>{self.max_vports}</max_vports>")
            lines.append(f"  <vports>{self.vports}</vports>")
            lines.append("</capability>")
        return lines


@dataclass(slots=True)
class NodeCap:
    """One ``<capability>``: a SCSI host we model, or another type kept as printed."""

    type: str
    scsi_host: ScsiHost | None = None
    body: tuple[str, ...] = ()  # the capability's inner lines, unindented
    nested: frozenset[str] = frozenset()  # nested types listings match (mdev_types, vpd)

    def format(self) -> list[str]:
        inner = self.scsi_host.format() if self.scsi_host is not None else list(self.body)
        return [f"<capability type='{self.type}'>", *(f"  {line}" for line in inner), "</capability>"]


@dataclass(slots=True)
class NodeDevice:
    name: str
    parent: str | None
    caps: list[NodeCap] = field(default_factory=list)
    parent_wwnn: str | None = None
    parent_wwpn: str | None = None
    parent_fabric_wwn: str | None = None
    sysfs_path: str | None = None
    devnode: str | None = None
    devlinks: tuple[str, ...] = ()

    def format(self) -> str:
        """virNodeDeviceDefFormat (a <driver> is never parsed, so never printed)."""
        lines = ["<device>", f"  <name>{escape_text(self.name)}</name>"]
        if self.sysfs_path is not None:
            lines.append(f"  <path>{escape_text(self.sysfs_path)}</path>")
        if self.devnode is not None:
            lines.append(f"  <devnode type='dev'>{escape_text(self.devnode)}</devnode>")
        lines.extend(f"  <devnode type='link'>{escape_text(link)}</devnode>" for link in self.devlinks)
        if self.parent is not None:
            lines.append(f"  <parent>{escape_text(self.parent)}</parent>")
        for cap in self.caps:
            lines.extend(f"  {line}" for line in cap.format())
        lines.append("</device>")
        return "\n".join(lines) + "\n"

    def has_cap(self, cap_type: str) -> bool:
        """virNodeDeviceObjHasCap: a SCSI host also counts as fc_host / vports when it is one."""
        for cap in self.caps:
            if cap.type == cap_type or cap_type in cap.nested:
                return True
            host = cap.scsi_host
            if host is not None and (
                (cap_type == "fc_host" and host.fc_host) or (cap_type == "vports" and host.vport_ops)
            ):
                return True
        return False

    def fc_wwns(self) -> tuple[str | None, str | None]:
        """virNodeDeviceGetWWNs."""
        for cap in self.caps:
            if cap.scsi_host is not None and cap.scsi_host.fc_host:
                return cap.scsi_host.wwnn, cap.scsi_host.wwpn
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "Device is not a fibre channel HBA")

    def copy(self) -> NodeDevice:
        caps = [replace(c, scsi_host=replace(c.scsi_host) if c.scsi_host else None) for c in self.caps]
        return replace(self, caps=caps)


def _fc(host: int, unique_id: int, wwnn: str, wwpn: str, fabric: str, vport_ops: bool) -> NodeCap:
    return NodeCap(
        "scsi_host",
        ScsiHost(host, unique_id, True, wwnn, wwpn, fabric, vport_ops=vport_ops),
    )


def default_devices() -> list[NodeDevice]:
    """test:///default's devices, in the order its listings give them."""
    system = NodeCap(
        "system",
        body=(
            "<hardware>",
            "  <vendor>Libvirt</vendor>",
            "  <version>Test driver</version>",
            "  <serial>123456</serial>",
            "  <uuid>11111111-2222-3333-4444-555555555555</uuid>",
            "</hardware>",
            "<firmware>",
            "  <vendor>Libvirt</vendor>",
            "  <version>Test Driver</version>",
            "  <release_date>01/22/2007</release_date>",
            "</firmware>",
        ),
    )
    return [
        NodeDevice(
            "scsi_host1",
            "computer",
            [_fc(1, 0, "2000000012341234", "1000000012341234", "2000000043214321", True)],
        ),
        NodeDevice(
            "scsi_host2",
            "computer",
            [_fc(2, 1, "2000000056785678", "1000000056785678", "2000000087658765", True)],
        ),
        NodeDevice(
            "scsi_host11",
            "scsi_host1",
            [_fc(11, 10, "2000000034563456", "1000000034563456", "2000000043214321", False)],
        ),
        NodeDevice("computer", None, [system]),
    ]


def _parse_parent(root: ET.Element, device: NodeDevice) -> None:
    """The <parent> and its WWN attributes (both WWNs or neither)."""
    device.parent = xpath_string(root, "parent")
    parent_el = root.find("parent")
    if parent_el is not None:
        device.parent_wwnn = parent_el.get("wwnn") or None
        device.parent_wwpn = parent_el.get("wwpn") or None
        device.parent_fabric_wwn = parent_el.get("fabric_wwn") or None
    if device.parent_wwnn and not device.parent_wwpn:
        raise report(
            C.VIR_ERR_XML_ERROR,
            FROM,
            f"when providing parent wwnn='{device.parent_wwnn}', the wwpn must also be provided",
        )
    if device.parent_wwpn and not device.parent_wwnn:
        raise report(
            C.VIR_ERR_XML_ERROR,
            FROM,
            f"when providing parent wwpn='{device.parent_wwpn}', the wwnn must also be provided",
        )


def parse_create_xml(xml: str, *, validate: bool = False) -> NodeDevice:
    """virNodeDeviceDefParse(CREATE_DEVICE) for what the test driver can create (SCSI hosts).

    ``validate``: check it against nodedev.rng first (VIR_NODE_DEVICE_CREATE_XML_VALIDATE).
    """
    root = parse_document(xml, "(node_device_definition)", "device", FROM)
    if validate:
        validate_against_schema(xml, "nodedev.rng")
    device = NodeDevice("new device", None)
    _parse_paths(root, device)
    _parse_parent(root, device)
    caps = root.findall("capability")
    if not caps:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "no device capabilities for 'new device'")
    for cap_el in caps:
        device.caps.append(_parse_cap(cap_el))
    return device


def _parse_cap(el: ET.Element, name: str = "new device") -> NodeCap:
    cap_type = el.get("type")
    if cap_type is None:
        raise report(
            C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, "Missing required attribute 'type' in element 'capability'"
        )
    if cap_type not in CAP_TYPES:
        raise report(
            C.VIR_ERR_XML_ERROR,
            C.VIR_FROM_XML,
            f"Invalid value for attribute 'type' in element 'capability': '{cap_type}'.",
        )
    if cap_type in UNPARSED_TYPES:
        raise report(
            C.VIR_ERR_INTERNAL_ERROR,
            FROM,
            f"unknown capability type '{CAP_TYPES.index(cap_type)}' for '{name}'",
        )
    if cap_type == "system":
        return _system_cap(el, name)
    if cap_type != "scsi_host":
        # Creating anything but a vHBA fails later on its WWNs (the test driver's only kind).
        nested = nested_types(cap_type, el)  # flagged even when printed empty
        check_and_normalise(cap_type, el, name)
        normalise_nested(cap_type, el, name)
        return NodeCap(cap_type, body=body_lines(cap_type, el), nested=nested)
    host = ScsiHost(host=0)
    for sub in el.findall("capability"):
        sub_type = sub.get("type")
        if sub_type is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"missing SCSI host capability type for '{name}'")
        if sub_type == "vport_ops":
            host.vport_ops = True
        elif sub_type == "fc_host":
            host.fc_host = True
            host.wwnn = xpath_string(sub, "wwnn")
            if host.wwnn is None:
                # The test driver passes no virt type, so libvirt cannot generate one.
                raise report(
                    C.VIR_ERR_INTERNAL_ERROR,
                    FROM,
                    f"no WWNN supplied for '{name}', and auto-generation failed",
                )
            host.wwpn = xpath_string(sub, "wwpn")
            if host.wwpn is None:
                raise report(
                    C.VIR_ERR_INTERNAL_ERROR,
                    FROM,
                    f"no WWPN supplied for '{name}', and auto-generation failed",
                )
            host.fabric_wwn = xpath_string(sub, "fabric_wwn")
        else:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR,
                FROM,
                f"unknown SCSI host capability type '{sub_type}' for '{name}'",
            )
    return NodeCap("scsi_host", host)


def _system_cap(el: ET.Element, name: str) -> NodeCap:
    """virNodeDevCapSystemParseXML, kept as virNodeDeviceCapSystemDefFormat prints it."""
    uuid_text = xpath_string(el, "hardware/uuid")
    if uuid_text is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"no system UUID supplied for '{name}'")
    try:
        uuid = str(uuidlib.UUID(uuid_text.strip()))
    except ValueError:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"malformed uuid element for '{name}'") from None
    body: list[str] = []
    product = xpath_string(el, "product")
    if product is not None:
        body.append(f"<product>{escape_text(product)}</product>")
    body.append("<hardware>")
    for tag in ("vendor", "version", "serial"):
        value = xpath_string(el, f"hardware/{tag}")
        if value is not None:
            body.append(f"  <{tag}>{escape_text(value)}</{tag}>")
    body += [f"  <uuid>{uuid}</uuid>", "</hardware>", "<firmware>"]
    for tag in ("vendor", "version", "release_date"):
        value = xpath_string(el, f"firmware/{tag}")
        if value is not None:
            body.append(f"  <{tag}>{escape_text(value)}</{tag}>")
    body.append("</firmware>")
    return NodeCap("system", body=tuple(body))


def _host_number(el: ET.Element, path: str, name: str, missing: str | None, invalid: str) -> int | None:
    """The host number (virXPathUInt, printed %d) or, with no missing message, unique_id (an int)."""
    text = xpath_string(el, path)
    if text is None:
        if missing is None:
            return None
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, missing.format(name))
    value = strtol(text, 10) if missing is None else strtoul(text, 10)
    if value is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, invalid.format(name))
    return as_int32(value)


def parse_node_device_xml(xml: str) -> NodeDevice:
    """virNodeDeviceDefParse(EXISTING_DEVICE), as the test driver reads a node file's <device>.

    system and scsi_host are modelled; the other types are checked (nodedev_fields,
    nodedev_pci) and kept as libvirt prints them (nodedev_caps).
    """
    root = parse_document(xml, "(node_device_definition)", "device", FROM)
    name = xpath_string(root, "name")
    if name is None:
        raise report(C.VIR_ERR_NO_NAME, FROM)
    device = NodeDevice(name, None)
    _parse_paths(root, device)
    _parse_parent(root, device)
    caps = root.findall("capability")
    if not caps:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"no device capabilities for '{name}'")
    for cap_el in caps:
        cap_type = cap_el.get("type")
        if cap_type == "system":
            device.caps.append(_system_cap(cap_el, name))
        elif cap_type == "scsi_host":
            host = _host_number(
                cap_el,
                "host",
                name,
                "no SCSI host ID supplied for '{}'",
                "invalid SCSI host ID supplied for '{}'",
            )
            unique = _host_number(cap_el, "unique_id", name, None, "invalid unique_id supplied for '{}'")
            cap = _parse_cap(cap_el, name)
            assert cap.scsi_host is not None
            cap.scsi_host.host = host if host is not None else 0
            cap.scsi_host.unique_id = unique if unique is not None else -1
            device.caps.append(cap)
        else:
            device.caps.append(_parse_cap(cap_el, name))
    return device


def _parse_paths(root: ET.Element, device: NodeDevice) -> None:
    """The sysfs <path> and the <devnode>s (type 'dev' or 'link', the last 'dev' wins)."""
    device.sysfs_path = xpath_string(root, "path")
    links: list[str] = []
    for node in root.findall("devnode"):
        kind = node.get("type")
        if kind is None:
            raise report(
                C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, "Missing required attribute 'type' in element 'devnode'"
            )
        if kind not in ("dev", "link"):
            raise report(
                C.VIR_ERR_XML_ERROR,
                C.VIR_FROM_XML,
                f"Invalid value for attribute 'type' in element 'devnode': '{kind}'.",
            )
        text = node.text or ""
        if kind == "dev":
            device.devnode = text
        else:
            links.append(text)
    device.devlinks = tuple(links)
