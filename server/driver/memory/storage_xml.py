"""Storage pool and volume XML: parsed and printed as libvirt 9.0's storage_conf.c does.

``parse_pool`` follows virStoragePoolDefParseXML (checks, their order, their
errors; the per-type source options of its ``poolTypeInfo`` table) and
``format_pool`` virStoragePoolDefFormatBuf; ``parse_volume``/``format_volume``
follow virStorageVolDefParseXML/virStorageVolDefFormat.  Errors of the
storage_conf code are VIR_FROM_STORAGE; xml.c's attribute and root checks are
VIR_FROM_XML; virScaleInteger's are VIR_FROM_NONE, as libvirt reports them.

Not modelled (accepted documents keep only what is listed in the dataclasses):
pool ``<auth>``, fc_host adapters' extra attributes, volume ``<encryption>``.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from virtwire.protocol.generated import constants as C

from ...errors import report, unsupported_flags
from ...xmlschema import validate_against_schema

FROM = C.VIR_FROM_STORAGE

POOL_TYPES = (
    "dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi",
    "mpath", "rbd", "sheepdog", "gluster", "zfs", "vstorage",
)  # fmt: skip
VOL_TYPES = ("file", "block", "dir", "network", "netdir", "ploop")
FILE_FORMATS = (
    "none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd",
    "ploop", "cow", "qcow", "qcow2", "qed", "vmdk",
)  # fmt: skip
DISK_VOL_FORMATS = ("none", "linux", "fat16", "fat32", "linux-swap", "linux-lvm", "linux-raid", "extended")
VOL_FEATURES = ("lazy_refcounts", "extended_l2")
REFRESH_ALLOCATION = ("default", "capacity")

# Which source parts a pool type has (storage_conf.c's VIR_STORAGE_POOL_SOURCE_*).
HOST, DEVICE, DIR, ADAPTER, NAME, INITIATOR, NETWORK = (1 << n for n in range(7))


@dataclass(frozen=True, slots=True)
class PoolKind:
    """One row of storage_conf.c's poolTypeInfo."""

    source: int = 0
    formats: tuple[str, ...] = ()  # pool source formats (index = libvirt's enum value)
    default_format: int = 0
    vol_formats: tuple[str, ...] = ()  # empty: volumes have no <format>
    vol_default_format: int = 0
    vol_type: str = "block"  # testStorageVolumeTypeForPool


_FS_FORMATS = (
    "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat",
    "hfs+", "xfs", "ocfs2", "vmfs",
)  # fmt: skip
_RAW = FILE_FORMATS.index("raw")

POOL_KINDS: dict[str, PoolKind] = {
    "logical": PoolKind(NAME | DEVICE, ("unknown", "lvm2"), 1),
    "dir": PoolKind(0, vol_formats=FILE_FORMATS, vol_default_format=_RAW, vol_type="file"),
    "fs": PoolKind(DEVICE, _FS_FORMATS, 0, FILE_FORMATS, _RAW, "file"),
    "netfs": PoolKind(HOST | DIR, ("auto", "nfs", "glusterfs", "cifs"), 0, FILE_FORMATS, _RAW, "file"),
    "iscsi": PoolKind(HOST | DEVICE | INITIATOR),
    "iscsi-direct": PoolKind(HOST | DEVICE | NETWORK | INITIATOR, vol_type="network"),
    "scsi": PoolKind(ADAPTER),
    # rbd's volume options have no lastFormat: its <format> is printed, never listed.
    "rbd": PoolKind(HOST | NETWORK | NAME, (), 0, FILE_FORMATS, _RAW, "network"),
    "sheepdog": PoolKind(HOST | NETWORK | NAME, vol_type="network"),
    "gluster": PoolKind(HOST | NETWORK | NAME | DIR, (), 0, FILE_FORMATS, _RAW, "network"),
    "mpath": PoolKind(),
    "disk": PoolKind(
        DEVICE, ("unknown", "dos", "dvh", "gpt", "mac", "bsd", "pc98", "sun", "lvm2"), 0, DISK_VOL_FORMATS, 0
    ),
    "zfs": PoolKind(NAME | DEVICE),
    "vstorage": PoolKind(NAME, vol_formats=FILE_FORMATS, vol_default_format=_RAW, vol_type="file"),
}  # fmt: skip

# Pool types without a <target> (not local block devices nor files).
_NO_TARGET = frozenset({"rbd", "sheepdog", "gluster", "iscsi-direct"})


def xml_error(detail: str, domain: int = FROM) -> Exception:
    return report(C.VIR_ERR_XML_ERROR, domain, detail)


def unsupported(detail: str) -> Exception:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, detail)


def escape(text: str) -> str:
    """virBufferEscapeString's escaping."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("'", "&apos;").replace('"', "&quot;")


def parse_document(xml: str, root: str, label: str) -> ET.Element:
    """The root element of ``xml``, which must be ``root``; libvirt's errors otherwise."""
    try:
        element = ET.fromstring(xml.encode("utf-8", "surrogateescape"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        detail = f"({label}):{line}: {exc}"
        raise report(C.VIR_ERR_XML_DETAIL, FROM, detail) from None
    if element.tag != root:
        raise xml_error(f"expecting root element of '{root}', not '{element.tag}'", C.VIR_FROM_XML)
    return element


def _text(element: ET.Element, path: str) -> str | None:
    """XPath ``string(path)``: the text of the first match, None when absent or empty."""
    found = element.find(path)
    if found is None:
        return None
    text = "".join(found.itertext())
    return text or None


def _attr(element: ET.Element, path: str, name: str) -> str | None:
    found = element.find(path)
    if found is None:
        return None
    return found.get(name) or None


def sanitize_path(path: str) -> str:
    """virFileSanitizePath: collapse '//' runs and drop a trailing '/' (keeping a leading '//')."""
    uri = path.find("://")
    if uri >= 0 and path.index("/") > uri:
        return path  # URIs are left alone
    leading = "//" if path.startswith("//") and not path.startswith("///") else ""
    body = path[len(leading) :]
    while "//" in body:
        body = body.replace("//", "/")
    if len(body) > 1 and body.endswith("/"):
        body = body[:-1]
    return leading + body


def _tristate(element: ET.Element, name: str, owner: str) -> str | None:
    value = element.get(name)
    if value is None:
        return None
    if value not in ("yes", "no"):
        raise xml_error(
            f"Invalid value for attribute '{name}' in element '{owner}': '{value}'.", C.VIR_FROM_XML
        )
    return value


# --- permissions ------------------------------------------------------------------------------


@dataclass(slots=True)
class Perms:
    mode: int | None = None
    owner: int | None = None
    group: int | None = None
    label: str | None = None

    @property
    def empty(self) -> bool:
        return self.mode is None and self.owner is None and self.group is None and self.label is None


def _parse_perms(element: ET.Element | None) -> Perms:
    if element is None:
        return Perms()
    perms = Perms()
    mode = _text(element, "mode")
    if mode is not None:
        try:
            value = int(mode.strip(), 8)
        except ValueError:
            value = -1
        if value < 0 or value & ~0o777:
            raise xml_error("malformed octal mode")
        perms.mode = value
    for tag in ("owner", "group"):
        if element.find(tag) is None:
            continue
        text = (_text(element, tag) or "").strip()
        try:
            number = int(text)
        except ValueError:
            raise xml_error(f"malformed {tag} element") from None
        if number != -1 and not 0 <= number < 1 << 32:
            raise xml_error(f"malformed {tag} element")
        setattr(perms, tag, None if number == -1 else number)
    perms.label = _text(element, "label")
    return perms


def _format_perms(perms: Perms, indent: str) -> list[str]:
    if perms.empty:
        return []
    inner = indent + "  "
    lines = [f"{indent}<permissions>\n"]
    if perms.mode is not None:
        lines.append(f"{inner}<mode>0{perms.mode:o}</mode>\n")
    if perms.owner is not None:
        lines.append(f"{inner}<owner>{_c_int(perms.owner)}</owner>\n")
    if perms.group is not None:
        lines.append(f"{inner}<group>{_c_int(perms.group)}</group>\n")
    if perms.label is not None:
        lines.append(f"{inner}<label>{escape(perms.label)}</label>\n")
    lines.append(f"{indent}</permissions>\n")
    return lines


def _c_int(value: int) -> int:
    """``(int) uid``: ids above INT_MAX print negative, as libvirt's cast does."""
    return value - (1 << 32) if value >= 1 << 31 else value


# --- pools ------------------------------------------------------------------------------------


@dataclass(slots=True)
class PoolSource:
    hosts: list[tuple[str, int]] = field(default_factory=list)  # (name, port; 0 = none)
    devices: list[tuple[str, str | None]] = field(default_factory=list)  # (path, part_separator)
    dir: str | None = None
    adapter: dict[str, str] | None = None
    name: str | None = None
    initiator: str | None = None
    format: int = 0
    protocol_ver: str | None = None
    vendor: str | None = None
    product: str | None = None


@dataclass(slots=True)
class PoolDef:
    """A parsed ``<pool>`` (virStoragePoolDef)."""

    type: str
    name: str
    uuid: bytes
    uuid_given: bool
    source: PoolSource
    target_path: str | None = None
    target_perms: Perms = field(default_factory=Perms)
    cow: str | None = None
    refresh_allocation: str | None = None

    @property
    def kind(self) -> PoolKind:
        return POOL_KINDS[self.type]


def parse_pool_source(node: ET.Element, pool_type: str) -> PoolSource:
    """virStoragePoolDefParseSource."""
    kind = POOL_KINDS[pool_type]
    source = PoolSource()
    source.name = _text(node, "name")
    if pool_type == "rbd" and source.name is None:
        raise xml_error("element 'name' is mandatory for RBD pool")
    if kind.formats:
        fmt = _attr(node, "format", "type")
        if fmt is None:
            source.format = kind.default_format
        elif fmt in kind.formats:
            source.format = kind.formats.index(fmt)
        else:
            raise unsupported(f"unknown pool format type {fmt}")
    for host in node.findall("host"):
        name = host.get("name")
        if not name:
            raise xml_error("missing storage pool host name")
        port_text = host.get("port")
        port = 0
        if port_text is not None:
            try:
                port = int(port_text)
            except ValueError:
                detail = f"Invalid value for attribute 'port' in element 'host': '{port_text}'."
                raise xml_error(f"{detail} Expected integer value", C.VIR_FROM_XML) from None
        source.hosts.append((name, port))
    initiator = node.find("initiator/iqn")
    if initiator is not None:
        source.initiator = initiator.get("name")
    for device in node.findall("device"):
        path = device.get("path")
        if not path:
            raise xml_error("missing storage pool source device path")
        source.devices.append((path, _tristate(device, "part_separator", "device")))
    directory = _attr(node, "dir", "path")
    if directory is not None:
        source.dir = sanitize_path(directory)
    if source.dir is None and pool_type == "gluster":
        source.dir = "/"
    adapter = node.find("adapter")
    if adapter is not None:
        source.adapter = _parse_adapter(adapter)
    if node.find("auth") is not None:
        raise unsupported("storage pool authentication is not supported by this server")
    source.protocol_ver = _attr(node, "protocol", "ver")
    if source.protocol_ver is not None:
        if pool_type != "netfs" or source.format not in (0, 1):
            fmt_name = POOL_KINDS["netfs"].formats[source.format] if pool_type == "netfs" else "(null)"
            raise unsupported(f"storage pool protocol ver unsupported for pool type '{fmt_name}'")
        if "," in source.protocol_ver:
            raise report(
                C.VIR_ERR_XML_DETAIL,
                FROM,
                f"storage pool protocol ver '{source.protocol_ver}' must not contain ','",
            )
    source.vendor = _attr(node, "vendor", "name")
    source.product = _attr(node, "product", "name")
    return source


# The order virStorageAdapterFormat prints them in.
_ADAPTER_ATTRS = (
    "type", "name", "parent", "parent_wwnn", "parent_wwpn", "parent_fabric_wwn", "managed", "wwnn", "wwpn",
)  # fmt: skip


def _parse_adapter(node: ET.Element) -> dict[str, str] | None:
    """virStorageAdapterParseXML, for the attribute forms (legacy: a bare ``name`` is a scsi_host)."""
    kind = node.get("type")
    if kind is None:
        if any(node.get(name) is not None for name in ("wwnn", "wwpn", "parent")):
            raise xml_error(
                "Use of 'wwnn', 'wwpn', and 'parent' attributes requires use of the adapter 'type'"
            )
        if node.find("parentaddr") is not None:
            raise xml_error("Use of 'parentaddr' element requires use of the adapter 'type'")
        name = node.get("name")
        return {"type": "scsi_host", "name": name} if name is not None else None
    if kind not in ("scsi_host", "fc_host"):
        raise xml_error(f"Invalid value for attribute 'type' in element 'adapter': '{kind}'.", C.VIR_FROM_XML)
    return {name: node.attrib[name] for name in _ADAPTER_ATTRS if name in node.attrib}


def parse_pool(xml: str, *, validate: bool = False) -> PoolDef:
    """virStoragePoolDefParse: checks in libvirt's order, libvirt's errors.

    ``validate``: check it against storagepool.rng first (VIR_STORAGE_POOL_DEFINE_VALIDATE).
    """
    root = parse_document(xml, "pool", "storage_pool_definition")
    if validate:
        validate_against_schema(xml, "storagepool.rng")
    pool_type = root.get("type")
    if pool_type is None:
        raise xml_error("Missing required attribute 'type' in element 'pool'", C.VIR_FROM_XML)
    if pool_type not in POOL_KINDS:
        raise xml_error(
            f"Invalid value for attribute 'type' in element 'pool': '{pool_type}'.", C.VIR_FROM_XML
        )
    kind = POOL_KINDS[pool_type]
    source_node = root.find("source")
    source = parse_pool_source(source_node, pool_type) if source_node is not None else PoolSource()
    if source_node is None and kind.formats:
        source.format = kind.default_format
    name = _text(root, "name")
    if name is None and kind.source & NAME:
        name = source.name
    if name is None:
        raise xml_error("missing pool source name element")
    if "/" in name:
        raise xml_error(f"name {name} cannot contain '/'")
    uuid_text = _text(root, "uuid")
    if uuid_text is None:
        uuid, given = uuidlib.uuid4().bytes, False
    else:
        uuid, given = parse_uuid(uuid_text), True
    pool = PoolDef(pool_type, name, uuid, given, source)
    cow_node = root.find("features/cow")
    if cow_node is not None:
        pool.cow = _tristate(cow_node, "state", "cow")
        if pool.cow is not None and pool_type not in ("fs", "dir"):
            raise report(C.VIR_ERR_NO_SUPPORT, FROM, "cow feature may only be used for 'fs' and 'dir' pools")
    if kind.source & HOST and not source.hosts:
        raise xml_error("missing storage pool source host name")
    if kind.source & DIR and source.dir is None:
        raise xml_error("missing storage pool source path")
    if kind.source & NAME and source.name is None:
        source.name = name
    if kind.source & ADAPTER:
        _validate_adapter(source.adapter)
    if kind.source == DEVICE and not source.devices:
        raise xml_error("missing storage pool source device name")
    if not kind.source & NETWORK:
        if pool_type == "logical":
            target = f"/dev/{source.name}"
        elif pool_type == "zfs":
            target = f"/dev/zvol/{source.name}"
        else:
            found = _text(root, "target/path")
            if found is None:
                raise xml_error("missing storage pool target path")
            target = found
        pool.target_path = sanitize_path(target)
        pool.target_perms = _parse_perms(root.find("target/permissions"))
    if pool_type == "iscsi-direct" and not source.initiator:
        raise unsupported("missing initiator IQN")
    allocation = _attr(root, "refresh/volume", "allocation")
    if allocation is not None:
        if allocation not in REFRESH_ALLOCATION:
            raise unsupported(f"unknown storage pool volume refresh allocation type {allocation}")
        pool.refresh_allocation = allocation
    return pool


def _validate_adapter(adapter: dict[str, str] | None) -> None:
    """virStorageAdapterValidate, for the forms parse accepts."""
    if adapter is None:
        raise xml_error("missing storage pool source adapter")
    if adapter["type"] == "scsi_host" and "name" not in adapter:
        raise xml_error("Either 'name' or 'parent' must be specified for the 'scsi_host' adapter")
    if adapter["type"] == "fc_host" and ("wwnn" not in adapter or "wwpn" not in adapter):
        raise xml_error("'wwnn' and 'wwpn' must be specified for adapter type 'fchost'")


def parse_uuid(text: str) -> bytes:
    try:
        return uuidlib.UUID(text.strip()).bytes
    except ValueError:
        raise xml_error("malformed uuid element") from None


def format_pool_source(pool_type: str, source: PoolSource, indent: str) -> list[str]:
    """virStoragePoolSourceFormat."""
    kind = POOL_KINDS[pool_type]
    inner = indent + "  "
    lines = [f"{indent}<source>\n"]
    if kind.source & HOST:
        for name, port in source.hosts:
            port_attr = f" port='{port}'" if port else ""
            lines.append(f"{inner}<host name='{escape(name)}'{port_attr}/>\n")
    if kind.source & DEVICE:
        for path, separator in source.devices:
            sep_attr = f" part_separator='{separator}'" if separator is not None else ""
            lines.append(f"{inner}<device path='{escape(path)}'{sep_attr}/>\n")
    if kind.source & DIR and source.dir is not None:
        lines.append(f"{inner}<dir path='{escape(source.dir)}'/>\n")
    if kind.source & ADAPTER and source.adapter is not None:
        attrs = "".join(f" {key}='{escape(value)}'" for key, value in source.adapter.items())
        lines.append(f"{inner}<adapter{attrs}/>\n")
    if kind.source & NAME and source.name is not None:
        lines.append(f"{inner}<name>{escape(source.name)}</name>\n")
    if kind.source & INITIATOR and source.initiator is not None:
        lines.append(
            f"{inner}<initiator>\n{inner}  <iqn name='{escape(source.initiator)}'/>\n{inner}</initiator>\n"
        )
    if kind.formats:
        lines.append(f"{inner}<format type='{kind.formats[source.format]}'/>\n")
    if source.protocol_ver is not None:
        lines.append(f"{inner}<protocol ver='{escape(source.protocol_ver)}'/>\n")
    if source.vendor is not None:
        lines.append(f"{inner}<vendor name='{escape(source.vendor)}'/>\n")
    if source.product is not None:
        lines.append(f"{inner}<product name='{escape(source.product)}'/>\n")
    lines.append(f"{indent}</source>\n")
    return lines


# rbd's volume options name its formats (a volume's <format> prints) but list none
# (storage_conf.c gives it no lastFormat): its capabilities show an empty enum.
_UNLISTED_VOL_FORMATS = frozenset({"rbd"})


def format_pool_capabilities() -> str:
    """virStoragePoolCapsFormat: every pool type in libvirt's order, with its source and
    volume formats. All supported: the memory driver keeps pools of every type (a
    libvirtd says 'no' for the backends its build lacks)."""
    lines = ["<storagepoolCapabilities>\n"]
    for pool_type in POOL_TYPES:
        kind = POOL_KINDS[pool_type]
        lines.append(f"  <pool type='{pool_type}' supported='yes'>\n")
        if kind.formats:
            default = kind.formats[kind.default_format]
            lines += _format_options("poolOptions", "sourceFormatType", default, kind.formats)
        if kind.vol_formats:
            default = kind.vol_formats[kind.vol_default_format]
            listed = () if pool_type in _UNLISTED_VOL_FORMATS else kind.vol_formats
            lines += _format_options("volOptions", "targetFormatType", default, listed)
        lines.append("  </pool>\n")
    lines.append("</storagepoolCapabilities>\n")
    return "".join(lines)


def _format_options(element: str, enum: str, default: str, values: tuple[str, ...]) -> list[str]:
    return [
        f"    <{element}>\n",
        f"      <defaultFormat type='{default}'/>\n",
        f"      <enum name='{enum}'>\n",
        *(f"        <value>{value}</value>\n" for value in values),
        "      </enum>\n",
        f"    </{element}>\n",
    ]


def format_pool(pool: PoolDef, capacity: int, allocation: int, available: int) -> str:
    """virStoragePoolDefFormat."""
    lines = [
        f"<pool type='{pool.type}'>\n",
        f"  <name>{escape(pool.name)}</name>\n",
        f"  <uuid>{uuidlib.UUID(bytes=pool.uuid)}</uuid>\n",
        f"  <capacity unit='bytes'>{capacity}</capacity>\n",
        f"  <allocation unit='bytes'>{allocation}</allocation>\n",
        f"  <available unit='bytes'>{available}</available>\n",
    ]
    if pool.cow is not None:
        lines.append(f"  <features>\n    <cow state='{pool.cow}'/>\n  </features>\n")
    lines += format_pool_source(pool.type, pool.source, "  ")
    if pool.type not in _NO_TARGET:
        lines.append("  <target>\n")
        if pool.target_path is not None:
            lines.append(f"    <path>{escape(pool.target_path)}</path>\n")
        lines += _format_perms(pool.target_perms, "    ")
        lines.append("  </target>\n")
    if pool.refresh_allocation is not None:
        lines.append(f"  <refresh>\n    <volume allocation='{pool.refresh_allocation}'/>\n  </refresh>\n")
    lines.append("</pool>\n")
    return "".join(lines)


# --- volumes ----------------------------------------------------------------------------------


@dataclass(slots=True)
class VolTarget:
    path: str | None = None
    format: int = 0
    perms: Perms = field(default_factory=Perms)
    compat: str | None = None
    nocow: bool = False
    cluster_size: int = 0
    features: list[int] | None = None


@dataclass(slots=True)
class VolDef:
    """A parsed ``<volume>`` (virStorageVolDef)."""

    name: str
    type: int  # index into VOL_TYPES
    key: str | None
    capacity: int
    allocation: int
    has_allocation: bool
    target: VolTarget
    backing: VolTarget | None = None


def scale_size(text: str, unit: str | None, limit: int = (1 << 63) - 1) -> int:
    """virStorageSize: a decimal number and a virScaleInteger suffix, at most ``limit``."""
    stripped = text.lstrip()
    if stripped.startswith("-") or not stripped.lstrip("+").isdigit():
        raise xml_error("malformed capacity element")
    value = int(stripped)
    if value >= 1 << 64:
        raise xml_error("malformed capacity element")
    return scale_integer(value, unit, limit)


def scale_integer(value: int, unit: str | None, limit: int) -> int:
    """virScaleInteger with a default scale of 1."""
    suffix = unit or ""
    low = suffix.lower()
    if not suffix or low in ("b", "byte", "bytes"):
        scale = 1
    else:
        if len(low) == 1 or low[1:] == "ib":
            base = 1024
        elif low[1:] == "b":
            base = 1000
        else:
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, f"unknown suffix '{suffix}'")
        powers = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
        if low[0] not in powers:
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, f"unknown suffix '{suffix}'")
        scale = base ** powers[low[0]]
    if value and value > limit // scale:
        raise report(C.VIR_ERR_OVERFLOW, C.VIR_FROM_NONE, f"value too large: {value}{suffix}")
    return value * scale


def _format_index(kind: PoolKind, fmt: str | None, what: str) -> int:
    if not kind.vol_formats:
        return 0
    if fmt is None:
        return kind.vol_default_format
    # virStorageVolumeFormatFromString refuses "none" for file formats.
    if fmt in kind.vol_formats and not (kind.vol_formats is FILE_FORMATS and fmt == "none"):
        return kind.vol_formats.index(fmt)
    raise unsupported(f"unknown {what} format type {fmt}")


# VIR_VOL_XML_PARSE_VALIDATE, storage_conf.h's internal flag (1 << 2).
_VOL_XML_PARSE_VALIDATE = 1 << 2


def parse_volume(pool_type: str, xml: str, *, validate: bool = False) -> VolDef:
    """virStorageVolDefParse: checks in libvirt's order, libvirt's errors.

    ``validate``: check it against storagevol.rng first (VIR_VOL_XML_PARSE_VALIDATE).
    libvirt 9.0 then passes that flag on to virStorageVolDefParseXML, whose flag
    check refuses it: a volume that passes validation is never created.
    """
    kind = POOL_KINDS[pool_type]
    root = parse_document(xml, "volume", "storage_volume_definition")
    if validate:
        validate_against_schema(xml, "storagevol.rng")
        raise unsupported_flags(_VOL_XML_PARSE_VALIDATE, "virStorageVolDefParseXML", FROM)
    name = _text(root, "name")
    if name is None:
        raise xml_error("missing volume name element")
    key = _text(root, "key")
    vol_type = 0
    type_text = root.get("type")
    if type_text:
        if type_text not in VOL_TYPES:
            raise unsupported(f"unknown volume type '{type_text}'")
        vol_type = VOL_TYPES.index(type_text)
    backing: VolTarget | None = None
    backing_path = _text(root, "backingStore/path")
    if backing_path is not None:
        backing = VolTarget(path=backing_path)
        backing.format = _format_index(kind, _attr(root, "backingStore/format", "type"), "volume")
        backing.perms = _parse_perms(root.find("backingStore/permissions"))
    capacity_text = _text(root, "capacity")
    if capacity_text is None:
        raise xml_error("missing capacity element")
    capacity = scale_size(capacity_text, _unit(root, "capacity"))
    allocation_text = _text(root, "allocation")
    if allocation_text is not None:
        allocation, has_allocation = scale_size(allocation_text, _unit(root, "allocation")), True
    else:
        allocation, has_allocation = capacity, False
    target = VolTarget(path=_text(root, "target/path"))
    target.format = _format_index(kind, _attr(root, "target/format", "type"), "volume")
    target.perms = _parse_perms(root.find("target/permissions"))
    target.compat = _text(root, "target/compat")
    if target.compat is not None:
        parts = target.compat.split(".", 1)
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise xml_error("forbidden characters in 'compat' attribute")
    target.nocow = root.find("target/nocow") is not None
    cluster = _text(root, "target/clusterSize")
    if cluster is not None:
        target.cluster_size = scale_size(cluster, _unit(root, "target/clusterSize"), (1 << 64) - 1)
    features = root.find("target/features")
    if features is not None:
        if target.compat is None:
            target.compat = "1.1"
        found: set[int] = set()
        for child in features:
            if child.tag not in VOL_FEATURES:
                raise unsupported(f"unsupported feature {child.tag}")
            found.add(VOL_FEATURES.index(child.tag))
        target.features = sorted(found)
    return VolDef(name, vol_type, key, capacity, allocation, has_allocation, target, backing)


def _unit(root: ET.Element, path: str) -> str | None:
    return _attr(root, path, "unit")


def _format_target(kind: PoolKind, target: VolTarget, tag: str) -> list[str]:
    lines = [f"  <{tag}>\n"]
    if target.path is not None:
        lines.append(f"    <path>{escape(target.path)}</path>\n")
    if kind.vol_formats:
        lines.append(f"    <format type='{kind.vol_formats[target.format]}'/>\n")
    lines += _format_perms(target.perms, "    ")
    if target.compat is not None:
        lines.append(f"    <compat>{escape(target.compat)}</compat>\n")
    if target.cluster_size:
        lines.append(f"    <clusterSize unit='B'>{target.cluster_size}</clusterSize>\n")
    if target.features is not None:
        if not target.features:
            lines.append("    <features/>\n")
        else:
            lines.append("    <features>\n")
            lines += [f"      <{VOL_FEATURES[f]}/>\n" for f in target.features]
            lines.append("    </features>\n")
    lines.append(f"  </{tag}>\n")
    return lines


def format_volume(pool_type: str, vol: VolDef) -> str:
    """virStorageVolDefFormat."""
    kind = POOL_KINDS[pool_type]
    lines = [f"<volume type='{VOL_TYPES[vol.type]}'>\n", f"  <name>{escape(vol.name)}</name>\n"]
    if vol.key is not None:
        lines.append(f"  <key>{escape(vol.key)}</key>\n")
    lines.append(f"  <capacity unit='bytes'>{vol.capacity}</capacity>\n")
    lines.append(f"  <allocation unit='bytes'>{vol.allocation}</allocation>\n")
    lines += _format_target(kind, vol.target, "target")
    if vol.backing is not None:
        lines += _format_target(kind, vol.backing, "backingStore")
    lines.append("</volume>\n")
    return "".join(lines)


def target_volume_path(pool: PoolDef, name: str) -> str:
    """Where the test driver puts a new volume: ``<pool target>/<name>``."""
    return f"{pool.target_path if pool.target_path is not None else '(null)'}/{name}"
