"""Domain snapshot definitions: parse and format as libvirt's snapshot_conf.c does.

A ``SnapshotDef`` is what virDomainSnapshotDef holds for the test driver: name,
description, state, parent, creation time, memory and per-disk locations, and
the domain definition it was taken of (kept as libvirt prints it, inactive).
Parse errors carry VIR_FROM_DOMAIN_SNAPSHOT (snapshot_conf.c), XML attribute
errors VIR_FROM_XML (virxml.c), as libvirt reports them.
"""

from __future__ import annotations

import os
import stat
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from virtwire.protocol.generated import constants as C

from ...errors import report
from ...xmlschema import validate_against_schema
from .domxml import format_domain_xml, normalise, parse_domain_xml
from .objxml import escape_text, parse_document, xpath_string

FROM = C.VIR_FROM_DOMAIN_SNAPSHOT

# virDomainSnapshotState names (the domain states, plus disk-snapshot).
STATES = (
    "nostate",
    "running",
    "blocked",
    "paused",
    "shutdown",
    "shutoff",
    "crashed",
    "pmsuspended",
    "disk-snapshot",
)
STATE_SHUTOFF = "shutoff"
STATE_DISK = "disk-snapshot"
ONLINE_STATES = ("running", "paused")
# virDomainSnapshotLocation names; "default" (0) is never accepted in XML.
LOCATIONS = ("default", "no", "internal", "external", "manual")
# virStorageType names a snapshot disk may use (volume and dir are refused).
STORAGE_TYPES = ("none", "file", "block", "dir", "network", "volume", "nvme", "vhostuser")
# virStorageFileFormat names (index 0 is "none", which is refused).
DISK_FORMATS = (
    "none",
    "raw",
    "dir",
    "bochs",
    "cloop",
    "dmg",
    "iso",
    "vpc",
    "vdi",
    "fat",
    "vhd",
    "ploop",
    "cow",
    "qcow",
    "qcow2",
    "qed",
    "vmdk",
)


def _xml_error(detail: str, domain: int = FROM) -> Exception:
    return report(C.VIR_ERR_XML_ERROR, domain, detail)


def _config_unsupported(detail: str) -> Exception:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, detail)


def _enum_attr(el: ET.Element, name: str, values: tuple[str, ...], default: str | None) -> str | None:
    """virXMLPropEnumDefault with VIR_XML_PROP_NONZERO (value 0 is refused)."""
    text = el.get(name)
    if text is None:
        return default
    if text not in values or values.index(text) == 0:
        raise _xml_error(
            f"Invalid value for attribute '{name}' in element '{el.tag}': '{text}'.", C.VIR_FROM_XML
        )
    return text


@dataclass(slots=True)
class SnapshotDisk:
    """One ``<disks><disk>``: its target, location and (external) image."""

    name: str
    snapshot: str | None = None  # None: not yet chosen ("default")
    type: str = "file"
    path: str | None = None
    format: str | None = None

    def format_xml(self, pad: str) -> str:
        attrs = f" name='{escape_text(self.name)}'"
        if self.snapshot is not None:
            attrs += f" snapshot='{self.snapshot}'"
        if self.path is None and self.format is None:
            return f"{pad}<disk{attrs}/>\n"
        attrs += f" type='{self.type}'"
        inner = ""
        if self.format is not None:
            inner += f"{pad}  <driver type='{self.format}'/>\n"
        if self.path is not None:
            source_attr = "dev" if self.type == "block" else "file"
            inner += f"{pad}  <source {source_attr}='{escape_text(self.path)}'/>\n"
        else:
            inner += f"{pad}  <source/>\n"
        return f"{pad}<disk{attrs}>\n{inner}{pad}</disk>\n"


@dataclass(slots=True)
class SnapshotDef:
    """A snapshot's definition (virDomainSnapshotDef)."""

    name: str
    creation_time: int
    description: str | None = None
    state: str | None = None
    parent_name: str | None = None
    memory: str | None = None  # location; None until aligned
    memory_file: str | None = None
    disks: list[SnapshotDisk] = field(default_factory=list)
    domain_xml: str | None = None  # the inactive <domain> it was taken of
    domain_uuid: bytes | None = None

    @property
    def external(self) -> bool:
        """virDomainSnapshotDefIsExternal."""
        return self.memory == "external" or any(d.snapshot == "external" for d in self.disks)

    def format(self, domain_uuid: str) -> str:
        """virDomainSnapshotDefFormat (no internal/current flags: what GetXMLDesc answers)."""
        out = ["<domainsnapshot>\n", f"  <name>{escape_text(self.name)}</name>\n"]
        if self.description is not None:
            out.append(f"  <description>{escape_text(self.description)}</description>\n")
        if self.state is not None and self.state != "nostate":
            out.append(f"  <state>{self.state}</state>\n")
        if self.parent_name is not None:
            out.append(f"  <parent>\n    <name>{escape_text(self.parent_name)}</name>\n  </parent>\n")
        if self.creation_time:
            out.append(f"  <creationTime>{self.creation_time}</creationTime>\n")
        if self.memory is not None:
            file_attr = f" file='{escape_text(self.memory_file)}'" if self.memory_file is not None else ""
            out.append(f"  <memory snapshot='{self.memory}'{file_attr}/>\n")
        if self.disks:
            out.append("  <disks>\n")
            out.extend(disk.format_xml("    ") for disk in self.disks)
            out.append("  </disks>\n")
        if self.domain_xml is not None:
            out.extend(f"  {line}\n" for line in self.domain_xml.splitlines())
        else:
            out.append(f"  <domain>\n    <uuid>{domain_uuid}</uuid>\n  </domain>\n")
        out.append("</domainsnapshot>\n")
        return "".join(out)


def parse_snapshot_xml(xml: str, *, redefine: bool, validate: bool = False) -> SnapshotDef:
    """virDomainSnapshotDefParseString: the checks in libvirt's order.

    ``validate``: check it against domainsnapshot.rng first (VIR_DOMAIN_SNAPSHOT_PARSE_VALIDATE).
    """
    root = parse_document(xml, "(domain_snapshot)", "domainsnapshot", FROM)
    if validate:
        validate_against_schema(xml, "domainsnapshot.rng")
    name = xpath_string(root, "name")
    if name is None and redefine:
        raise _xml_error("a redefined snapshot must have a name")
    snap = SnapshotDef(name=name or "", creation_time=0, description=xpath_string(root, "description"))
    offline = False
    if redefine:
        created = xpath_string(root, "creationTime")
        try:
            snap.creation_time = int(created or "")
        except ValueError:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, FROM, "missing creationTime from existing snapshot"
            ) from None
        snap.parent_name = xpath_string(root, "parent/name")
        state = xpath_string(root, "state")
        if state is None:
            raise _xml_error("missing state from existing snapshot")
        if state not in STATES or state == "nostate":
            raise _config_unsupported(f"Invalid state '{state}' in domain snapshot XML")
        snap.state = state
        offline = state in (STATE_SHUTOFF, STATE_DISK)
        domain_el = root.find("domain")
        if domain_el is not None and domain_el.get("type"):
            parsed = parse_domain_xml(ET.tostring(domain_el, encoding="unicode"))
            uuid = parsed.uuid if parsed.uuid is not None else uuidlib.uuid4().bytes
            snap.domain_uuid = uuid
            snap.domain_xml = format_domain_xml(normalise(parsed, uuid), domain_id=None)
    else:
        snap.creation_time = time.time_ns() // 1_000_000_000
        if name is None:
            snap.name = str(snap.creation_time)
    memory_el = root.find("memory")
    if memory_el is not None:
        snap.memory_file = memory_el.get("file")
        snap.memory = _enum_attr(memory_el, "snapshot", LOCATIONS, None)
        if snap.memory == "manual":
            raise _xml_error("'manual' memory snapshot mode not supported")
    if snap.memory is None:
        if snap.memory_file is not None:
            snap.memory = "external"
        elif redefine:
            snap.memory = "no" if offline else "internal"
    if snap.memory_file is not None and snap.memory != "external":
        raise _xml_error(f"memory filename '{snap.memory_file}' requires external snapshot")
    if snap.memory_file is None and snap.memory == "external":
        raise _xml_error("external memory snapshots require a filename")
    if offline and snap.memory not in (None, "no"):
        raise _xml_error("memory state cannot be saved with offline or disk-only snapshot")
    if snap.memory_file is not None and not snap.memory_file.startswith("/"):
        raise _xml_error(f"memory snapshot file path ({snap.memory_file}) must be absolute")
    disks_el = root.find("disks")
    for disk_el in list(disks_el) if disks_el is not None else []:
        snap.disks.append(_parse_disk(disk_el))
    return snap


def _parse_disk(el: ET.Element) -> SnapshotDisk:
    """virDomainSnapshotDiskDefParseXML."""
    name = el.get("name")
    if name is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "missing name from disk snapshot element")
    disk = SnapshotDisk(name=name)
    disk.snapshot = _enum_attr(el, "snapshot", LOCATIONS, None)
    disk.type = _enum_attr(el, "type", STORAGE_TYPES, "file") or "file"
    if disk.type in ("volume", "dir"):
        raise _xml_error(f"unsupported disk snapshot type '{disk.type}'")
    source = el.find("source")
    if source is not None:
        disk.path = source.get("dev" if disk.type == "block" else "file") or None
    driver = el.find("driver")
    driver_type = driver.get("type") if driver is not None else None
    if driver_type:
        if driver_type not in DISK_FORMATS or driver_type == "none":
            raise _config_unsupported(f"unknown disk snapshot driver '{driver_type}'")
        disk.format = driver_type
    if disk.type in ("file", "block") and disk.path is not None and not disk.path.startswith("/"):
        raise _xml_error(f"disk snapshot image path '{disk.path}' must be absolute")
    if disk.snapshot is None and (disk.path is not None or disk.format is not None):
        disk.snapshot = "external"
    return disk


@dataclass(slots=True)
class DomainDisk:
    """What alignment needs of one of the domain's disks."""

    target: str
    source: str | None
    snapshot: str | None  # the disk's own snapshot='...' attribute
    readonly: bool = False


_SOURCE_ATTRS = ("file", "dev", "dir", "name", "volume")


def domain_disks(domain_xml: str) -> list[DomainDisk]:
    root = ET.fromstring(domain_xml.encode("utf-8", "surrogateescape"))
    found = []
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        path = None
        if source is not None:
            path = next((source.get(a) for a in _SOURCE_ATTRS if source.get(a)), None)
        dev = target.get("dev", "") if target is not None else ""
        location = disk.get("snapshot")
        # Domain post-parse: read-only and vhost-user disks are never snapshotted by default.
        readonly = disk.get("device") == "cdrom" or disk.find("readonly") is not None
        if location is None and (readonly or disk.get("type") == "vhostuser"):
            location = "no"
        found.append(DomainDisk(dev, path, location, readonly))
    return found


def align_disks(snap: SnapshotDef, domain_xml: str | None, default: str) -> None:
    """virDomainSnapshotAlignDisks with uniform internal snapshots (the test driver's)."""
    source_xml = snap.domain_xml if snap.domain_xml is not None else domain_xml
    if source_xml is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "missing domain in snapshot")
    disks = domain_disks(source_xml)
    if len(snap.disks) > len(disks):
        raise _config_unsupported("too many disk snapshot requests for domain")
    require_match = default == "internal"
    if not disks:
        return
    by_target: dict[str, SnapshotDisk] = {}
    for requested in snap.disks:
        dom_disk = _disk_by_name(disks, requested.name)
        if dom_disk is None:
            raise _config_unsupported(f"no disk named '{requested.name}'")
        if dom_disk.target in by_target:
            raise _config_unsupported(f"disk '{requested.name}' specified twice")
        by_target[dom_disk.target] = requested
        if requested.snapshot is None:
            if dom_disk.snapshot is not None and (not require_match or dom_disk.snapshot == "no"):
                requested.snapshot = dom_disk.snapshot
            else:
                requested.snapshot = default
        elif (
            require_match
            and requested.snapshot != default
            and not (requested.snapshot == "no" and dom_disk.snapshot == "no")
        ):
            raise _config_unsupported(f"disk '{requested.name}' must use snapshot mode '{default}'")
        if requested.path is not None and requested.snapshot != "external":
            raise _config_unsupported(
                f"file '{requested.path}' for disk '{requested.name}' requires use of external snapshot mode"
            )
        requested.name = dom_disk.target
    aligned: list[SnapshotDisk] = []
    for dom_disk in disks:
        existing = by_target.get(dom_disk.target)
        if existing is not None:
            aligned.append(existing)
            continue
        location = "no" if dom_disk.source is None else dom_disk.snapshot
        aligned.append(SnapshotDisk(name=dom_disk.target, snapshot=location or default))
    snap.disks = aligned
    _assign_external_names(snap, disks)


def _disk_by_name(disks: list[DomainDisk], name: str) -> DomainDisk | None:
    """virDomainDiskByName: a target name, or a source path."""
    for disk in disks:
        if disk.target == name:
            return disk
    for disk in disks:
        if disk.source is not None and disk.source == name:
            return disk
    return None


def _assign_external_names(snap: SnapshotDef, disks: list[DomainDisk]) -> None:
    """virDomainSnapshotDefAssignExternalNames (checks the source file on this host, as libvirt does)."""
    for index, disk in enumerate(snap.disks):
        if disk.snapshot != "external" or disk.path is not None:
            continue
        if disk.type != "file":
            raise _config_unsupported(
                f"cannot generate external snapshot name for disk '{disk.name}' on a '{disk.type}' device"
            )
        origin = disks[index].source
        if origin is None:
            raise _config_unsupported(
                f"cannot generate external snapshot name for disk '{disk.name}' without source"
            )
        try:
            regular = stat.S_ISREG(os.stat(origin).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise _config_unsupported(
                f"source for disk '{disk.name}' is not a regular file; "
                "refusing to generate external snapshot name"
            )
        base, dot, suffix = origin.rpartition(".")
        stem = base if dot and "/" not in suffix else origin
        disk.path = f"{stem}.{snap.name}"
        for earlier in snap.disks[:index]:
            if earlier.path == disk.path:
                raise _config_unsupported(
                    f"cannot generate external snapshot name for disk '{disk.name}': "
                    f"collision with disk '{earlier.name}'"
                )


def copy_def(snap: SnapshotDef) -> SnapshotDef:
    return replace(snap, disks=[replace(d) for d in snap.disks])
