"""server/xmlschema.py: the shipped schemas, their lazy compilation, libvirt's message layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.server import xmlschema

DEBIAN_SCHEMAS = Path("/usr/share/libvirt/schemas")
# The documents a VALIDATE flag checks, by the schema libvirt names for them.
ENTRY_SCHEMAS = [
    "domain.rng",
    "network.rng",
    "interface.rng",
    "storagepool.rng",
    "storagevol.rng",
    "nodedev.rng",
    "secret.rng",
    "domainsnapshot.rng",
    "domaincheckpoint.rng",
]


def test_the_shipped_schemas_are_libvirt_9_0s() -> None:
    """The package's copy is Debian's libvirt 9.0 set, file for file (scripts/test.sh installs it)."""
    shipped = {p.name: p.read_bytes() for p in xmlschema.SCHEMA_DIR.glob("*.rng")}
    debian = {p.name: p.read_bytes() for p in DEBIAN_SCHEMAS.glob("*.rng")}
    assert debian, "libvirt's schemas are missing: run scripts/test.sh"
    assert shipped == debian


@pytest.mark.parametrize("schema", ENTRY_SCHEMAS)
def test_every_entry_schema_compiles_once(schema: str) -> None:
    first = xmlschema.compiled_schema(schema)
    assert xmlschema.compiled_schema(schema) is first


def test_the_server_does_not_import_lxml_until_a_document_is_validated() -> None:
    code = (
        "import sys\n"
        "import virtwire.server.cli, virtwire.server.driver.memory.driver\n"
        "assert 'lxml' not in sys.modules, 'lxml imported at start'\n"
        "from virtwire.server.xmlschema import validate_against_schema\n"
        "validate_against_schema('<secret/>', 'secret.rng')\n"
        "assert 'lxml' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_invalid_document_gets_libvirts_error_layout() -> None:
    with pytest.raises(libvirtError) as caught:
        xmlschema.validate_against_schema("<secret><bogus/></secret>", "secret.rng")
    err = caught.value
    assert (err.get_error_code(), err.get_error_domain()) == (C.VIR_ERR_XML_INVALID_SCHEMA, C.VIR_FROM_XML)
    assert err.get_error_message() == (
        "XML document failed to validate against schema: Unable to validate doc against "
        "/usr/share/libvirt/schemas/secret.rng\nElement secret has extra content: bogus\n"
    )


def test_a_valid_document_passes() -> None:
    xmlschema.validate_against_schema(
        "<secret ephemeral='no'><usage type='tls'><name>t</name></usage></secret>", "secret.rng"
    )
