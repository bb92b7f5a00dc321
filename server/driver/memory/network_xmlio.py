"""XML plumbing shared by the network and interface definitions.

Parsing a document the way libvirt's virXMLParse reports trouble (the error's
domain is the family's: VIR_FROM_NETWORK, VIR_FROM_INTERFACE), printing a
normalised tree the way libvirt's format functions do (two-space indent,
single-quoted attributes in the tree's order, namespaced metadata as libxml2
dumps it), and the address types both families parse: MACs, IP addresses,
UUIDs, with libvirt's acceptance rules.
"""

from __future__ import annotations

import socket
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, cast

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report
from . import domxml


def parse_document(xml: str, label: str, root_tag: str, domain: int) -> ET.Element:
    """The root element of ``xml``; libvirt's errors for a broken document or a wrong root.

    ``label`` is the pseudo file name libvirt prints, e.g. "(network_definition)".
    """
    root = parse_document_any(xml, label, domain)
    if root.tag != root_tag:
        raise report(
            C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, f"expecting root element of '{root_tag}', not '{root.tag}'"
        )
    return root


def parse_document_any(xml: str, label: str, domain: int) -> ET.Element:
    """The root element of ``xml`` whatever its name; libvirt's error for a broken document.

    Namespace prefixes are remembered the way domxml does, so metadata prints back
    with the prefixes it came with.
    """
    try:
        parser: ET.XMLPullParser[Any] = ET.XMLPullParser(events=("start-ns", "end"))
        parser.feed(xml.encode("utf-8", "surrogateescape"))  # not UTF-8: an XML error, as domxml
        parser.close()
        prefixes: dict[str, str] = {}
        root: ET.Element | None = None
        for record in parser.read_events():
            event, item = cast(tuple[str, Any], record)
            if event == "start-ns":
                prefix, uri = cast(tuple[str, str], item)
                if prefix:
                    prefixes.setdefault(uri, prefix)
                    domxml._NS_PREFIXES.setdefault(uri, prefix)
            else:
                root = cast(ET.Element, item)
        if root is None:
            raise ET.ParseError("no element found")
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        detail = f"{label}:{line}: {exc}"
        raise libvirtError(
            detail, (C.VIR_ERR_XML_DETAIL, domain, detail, C.VIR_ERR_ERROR, "%s", detail, None, -1, -1)
        ) from None
    for el in root.iter():
        if el.tag.startswith("{"):
            found = prefixes.get(el.tag[1:].split("}", 1)[0])
            if found is not None:
                domxml._ELEMENT_PREFIXES[el] = found
    return root


def element(parent: ET.Element | None, tag: str, attrs: dict[str, str | None] | None = None) -> ET.Element:
    """A new element with the non-None ``attrs`` in their order, appended to ``parent``."""
    clean = {k: v for k, v in (attrs or {}).items() if v is not None}
    el = ET.Element(tag, clean)
    if parent is not None:
        parent.append(el)
    return el


def text_element(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = element(parent, tag)
    el.text = text
    return el


# --- printing ---------------------------------------------------------------------------


def _escape(text: str) -> str:
    """virBufferEscapeString's escaping (quotes too, in text as in attributes)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("'", "&apos;").replace('"', "&quot;")


def format_tree(
    root: ET.Element,
    always_open: Callable[[ET.Element], bool],
    raw_attr: Callable[[ET.Element, str], bool] = lambda el, attr: False,
) -> str:
    """Print a normalised tree as libvirt's formatters do.

    Elements for which ``always_open`` says so print as an open/close pair even
    when empty (libvirt's ``<ip>`` does).  Attributes for which ``raw_attr``
    says so are printed without escaping, as libvirt's formatters print them
    with a plain ``%s``.  A ``metadata`` element's children are
    printed by domxml, which knows libxml2's way with namespaces.
    """
    parts: list[str] = []
    _format(root, 0, parts, always_open, raw_attr)
    return "".join(parts)


def _format(
    el: ET.Element,
    depth: int,
    parts: list[str],
    always_open: Callable[[ET.Element], bool],
    raw_attr: Callable[[ET.Element, str], bool],
) -> None:
    pad = "  " * depth
    attrs = "".join(f" {k}='{v if raw_attr(el, k) else _escape(v)}'" for k, v in el.attrib.items())
    children = list(el)
    text = el.text or ""
    if el.tag == "metadata":
        if not children:
            parts.append(f"{pad}<metadata/>\n")
            return
        parts.append(f"{pad}<metadata>\n")
        for child in children:
            domxml._format(child, depth + 1, parts)
        parts.append(f"{pad}</metadata>\n")
    elif children:
        parts.append(f"{pad}<{el.tag}{attrs}>\n")
        for child in children:
            _format(child, depth + 1, parts, always_open, raw_attr)
        parts.append(f"{pad}</{el.tag}>\n")
    elif text:
        parts.append(f"{pad}<{el.tag}{attrs}>{_escape(text)}</{el.tag}>\n")
    elif always_open(el):
        parts.append(f"{pad}<{el.tag}{attrs}>\n{pad}</{el.tag}>\n")
    else:
        parts.append(f"{pad}<{el.tag}{attrs}/>\n")


def copy_tree(el: ET.Element) -> ET.Element:
    """A deep copy keeping only elements, attributes and non-blank text (libxml2 drops blanks)."""
    out = ET.Element(el.tag, dict(el.attrib))
    text = el.text or ""
    if text.strip() or (len(el) == 0 and text):
        out.text = text
    for child in el:
        if isinstance(child.tag, str):
            out.append(copy_tree(child))
    for src, dst in zip(el.iter(), out.iter(), strict=False):
        if src.tag.startswith("{") and src in domxml._ELEMENT_PREFIXES:
            domxml._ELEMENT_PREFIXES[dst] = domxml._ELEMENT_PREFIXES[src]
    return out


# --- addresses --------------------------------------------------------------------------


def parse_uuid(text: str) -> bytes | None:
    """virUUIDParse: 32 hex digits, '-' or ' ' allowed between pairs, blanks around."""
    digits: list[str] = []
    s = text.lstrip(" ")
    i = 0
    while i < len(s) and len(digits) < 32:
        ch = s[i]
        if ch in "- " and digits and len(digits) % 2 == 0:
            i += 1
            continue
        if ch not in "0123456789abcdefABCDEF":
            return None
        digits.append(ch)
        i += 1
    if len(digits) != 32 or s[i:].strip(" "):
        return None
    return bytes.fromhex("".join(digits))


def uuid_string(raw: bytes) -> str:
    return str(uuidlib.UUID(bytes=raw))


def parse_mac(text: str) -> bytes | None:
    """virMacAddrParse: six 1-2 digit hex groups separated by ':'; None if malformed."""
    groups = text.split(":")
    if len(groups) != 6:
        return None
    out = bytearray()
    for n, group in enumerate(groups):
        if n == 5:
            # libvirt stops at the first character <= ' ' after the last group.
            cut = next((k for k, ch in enumerate(group) if ord(ch) <= 32), len(group))
            group = group[:cut]
        if not 1 <= len(group) <= 2 or any(ch not in "0123456789abcdefABCDEF" for ch in group):
            return None
        out.append(int(group, 16))
    return bytes(out)


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)


class SocketAddr:
    """An IPv4/IPv6 address parsed as getaddrinfo(AI_NUMERICHOST) does (virSocketAddrParse)."""

    __slots__ = ("family", "packed")

    def __init__(self, family: int, packed: bytes) -> None:
        self.family = family
        self.packed = packed

    @property
    def ipv4(self) -> bool:
        return self.family == socket.AF_INET

    @property
    def value(self) -> int:
        return int.from_bytes(self.packed, "big")

    @property
    def bits(self) -> int:
        return len(self.packed) * 8

    def __str__(self) -> str:
        return socket.inet_ntop(self.family, self.packed)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SocketAddr) and (self.family, self.packed) == (other.family, other.packed)

    def __hash__(self) -> int:
        return hash((self.family, self.packed))

    def with_value(self, value: int) -> SocketAddr:
        return SocketAddr(self.family, value.to_bytes(len(self.packed), "big"))


def parse_addr(text: str) -> SocketAddr | None:
    """The address ``text`` names, or None where libvirt's parse fails."""
    try:
        info = socket.getaddrinfo(text, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    family, _, _, _, sockaddr = info[0]
    if family == socket.AF_INET:
        return SocketAddr(family, socket.inet_pton(family, str(sockaddr[0])))
    if family == socket.AF_INET6:
        host = str(sockaddr[0]).split("%", 1)[0]
        return SocketAddr(family, socket.inet_pton(family, host))
    return None


def addr_parse_error(text: str) -> libvirtError:
    """virSocketAddrParse's own error (gai_strerror of EAI_NONAME)."""
    return report(
        C.VIR_ERR_SYSTEM_ERROR,
        C.VIR_FROM_NONE,
        f"Cannot parse socket address '{text}': Name or service not known",
    )


def netmask_prefix(mask: SocketAddr) -> int | None:
    """The prefix length a contiguous netmask stands for, or None."""
    value, bits = mask.value, mask.bits
    ones = bin(value).count("1")
    expected = ((1 << ones) - 1) << (bits - ones) if ones else 0
    return ones if value == expected else None


def mask_of(prefix: int, bits: int) -> int:
    return ((1 << prefix) - 1) << (bits - prefix) if prefix else 0
