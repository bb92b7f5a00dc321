"""The defaults libvirt 9.0 fills into a domain's ``<devices>`` when it parses a definition.

What a definition gains between the XML it was given and the XML libvirt
prints back (domain_conf.c's parse and post-parse, domain_postparse.c, the test
driver's interface names):

- disks are kept in virDomainDiskInsert's order (by bus as written, then target
  index), get ``device='disk'``, a bus from their target's prefix, a drive
  address on IDE/FDC/SCSI/SATA, and CD-ROMs are read-only;
- the controllers those addresses name are added (SCSI, FDC, IDE, SATA);
- interfaces get a MAC if they have none, the test driver's ``testnetN`` target
  and libvirt's child order;
- a console without a type is a pty on a serial target, and an HVM guest's first
  serial console is serial port 0 too;
- VNC without a port gets ``port='-1' autoport='yes'``, a fixed port
  ``autoport='no'``, and VNC/SPICE an address listen;
- graphics without video get the test driver's default video card (cirrus), and
  every card its type's memory defaults, the primary one first.

Devices are then printed in virDomainDefFormat's order of kinds.  Normalising
is idempotent: a definition libvirt printed comes back unchanged.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from typing import Final

# virDomainDefFormat's order of device kinds.
DEVICE_ORDER: Final = (
    "emulator",
    "disk",
    "controller",
    "lease",
    "filesystem",
    "interface",
    "smartcard",
    "serial",
    "parallel",
    "console",
    "channel",
    "input",
    "tpm",
    "graphics",
    "sound",
    "audio",
    "video",
    "hostdev",
    "redirdev",
    "redirfilter",
    "hub",
    "watchdog",
    "memballoon",
    "rng",
    "nvram",
    "panic",
    "shmem",
    "memory",
    "iommu",
    "vsock",
    "crypto",
)

# virDomainNetDefFormat's order of an interface's children (others keep their place after).
_INTERFACE_CHILDREN: Final = (
    "mac",
    "source",
    "vlan",
    "virtualport",
    "bandwidth",
    "port",
    "ip",
    "route",
    "portForward",
    "script",
    "downscript",
    "backenddomain",
    "target",
    "guest",
    "model",
    "driver",
    "backend",
    "filterref",
    "tune",
    "teaming",
    "link",
    "mtu",
    "coalesce",
    "boot",
    "alias",
    "rom",
    "acpi",
    "address",
)

_DISK_PREFIXES: Final = (
    ("fd", "fdc"),
    ("hd", "ide"),
    ("vd", "virtio"),
    ("sd", "scsi"),
    ("xvd", "xen"),
    ("ubd", "uml"),
)
# Drive-addressed buses and the controller each implies, in virDomainDefAddImplicitControllers' order.
_IMPLICIT_CONTROLLERS: Final = ("scsi", "fdc", "ide", "sata")
# virDomainVideoDefaultRAM: the VRAM (KiB) a video card of each type gets when none is given.
_VIDEO_VRAM: Final = {
    "vga": "16384",
    "cirrus": "16384",
    "vmvga": "16384",
    "bochs": "16384",
    "xen": "4096",
    "qxl": "65536",
}
_VIDEO_MODEL_ATTRS: Final = ("type", "ram", "vram", "vram64", "vgamem", "heads", "primary")


def disk_index(name: str) -> int:
    """virDiskNameToIndex: hda -> 0, vdz -> 25, sdaa -> 26; -1 for a name it does not know."""
    for prefix in ("fd", "hd", "vd", "sd", "xvd", "ubd"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            break
    else:
        return -1
    letters = len(rest) - len(rest.lstrip("abcdefghijklmnopqrstuvwxyz"))
    if letters == 0 or not (rest[letters:] == "" or rest[letters:].isdigit()):
        return -1
    index = 0
    for position, char in enumerate(rest[:letters]):
        index = (index + (1 if position else 0)) * 26 + ord(char) - ord("a")
    return index


def _target(disk: ET.Element) -> ET.Element | None:
    return disk.find("target")


def _dst(disk: ET.Element) -> str | None:
    target = _target(disk)
    return target.get("dev") if target is not None else None


def _written_bus(disk: ET.Element) -> str | None:
    target = _target(disk)
    return target.get("bus") if target is not None else None


def _disk_order(disks: list[ET.Element]) -> list[ET.Element]:
    """virDomainDiskInsert applied in document order, with each disk's bus as written."""
    out: list[ET.Element] = []
    for disk in disks:
        bus, dst = _written_bus(disk), _dst(disk)
        insert_at = -1
        for idx in range(len(out) - 1, -1, -1):
            other = out[idx]
            if _written_bus(other) != bus:
                continue
            other_dst = _dst(other)
            if other_dst and dst and disk_index(other_dst) > disk_index(dst):
                insert_at = idx
            elif insert_at == -1:
                insert_at = idx + 1
        out.insert(len(out) if insert_at == -1 else insert_at, disk)
    return out


def _with_attr_after(el: ET.Element, after: str, name: str, value: str) -> None:
    """Set ``name`` right after attribute ``after`` (libvirt's attribute order)."""
    items = list(el.attrib.items())
    position = next((i + 1 for i, (k, _) in enumerate(items) if k == after), len(items))
    items.insert(position, (name, value))
    el.attrib.clear()
    el.attrib.update(items)


def _normalise_disk(disk: ET.Element) -> None:
    if "device" not in disk.attrib:
        _with_attr_after(disk, "type", "device", "disk")
    target = _target(disk)
    dst = _dst(disk)
    if target is not None and "bus" not in target.attrib:
        bus = "ide"
        if disk.get("device") == "floppy":
            bus = "fdc"
        elif dst is not None:
            bus = next((b for p, b in _DISK_PREFIXES if dst.startswith(p) and p != "fd"), "ide")
        _with_attr_after(target, "dev", "bus", bus)
    if disk.get("device") == "cdrom" and disk.find("readonly") is None:
        children = list(disk)
        position = children.index(target) + 1 if target is not None else len(children)
        disk.insert(position, ET.Element("readonly"))
    if disk.find("address") is None and dst is not None and target is not None:
        address = _drive_address(target.get("bus", ""), disk_index(dst))
        if address is not None:
            disk.append(ET.Element("address", address))


def _drive_address(bus: str, idx: int) -> dict[str, str] | None:
    """virDomainDiskDefAssignAddress (narrow SCSI buses, as the test driver's)."""
    if idx < 0:
        return None
    if bus == "scsi":
        controller, unit_bus, unit = idx // 7, 0, idx % 7
    elif bus == "ide":
        controller, unit_bus, unit = idx // 4, (idx % 4) // 2, idx % 2
    elif bus == "sata":
        controller, unit_bus, unit = idx // 6, 0, idx % 6
    elif bus == "fdc":
        controller, unit_bus, unit = idx // 2, 0, idx % 2
    else:
        return None
    return {
        "type": "drive",
        "controller": str(controller),
        "bus": str(unit_bus),
        "target": "0",
        "unit": str(unit),
    }


def _implicit_controllers(disks: list[ET.Element], controllers: list[ET.Element]) -> list[ET.Element]:
    """virDomainDefAddImplicitControllers for disk buses: indexes 0..max of each addressed bus."""
    out = list(controllers)
    for kind in _IMPLICIT_CONTROLLERS:
        highest = -1
        for disk in disks:
            address = disk.find("address")
            if _written_bus(disk) == kind and address is not None and address.get("type") == "drive":
                try:
                    highest = max(highest, int(address.get("controller", "0")))
                except ValueError:
                    continue
        for index in range(highest + 1):
            if any(c.get("type") == kind and c.get("index") == str(index) for c in out):
                continue
            _insert_controller(out, ET.Element("controller", {"type": kind, "index": str(index)}))
    return out


def _insert_controller(controllers: list[ET.Element], new: ET.Element) -> None:
    """virDomainControllerInsertPreAlloced: after the last of its type with a lower index."""
    insert_at = -1
    index = int(new.get("index", "0"))
    for idx in range(len(controllers) - 1, -1, -1):
        current = controllers[idx]
        if current.get("type") != new.get("type"):
            continue
        try:
            current_index = int(current.get("index", "0"))
        except ValueError:
            continue
        if current_index > index:
            insert_at = idx
        elif insert_at == -1:
            insert_at = idx + 1
    controllers.insert(len(controllers) if insert_at == -1 else insert_at, new)


def _normalise_interfaces(interfaces: list[ET.Element]) -> None:
    """A MAC for each interface without one (virDomainNetGenerateMAC: QEMU's prefix, random
    rest); testDomainGenerateIfnames: the first free testnetN for each without a target."""
    taken = {t.get("dev") for i in interfaces if (t := i.find("target")) is not None}
    counter = 0
    for iface in interfaces:
        if iface.find("mac") is None:
            tail = ":".join(f"{random.randrange(256):02x}" for _ in range(3))
            iface.insert(0, ET.Element("mac", {"address": f"52:54:00:{tail}"}))
        target = iface.find("target")
        if target is None or target.get("dev") is None:
            while f"testnet{counter}" in taken:
                counter += 1
            name = f"testnet{counter}"
            taken.add(name)
            if target is None:
                target = ET.SubElement(iface, "target")
            target.set("dev", name)
        children = list(iface)
        ranked = sorted(
            children,
            key=lambda c: (
                _INTERFACE_CHILDREN.index(c.tag) if c.tag in _INTERFACE_CHILDREN else len(_INTERFACE_CHILDREN)
            ),
        )
        if ranked != children:
            for child in children:
                iface.remove(child)
            iface.extend(ranked)


def _normalise_console(console: ET.Element) -> None:
    if "type" not in console.attrib:
        attrs = {k: v for k, v in console.attrib.items() if k != "tty"}
        console.attrib.clear()
        console.attrib.update({"type": "pty", **attrs})
    if console.find("target") is None:
        console.append(ET.Element("target", {"type": "serial", "port": "0"}))


def _serial_for_console(consoles: list[ET.Element], serials: list[ET.Element], os_type: str) -> None:
    """virDomainDefAddConsoleCompat: an HVM guest's first serial console is also serial port 0."""
    if os_type != "hvm" or not consoles or serials:
        return
    first = consoles[0]
    target = first.find("target")
    if target is not None and target.get("type", "serial") != "serial":
        return
    serial = ET.Element("serial", dict(first.attrib))
    serial.extend(ET.fromstring(ET.tostring(c)) for c in first if c.tag not in ("target", "alias", "address"))
    serial.append(ET.Element("target", {"port": "0"}))
    serials.append(serial)


def _normalise_graphics(graphics: ET.Element) -> None:
    if graphics.get("type") not in ("vnc", "spice"):
        return
    port = graphics.get("port")
    if graphics.get("type") == "vnc" and port is None:
        # No port: one is picked at start (virDomainGraphicsDefParseXMLVNC).
        graphics.attrib = {
            "type": "vnc",
            "port": "-1",
            **{k: v for k, v in graphics.attrib.items() if k != "type"},
        }
        port = "-1"
    if port == "-1" and "autoport" not in graphics.attrib:
        _with_attr_after(graphics, "port", "autoport", "yes")
    elif port is not None and port != "-1" and "autoport" not in graphics.attrib:
        _with_attr_after(graphics, "port", "autoport", "no")
    if graphics.find("listen") is None:
        listen = {"type": "address"}
        if graphics.get("listen") is not None:
            listen["address"] = graphics.get("listen", "")
        graphics.insert(0, ET.Element("listen", listen))


def _normalise_videos(videos: list[ET.Element]) -> list[ET.Element]:
    """Video defaults (the test driver's card is a cirrus): the primary card first and
    marked so, each model with its type's RAM/VRAM and one head, in libvirt's attribute order."""
    primary = next(
        (v for v in videos if (m := v.find("model")) is not None and m.get("primary") == "yes"), videos[0]
    )
    ordered = [primary, *(v for v in videos if v is not primary)]
    for video in ordered:
        model = video.find("model")
        if model is None:
            model = ET.Element("model", {"type": "cirrus"})
            video.insert(len(video.findall("driver")), model)
        kind = model.get("type", "cirrus")
        attrs = dict(model.attrib)
        attrs.setdefault("type", kind)
        if kind == "qxl":
            attrs.setdefault("ram", "65536")
        if kind in _VIDEO_VRAM:
            attrs.setdefault("vram", _VIDEO_VRAM[kind])
        attrs.setdefault("heads", "1")
        attrs.pop("primary", None)
        if video is primary:
            attrs["primary"] = "yes"
        known = [(k, attrs[k]) for k in _VIDEO_MODEL_ATTRS if k in attrs]
        model.attrib = dict(known + [(k, v) for k, v in attrs.items() if k not in _VIDEO_MODEL_ATTRS])
    return ordered


def normalise_devices(devices: ET.Element, os_type: str = "hvm") -> ET.Element:
    """A new ``<devices>`` with libvirt's defaults and order (the input is left as it was)."""
    by_kind: dict[str, list[ET.Element]] = {}
    for child in devices:
        by_kind.setdefault(child.tag, []).append(child)
    disks = _disk_order(by_kind.get("disk", []))
    for disk in disks:
        _normalise_disk(disk)
    by_kind["disk"] = disks
    controllers = _implicit_controllers(disks, by_kind.get("controller", []))
    if controllers:
        by_kind["controller"] = controllers
    _normalise_interfaces(by_kind.get("interface", []))
    for console in by_kind.get("console", []):
        _normalise_console(console)
    if by_kind.get("console"):
        serials = by_kind.setdefault("serial", [])
        _serial_for_console(by_kind["console"], serials, os_type)
    for graphics in by_kind.get("graphics", []):
        _normalise_graphics(graphics)
    if by_kind.get("graphics") and not by_kind.get("video"):
        by_kind["video"] = [ET.Element("video")]
    if by_kind.get("video"):
        by_kind["video"] = _normalise_videos(by_kind["video"])
    out = ET.Element("devices", dict(devices.attrib))
    out.text, out.tail = devices.text, devices.tail
    for kind in DEVICE_ORDER:
        out.extend(by_kind.pop(kind, []))
    for rest in by_kind.values():  # kinds libvirt does not know keep their place at the end
        out.extend(rest)
    return out
