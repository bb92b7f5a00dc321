"""Check every @api annotation of spec/remote.x against libvirt's API list.

Usage: python spec/tools/check_api_names.py [spec/remote.x] [libvirt-api.xml]

Each non-event procedure names the C function libvirt reports in its errors.
Public functions are listed in libvirt-api.xml (package libvirt-dev). The
migration protocol steps and the feature probe have no public entry point;
libvirt reports them under the internal names below, which libvirt.so exports
as private symbols. Prints every @api that is neither public nor an allowed
internal name, and exits 1 if there is one. Not used at run time.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "remote.x"
DEFAULT_API_XML = Path("/usr/share/libvirt/api/libvirt-api.xml")

# Internal functions (src/libvirt_internal.h) that a procedure maps to.
INTERNAL_APIS: dict[str, str] = {
    "virConnectSupportsFeature": "feature probe used by the remote driver (CONNECT_SUPPORTS_FEATURE)",
    "virDomainMigratePrepare": "migration v1 destination step",
    "virDomainMigratePerform": "migration v1 source step",
    "virDomainMigrateFinish": "migration v1 destination step",
    "virDomainMigratePrepare2": "migration v2 destination step",
    "virDomainMigrateFinish2": "migration v2 destination step",
    "virDomainMigratePrepareTunnel": "migration v2 tunnelled destination step",
    "virDomainMigrateBegin3": "migration v3 source step",
    "virDomainMigratePrepare3": "migration v3 destination step",
    "virDomainMigratePrepareTunnel3": "migration v3 tunnelled destination step",
    "virDomainMigratePerform3": "migration v3 source step",
    "virDomainMigrateFinish3": "migration v3 destination step",
    "virDomainMigrateConfirm3": "migration v3 source step",
    "virDomainMigrateBegin3Params": "migration v3 (typed params) source step",
    "virDomainMigratePrepare3Params": "migration v3 (typed params) destination step",
    "virDomainMigratePrepareTunnel3Params": "migration v3 (typed params) tunnelled destination step",
    "virDomainMigratePerform3Params": "migration v3 (typed params) source step",
    "virDomainMigrateFinish3Params": "migration v3 (typed params) destination step",
    "virDomainMigrateConfirm3Params": "migration v3 (typed params) source step",
}

_ENTRY = re.compile(r"/\*\*((?:(?!\*/).)*)\*/\s*(\w+)\s*=\s*(\d+)", re.S)
_ANNOTATION = re.compile(r"@(\w+)(?::[ \t]*([^\n]*))?")


def procedure_annotations(spec_text: str) -> dict[str, dict[str, str]]:
    """Map each enum entry name to its annotations (key -> value, '' if none)."""
    out: dict[str, dict[str, str]] = {}
    for comment, name, _number in _ENTRY.findall(spec_text):
        if not name.startswith("REMOTE_PROC_"):
            continue
        out[name] = {key: value.strip() for key, value in _ANNOTATION.findall(comment)}
    return out


def public_functions(api_xml: Path) -> set[str]:
    return {f.get("name", "") for f in ET.parse(api_xml).iter("function")}


def unknown_apis(annotations: dict[str, dict[str, str]], public: set[str]) -> list[tuple[str, str]]:
    """(procedure, api) pairs whose api is neither public nor an allowed internal name."""
    bad: list[tuple[str, str]] = []
    for proc, notes in annotations.items():
        api = notes.get("api")
        if api is None:
            if "event" not in notes:
                bad.append((proc, "<missing>"))
            continue
        if api not in public and api not in INTERNAL_APIS:
            bad.append((proc, api))
    return bad


def main(argv: list[str]) -> int:
    spec = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    api_xml = Path(argv[2]) if len(argv) > 2 else DEFAULT_API_XML
    notes = procedure_annotations(spec.read_text(encoding="utf-8"))
    public = public_functions(api_xml)
    internal_used = sorted({n["api"] for n in notes.values() if n.get("api") in INTERNAL_APIS})
    print(f"{len(notes)} procedures; allowed internal names in use:")
    for api in internal_used:
        print(f"  {api}: {INTERNAL_APIS[api]}")
    bad = unknown_apis(notes, public)
    for proc, api in bad:
        print(f"UNKNOWN {proc}: {api}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
