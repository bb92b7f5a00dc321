"""Errors and attribute readers shared by the network definition modules.

The builders report under VIR_FROM_NETWORK, as network_conf.c does; the
attribute readers are virXMLProp*'s, which report under VIR_FROM_XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report

FROM = C.VIR_FROM_NETWORK
_TRISTATE = ("yes", "no")


def xml_error(detail: str, domain: int = FROM) -> libvirtError:
    return report(C.VIR_ERR_XML_ERROR, domain, detail)


def unsupported(detail: str) -> libvirtError:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, FROM, detail)


def internal(detail: str, domain: int = FROM) -> libvirtError:
    return report(C.VIR_ERR_INTERNAL_ERROR, domain, detail)


def bad_attr(attr: str, tag: str, value: str) -> libvirtError:
    """virXMLProp*'s error for a value outside the attribute's type."""
    return xml_error(f"Invalid value for attribute '{attr}' in element '{tag}': '{value}'.", C.VIR_FROM_XML)


def tristate(el: ET.Element | None, attr: str) -> str | None:
    """A yes/no attribute (virXMLPropTristateBool); None when absent."""
    if el is None:
        return None
    value = el.get(attr)
    if value is None:
        return None
    if value not in _TRISTATE:
        raise bad_attr(attr, el.tag, value)
    return value


def uint_attr(el: ET.Element, attr: str, *, bits: int = 32) -> int | None:
    """An unsigned decimal attribute (virXMLPropUInt); None when absent."""
    value = el.get(attr)
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or int(text) >= 1 << bits:
        raise xml_error(
            f"Invalid value for attribute '{attr}' in element '{el.tag}': '{value}'. "
            "Expected non-negative integer value",
            C.VIR_FROM_XML,
        )
    return int(text)
