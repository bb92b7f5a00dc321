"""Namespaced ``<metadata>`` elements: put one in, take one out, print it as libxml2 does.

virDomainSetMetadata parses the caller's element, moves every element of it that
has no namespace into the caller's (``uri`` with prefix ``key``) and replaces
whatever ``<metadata>`` held in that namespace.  virDomainGetMetadata prints the
element back without that namespace, with libxml2's node dump: double-quoted
attributes, children indented by two spaces unless the element holds text
(then its content is printed exactly as it is).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C

from ...errors import report, xml_detail
from .domxml import set_namespace_prefix

# xmlValidateNCName: a name without a colon that starts with a letter or "_".
_NCNAME = re.compile(r"[^\W\d][\w.\-]*\Z")


def parse_element(text: str, uri: str, key: str) -> ET.Element:
    """The caller's element, in namespace ``uri`` printed with prefix ``key``."""
    try:
        root = ET.fromstring(text.encode("utf-8", "surrogateescape"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        raise xml_detail(f"(metadata_xml):{line}: {exc}") from None
    if not _NCNAME.match(key):
        raise report(
            C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_XML, "failed to validate prefix for a new XML namespace"
        )
    for el in root.iter():
        if not el.tag.startswith("{"):
            el.tag = f"{{{uri}}}{el.tag}"
            set_namespace_prefix(el, key)
    return root


def in_namespace(el: ET.Element, uri: str) -> bool:
    return el.tag.startswith(f"{{{uri}}}")


def dump_without_namespace(el: ET.Element, uri: str) -> str:
    """virXMLExtractNamespaceXML: ``el`` printed by xmlNodeDump, ``uri``'s names unprefixed."""
    parts: list[str] = []
    _dump(el, uri, 0, True, parts)
    return "".join(parts)


def _name(tag: str, uri: str) -> str:
    if tag.startswith(f"{{{uri}}}"):
        return tag[len(uri) + 2 :]
    return tag.rsplit("}", 1)[-1]


def _dump(el: ET.Element, uri: str, level: int, formatted: bool, parts: list[str]) -> None:
    name = _name(el.tag, uri)
    attrs = "".join(f' {_name(k, uri)}="{_escape_attr(v)}"' for k, v in el.attrib.items())
    children = list(el)
    if not children and not el.text:
        parts.append(f"<{name}{attrs}/>")
        return
    # libxml2 stops indenting inside an element that holds text.
    indent_children = formatted and not el.text and not any(child.tail for child in children)
    parts.append(f"<{name}{attrs}>")
    if el.text:
        parts.append(_escape_text(el.text))
    if indent_children:
        parts.append("\n")
    for child in children:
        if indent_children:
            parts.append("  " * (level + 1))
        _dump(child, uri, level + 1, indent_children, parts)
        if indent_children:
            parts.append("\n")
        if child.tail:
            parts.append(_escape_text(child.tail))
    if indent_children:
        parts.append("  " * level)
    parts.append(f"</{name}>")


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _escape_attr(text: str) -> str:
    text = _escape_text(text).replace('"', "&quot;")
    return text.replace("\n", "&#10;").replace("\t", "&#9;")
