"""A network's ``<dns>``: network_conf.c's virNetworkDNS*ParseXML and the form libvirt prints.

``partial`` is the form virNetworkUpdate's delete (and match) accepts: fields
a full record needs may be missing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import report
from .network_xmlio import element, parse_addr, text_element

FROM = C.VIR_FROM_NETWORK
# RFC 2782's limit minus overhead (network_conf.h DNS_RECORD_LENGTH_SRV).
SRV_RECORD_LENGTH = 512 - 30
_PROTOCOL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/")
_SERVICE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/*")


def _detail(detail: str) -> libvirtError:
    return report(C.VIR_ERR_XML_DETAIL, FROM, detail)


def _xml_error(detail: str) -> libvirtError:
    return report(C.VIR_ERR_XML_ERROR, FROM, detail)


def _tristate(src: ET.Element, attr: str) -> str | None:
    value = src.get(attr)
    if value is not None and value not in ("yes", "no"):
        raise report(
            C.VIR_ERR_XML_ERROR,
            C.VIR_FROM_XML,
            f"Invalid value for attribute '{attr}' in element '{src.tag}': '{value}'.",
        )
    return value


def parse_dns(name: str, src: ET.Element) -> ET.Element | None:
    """virNetworkDNSDefParseXML; None when libvirt would print no <dns> at all."""
    enable = _tristate(src, "enable")
    plain = _tristate(src, "forwardPlainNames")
    forwarders: list[ET.Element] = []
    for fwd in src.findall("forwarder"):
        addr_text = fwd.get("addr")
        addr = None
        if addr_text is not None:
            addr = parse_addr(addr_text)
            if addr is None:
                raise _xml_error(f"Invalid forwarder IP address '{addr_text}' in network '{name}'")
        domain = fwd.get("domain")
        if addr_text is None and domain is None:
            raise _xml_error("Invalid forwarder element, must contain at least one of addr or domain")
        forwarders.append(element(None, "forwarder", {"domain": domain, "addr": str(addr) if addr else None}))
    hosts = [parse_dns_host(name, h, partial=False) for h in src.findall("host")]
    srvs = [parse_dns_srv(name, s, partial=False) for s in src.findall("srv")]
    txts = [parse_dns_txt(name, t, partial=False) for t in src.findall("txt")]
    if enable == "no" and (forwarders or hosts or srvs or txts):
        raise _xml_error(f"Extra data in disabled network '{name}'")
    if not (enable or plain or forwarders or hosts or srvs or txts):
        return None
    out = element(None, "dns", {"enable": enable, "forwardPlainNames": plain})
    out.extend(forwarders)
    out.extend(txts)
    out.extend(s for s in srvs if s.get("service") and s.get("protocol"))
    out.extend(hosts)
    return out


def parse_dns_host(name: str, src: ET.Element, *, partial: bool) -> ET.Element:
    ip_text = src.get("ip")
    if ip_text is None and not partial:
        raise _detail(f"Missing IP address in network '{name}' DNS HOST record")
    ip = parse_addr(ip_text) if ip_text is not None else None
    if ip_text is not None and ip is None:
        raise _detail(f"Invalid IP address in network '{name}' DNS HOST record")
    names: list[str] = []
    for hostname in src.findall("hostname"):
        if len(hostname) == 0 and hostname.text is None:
            continue  # an element without any content is skipped
        text = "".join(hostname.itertext())
        if not text:
            raise _detail(f"Missing hostname in network '{name}' DNS HOST record")
        names.append(text)
    if not names and not partial:
        raise _detail(f"Missing hostname in network '{name}' DNS HOST record")
    if ip is None and not names:
        raise _detail(f"Missing ip and hostname in network '{name}' DNS HOST record")
    out = element(None, "host", {"ip": str(ip) if ip is not None else None})
    for host_name in names:
        text_element(out, "hostname", host_name)
    return out


def _srv_number(src: ET.Element, attr: str) -> int | None:
    """virXPathUInt: None when absent, -1 when not an unsigned int."""
    text = src.get(attr)
    if text is None:
        return None
    body = text.lstrip()
    if not body.isdigit() or int(body) >= 1 << 32:
        return -1
    return int(body)


def parse_dns_srv(name: str, src: ET.Element, *, partial: bool) -> ET.Element:
    service = src.get("service")
    if service is None and not partial:
        raise _detail(f"missing required service attribute in DNS SRV record of network '{name}'")
    if service is not None:
        if len(service.encode()) > SRV_RECORD_LENGTH:
            raise _detail(
                f"service attribute '{service}' in network '{name}' is too long, "
                f"limit is {SRV_RECORD_LENGTH} bytes"
            )
        if any(ch not in _SERVICE_CHARS for ch in service):
            raise _detail(
                f"invalid character in service attribute '{service}' in DNS SRV record of network '{name}'"
            )
    protocol = src.get("protocol")
    if protocol is None and not partial:
        raise _detail(
            f"missing required protocol attribute in DNS SRV record '{service}' of network '{name}'"
        )
    if protocol is not None and any(ch not in _PROTOCOL_CHARS for ch in protocol):
        raise _detail(
            f"invalid character in protocol attribute '{protocol}' in DNS SRV record of network '{name}'"
        )
    domain, target = src.get("domain"), src.get("target")
    numbers: dict[str, int] = {}
    for attr, low, invalid in (("port", 1, "invalid"), ("priority", 0, "Invalid"), ("weight", 0, "invalid")):
        value = _srv_number(src, attr)
        if value is not None and value >= 0 and target is None:
            raise _detail(
                f"DNS SRV {attr} attribute not permitted without target "
                f"for service '{service}' in network '{name}'"
            )
        if value == -1 or (value is not None and not low <= value <= 65535):
            raise _detail(f"{invalid} DNS SRV {attr} attribute for service '{service}' in network '{name}'")
        numbers[attr] = value or 0
    return element(
        None,
        "srv",
        {
            "service": service,
            "protocol": protocol,
            "domain": domain,
            "target": target,
            **{attr: str(value) if value else None for attr, value in numbers.items()},
        },
    )


def parse_dns_txt(name: str, src: ET.Element, *, partial: bool) -> ET.Element:
    txt_name = src.get("name")
    if txt_name is None:
        raise _detail(f"missing required name attribute in DNS TXT record of network {name}")
    if " " in txt_name or "," in txt_name:
        raise _detail(f"prohibited character in DNS TXT record name '{txt_name}' of network {name}")
    value = src.get("value")
    if value is None and not partial:
        raise _detail(
            f"missing required value attribute in DNS TXT record named '{txt_name}' of network {name}"
        )
    return element(None, "txt", {"name": txt_name, "value": value})
