"""RelaxNG validation against libvirt 9.0's schemas: virXMLValidateAgainstSchema.

libvirt validates a document when the caller passes a VALIDATE flag (always, for
checkpoints) right after parsing it and checking its root element, before the
family's own parser looks at it.  lxml runs libxml2's RelaxNG validator, as
libvirt does, so the explanation lines are libxml2's own, in libxml2's order.

The schemas ship in server/data/schemas (see the README there).  libvirt's
message names the schema by its installed path, /usr/share/libvirt/schemas/X.rng,
and so does ours, whichever directory the copy is read from.

Each schema is compiled on first use and kept (domain.rng takes about 0.1 s and
some MiB to compile); lxml itself is imported only then, so neither server start
nor calls without the flag pay for it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from virtwire.protocol.generated import constants as C

from .errors import report

if TYPE_CHECKING:
    from lxml import etree

SCHEMA_DIR = Path(__file__).parent / "data" / "schemas"
# Debian's PKGDATADIR "/schemas": the path virFileFindResource gives libvirtd.
LIBVIRT_SCHEMA_DIR = "/usr/share/libvirt/schemas"


@functools.cache
def compiled_schema(name: str) -> etree.RelaxNG:
    """The schema ``name`` (e.g. "domain.rng"), compiled once per process."""
    from lxml import etree

    return etree.RelaxNG(etree.parse(str(SCHEMA_DIR / name)))


@functools.cache
def _parser() -> etree.XMLParser:
    from lxml import etree

    # virXMLParse's options: no network, entities left as references (no XML_PARSE_NOENT).
    return etree.XMLParser(resolve_entities=False, no_network=True)


def validate_against_schema(xml: str, schema: str) -> None:
    """Raise libvirt's VIR_ERR_XML_INVALID_SCHEMA when ``xml`` does not match ``schema``.

    Callers have already parsed ``xml`` and checked its root, as virXMLParse
    does before it validates.
    """
    from lxml import etree

    try:
        doc = etree.fromstring(xml.encode("utf-8", "surrogateescape"), _parser())
    except etree.XMLSyntaxError as exc:
        # Only reached where expat accepted what libxml2 refuses.
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, str(exc)) from None
    validator = compiled_schema(schema)
    if validator.validate(doc):
        return
    # virXMLValidatorRNGErrorCatch appends each libxml2 message, newline included.
    explanation = "".join(f"{entry.message}\n" for entry in validator.error_log)
    raise report(
        C.VIR_ERR_XML_INVALID_SCHEMA,
        C.VIR_FROM_XML,
        f"Unable to validate doc against {LIBVIRT_SCHEMA_DIR}/{schema}\n{explanation}",
    )
