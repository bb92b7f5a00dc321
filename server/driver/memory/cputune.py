"""The CPU sections of a definition: ``<vcpu cpuset>``, ``<cputune>`` pins, ``<iothreads>``/``<iothreadids>``.

Read and written the way libvirt's domain_conf parses and formats them, so a
change through the API prints exactly what virDomainDefFormat prints.  Bitmaps
are sets of CPU numbers.
"""

from __future__ import annotations

import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .domdefs import element, format_bitmap, parse_bitmap, put_section

# <cputune> children printed before the pins, in libvirt's order; the rest follow them.
_TUNE_HEAD = (
    "shares",
    "period",
    "quota",
    "global_period",
    "global_quota",
    "emulator_period",
    "emulator_quota",
    "iothread_period",
    "iothread_quota",
)
_PINS = ("vcpupin", "emulatorpin", "iothreadpin")

# Per <iothread> element: filled in by libvirt from the <iothreads> count rather than
# listed (autofill); such ids are not printed while all of them are.
_AUTOFILLED: weakref.WeakKeyDictionary[ET.Element, bool] = weakref.WeakKeyDictionary()


def _pin(text: str) -> set[int]:
    # The test driver stores an empty pin as given (virBitmapFormat prints it as "").
    return parse_bitmap(text) if text else set()


def vcpu_cpuset(tree: ET.Element) -> set[int] | None:
    """``<vcpu cpuset=...>`` (def->cpumask), or None."""
    vcpu = tree.find("vcpu")
    text = vcpu.get("cpuset") if vcpu is not None else None
    return parse_bitmap(text) if text else None


@dataclass(slots=True)
class CpuTune:
    """The pins of ``<cputune>``; everything else in it is kept as given."""

    vcpupins: dict[int, set[int]] = field(default_factory=dict)
    emulatorpin: set[int] | None = None
    iothreadpins: dict[int, set[int]] = field(default_factory=dict)
    head: list[ET.Element] = field(default_factory=list)
    tail: list[ET.Element] = field(default_factory=list)


def read_cputune(tree: ET.Element) -> CpuTune:
    tune = CpuTune()
    section = tree.find("cputune")
    if section is None:
        return tune
    for child in section:
        if child.tag == "vcpupin":
            tune.vcpupins[int(child.get("vcpu", "0"))] = _pin(child.get("cpuset", ""))
        elif child.tag == "emulatorpin":
            tune.emulatorpin = _pin(child.get("cpuset", ""))
        elif child.tag == "iothreadpin":
            tune.iothreadpins[int(child.get("iothread", "0"))] = _pin(child.get("cpuset", ""))
        elif child.tag in _TUNE_HEAD:
            tune.head.append(child)
        else:
            tune.tail.append(child)
    return tune


def write_cputune(tree: ET.Element, tune: CpuTune, iothread_order: list[int]) -> None:
    section = ET.Element("cputune")
    section.extend(tune.head)
    for vcpu in sorted(tune.vcpupins):
        section.append(element("vcpupin", vcpu=str(vcpu), cpuset=format_bitmap(tune.vcpupins[vcpu])))
    if tune.emulatorpin is not None:
        section.append(element("emulatorpin", cpuset=format_bitmap(tune.emulatorpin)))
    for iothread in iothread_order:
        if iothread in tune.iothreadpins:
            cpus = tune.iothreadpins[iothread]
            section.append(element("iothreadpin", iothread=str(iothread), cpuset=format_bitmap(cpus)))
    section.extend(tune.tail)
    put_section(tree, "cputune", section if len(section) else None)


@dataclass(slots=True)
class IOThread:
    id: int
    autofill: bool
    attrs: dict[str, str]


def read_iothreads(tree: ET.Element) -> list[IOThread]:
    """The iothreadids of a definition, autofilled up to the ``<iothreads>`` count as libvirt does."""
    threads: list[IOThread] = []
    listed = tree.find("iothreadids")
    if listed is not None:
        for item in listed.findall("iothread"):
            attrs = {k: v for k, v in item.attrib.items() if k != "id"}
            threads.append(IOThread(int(item.get("id", "0")), _AUTOFILLED.get(item, False), attrs))
    count = int((tree.findtext("iothreads") or "0").strip() or 0)
    used = {t.id for t in threads}
    next_id = 1
    while len(threads) < count:
        while next_id in used:
            next_id += 1
        threads.append(IOThread(next_id, True, {}))
        used.add(next_id)
    return threads


def write_iothreads(tree: ET.Element, threads: list[IOThread]) -> None:
    put_section(tree, "iothreads", element("iothreads", str(len(threads))) if threads else None)
    if not any(not t.autofill or t.attrs for t in threads):
        put_section(tree, "iothreadids", None)
        return
    section = ET.Element("iothreadids")
    for thread in threads:
        item = element("iothread", id=str(thread.id), **thread.attrs)
        _AUTOFILLED[item] = thread.autofill
        section.append(item)
    put_section(tree, "iothreadids", section)
