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

from virtwire.protocol.generated import constants as C

from ...errors import report

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
# IS_USB2_CONTROLLER: the EHCI master and its UHCI companions share one index.
_USB2_MODELS: Final = frozenset({"ich9-ehci1", "ich9-uhci1", "ich9-uhci2", "ich9-uhci3"})


# virDomainDiskDefFormat's attribute and child order, and its driver's attributes.
_DISK_ATTRS: Final = ("type", "device", "model", "rawio", "sgio", "snapshot")
_DISK_CHILDREN: Final = (
    "driver", "auth", "source", "backingStore", "backenddomain", "geometry", "blockio", "mirror",
    "target", "iotune", "readonly", "shareable", "transient", "serial", "wwn", "vendor", "product",
    "encryption", "boot", "alias", "address",
)  # fmt: skip
_DISK_DRIVER_ATTRS: Final = (
    "name", "type", "cache", "error_policy", "rerror_policy", "io", "ioeventfd", "event_idx",
    "copy_on_read", "discard", "iothread", "detect_zeroes", "queues", "queue_size", "iommu", "ats",
    "packed", "page_per_vq",
)  # fmt: skip


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


def disk_bus(disk: ET.Element) -> str | None:
    """The bus a disk is on: as written, else the one its target name implies (ide by default)."""
    target = _target(disk)
    if target is None:
        return None
    if "bus" in target.attrib:
        return target.get("bus")
    if disk.get("device") == "floppy":
        return "fdc"
    dst = target.get("dev")
    return next((b for p, b in _DISK_PREFIXES if dst and dst.startswith(p) and p != "fd"), "ide")


def _normalise_disk(disk: ET.Element) -> None:
    if "device" not in disk.attrib:
        _with_attr_after(disk, "type", "device", "disk")
    target = _target(disk)
    dst = _dst(disk)
    if target is not None and "bus" not in target.attrib:
        _with_attr_after(target, "dev", "bus", disk_bus(disk) or "ide")
    if disk.get("device") == "cdrom" and disk.find("readonly") is None:
        children = list(disk)
        position = children.index(target) + 1 if target is not None else len(children)
        disk.insert(position, ET.Element("readonly"))
    given = disk.find("address")
    if given is not None and given.get("type") == "drive":
        # virDomainDeviceDriveAddressParseXML: every part defaults to 0 and all are printed
        parts = {k: given.get(k, "0") for k in ("controller", "bus", "target", "unit")}
        rest = {k: v for k, v in given.attrib.items() if k not in parts and k != "type"}
        given.attrib = {"type": "drive", **parts, **rest}
    if disk.find("address") is None and dst is not None and target is not None:
        address = _drive_address(target.get("bus", ""), disk_index(dst))
        if address is not None:
            disk.append(ET.Element("address", address))
    _disk_print_order(disk)


def _ordered_attrs(el: ET.Element, order: tuple[str, ...]) -> None:
    """Attributes in ``order``, others after them as given."""
    known = [(k, el.attrib[k]) for k in order if k in el.attrib]
    el.attrib = dict(known + [(k, v) for k, v in el.attrib.items() if k not in order])


def _disk_print_order(disk: ET.Element) -> None:
    """virDomainDiskDefFormat: its attribute and child order, a file by default, a closed tray
    and a read-only medium's snapshot='no' left out."""
    disk.attrib = {"type": disk.get("type", "file"), **disk.attrib}
    if disk.get("snapshot") == "no" and disk.find("readonly") is not None:
        del disk.attrib["snapshot"]
    _ordered_attrs(disk, _DISK_ATTRS)
    target = disk.find("target")
    if target is not None:
        if target.get("tray") == "closed" or disk.get("device") not in ("floppy", "cdrom"):
            target.attrib.pop("tray", None)
        _ordered_attrs(target, ("dev", "bus", "tray", "removable", "rotation_rate"))
    driver = disk.find("driver")
    if driver is not None:
        _ordered_attrs(driver, _DISK_DRIVER_ATTRS)
    children = list(disk)
    last = len(_DISK_CHILDREN)
    ranked = sorted(children, key=lambda c: _DISK_CHILDREN.index(c.tag) if c.tag in _DISK_CHILDREN else last)
    if ranked != children:
        for child in children:
            disk.remove(child)
        disk.extend(ranked)


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


def _index_of(controller: ET.Element) -> int:
    """A controller's ``index`` (-1 until assigned, as libvirt's def->idx)."""
    try:
        return int(controller.get("index", "-1"))
    except ValueError:
        return -1


def _is_master(controller: ET.Element) -> bool:
    return controller.find("master") is None


def _is_usb2(controller: ET.Element) -> bool:
    return controller.get("type") == "usb" and controller.get("model") in _USB2_MODELS


def _insert_parsed(controllers: list[ET.Element], new: ET.Element) -> None:
    """virDomainControllerInsertPreAlloced: where the parser files each controller it reads."""
    insert_at = -1
    index = _index_of(new)
    for idx in range(len(controllers) - 1, -1, -1):
        current = controllers[idx]
        if current.get("type") != new.get("type"):
            continue
        if index == -1:
            insert_at = idx + 1  # unindexed: right after the last of its type so far
            break
        current_index = _index_of(current)
        if current_index > index:
            insert_at = idx
        elif _is_master(new) and not _is_master(current) and current_index == index:
            insert_at = idx  # a master goes before its companions
        elif insert_at == -1:
            insert_at = idx + 1
    controllers.insert(len(controllers) if insert_at == -1 else insert_at, new)


def _set_index(controller: ET.Element, index: int) -> None:
    """``index`` printed right after ``type``, as virDomainControllerDefFormat does."""
    attrs = [(k, v) for k, v in controller.attrib.items() if k != "index"]
    position = next((i + 1 for i, (k, _) in enumerate(attrs) if k == "type"), 0)
    attrs.insert(position, ("index", str(index)))
    controller.attrib.clear()
    controller.attrib.update(attrs)


def _unused_index(controllers: list[ET.Element], kind: str | None) -> int:
    """virDomainControllerFindUnusedIndex: the lowest index no controller of ``kind`` has."""
    used = {_index_of(c) for c in controllers if c.get("type") == kind}
    index = 0
    while index in used:
        index += 1
    return index


def _assign_indexes(controllers: list[ET.Element]) -> None:
    """virDomainAssignControllerIndexes: each unindexed controller gets the lowest free index,
    except a USB2 companion right after another USB2 controller, which joins its group."""
    for outer, controller in enumerate(controllers):
        if _index_of(controller) != -1:
            continue
        group: ET.Element | None = None
        if outer > 0 and _is_usb2(controller):
            group = next((c for c in reversed(controllers[:outer]) if c.get("type") == "usb"), None)
            if group is not None and not _is_usb2(group):
                group = None
            if group is not None and any(
                c.get("type") == "usb"
                and _index_of(c) == _index_of(group)
                and c.get("model") == controller.get("model")
                for c in controllers
            ):
                group = None  # that group already has this model
        index = _index_of(group) if group is not None else _unused_index(controllers, controller.get("type"))
        _set_index(controller, index)


def _reject_duplicate_controllers(controllers: list[ET.Element]) -> None:
    """virDomainDefRejectDuplicateControllers: one controller per type and index (USB aside)."""
    seen: set[tuple[str | None, int]] = set()
    for controller in controllers:
        key = (controller.get("type"), _index_of(controller))
        if key[0] == "usb":
            continue
        if key in seen:
            detail = f"Multiple '{key[0]}' controllers with index '{key[1]}'"
            raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, detail)
        seen.add(key)


def _maybe_add_controller(controllers: list[ET.Element], kind: str, index: int) -> None:
    """virDomainDefMaybeAddController: appended when no controller of ``kind`` has ``index``."""
    if any(c.get("type") == kind and _index_of(c) == index for c in controllers):
        return
    controllers.append(ET.Element("controller", {"type": kind, "index": str(index)}))


def _virtio_serial_index(device: ET.Element) -> int:
    address = device.find("address")
    if address is not None and address.get("type") == "virtio-serial":
        try:
            return int(address.get("controller", "0"))
        except ValueError:
            return 0
    return 0


# virDomainControllerDefParseXML: the start port an ICH9 UHCI companion gets when none is given.
_UHCI_START_PORTS: Final = {"ich9-uhci1": "0", "ich9-uhci2": "2", "ich9-uhci3": "4"}


def _add_usb_master(controller: ET.Element) -> None:
    start = _UHCI_START_PORTS.get(controller.get("model", "")) if controller.get("type") == "usb" else None
    if start is None or controller.find("master") is not None:
        return
    children = list(controller)
    position = next((children.index(c) for c in children if c.tag == "address"), len(children))
    controller.insert(position, ET.Element("master", {"startport": start}))


def _smartcard_controllers(smartcards: list[ET.Element], controllers: list[ET.Element]) -> None:
    """virDomainDefMaybeAddSmartcardController: a smartcard without an address takes the next
    slot of CCID controller 0; every smartcard's controller is added if missing."""
    for card in smartcards:
        address = card.find("address")
        index = 0
        if address is not None and address.get("type") == "ccid":
            index = _int_attr(address, "controller")
        elif address is None:
            slots = [
                _int_attr(a, "slot")
                for other in smartcards
                if (a := other.find("address")) is not None
                and a.get("type") == "ccid"
                and _int_attr(a, "controller") == 0
            ]
            card.append(
                ET.Element(
                    "address", {"type": "ccid", "controller": "0", "slot": str(max(slots, default=-1) + 1)}
                )
            )
        _maybe_add_controller(controllers, "ccid", index)


def _controllers(
    given: list[ET.Element],
    disks: list[ET.Element],
    channels: list[ET.Element],
    consoles: list[ET.Element],
    smartcards: list[ET.Element],
) -> list[ET.Element]:
    """The controllers in libvirt's order: as parsed, indexes assigned, then the implicit
    ones virDomainDefAddImplicitControllers appends (disk buses, then virtio-serial)."""
    out: list[ET.Element] = []
    for controller in given:
        _add_usb_master(controller)
        _insert_parsed(out, controller)
    _assign_indexes(out)
    _reject_duplicate_controllers(out)
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
            _maybe_add_controller(out, kind, index)
    for device in (*channels, *consoles):
        target = device.find("target")
        if target is not None and target.get("type") == "virtio":
            _maybe_add_controller(out, "virtio-serial", _virtio_serial_index(device))
    _smartcard_controllers(smartcards, out)
    return out


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
        order_interface_children(iface)


def order_interface_children(iface: ET.Element) -> None:
    """virDomainNetDefFormat's order of an interface's children."""
    children = list(iface)
    rank = {tag: position for position, tag in enumerate(_INTERFACE_CHILDREN)}
    if iface.get("type") == "hostdev":
        rank["driver"] = rank["mac"]  # the PCI backend (virDomainHostdevDefFormatSubsys), before <source>
    ranked = sorted(children, key=lambda c: rank.get(c.tag, len(rank)))
    if ranked != children:
        for child in children:
            iface.remove(child)
        iface.extend(ranked)


def _normalise_console(console: ET.Element, position: int) -> None:
    """A console without a type is a pty; its target (a serial one if none is given) gets
    the console's position as its port, whatever it said (virDomainDefParseXML)."""
    if "type" not in console.attrib:
        attrs = {k: v for k, v in console.attrib.items() if k != "tty"}
        console.attrib.clear()
        console.attrib.update({"type": "pty", **attrs})
    target = console.find("target")
    if target is None:
        console.append(ET.Element("target", {"type": "serial", "port": str(position)}))
        return
    kind = target.get("type", "serial")
    attrs = {k: v for k, v in target.attrib.items() if k not in ("type", "port")}
    target.attrib.clear()
    target.attrib.update({"type": kind, "port": str(position), **attrs})


def _normalise_chardev_source(device: ET.Element) -> None:
    """virDomainChrSourceDefFormat's view of a character device's <source>: a pty's path
    is not read from a definition (parsed INACTIVE), a unix socket without a path has no
    source, and a TCP source is printed whole with its protocol (raw unless given)."""
    kind = device.get("type")
    protocol = device.find("protocol")
    if protocol is not None and kind != "tcp":
        device.remove(protocol)  # read for TCP sources only
    source = device.find("source")
    if source is None:
        return
    if kind == "pty" or (kind == "unix" and source.get("path") is None):
        device.remove(source)
    elif kind == "unix":
        rest = {k: v for k, v in source.attrib.items() if k not in ("mode", "path")}
        mode = "bind" if source.get("mode") == "bind" else "connect"
        source.attrib = {"mode": mode, "path": source.get("path", ""), **rest}
    elif kind == "tcp":
        attrs = {"mode": "bind" if source.get("mode") == "bind" else "connect"}
        for name in ("host", "service", "tls"):
            if source.get(name) is not None:
                attrs[name] = source.get(name, "")
        attrs.update((k, v) for k, v in source.attrib.items() if k not in attrs)
        source.attrib = attrs
        protocol = device.find("protocol")
        if protocol is None:
            protocol = ET.Element("protocol", {"type": "raw"})
        else:
            device.remove(protocol)
            protocol.attrib = {"type": protocol.get("type", "raw")}
        device.insert(list(device).index(source) + 1, protocol)


# virDomainDefAddConsoleCompat: serial targets whose first port also gets a console alias.
_ALIASED_SERIAL_TARGETS: Final = frozenset(
    {None, "isa-serial", "spapr-vio-serial", "system-serial", "sclp-serial"}
)


def _copy(el: ET.Element) -> ET.Element:
    return ET.fromstring(ET.tostring(el))


def _port(device: ET.Element) -> int | None:
    target = device.find("target")
    if target is None or target.get("port") is None:
        return None
    try:
        return int(target.get("port", ""))
    except ValueError:
        return None


def _set_port(device: ET.Element, port: int) -> None:
    """The device's ``<target>`` (made after its source if absent) with ``port`` after ``type``."""
    target = device.find("target")
    if target is None:
        children = list(device)
        position = max(
            (children.index(c) + 1 for c in children if c.tag in ("source", "protocol", "log")), default=0
        )
        device.insert(position, ET.Element("target", {"port": str(port)}))
        return
    attrs = [(k, v) for k, v in target.attrib.items() if k != "port"]
    attrs.insert(1 if attrs and attrs[0][0] == "type" else 0, ("port", str(port)))
    target.attrib.clear()
    target.attrib.update(attrs)


def _number_ports(devices: list[ET.Element], *, earlier_only: bool) -> None:
    """Unnumbered serial/parallel ports get the highest port so far plus one: among all
    serials (virDomainChrDefPostParse) or, for parallels, those parsed before
    (virDomainDefParseXML)."""
    for position, device in enumerate(devices):
        if _port(device) is not None:
            continue
        pool = devices[:position] if earlier_only else devices
        ports = [p for d in pool if (p := _port(d)) is not None]
        _set_port(device, max(ports, default=-1) + 1)


def _console_compat(consoles: list[ET.Element], serials: list[ET.Element], os_type: str) -> None:
    """virDomainDefAddConsoleCompat for an HVM guest: a first console of serial type without
    a serial port becomes serial port 0 too; a first serial port without such a console
    gets a console stub in front."""
    if os_type != "hvm":
        return
    first = consoles[0] if consoles else None
    first_target = first.find("target") if first is not None else None
    if first is not None and (first_target is None or first_target.get("type", "serial") == "serial"):
        if not serials:
            serial = ET.Element("serial", dict(first.attrib))
            serial.extend(_copy(c) for c in first if c.tag not in ("target", "alias", "address"))
            serial.append(ET.Element("target", {"port": "0"}))
            serials.append(serial)
    elif serials:
        target = serials[0].find("target")
        if (target.get("type") if target is not None else None) in _ALIASED_SERIAL_TARGETS:
            stub = ET.Element("console", {"type": "pty"})
            stub.append(ET.Element("target", {"type": "serial", "port": "0"}))
            consoles.insert(0, stub)


def _printed_consoles(
    consoles: list[ET.Element], serials: list[ET.Element], os_type: str
) -> list[ET.Element]:
    """virDomainDefFormat: an HVM guest's serial-type console N is printed as serial port N."""
    out: list[ET.Element] = []
    for position, console in enumerate(consoles):
        target = console.find("target")
        serial_type = target is None or target.get("type", "serial") == "serial"
        if os_type == "hvm" and serial_type and position < len(serials):
            alias = _copy(serials[position])
            alias.tag = "console"
            alias_target = alias.find("target")
            port = alias_target.get("port", "0") if alias_target is not None else "0"
            if alias_target is not None:
                alias_target.attrib = {"type": "serial", "port": port}
                for child in list(alias_target):
                    alias_target.remove(child)
            out.append(alias)
        else:
            out.append(console)
    return out


def _listens_first(graphics: ET.Element) -> None:
    """virDomainGraphicsDefFormat prints the <listen> elements before the other children."""
    children = list(graphics)
    ordered = sorted(children, key=lambda c: c.tag != "listen")
    if ordered != children:
        for child in children:
            graphics.remove(child)
        graphics.extend(ordered)


def _agreeing(legacy: str, legacy_value: str | None, name: str, value: str | None) -> str | None:
    """A first listen's ``name`` completed from the graphics' legacy attribute, which must agree."""
    if value and legacy_value and value != legacy_value:
        raise _unsupported(
            f"graphics '{legacy}' attribute '{legacy_value}' must match '{name}' attribute "
            f"of first listen element (found '{value}')"
        )
    return value or legacy_value


def _graphics_listens(graphics: ET.Element) -> list[ET.Element]:
    """virDomainGraphicsListensParseXML for VNC: the <listen> elements as parsed (the first
    one completed from the legacy ``listen``/``socket`` attributes, which must agree with
    it), or one made from those attributes; a legacy socket replaces an address listen."""
    compat_address = graphics.get("listen") or None
    compat_socket = graphics.get("socket")
    listens: list[ET.Element] = []
    for position, given in enumerate(graphics.findall("listen")):
        kind = given.get("type", "")
        address, network, socket = given.get("address"), given.get("network"), given.get("socket")
        if position == 0 and kind == "address":
            address = _agreeing("listen", compat_address, "address", address)
        if position == 0 and kind == "socket":
            socket = _agreeing("socket", compat_socket, "socket", socket)
        if network and kind != "network":
            raise _xml_error("'network' attribute is valid only for listen type 'network'")
        if socket and kind != "socket":
            raise _xml_error("'socket' attribute is valid only for listen type 'socket'")
        attrs = {"type": kind}
        if address and kind == "address":  # a network's address is status, not read INACTIVE
            attrs["address"] = address
        if network:
            attrs["network"] = network
        if socket:
            attrs["socket"] = socket
        listens.append(ET.Element("listen", attrs))
    if compat_socket:
        legacy = ET.Element("listen", {"type": "socket", "socket": compat_socket})
    else:
        legacy = ET.Element("listen", {"type": "address"})
        if compat_address:
            legacy.set("address", compat_address)
    if not listens:
        listens.append(legacy)
    elif listens[0].get("type") in ("address", "network") and compat_socket:
        listens[0] = legacy
    for listen in listens:
        if listen.get("type") == "network" and not listen.get("network"):
            raise _xml_error("'network' attribute is required for listen type 'network'")
    return listens


# The VNC attributes virDomainGraphicsDefFormat derives from the parsed definition.
_VNC_DERIVED: Final = frozenset(
    {"type", "port", "autoport", "websocket", "listen", "socket", "websocketGenerated"}
)


def _normalise_vnc(graphics: ET.Element) -> None:
    """virDomainGraphicsDefParseXMLVNC (INACTIVE) and virDomainGraphicsDefFormat: a socket
    listen prints its socket; an address or network listen the port (-1: picked at start;
    an autoport definition keeps none), autoport, websocket and the legacy listen address."""
    listens = _graphics_listens(graphics)
    first = listens[0]
    attrs = {"type": "vnc"}
    if first.get("type") == "socket":
        if first.get("socket"):
            attrs["socket"] = first.get("socket", "")
    elif first.get("type") in ("address", "network"):
        given_port = graphics.get("port")
        try:
            port = int(given_port) if given_port is not None else 0
        except ValueError:
            detail = f"cannot parse vnc port {given_port}"
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_DOMAIN, detail) from None
        autoport = given_port is None or port == -1
        if graphics.get("autoport") in ("yes", "no"):
            autoport = graphics.get("autoport") == "yes"
        if autoport or port == -1:
            port = 0
        if port:
            attrs["port"] = str(port)
        elif autoport:
            attrs["port"] = "-1"
        attrs["autoport"] = "yes" if autoport else "no"
        websocket = graphics.get("websocket")
        if websocket and websocket.lstrip("-").isdigit() and int(websocket):
            attrs["websocket"] = str(int(websocket))
        if first.get("type") == "address" and first.get("address"):
            attrs["listen"] = first.get("address", "")
    attrs.update((k, v) for k, v in graphics.attrib.items() if k not in _VNC_DERIVED)
    rest = [child for child in graphics if child.tag != "listen"]
    for child in list(graphics):
        graphics.remove(child)
    graphics.attrib = attrs
    graphics.extend([*listens, *rest])


def _normalise_graphics(graphics: ET.Element) -> None:
    if graphics.get("passwd") is None:
        # virDomainGraphicsAuthDefParseXML reads the expiry and connected policy with a password only
        graphics.attrib.pop("passwdValidTo", None)
        graphics.attrib.pop("connected", None)
    if graphics.get("type") == "vnc":
        _normalise_vnc(graphics)
        return
    _listens_first(graphics)
    if graphics.get("type") == "spice":
        _normalise_spice(graphics)


def _int_attr(el: ET.Element, name: str) -> int:
    try:
        return int(el.get(name, "0"))
    except ValueError:
        return 0


def _normalise_spice(graphics: ET.Element) -> None:
    """virDomainGraphicsDefParseXMLSpice as the test driver parses (always INACTIVE): ports
    -1/-1 mean autoport, and an autoport definition keeps no ports; without ports or
    autoport it listens nowhere (virDomainDefPostParseGraphics); printed in
    virDomainGraphicsDefFormat's attribute order."""
    port, tls_port = _int_attr(graphics, "port"), _int_attr(graphics, "tlsPort")
    autoport = graphics.get("autoport") == "yes" or (port == -1 and tls_port == -1)
    if autoport:
        port = tls_port = 0
    listen = graphics.find("listen")
    if listen is None:
        listen_attrs = {"type": "address"}
        if graphics.get("listen"):
            listen_attrs["address"] = graphics.get("listen", "")
        listen = ET.Element("listen", listen_attrs)
        graphics.insert(0, listen)
    if listen.get("type", "address") == "address" and port == 0 and tls_port == 0 and not autoport:
        listen.attrib = {"type": "none"}
        graphics.attrib.pop("listen", None)
    attrs: dict[str, str] = {"type": "spice"}
    if listen.get("type") in ("address", "network"):
        if port:
            attrs["port"] = str(port)
        if tls_port:
            attrs["tlsPort"] = str(tls_port)
        attrs["autoport"] = "yes" if autoport else "no"
        if listen.get("type") == "address" and listen.get("address"):
            attrs["listen"] = listen.get("address", "")
    for name, value in graphics.attrib.items():
        if name not in ("type", "port", "tlsPort", "autoport", "listen"):
            attrs[name] = value
    graphics.attrib.clear()
    graphics.attrib.update(attrs)


def _normalise_videos(videos: list[ET.Element]) -> list[ET.Element]:
    """Video defaults (the test driver's card is a cirrus): the primary card first and
    marked so, each model with its type's RAM/VRAM and one head, in libvirt's attribute order."""
    primary = next(
        (v for v in videos if (m := v.find("model")) is not None and m.get("primary") == "yes"), videos[0]
    )
    ordered = [primary, *(v for v in videos if v is not primary)]
    if (first := ordered[0].find("model")) is not None and first.get("type") == "none":
        # virDomainDefPostParseVideo: a 'none' card keeps nothing but its type and alias
        for child in list(ordered[0]):
            if child.tag != "alias":
                ordered[0].remove(child)
        ordered[0].insert(0, ET.Element("model", {"type": "none"}))
        return ordered
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


def _unsupported(detail: str) -> Exception:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, C.VIR_FROM_DOMAIN, detail)


def _xml_error(detail: str) -> Exception:
    return report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, detail)


def c_uint(text: str | None, base: int = 0) -> int | None:
    """An unsigned number as strtoul reads it (base 0: ``0x`` hex, a leading ``0`` octal), or None."""
    if text is None:
        return None
    digits = text.strip()
    if base in (0, 16) and digits[:2].lower() == "0x":
        digits, base = digits[2:], 16
    elif base == 0:
        base = 8 if len(digits) > 1 and digits.startswith("0") else 10
    try:
        value = int(digits, base) if digits and digits.isalnum() else -1
    except ValueError:
        return None
    return value if value >= 0 else None


def _pci_address_attrs(address: ET.Element) -> dict[str, str]:
    numbers = {k: c_uint(address.get(k)) or 0 for k in ("domain", "bus", "slot", "function")}
    if not (numbers["domain"] or numbers["bus"] or numbers["slot"]):
        return {}  # virPCIDeviceAddressIsEmpty: left for the driver to assign
    return {
        "domain": f"0x{numbers['domain']:04x}",
        "bus": f"0x{numbers['bus']:02x}",
        "slot": f"0x{numbers['slot']:02x}",
        "function": f"0x{numbers['function']}",
    }


def normalise_address(address: ET.Element) -> None:
    """virDomainDeviceInfoFormat's <address>: numbers in its bases and widths, in its order."""
    kind = address.get("type")
    attrs: dict[str, str] = {"type": kind or ""}
    if kind == "pci":
        attrs.update(_pci_address_attrs(address))
        if address.get("multifunction") in ("on", "off"):
            attrs["multifunction"] = address.get("multifunction", "")
        zpci = address.find("zpci")
        if zpci is not None and (zpci.get("uid") is not None or zpci.get("fid") is not None):
            uid, fid = c_uint(zpci.get("uid")) or 0, c_uint(zpci.get("fid")) or 0
            zpci.attrib = {"uid": f"0x{uid:04x}", "fid": f"0x{fid:08x}"}
    elif kind == "ccw":
        numbers = [c_uint(address.get(k)) for k in ("cssid", "ssid", "devno")]
        if any(n is None for n in numbers):
            return
        cssid, ssid, devno = (n or 0 for n in numbers)
        attrs.update(cssid=f"0x{cssid:x}", ssid=f"0x{ssid:x}", devno=f"0x{devno:04x}")
    elif kind == "spapr-vio":
        reg = c_uint(address.get("reg"), 16)
        if reg:
            attrs["reg"] = f"0x{reg:08x}"
    elif kind == "isa":
        for name in ("iobase", "irq"):
            value = c_uint(address.get(name), 16)
            if value:
                attrs[name] = f"0x{value:x}"
    elif kind in ("virtio-serial", "ccid"):
        names = ("controller", "bus", "port") if kind == "virtio-serial" else ("controller", "slot")
        for name in names:
            value = c_uint(address.get(name), 10)
            attrs[name] = str(value or 0)
    elif kind == "virtio-mmio":
        pass
    else:
        return
    address.attrib = attrs


def _normalise_hostdev(hostdev: ET.Element) -> None:
    """virDomainHostdevDefFormat: the mode (subsystem by default) and, for a subsystem
    device, whether libvirt manages it (no by default), printed after the type."""
    mode = hostdev.get("mode", "subsystem")
    attrs = {"mode": mode, "type": hostdev.get("type", "")}
    if mode == "subsystem":
        attrs["managed"] = "yes" if hostdev.get("managed") == "yes" else "no"
    attrs.update((k, v) for k, v in hostdev.attrib.items() if k not in attrs)
    hostdev.attrib = attrs


def _normalise_filesystem(fs: ET.Element) -> None:
    """virDomainFSDefParseXML, virDomainFSDefPostParse and virDomainFSDefFormat: a mount by
    default, passthrough access unless it is a vhost-user socket, modes in octal."""
    source = fs.find("source")
    attrs = {"type": fs.get("type", "mount")}
    accessmode = fs.get("accessmode")
    if accessmode is None and (source is None or source.get("socket") is None):
        accessmode = "passthrough"
    if accessmode is not None:
        attrs["accessmode"] = accessmode
    for name in ("model", "multidevs"):
        if fs.get(name) is not None:
            attrs[name] = fs.get(name, "")
    for name in ("fmode", "dmode"):
        mode = c_uint(fs.get(name), 8)
        if mode:
            attrs[name] = f"{mode:04o}"
    attrs.update((k, v) for k, v in fs.attrib.items() if k not in attrs and k not in ("fmode", "dmode"))
    fs.attrib = attrs


def _iscsi_lun(device: ET.Element) -> None:
    """virDomainPostParseCheckISCSIPath: an iSCSI IQN without a LUN means LUN 0."""
    source = device.find("source")
    if source is not None and source.get("protocol") == "iscsi":
        name = source.get("name")
        if name and "/" not in name:
            source.set("name", f"{name}/0")


def normalise_devices(devices: ET.Element, os_type: str = "hvm") -> ET.Element:
    """A new ``<devices>`` with libvirt's defaults and order (the input is left as it was)."""
    by_kind: dict[str, list[ET.Element]] = {}
    for child in devices:
        by_kind.setdefault(child.tag, []).append(child)
    disks = _disk_order(by_kind.get("disk", []))
    for disk in disks:
        _normalise_disk(disk)
    by_kind["disk"] = disks
    controllers = _controllers(
        by_kind.get("controller", []),
        disks,
        by_kind.get("channel", []),
        by_kind.get("console", []),
        by_kind.get("smartcard", []),
    )
    if controllers:
        by_kind["controller"] = controllers
    _normalise_interfaces(by_kind.get("interface", []))
    for kind in ("serial", "parallel", "console", "channel", "redirdev"):
        for device in by_kind.get(kind, []):
            _normalise_chardev_source(device)
    for position, console in enumerate(by_kind.get("console", [])):
        _normalise_console(console, position)
    consoles, serials = by_kind.get("console", []), by_kind.get("serial", [])
    _number_ports(by_kind.get("parallel", []), earlier_only=True)
    _console_compat(consoles, serials, os_type)
    _number_ports(serials, earlier_only=False)
    for kind, found in (("console", _printed_consoles(consoles, serials, os_type)), ("serial", serials)):
        if found:
            by_kind[kind] = found
    for graphics in by_kind.get("graphics", []):
        _normalise_graphics(graphics)
    for hostdev in by_kind.get("hostdev", []):
        _normalise_hostdev(hostdev)
        _iscsi_lun(hostdev)
    for disk in disks:
        _iscsi_lun(disk)
    for fs in by_kind.get("filesystem", []):
        _normalise_filesystem(fs)
    for shmem in by_kind.get("shmem", []):
        if shmem.find("model") is None:
            shmem.insert(0, ET.Element("model", {"type": "ivshmem"}))  # printed always
    for rng in by_kind.get("rng", []):
        backend = rng.find("backend")
        if backend is not None and backend.get("model") == "egd":
            protocol = backend.find("protocol")
            if protocol is not None and backend.get("type") != "tcp":
                backend.remove(protocol)
        elif backend is not None and backend.get("model") == "random" and not (backend.text or "").strip():
            backend.text = "/dev/random"  # virDomainRNGDefParseXML's default source
    for card in by_kind.get("smartcard", []):
        protocol = card.find("protocol")
        if card.get("mode") == "passthrough" and protocol is not None and card.get("type") != "tcp":
            card.remove(protocol)
    if by_kind.get("graphics") and not by_kind.get("video"):
        by_kind["video"] = [ET.Element("video")]
    if by_kind.get("video"):
        by_kind["video"] = _normalise_videos(by_kind["video"])
    for found in by_kind.values():
        for device in found:
            address = device.find("address")
            if address is not None:
                normalise_address(address)
    out = ET.Element("devices", dict(devices.attrib))
    out.text, out.tail = devices.text, devices.tail
    for kind in DEVICE_ORDER:
        out.extend(by_kind.pop(kind, []))
    for rest in by_kind.values():  # kinds libvirt does not know keep their place at the end
        out.extend(rest)
    return out
