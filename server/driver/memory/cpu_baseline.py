"""virConnectBaselineCPU as libvirt 9.0's test driver answers it (testConnectBaselineCPU).

Each string is a host ``<cpu>`` (virCPUDefListParse with VIR_CPU_TYPE_HOST:
arch and model required, features without policy); the first CPU's
architecture picks the CPU driver: x86 computes a real baseline (cpu_x86),
ppc64 requires one model for all, arm repeats the first model, s390 has no
baseline, other architectures no CPU driver.  The answer is the guest CPU
formatted as virCPUDefFormat does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from virtwire.protocol.errors import invalid_argument, libvirtError
from virtwire.protocol.generated import constants as C

from ...errors import check_flags, report
from . import cpu_x86, cpumap_data
from .cpu_x86 import CPUDef, cpu_error
from .node_api import ARCHITECTURES

_X86: Final = frozenset({"i686", "x86_64"})
_PPC64: Final = frozenset({"ppc64", "ppc64le"})
_ARM: Final = frozenset({"armv6l", "armv7l", "armv7b", "aarch64"})
_S390: Final = frozenset({"s390", "s390x"})
_POLICY_NAMES: Final = ("force", "require", "optional", "disable", "forbid")


def _xml_error(detail: str) -> Exception:
    return cpu_error(C.VIR_ERR_XML_ERROR, detail)


def _prop_error(attr: str, elem: str, text: str) -> Exception:
    return report(
        C.VIR_ERR_XML_ERROR,
        C.VIR_FROM_XML,
        f"Invalid value for attribute '{attr}' in element '{elem}': {text}",
    )


def _parse_tree(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml.encode("utf-8", "surrogateescape"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        detail = f"(CPU_definition):{line}: {exc}"
        raise libvirtError(
            detail,
            (C.VIR_ERR_XML_DETAIL, C.VIR_FROM_CPU, detail, C.VIR_ERR_ERROR, "%s", detail, None, -1, -1),
        ) from None


def _check_topology(root: ET.Element) -> None:
    topology = root.find("topology")
    if topology is None:
        return
    for attr in ("sockets", "dies", "cores", "threads"):
        text = topology.get(attr)
        if text is None:
            if attr == "dies":
                continue
            raise report(
                C.VIR_ERR_XML_ERROR,
                C.VIR_FROM_XML,
                f"Missing required attribute '{attr}' in element 'topology'",
            )
        if not text.strip().isdigit() or int(text) > 0xFFFFFFFF:
            raise _prop_error(attr, "topology", f"'{text}'. Expected non-negative integer value")
        if int(text) == 0:
            raise _prop_error(attr, "topology", "Zero is not permitted")


def parse_host_cpu(xml: str) -> tuple[str, CPUDef]:
    """One host CPU definition: its architecture and model, vendor, features (virCPUDefParseXML)."""
    root = _parse_tree(xml)
    if root.tag != "cpu":
        raise _xml_error("XML does not contain expected 'cpu' element")
    if root.get("mode") is not None:
        raise cpu_error(C.VIR_ERR_CONFIG_UNSUPPORTED, "Attribute mode is only allowed for guest CPU")
    migratable = root.get("migratable")
    if migratable is not None:
        if migratable not in ("on", "off"):
            raise _prop_error("migratable", "cpu", f"'{migratable}'.")
        detail = "Attribute migratable is only allowed for 'host-passthrough' / 'maximum' CPU mode"
        raise cpu_error(C.VIR_ERR_CONFIG_UNSUPPORTED, detail)
    arch = root.findtext("arch")
    if arch is None:
        raise _xml_error("Missing CPU architecture")
    if arch not in ARCHITECTURES:
        raise cpu_error(C.VIR_ERR_CONFIG_UNSUPPORTED, f"Unknown architecture {arch}")
    model = root.findtext("model")
    if model is None:
        raise _xml_error("Missing CPU model name")
    cpu = CPUDef(model=model, vendor=root.findtext("vendor"))
    _check_topology(root)
    for elem in root.findall("feature"):
        name = elem.get("name")
        if not name:
            raise _xml_error("Invalid CPU feature name")
        if cpu.feature_policy(name) is not None:
            raise _xml_error(f"CPU feature '{name}' specified more than once")
        cpu.features.append((name, cpu_x86.HOST_POLICY))
    if len(root.findall("cache")) > 1:
        raise _xml_error("at most one CPU cache element may be specified")
    return arch, cpu


def _ppc64_baseline(cpus: list[CPUDef]) -> CPUDef:
    models = dict(cpumap_data.PPC64_MODELS)
    first = cpus[0].model or ""
    if first not in models:
        raise cpu_error(C.VIR_ERR_INTERNAL_ERROR, f"Unknown CPU model {first}")
    model_vendor = models[first]
    vendor: str | None = None
    for cpu in cpus:
        if cpu.model != first:
            raise cpu_error(C.VIR_ERR_OPERATION_FAILED, "CPUs are incompatible")
        if cpu.vendor is None:
            continue
        if cpu.vendor not in cpumap_data.PPC64_VENDORS:
            raise cpu_error(C.VIR_ERR_OPERATION_FAILED, f"Unknown CPU vendor {cpu.vendor}")
        if model_vendor is not None:
            if model_vendor != cpu.vendor:
                detail = f"CPU vendor {model_vendor} of model {first} differs from vendor {cpu.vendor}"
                raise cpu_error(C.VIR_ERR_OPERATION_FAILED, detail)
        elif vendor is None:
            vendor = cpu.vendor
        elif vendor != cpu.vendor:
            raise cpu_error(C.VIR_ERR_OPERATION_FAILED, "CPU vendors do not match")
    return CPUDef(model=first, vendor=vendor, fallback_forbid=True)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
        .replace('"', "&quot;")
    )


def format_guest_cpu(cpu: CPUDef) -> str:
    """virCPUDefFormat of a custom-mode guest CPU with exact match."""
    lines = ["<cpu mode='custom' match='exact'>"]
    if cpu.model is not None:
        fallback = "forbid" if cpu.fallback_forbid else "allow"
        lines.append(f"  <model fallback='{fallback}'>{_escape(cpu.model)}</model>")
    if cpu.vendor is not None:
        lines.append(f"  <vendor>{_escape(cpu.vendor)}</vendor>")
    lines.extend(f"  <feature policy='{_POLICY_NAMES[p]}' name='{n}'/>" for n, p in cpu.features)
    lines.append("</cpu>")
    return "\n".join(lines) + "\n"


def baseline_cpu(xml_cpus: list[str], flags: int) -> str:
    """The test driver's virConnectBaselineCPU: the baseline guest CPU's XML, or libvirt's error."""
    if not xml_cpus:
        # An empty wire array is a NULL list, which the public API refuses before the driver.
        detail = "xmlCPUs in virConnectBaselineCPU must not be NULL"
        raise invalid_argument("virConnectBaselineCPU", "xmlCPUs", detail, C.VIR_FROM_DOMAIN)
    check_flags(flags, C.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES, "testConnectBaselineCPU")
    parsed = [parse_host_cpu(xml) for xml in xml_cpus]
    arch = parsed[0][0]
    cpus = [cpu for _, cpu in parsed]
    if arch in _X86:
        result = cpu_x86.baseline(cpus)
    elif arch in _PPC64:
        result = _ppc64_baseline(cpus)
    elif arch in _ARM:
        result = CPUDef(model=cpus[0].model)
    elif arch in _S390:
        raise cpu_error(C.VIR_ERR_NO_SUPPORT, f"cannot compute baseline CPU of {arch} architecture")
    else:
        raise cpu_error(C.VIR_ERR_NO_SUPPORT, f"'{arch}' architecture is not supported by CPU driver")
    if flags & C.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES:
        if arch in _X86:
            cpu_x86.expand_features(result)
        result.features.sort(key=lambda f: f[0].encode())
    return format_guest_cpu(result)
