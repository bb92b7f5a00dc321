"""Domain checkpoint definitions: parse and format as libvirt's checkpoint_conf.c does.

libvirt always validates a checkpoint document against domaincheckpoint.rng
(virXMLParse with validation on, whatever the flags), and so do we.
"""

from __future__ import annotations

import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from virtwire.protocol.generated import constants as C

from ...errors import report
from ...xmlschema import validate_against_schema
from .domxml import format_domain_xml, normalise, parse_domain_xml
from .objxml import escape_text, parse_document, xpath_string
from .snapshots import domain_disks

FROM = C.VIR_FROM_DOMAIN_CHECKPOINT


@dataclass(slots=True)
class CheckpointDisk:
    name: str
    checkpoint: str | None  # "no" or "bitmap"; None until aligned
    bitmap: str | None = None

    def format_xml(self) -> str:
        attrs = f" name='{escape_text(self.name)}'"
        if self.checkpoint is not None:
            attrs += f" checkpoint='{self.checkpoint}'"
        if self.bitmap is not None:
            attrs += f" bitmap='{escape_text(self.bitmap)}'"
        return f"    <disk{attrs}/>\n"


@dataclass(slots=True)
class CheckpointDef:
    """virDomainCheckpointDef."""

    name: str
    creation_time: int
    description: str | None = None
    parent_name: str | None = None
    disks: list[CheckpointDisk] = field(default_factory=list)
    domain_xml: str | None = None
    domain_uuid: bytes | None = None

    def format(self, *, with_domain: bool = True) -> str:
        """virDomainCheckpointDefFormat."""
        out = ["<domaincheckpoint>\n", f"  <name>{escape_text(self.name)}</name>\n"]
        if self.description is not None:
            out.append(f"  <description>{escape_text(self.description)}</description>\n")
        if self.parent_name is not None:
            out.append(f"  <parent>\n    <name>{escape_text(self.parent_name)}</name>\n  </parent>\n")
        if self.creation_time:
            out.append(f"  <creationTime>{self.creation_time}</creationTime>\n")
        if self.disks:
            out.append("  <disks>\n")
            out.extend(disk.format_xml() for disk in self.disks)
            out.append("  </disks>\n")
        if self.domain_xml is not None and with_domain:
            out.extend(f"  {line}\n" for line in self.domain_xml.splitlines())
        out.append("</domaincheckpoint>\n")
        return "".join(out)


def parse_checkpoint_xml(xml: str, *, redefine: bool) -> CheckpointDef:
    """virDomainCheckpointDefParseString (validating, as libvirt always does)."""
    root = parse_document(xml, "(domain_checkpoint)", "domaincheckpoint", FROM)
    validate_against_schema(xml, "domaincheckpoint.rng")
    name = xpath_string(root, "name")
    if name is None and redefine:
        raise report(C.VIR_ERR_XML_ERROR, FROM, "a redefined checkpoint must have a name")
    chk = CheckpointDef(name=name or "", creation_time=0, description=xpath_string(root, "description"))
    if redefine:
        created = xpath_string(root, "creationTime")
        if created is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "missing creationTime from existing checkpoint")
        chk.creation_time = int(created)
        chk.parent_name = xpath_string(root, "parent/name")
        domain_el = root.find("domain")
        if domain_el is not None:
            parsed = parse_domain_xml(ET.tostring(domain_el, encoding="unicode"))
            uuid = parsed.uuid if parsed.uuid is not None else uuidlib.uuid4().bytes
            chk.domain_uuid = uuid
            chk.domain_xml = format_domain_xml(normalise(parsed, uuid), domain_id=None)
    else:
        chk.creation_time = time.time_ns() // 1_000_000_000
        if name is None:
            chk.name = str(chk.creation_time)
    disks = root.find("disks")
    for disk in list(disks) if disks is not None else []:
        checkpoint = disk.get("checkpoint") or "bitmap"
        chk.disks.append(CheckpointDisk(disk.get("name", ""), checkpoint, disk.get("bitmap")))
    return chk


def assign_bitmap_names(chk: CheckpointDef) -> None:
    """virDomainCheckpointDefAssignBitmapNames."""
    for disk in chk.disks:
        if disk.checkpoint == "bitmap" and disk.bitmap is None:
            disk.bitmap = chk.name


def align_disks(chk: CheckpointDef) -> None:
    """virDomainCheckpointAlignDisks."""
    if chk.domain_xml is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "missing domain in checkpoint")
    disks = domain_disks(chk.domain_xml)
    unsupported = C.VIR_ERR_CONFIG_UNSUPPORTED
    if len(chk.disks) > len(disks):
        raise report(unsupported, FROM, "too many disk checkpoint requests for domain")
    if not disks:
        raise report(unsupported, FROM, "domain must have at least one disk to perform checkpoints")
    default = "bitmap" if not chk.disks else "no"
    by_target: dict[str, CheckpointDisk] = {}
    for requested in chk.disks:
        dom_disk = next((d for d in disks if d.target == requested.name), None)
        if dom_disk is None:
            dom_disk = next((d for d in disks if d.source is not None and d.source == requested.name), None)
        if dom_disk is None:
            raise report(unsupported, FROM, f"no disk named '{requested.name}'")
        if dom_disk.target in by_target:
            raise report(unsupported, FROM, f"disk '{requested.name}' specified twice")
        by_target[dom_disk.target] = requested
        if (dom_disk.source is None or dom_disk.readonly) and requested.checkpoint != "no":
            raise report(unsupported, FROM, f"disk '{requested.name}' is empty or readonly")
        requested.name = dom_disk.target
    aligned = []
    for dom_disk in disks:
        existing = by_target.get(dom_disk.target)
        if existing is not None:
            aligned.append(existing)
        elif dom_disk.source is None or dom_disk.readonly:
            aligned.append(CheckpointDisk(dom_disk.target, "no"))
        else:
            aligned.append(CheckpointDisk(dom_disk.target, default))
    chk.disks = aligned
    assign_bitmap_names(chk)
