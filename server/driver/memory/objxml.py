"""XML helpers shared by the secret, snapshot, checkpoint and node device families.

``parse_document`` is what libvirt's ``virXMLParse`` does before any family code
runs: a document that does not parse is VIR_ERR_XML_DETAIL under the caller's
error domain, quoting the document's URL (``(definition_of_secret)``, ...); a
wrong root element is VIR_ERR_XML_ERROR under VIR_FROM_XML.  expat's wording of a
syntax error differs from libxml2's; code, domain and the URL prefix match.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report


def parse_document(xml: str, url: str, root: str, domain: int) -> ET.Element:
    """The root element of ``xml``, which must be ``<root>``; libvirt's errors otherwise."""
    try:
        element = ET.fromstring(xml.encode("utf-8", "surrogateescape"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        detail = f"{url}:{line}: {exc}"
        raise libvirtError(
            detail, (C.VIR_ERR_XML_DETAIL, domain, detail, C.VIR_ERR_ERROR, "%s", detail, None, -1, -1)
        ) from None
    if element.tag != root:
        raise report(
            C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, f"expecting root element of '{root}', not '{element.tag}'"
        )
    return element


def escape_text(text: str) -> str:
    """Element content as virBufferEscapeString writes it."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
        .replace('"', "&quot;")
    )


def xpath_string(element: ET.Element, path: str) -> str | None:
    """``virXPathString("string(path)")``: the first match's text, None when missing or empty."""
    found = element.find(path)
    if found is None:
        return None
    text = "".join(found.itertext())
    return text or None


_SPACE = " \t\n\v\f\r"


def parse_uuid_text(text: str) -> bytes | None:
    """virUUIDParse: 32 hex digits in pairs, '-' or ' ' between pairs, blanks around; None if bad."""
    rest = text.lstrip(_SPACE)
    out = bytearray()
    pos = 0
    while len(out) < 16:
        if pos >= len(rest):
            return None
        if rest[pos] in "- ":
            pos += 1
            continue
        pair = rest[pos : pos + 2]
        if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return None
        out.append(int(pair, 16))
        pos += 2
    if rest[pos:].strip(_SPACE):
        return None
    return bytes(out)
