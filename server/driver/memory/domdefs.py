"""A domain's two definitions (live and persistent) and the XML sections tunables change.

A running persistent domain has two definitions, as in libvirt: ``dom.tree`` is
the live one and ``dom.new_tree`` the persistent one (libvirt's ``newDef``),
copied at start and put back at stop.  ``one_def`` / ``both_defs`` pick them the
way virDomainObjGetOneDefState / virDomainObjGetDefs do for AFFECT_* flags, with
the same errors.

The tunables live in the definition tree itself, as libvirt prints them:
``<vcpu>``, ``<cputune>``, ``<memtune>``, ``<blkiotune>``, ``<numatune>``,
``<iothreadids>``, ``<perf>`` ...  ``put_section`` places a rebuilt section where
virDomainDefFormat prints it; ``sync_fields`` refreshes the figures the model
keeps next to the live tree (memory, vCPUs) after a change.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C

from ...errors import report
from .model import Domain

# Top-level elements in the order virDomainDefFormat prints them.
_ORDER = (
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
    "seclabel",
    "keywrap",
    "launchSecurity",
)
_RANK = {tag: i for i, tag in enumerate(_ORDER)}

# VIR_DOMAIN_CPUMASK_LEN: the largest bitmap a cpuset/nodeset string may name.
CPUMASK_LEN = 4096


# --- which definition a call acts on -------------------------------------------------------


def config_tree(dom: Domain) -> ET.Element:
    """The persistent definition (``newDef`` while running, else the only one)."""
    return dom.new_tree if dom.new_tree is not None else dom.tree


def _modification_impact(dom: Domain, flags: int) -> int:
    """virDomainObjUpdateModificationImpact: resolve CURRENT, refuse impossible targets."""
    live, config = C.VIR_DOMAIN_AFFECT_LIVE, C.VIR_DOMAIN_AFFECT_CONFIG
    if not flags & (live | config):
        flags |= live if dom.active else config
    if not dom.active and flags & live:
        raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_DOMAIN, "domain is not running")
    if not dom.persistent and flags & config:
        raise report(
            C.VIR_ERR_OPERATION_INVALID,
            C.VIR_FROM_DOMAIN,
            "transient domains do not have any persistent config",
        )
    return flags


def one_def(dom: Domain, flags: int) -> tuple[ET.Element, bool]:
    """virDomainObjGetOneDefState: the definition ``flags`` name and whether it is the live one."""
    if flags & C.VIR_DOMAIN_AFFECT_LIVE and flags & C.VIR_DOMAIN_AFFECT_CONFIG:
        raise E.invalid_argument(
            "virDomainObjGetOneDefState",
            "flags",
            "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
            C.VIR_FROM_DOMAIN,
        )
    flags = _modification_impact(dom, flags)
    live = bool(flags & C.VIR_DOMAIN_AFFECT_LIVE)
    if dom.active and flags & C.VIR_DOMAIN_AFFECT_CONFIG:
        return config_tree(dom), live
    return dom.tree, live


def both_defs(dom: Domain, flags: int) -> tuple[ET.Element | None, ET.Element | None]:
    """virDomainObjGetDefs: (live definition or None, persistent definition or None)."""
    flags = _modification_impact(dom, flags)
    if dom.active:
        live = dom.tree if flags & C.VIR_DOMAIN_AFFECT_LIVE else None
        persistent = config_tree(dom) if flags & C.VIR_DOMAIN_AFFECT_CONFIG else None
        return live, persistent
    return None, dom.tree


# --- life cycle of the two definitions ---------------------------------------------------


def split_on_start(dom: Domain) -> None:
    """virDomainObjSetDefTransient: a starting persistent domain keeps its config aside."""
    if dom.persistent and dom.new_tree is None:
        # libvirt's copy is the definition printed and parsed again (virDomainDefCopy), so
        # parse-time orders (virDomainDiskInsert's) apply once more to the kept definition.
        from .domxml import format_domain_xml, normalise, parse_domain_xml

        parsed = parse_domain_xml(format_domain_xml(dom.tree, domain_id=None))
        dom.new_tree = normalise(parsed, dom.uuid)


def merge_on_stop(dom: Domain) -> None:
    """virDomainObjRemoveTransientDef: the persistent definition becomes the only one."""
    if dom.new_tree is not None:
        dom.tree = dom.new_tree
        dom.new_tree = None
        sync_fields(dom)


def sync_fields(dom: Domain) -> None:
    """Refresh the live figures the model keeps (memory, vCPUs) from ``dom.tree``."""
    tree = dom.tree
    dom.memory_kib = int(tree.findtext("memory") or dom.memory_kib)
    dom.current_memory_kib = int(tree.findtext("currentMemory") or dom.current_memory_kib)
    maximum, current = vcpu_counts(tree)
    dom.max_vcpus, dom.vcpus = maximum, current


# --- sections -------------------------------------------------------------------------


def put_section(tree: ET.Element, tag: str, section: ET.Element | None) -> None:
    """Replace (or drop, when None) the top-level ``tag`` element, placed as libvirt prints it."""
    old = tree.find(tag)
    if old is not None:
        tree.remove(old)
    if section is None:
        return
    rank = _RANK.get(tag, len(_ORDER))
    for index, child in enumerate(tree):
        if _RANK.get(child.tag, -1) > rank:
            tree.insert(index, section)
            return
    tree.append(section)


def element(tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.Element(tag, attrs)
    if text is not None:
        el.text = text
    return el


def vcpu_counts(tree: ET.Element) -> tuple[int, int]:
    """(maximum, current) vCPUs of a definition."""
    vcpu = tree.find("vcpu")
    if vcpu is None:
        return 1, 1
    maximum = int((vcpu.text or "1").strip())
    return maximum, int(vcpu.get("current", maximum))


def set_vcpu_counts(tree: ET.Element, maximum: int, current: int) -> None:
    """Rewrite ``<vcpu>`` as virDomainCpuDefFormat prints it (current only when lower)."""
    old = tree.find("vcpu")
    attrs = dict(old.attrib) if old is not None else {}
    new = {"placement": attrs.pop("placement", "static")}
    if "cpuset" in attrs:
        new["cpuset"] = attrs.pop("cpuset")
    attrs.pop("current", None)
    if current < maximum:
        new["current"] = str(current)
    new.update(attrs)
    put_section(tree, "vcpu", element("vcpu", str(maximum), **new))


# --- bitmaps ----------------------------------------------------------------------------


def bitmap_from_bytes(data: bytes) -> set[int]:
    """virBitmapNewData: bit ``i`` of byte ``i // 8`` (least significant first)."""
    return {i * 8 + bit for i, byte in enumerate(data) for bit in range(8) if byte >> bit & 1}


def bitmap_to_bytes(bits: Iterable[int], maplen: int) -> bytes:
    """virBitmapToDataBuf: the first ``maplen`` bytes of a bitmap."""
    out = bytearray(maplen)
    for bit in bits:
        if bit < maplen * 8:
            out[bit // 8] |= 1 << (bit % 8)
    return bytes(out)


def format_bitmap(bits: Iterable[int]) -> str:
    """virBitmapFormat: ascending ranges, ``0-3,5``; the empty set is ``""``."""
    ordered = sorted(set(bits))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_bitmap(text: str, limit: int = CPUMASK_LEN) -> set[int]:
    """virBitmapParse: ``N``, ``N-M`` and ``^N`` items, comma separated, bits below ``limit``."""
    bits: set[int] = set()
    failed = report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, f"Failed to parse bitmap '{text}'")
    cur = text.lstrip()
    if not cur:
        raise failed
    while cur:
        neg = cur.startswith("^")
        if neg:
            cur = cur[1:]
        start_digits = _digits(cur)
        if not start_digits:
            raise failed
        start = int(start_digits)
        cur = cur[len(start_digits) :].lstrip()
        if not cur or cur[0] == ",":
            if start >= limit:
                raise failed
            (bits.discard if neg else bits.add)(start)
        elif cur[0] == "-":
            if neg:
                raise failed
            cur = cur[1:].lstrip()
            sign = "-" if cur.startswith("-") else ""
            last_digits = _digits(cur[len(sign) :])
            if not last_digits:
                raise failed
            last = int(sign + last_digits)
            if last < start or last >= limit:
                raise failed
            bits.update(range(start, last + 1))
            cur = cur[len(sign) + len(last_digits) :].lstrip()
        if cur.startswith(","):
            cur = cur[1:].lstrip()
        elif cur:
            raise failed
    return bits


def _digits(text: str) -> str:
    end = 0
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[:end]
