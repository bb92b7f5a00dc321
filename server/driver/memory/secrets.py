"""Secrets: the definition (secret_conf.c's parse and format) and the registry.

libvirt's test driver has no secrets; these behave as libvirt's own secret
driver (src/secret/secret_driver.c over virsecretobj.c): one object per UUID,
at most one per (usage type, usage id), values kept apart from the XML.
Errors are VIR_FROM_SECRET with secret_conf's / virsecretobj's wording.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtwire.protocol.generated import constants as C

from ...errors import report
from ...xmlschema import validate_against_schema
from .objxml import escape_text, parse_document, parse_uuid_text, xpath_string

FROM = C.VIR_FROM_SECRET

# virSecretUsageType, by its XML name, with the element holding the usage id.
USAGE_TYPES: dict[str, tuple[int, str | None]] = {
    "none": (C.VIR_SECRET_USAGE_TYPE_NONE, None),
    "volume": (C.VIR_SECRET_USAGE_TYPE_VOLUME, "volume"),
    "ceph": (C.VIR_SECRET_USAGE_TYPE_CEPH, "name"),
    "iscsi": (C.VIR_SECRET_USAGE_TYPE_ISCSI, "target"),
    "tls": (C.VIR_SECRET_USAGE_TYPE_TLS, "name"),
    "vtpm": (C.VIR_SECRET_USAGE_TYPE_VTPM, "name"),
}
_USAGE_NAMES = {number: name for name, (number, _) in USAGE_TYPES.items()}
# secret_conf's complaint when a usage lacks its id element.
_MISSING_ID = {
    "volume": "volume usage specified, but volume path is missing",
    "ceph": "Ceph usage specified, but name is missing",
    "iscsi": "iSCSI usage specified, but target is missing",
    "tls": "TLS usage specified, but name is missing",
    "vtpm": "vTPM usage specified, but name is missing",
}


@dataclass(slots=True, eq=False)
class SecretDef:
    """A parsed ``<secret>``: what virSecretDef holds."""

    uuid: bytes
    ephemeral: bool = False
    private: bool = False
    description: str | None = None
    usage_type: int = C.VIR_SECRET_USAGE_TYPE_NONE
    usage_id: str | None = None

    @property
    def uuid_string(self) -> str:
        return str(uuidlib.UUID(bytes=self.uuid))

    def format(self) -> str:
        """virSecretDefFormat."""
        lines = [
            f"<secret ephemeral='{_yes_no(self.ephemeral)}' private='{_yes_no(self.private)}'>",
            f"  <uuid>{self.uuid_string}</uuid>",
        ]
        if self.description is not None:
            lines.append(f"  <description>{escape_text(self.description)}</description>")
        if self.usage_type != C.VIR_SECRET_USAGE_TYPE_NONE:
            name = _USAGE_NAMES[self.usage_type]
            lines.append(f"  <usage type='{name}'>")
            id_element = USAGE_TYPES[name][1]
            if self.usage_id is not None and id_element is not None:
                lines.append(f"    <{id_element}>{escape_text(self.usage_id)}</{id_element}>")
            lines.append("  </usage>")
        lines.append("</secret>")
        return "\n".join(lines) + "\n"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _parse_yes_no(root: ET.Element, attr: str) -> bool:
    text = root.get(attr)
    if not text:  # virXPathString gives NULL for an empty attribute
        return False
    if text not in ("yes", "no"):
        raise report(C.VIR_ERR_XML_ERROR, FROM, f"invalid value of '{attr}'")
    return text == "yes"


def parse_secret_xml(xml: str, *, validate: bool = False) -> SecretDef:
    """virSecretDefParse: the checks in libvirt's order, a fresh UUID when none is given."""
    root = parse_document(xml, "(definition_of_secret)", "secret", FROM)
    if validate:
        validate_against_schema(xml, "secret.rng")
    ephemeral = _parse_yes_no(root, "ephemeral")
    private = _parse_yes_no(root, "private")
    uuid_text = xpath_string(root, "uuid")
    uuid = uuidlib.uuid4().bytes if uuid_text is None else parse_uuid_text(uuid_text)
    if uuid is None:
        raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "malformed uuid element")
    secret = SecretDef(
        uuid=uuid, ephemeral=ephemeral, private=private, description=xpath_string(root, "description")
    )
    usage = root.find("usage")
    if usage is not None:
        type_name = usage.get("type") or None
        if type_name is None:
            raise report(C.VIR_ERR_XML_ERROR, FROM, "unknown secret usage type")
        if type_name not in USAGE_TYPES:
            raise report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, f"unknown secret usage type {type_name}")
        secret.usage_type, id_element = USAGE_TYPES[type_name]
        if id_element is not None:
            # libvirt reads the id with string(), so an empty element counts as present.
            found = usage.find(id_element)
            if found is None:
                raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, _MISSING_ID[type_name])
            secret.usage_id = "".join(found.itertext())
    return secret


@dataclass(slots=True, eq=False)
class Secret:
    """One secret: its definition and its value (None until set)."""

    definition: SecretDef
    value: bytes | None = None


class SecretRegistry:
    """The secrets of one driver, by UUID; virSecretObjList's add/find/remove rules."""

    def __init__(self) -> None:
        self._by_uuid: dict[bytes, Secret] = {}

    def all(self) -> list[Secret]:
        """Every secret, by UUID string (libvirt's hash order is not stable; ours is)."""
        return sorted(self._by_uuid.values(), key=lambda s: s.definition.uuid_string)

    def get(self, uuid: bytes) -> Secret | None:
        return self._by_uuid.get(bytes(uuid))

    def find_by_usage(self, usage_type: int, usage_id: str) -> Secret | None:
        """virSecretObjListFindByUsage: type NONE never matches."""
        if usage_type == C.VIR_SECRET_USAGE_TYPE_NONE:
            return None
        for secret in self._by_uuid.values():
            d = secret.definition
            if d.usage_type == usage_type and d.usage_id == usage_id:
                return secret
        return None

    def check_add(self, new: SecretDef) -> Secret | None:
        """virSecretObjListAdd's checks; the secret ``new`` would replace, if any."""
        existing = self._by_uuid.get(new.uuid)
        if existing is not None:
            old = existing.definition
            if old.usage_id != new.usage_id:
                raise report(
                    C.VIR_ERR_INTERNAL_ERROR,
                    FROM,
                    f"a secret with UUID {old.uuid_string} is already defined for use with "
                    f"{_nullable(old.usage_id)}",
                )
            if old.private and not new.private:
                raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "cannot change private flag on existing secret")
            return existing
        if new.usage_id is not None:
            clash = self.find_by_usage(new.usage_type, new.usage_id)
            if clash is not None:
                raise report(
                    C.VIR_ERR_INTERNAL_ERROR,
                    FROM,
                    f"a secret with UUID {clash.definition.uuid_string} already defined for use with "
                    f"{new.usage_id}",
                )
        return None

    def put(self, secret: Secret) -> None:
        self._by_uuid[secret.definition.uuid] = secret

    def remove(self, secret: Secret) -> None:
        self._by_uuid.pop(secret.definition.uuid, None)


def _nullable(text: str | None) -> str:
    # glib's printf prints a NULL %s as "(null)".
    return "(null)" if text is None else text
