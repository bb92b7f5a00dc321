"""Domain XML: parse a definition the way libvirt's test driver does, and print it back.

Parsing uses xml.etree (expat).  The checks, their order and their errors follow
libvirt 9.0's virDomainDefParseXML as seen from the test driver: root element,
type attribute, name, uuid, memory units, vcpu count, os type, memory present.
Everything we do not model is kept in the tree and printed back unchanged;
what libvirt fills in by default (arch, boot device, clock, on_* actions,
devices) is filled in the same way, so ``XMLDesc`` answers what libvirt answers.
"""

from __future__ import annotations

import uuid as uuidlib
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, cast

from virtwire.protocol.generated import constants as C

from ...errors import report, xml_detail
from ...xmlschema import validate_against_schema
from . import domcheck
from .devnorm import normalise_devices

# Byte multipliers of libvirt's virScaleInteger suffixes (first letter, case-insensitive).
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
# libvirt caps memory at what fits an unsigned long long of KiB / 1024 (virDomainParseMemory).
_MAX_MEMORY_KIB = (1 << 63) // 1024

# Child elements libvirt prints first, in this order; others follow as given.
_LEADING = (
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory",
    "vcpu", "os",
)  # fmt: skip
# Tuning sections libvirt prints between <currentMemory> and <vcpu>, and between <vcpu> and <os>.
_BEFORE_VCPU = ("blkiotune", "memtune", "memoryBacking")
_BEFORE_OS = (
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
)
# Sections libvirt prints right after <os>, in this order.
_AFTER_OS = ("idmap", "features", "cpu")
# virDomainFeature's order (how <features> children are printed).
_FEATURES = (
    "acpi", "apic", "pae", "hap", "viridian", "privnet", "hyperv", "kvm", "pvspinlock", "capabilities",
    "pmu", "vmport", "gic", "smm", "ioapic", "hpt", "vmcoreinfo", "htm", "nested-hv", "msrs",
    "ccf-assist", "xen", "cfpc", "sbbc", "ibs", "tcg",
)  # fmt: skip
# virDomainMemorybackingFormat's order of children.
_MEMORY_BACKING = ("hugepages", "nosharepages", "locked", "source", "access", "allocation", "discard")
_BLKIO_DEVICE = ("path", "weight", "read_iops_sec", "write_iops_sec", "read_bytes_sec", "write_bytes_sec")
# virDomainDefFormatOSInternal's order of <os> children.
_OS_CHILDREN = (
    "type", "firmware", "init", "initarg", "initenv", "initdir", "inituser", "initgroup", "loader",
    "nvram", "kernel", "initrd", "cmdline", "dtb", "root", "acpi", "boot", "bootmenu", "smbios",
    "bios",
)  # fmt: skip
# Sections libvirt prints after <on_crash>, and after <devices>.
_BEFORE_DEVICES = ("on_lockfailure", "pm", "perf")
_AFTER_DEVICES = ("seclabel", "keywrap", "launchSecurity")
_TRAILING_DEFAULTS: tuple[tuple[str, dict[str, str], str | None], ...] = (
    ("clock", {"offset": "utc"}, None),
    ("on_poweroff", {}, "destroy"),
    ("on_reboot", {}, "restart"),
    ("on_crash", {}, "destroy"),
)


@dataclass(slots=True)
class ParsedDomain:
    """The facts the driver needs out of a definition, plus the normalised tree."""

    name: str
    uuid: bytes | None  # None: not given, the driver generates one
    memory_kib: int
    current_memory_kib: int
    vcpus: int  # current (the <vcpu current='N'> attribute, else the maximum)
    os_type: str
    tree: ET.Element
    max_vcpus: int = 0  # the <vcpu> count; 0 until parsed


def _xml_error(detail: str) -> Exception:
    return report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, detail)


def _internal(detail: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_DOMAIN, detail)


def scale_to_kib(text: str | None, unit: str | None) -> int:
    """A memory size with its unit attribute, in KiB rounded up (virDomainParseMemory)."""
    try:
        value = int((text or "").strip())
        if value < 0:
            raise ValueError
    except ValueError:
        raise _xml_error("Invalid value for element or attribute 'memory'") from None
    suffix = unit or "KiB"
    low = suffix.lower()
    if low in ("b", "byte", "bytes"):
        multiplier = 1
    elif low[:1] in _POWERS and (len(low) == 1 or low[1:] in ("ib", "b")):
        base = 1000 if low[1:] == "b" else 1024
        multiplier = base ** _POWERS[low[0]]
    else:
        raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, f"unknown suffix '{suffix}'")
    kib = -(-value * multiplier // 1024)
    if kib > _MAX_MEMORY_KIB:
        raise report(C.VIR_ERR_OVERFLOW, C.VIR_FROM_NONE, f"value too large: {text}{suffix}")
    return kib


def parse_uuid(text: str) -> bytes:
    """A UUID as libvirt accepts it (with or without dashes) → 16 raw bytes."""
    try:
        return uuidlib.UUID(text.strip()).bytes
    except ValueError:
        raise _internal("malformed uuid element") from None


# The prefix each namespaced element's document used for its namespace (ElementTree
# keeps only URIs); a URI's first prefix seen in this process is the fallback for
# elements made elsewhere.
_ELEMENT_PREFIXES: weakref.WeakKeyDictionary[ET.Element, str] = weakref.WeakKeyDictionary()
_NS_PREFIXES: dict[str, str] = {}


def set_namespace_prefix(el: ET.Element, prefix: str) -> None:
    """Print the namespaced element ``el`` with ``prefix`` (as if its document had named it so)."""
    _ELEMENT_PREFIXES[el] = prefix


def _parse_tree(xml: str) -> ET.Element:
    try:
        parser: ET.XMLPullParser[Any] = ET.XMLPullParser(events=("start-ns", "end"))
        # As bytes: a wire string that is not UTF-8 (surrogate escapes) is then the
        # parser's "not well-formed" XML error, as in libvirt, not an encode failure.
        parser.feed(xml.encode("utf-8", "surrogateescape"))
        parser.close()
        prefixes: dict[str, str] = {}
        root: ET.Element | None = None
        for record in parser.read_events():
            event, item = cast(tuple[str, Any], record)
            if event == "start-ns":
                prefix, uri = cast(tuple[str, str], item)
                if prefix:
                    prefixes.setdefault(uri, prefix)
                    _NS_PREFIXES.setdefault(uri, prefix)
            else:
                root = cast(ET.Element, item)
        if root is None:
            raise ET.ParseError("no element found")
        for el in root.iter():
            if el.tag.startswith("{"):
                found = prefixes.get(el.tag[1:].split("}", 1)[0])
                if found is not None:
                    _ELEMENT_PREFIXES[el] = found
        return root
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        detail = f"(domain_definition):{line}: {exc}"
        raise xml_detail(detail) from None


def parse_domain_xml(xml: str, *, validate: bool = False) -> ParsedDomain:
    """Validate a domain definition and normalise its tree; raise libvirt's errors.

    ``validate``: check it against domain.rng first (VIR_DOMAIN_DEF_PARSE_VALIDATE_SCHEMA).
    """
    root = _parse_tree(xml)
    if root.tag != "domain":
        detail = f"expecting root element of 'domain', not '{root.tag}'"
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)
    if validate:
        validate_against_schema(xml, "domain.rng")
    # libvirt looks for the name before the type.
    name = (root.findtext("name") or "").strip()
    if not name:
        raise report(C.VIR_ERR_NO_NAME, C.VIR_FROM_DOMAIN)
    if not root.get("type"):
        raise _internal("missing domain type attribute")
    domcheck.check_domain_type(root)
    uuid_text = root.findtext("uuid")
    uuid = parse_uuid(uuid_text) if uuid_text is not None else None

    memory_el = root.find("memory")
    memory_kib = scale_to_kib(memory_el.text, memory_el.get("unit")) if memory_el is not None else 0
    current_el = root.find("currentMemory")
    current_kib = scale_to_kib(current_el.text, current_el.get("unit")) if current_el is not None else 0

    vcpu_el = root.find("vcpu")
    vcpus = current_vcpus = 1
    if vcpu_el is not None:
        try:
            vcpus = int((vcpu_el.text or "").strip())
        except ValueError:
            raise _xml_error("maximum vcpus count must be an integer") from None
        if vcpus < 0:
            raise _xml_error("maximum vcpus count must be an integer")
        current_vcpus = vcpus
        current = vcpu_el.get("current")
        if current is not None:
            try:
                current_vcpus = int(current)
            except ValueError:
                raise _xml_error("current vcpus count must be an integer") from None

    os_el = root.find("os")
    type_el = os_el.find("type") if os_el is not None else None
    os_type = (type_el.text or "").strip() if type_el is not None else ""
    if not os_type:
        raise _xml_error("an os <type> must be specified")
    numa_kib = _normalise_numa(root)
    domcheck.check_definition(root)
    if memory_kib == 0:
        memory_kib = numa_kib  # virDomainDefPostParseMemory: the cells' sum when <memory> is absent
    if memory_kib == 0:
        raise _xml_error("Memory size must be specified via <memory> or in the <numa> configuration")
    if vcpus == 0:
        raise _internal("CPU IDs in <numa> exceed the <vcpu> count")
    # libvirt caps the balloon at the maximum and defaults it to the maximum.
    if current_kib == 0 or current_kib > memory_kib:
        current_kib = memory_kib
    if current_vcpus > vcpus:
        raise _internal("Requested vcpus is greater than max allowable vcpus for the live domain")
    return ParsedDomain(name, uuid, memory_kib, current_kib, current_vcpus or vcpus, os_type, root, vcpus)


def _normalise_numa(root: ET.Element) -> int:
    """virDomainNumaDefParseXML: the guest NUMA cells in id order, each with its id, a canonical
    cpu list and its memory in KiB (virDomainNumaDefFormatXML's attributes); their total memory."""
    numa = root.find("cpu/numa")
    if numa is None:
        return 0
    from .domdefs import format_bitmap, parse_bitmap  # domdefs -> model -> domxml

    cells = numa.findall("cell")
    if not cells:
        raise _xml_error("NUMA topology defined without NUMA cells")
    placed: dict[int, ET.Element] = {}
    total = 0
    for position, cell in enumerate(cells):
        given_id = cell.get("id")
        try:
            cell_id = int(given_id) if given_id is not None else position
        except ValueError:
            raise _xml_error(f"Invalid value for attribute 'id' in element 'cell': '{given_id}'.") from None
        if not 0 <= cell_id < len(cells):
            raise _xml_error(
                "Exactly one 'cell' element per guest NUMA cell allowed, non-contiguous ranges or "
                "ranges not starting from 0 are not allowed"
            )
        if cell_id in placed:
            raise _xml_error(f"Duplicate NUMA cell info for cell id '{cell_id}'")
        attrs = {"id": str(cell_id)}
        if cell.get("cpus") is not None:
            cpus = format_bitmap(parse_bitmap(cell.get("cpus", "")))
            if cpus:
                attrs["cpus"] = cpus
        kib = scale_to_kib(cell.get("memory"), cell.get("unit"))
        total += kib
        attrs.update(memory=str(kib), unit="KiB")
        attrs.update((k, v) for k, v in cell.attrib.items() if k in ("memAccess", "discard"))
        cell.attrib = attrs
        placed[cell_id] = cell
    for cell in cells:
        numa.remove(cell)
    for position, cell_id in enumerate(sorted(placed)):
        numa.insert(position, placed[cell_id])
    return total


def normalise(parsed: ParsedDomain, uuid: bytes) -> ET.Element:
    """The definition as libvirt stores it: modelled fields rewritten, defaults added."""
    src = parsed.tree
    out = ET.Element("domain", {"type": src.get("type", "test")})
    leading: dict[str, ET.Element] = {}
    rest: list[ET.Element] = []
    for child in src:
        if child.tag.startswith("{"):
            continue  # another driver's namespace (qemu:commandline...): the test driver drops it
        if child.tag in _LEADING and child.tag not in leading:
            leading[child.tag] = child
        elif child.tag not in (tag for tag, _, _ in _TRAILING_DEFAULTS) and child.tag != "devices":
            rest.append(child)
    _text(out, "name", parsed.name)
    _text(out, "uuid", str(uuidlib.UUID(bytes=uuid)))
    if "genid" in leading:
        # An empty <genid/> asks for a generated one (virDomainDefParseXML).
        genid = (leading["genid"].text or "").strip()
        _text(out, "genid", str(uuidlib.UUID(genid) if genid else uuidlib.uuid4()))
    for tag in ("title", "description", "metadata"):
        if tag in leading:
            out.append(leading[tag])
    max_memory = leading.get("maxMemory")
    if max_memory is not None:
        slots = max_memory.get("slots", "0")
        max_kib = scale_to_kib(max_memory.text, max_memory.get("unit"))
        if max_kib or slots != "0":  # virDomainDefHasMemoryHotplug
            _text(out, "maxMemory", str(max_kib), slots=slots, unit="KiB")
    dump_core = leading["memory"].get("dumpCore") if "memory" in leading else None
    _text(out, "memory", str(parsed.memory_kib), **({"dumpCore": dump_core} if dump_core else {}), unit="KiB")
    _text(out, "currentMemory", str(parsed.current_memory_kib), unit="KiB")
    out.extend(_in_order(rest, _BEFORE_VCPU))
    vcpu_given = dict(leading["vcpu"].attrib) if "vcpu" in leading else {}
    vcpu_attrs = {"placement": vcpu_given.pop("placement", "static"), **vcpu_given}
    _text(out, "vcpu", str(parsed.max_vcpus or parsed.vcpus), **vcpu_attrs)
    out.extend(_in_order(rest, _BEFORE_OS))
    devices_el = src.find("devices")
    device_boot = devices_el is not None and any(d.find("boot") is not None for d in devices_el)
    out.append(_normalise_os(leading["os"], device_boot))
    for el in rest:
        _normalise_section(el)
        if el.tag == "memtune" and len(el) == 0 and el in list(out):
            out.remove(el)  # no limit left to print
    out.extend(_in_order(rest, _AFTER_OS))
    placed = (*_BEFORE_VCPU, *_BEFORE_OS, *_AFTER_OS, *_BEFORE_DEVICES, *_AFTER_DEVICES)
    out.extend(el for el in rest if el.tag not in placed)
    for tag, attrs, text in _TRAILING_DEFAULTS:
        given = src.find(tag)
        if given is not None:
            out.append(given)
        elif text is None:
            ET.SubElement(out, tag, attrs)
        else:
            _text(out, tag, text)
    out.extend(_in_order(rest, _BEFORE_DEVICES))
    devices = src.find("devices")
    out.append(normalise_devices(devices, parsed.os_type) if devices is not None else ET.Element("devices"))
    out.extend(_in_order(rest, _AFTER_DEVICES))
    return out


def _in_order(elements: list[ET.Element], tags: tuple[str, ...]) -> list[ET.Element]:
    return sorted((el for el in elements if el.tag in tags), key=lambda el: tags.index(el.tag))


def _ranked(children: list[ET.Element], order: tuple[str, ...]) -> list[ET.Element]:
    """Children in libvirt's printing order; tags it does not rank keep their place after."""
    return sorted(children, key=lambda c: order.index(c.tag) if c.tag in order else len(order))


def _reorder(el: ET.Element, order: tuple[str, ...]) -> None:
    children = list(el)
    for child in children:
        el.remove(child)
    el.extend(_ranked(children, order))


def _normalise_section(el: ET.Element) -> None:
    """Defaults and child order of <features>, <numatune>, <cpu> and <blkiotune> (virDomainDefFormat)."""
    if el.tag == "features":
        _reorder(el, _FEATURES)
        hyperv = el.find("hyperv")
        if hyperv is not None and "mode" not in hyperv.attrib:
            hyperv.attrib = {"mode": "custom", **hyperv.attrib}  # virDomainHyperVMode's default
        _normalise_features(el)
    elif el.tag == "memtune":
        _normalise_memtune(el)
    elif el.tag == "numatune":
        _normalise_numatune(el)
    elif el.tag == "memoryBacking":
        _reorder(el, _MEMORY_BACKING)
    elif el.tag == "blkiotune":
        for device in el.findall("device"):
            _reorder(device, _BLKIO_DEVICE)
    elif el.tag == "cpu":
        model = el.find("model")
        mode = el.get("mode", "custom")
        if "mode" not in el.attrib and (model is not None or el.find("feature") is not None):
            el.attrib = {"mode": mode, **el.attrib}
        if mode == "custom" and model is not None:
            if "match" not in el.attrib:
                items = list(el.attrib.items())
                items.insert(1 if "mode" in el.attrib else 0, ("match", "exact"))
                el.attrib = dict(items)
            model.attrib.setdefault("fallback", "allow")
        if model is not None:
            _cpu_model(el, model, mode)
        for feature in el.findall("feature"):
            # a guest CPU's features: the policy (require by default), then the name
            rest = {k: v for k, v in feature.attrib.items() if k not in ("policy", "name")}
            policy = feature.get("policy", "require")
            feature.attrib = {"policy": policy, "name": feature.get("name", ""), **rest}


# Features whose state is on when not given (virDomainFeaturesDefParse).
_STATE_ON_FEATURES = ("vmcoreinfo", "hap", "pmu", "pvspinlock", "vmport", "smm")
_SIZE_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
# virDomainMemtuneFormat's limits, in its order; a limit this large (KiB) is no limit.
_MEMTUNE = ("hard_limit", "soft_limit", "min_guarantee", "swap_hard_limit")
_MEMORY_UNLIMITED_KIB = (1 << 53) - 1


def _pretty_size(size: int) -> tuple[int, str]:
    """virFormatIntPretty: a byte count in the largest unit that divides it exactly."""
    unit = 0
    while size and size % 1024 == 0 and unit < len(_SIZE_UNITS) - 1:
        size //= 1024
        unit += 1
    return size, _SIZE_UNITS[unit]


def _normalise_features(features: ET.Element) -> None:
    for el in features:
        if el.tag in _STATE_ON_FEATURES:
            el.attrib = {"state": el.get("state", "on"), **el.attrib}
        if el.tag == "smm":
            tseg = el.find("tseg")
            if tseg is not None and el.get("state") == "on":
                size, unit = _pretty_size(scale_to_kib(tseg.text, tseg.get("unit") or "MiB") * 1024)
                tseg.attrib, tseg.text = {"unit": unit}, str(size)
        elif el.tag == "hpt":
            page = el.find("maxpagesize")
            if page is not None:
                page.attrib, page.text = {"unit": "KiB"}, str(scale_to_kib(page.text, page.get("unit")))


def _normalise_memtune(memtune: ET.Element) -> None:
    """virDomainMemtuneFormat: each limit in KiB (a minimum guarantee only when not zero)."""
    limits: list[ET.Element] = []
    for tag in _MEMTUNE:
        given = memtune.find(tag)
        if given is None:
            continue
        kib = scale_to_kib(given.text, given.get("unit"))
        if (tag == "min_guarantee" and kib == 0) or kib >= _MEMORY_UNLIMITED_KIB:
            continue
        limit = ET.Element(tag, {"unit": "KiB"})
        limit.text = str(kib)
        limits.append(limit)
    for child in list(memtune):
        memtune.remove(child)
    memtune.extend(limits)


def _normalise_numatune(numatune: ET.Element) -> None:
    """virDomainNumatuneFormatXML: <memory> (mode strict by default; placement='auto' or a
    canonical nodeset), then the <memnode>s in cell order with canonical nodesets."""
    from .domdefs import format_bitmap, parse_bitmap  # domdefs -> model -> domxml

    memory = numatune.find("memory")
    if memory is not None:
        attrs = {"mode": memory.get("mode", "strict")}
        if memory.get("placement") == "auto":
            attrs["placement"] = "auto"
        elif memory.get("nodeset") is not None:
            attrs["nodeset"] = format_bitmap(parse_bitmap(memory.get("nodeset", "")))
        else:
            attrs.update((k, v) for k, v in memory.attrib.items() if k not in attrs)
        memory.attrib = attrs
    memnodes = numatune.findall("memnode")
    for memnode in memnodes:
        numatune.remove(memnode)
        if memnode.get("nodeset") is not None:
            nodeset = format_bitmap(parse_bitmap(memnode.get("nodeset", "")))
            rest = {k: v for k, v in memnode.attrib.items() if k not in ("cellid", "mode", "nodeset")}
            cellid, mode = memnode.get("cellid", ""), memnode.get("mode", "strict")
            memnode.attrib = {"cellid": cellid, "mode": mode, "nodeset": nodeset, **rest}
    memnodes.sort(key=lambda m: int(m.get("cellid", "0")) if m.get("cellid", "").isdigit() else 0)
    numatune.extend(memnodes)


def _cpu_model(cpu: ET.Element, model: ET.Element, mode: str) -> None:
    """virCPUDefFormatBuf's <model>: for custom and host-model CPUs with a name or a vendor
    id only; a named model's fallback (allow by default), then the vendor id."""
    name = (model.text or "").strip()
    vendor_id = model.get("vendor_id")
    if mode not in ("custom", "host-model") or not (name or vendor_id):
        cpu.remove(model)
        return
    attrs = {"fallback": model.get("fallback", "allow")} if name else {}
    if vendor_id:
        attrs["vendor_id"] = vendor_id
    model.attrib = attrs


def _normalise_os(os_el: ET.Element, device_boot: bool = False) -> ET.Element:
    os_out = ET.Element("os", dict(os_el.attrib))
    for child in _ranked(list(os_el), _OS_CHILDREN):
        if child.tag == "type":
            type_out = ET.SubElement(os_out, "type", dict(child.attrib))
            type_out.attrib.setdefault("arch", "i686")
            type_out.text = (child.text or "").strip()
        elif child.tag == "loader" and (child.text or "").strip() and "type" not in child.attrib:
            # A loader with a path is a ROM unless it says otherwise (virDomainDefPostParseOs).
            loader = ET.SubElement(os_out, "loader", {**child.attrib, "type": "rom"})
            loader.text = child.text
            loader.extend(list(child))
        else:
            os_out.append(child)
    # virDomainDefBootOrderPostParse: an HVM guest without boot devices boots from disk.
    hvm = (os_el.findtext("type") or "").strip() == "hvm"
    if hvm and not device_boot and os_el.find("boot") is None:
        ET.SubElement(os_out, "boot", {"dev": "hd"})
    return os_out


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> None:
    ET.SubElement(parent, tag, attrs).text = text


# --- printing, libvirt style ------------------------------------------------------------

# Elements libvirt always prints as an open/close pair, even when empty.
_ALWAYS_OPEN = frozenset({"devices", "bandwidth", "redirdev", "hyperv"})


def _escape(text: str, quote: bool) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("'", "&apos;").replace('"', "&quot;") if quote else text


def format_domain_xml(root: ET.Element, *, domain_id: int | None) -> str:
    """Print a domain tree as virDomainDefFormat does (2-space indent, single quotes)."""
    attrs = dict(root.attrib)
    if domain_id is not None:
        attrs["id"] = str(domain_id)
    parts: list[str] = []
    head = ET.Element(root.tag, attrs)
    head.extend(list(root))
    _format(head, 0, parts)
    return "".join(parts)


def _qualified(name: str, declared: dict[str, str], el: ET.Element) -> str:
    """``{uri}local`` as ``prefix:local``, declaring the prefix in ``declared`` if new."""
    if not name.startswith("{"):
        return name
    uri, local = name[1:].split("}", 1)
    prefix = _ELEMENT_PREFIXES.get(el) if el.tag.startswith(f"{{{uri}}}") else None
    if prefix is None:
        prefix = _NS_PREFIXES.setdefault(uri, f"ns{len(_NS_PREFIXES)}")
    declared.setdefault(prefix, uri)
    return f"{prefix}:{local}"


def _format(el: ET.Element, depth: int, parts: list[str], in_scope: frozenset[str] = frozenset()) -> None:
    pad = "  " * depth
    declared: dict[str, str] = {}
    tag = _qualified(el.tag, declared, el)
    names = [(_qualified(k, declared, el), v) for k, v in el.attrib.items()]
    # Namespaced metadata is printed as libvirt does (libxml2's node dump): prefix:name,
    # its xmlns declaration on the element that first uses it, double quotes.
    new = {p: u for p, u in declared.items() if p not in in_scope}
    q = '"' if el.tag.startswith("{") else "'"
    attrs = "".join(f" xmlns:{p}={q}{_escape(u, True)}{q}" for p, u in new.items())
    attrs += "".join(f" {k}={q}{_escape(v, True)}{q}" for k, v in names)
    scope = in_scope | new.keys()
    children = list(el)
    text = (el.text or "").strip()
    if not children and not text and el.tag not in _ALWAYS_OPEN:
        parts.append(f"{pad}<{tag}{attrs}/>\n")
    elif not children:
        if el.tag in _ALWAYS_OPEN and not text:
            parts.append(f"{pad}<{tag}{attrs}>\n{pad}</{tag}>\n")
        else:
            # libvirt's own elements escape quotes too (virBufferEscapeString); namespaced
            # ones are libxml2's node dump, which leaves them.
            text_out = _escape(el.text or "", not el.tag.startswith("{"))
            parts.append(f"{pad}<{tag}{attrs}>{text_out}</{tag}>\n")
    else:
        parts.append(f"{pad}<{tag}{attrs}>\n")
        for child in children:
            _format(child, depth + 1, parts, scope)
        parts.append(f"{pad}</{tag}>\n")
