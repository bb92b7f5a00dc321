"""Device hot-plug beyond the test driver: attach, detach and update disks and interfaces.

libvirt 9.0's test driver answers NO_SUPPORT here; OpenStack Nova attaches disks
and interfaces all the time, so the memory driver behaves as libvirt's QEMU
driver does for the XML: the device goes into (or out of) the live and/or
persistent definition the AFFECT_* flags name, a hot-plugged device gets the
alias QEMU would give it (``virtio-disk1``, ``net1``, ...), and live changes emit
DEVICE_ADDED / DEVICE_REMOVED with that alias.  Only ``<disk>`` and
``<interface>`` are modelled; other devices get QEMU's "not supported" errors.
The errors and their wording are the QEMU driver's.
"""

from __future__ import annotations

import copy
import random
import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report, xml_detail
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore, dom_ref
from .devnorm import order_interface_children
from .domdefs import both_defs
from .model import Domain

_AFFECT = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG
_UPDATE_FLAGS = _AFFECT | C.VIR_DOMAIN_DEVICE_MODIFY_FORCE
_KINDS = {"disk": "disk", "interface": "net"}  # element -> virDomainDeviceType name
_REMOVABLE = ("cdrom", "floppy")
_DISK_ORDER_BUSES = {
    "ide": 0,
    "fdc": 1,
    "scsi": 2,
    "virtio": 3,
    "xen": 4,
    "usb": 5,
    "uml": 6,
    "sata": 7,
    "sd": 8,
}


def _parse_device(xml: str) -> tuple[ET.Element, str]:
    try:
        el = ET.fromstring(xml.encode("utf-8", "surrogateescape"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 1
        raise xml_detail(f"(device_definition):{line}: {exc}") from None
    kind = _KINDS.get(el.tag, el.tag)
    if el.tag == "disk":
        target = el.find("target")
        if target is None or not target.get("dev"):
            source = el.find("source")
            path = source.get("file") or source.get("dev") if source is not None else None
            raise report(C.VIR_ERR_NO_TARGET, C.VIR_FROM_DOMAIN, path)
    return el, kind


def _disk_target(el: ET.Element) -> str:
    target = el.find("target")
    return target.get("dev", "") if target is not None else ""


def _disk_index(name: str) -> int:
    """virDiskNameToIndex: vda -> 0, vdz -> 25, vdaa -> 26 (0 for a name it does not know)."""
    for prefix in ("fd", "hd", "vd", "sd", "xvd", "ubd"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            break
    else:
        return 0
    index = 0
    for position, char in enumerate(rest):
        if not "a" <= char <= "z":
            break
        index = (index + (1 if position else 0)) * 26 + ord(char) - ord("a")
    return index


def _disk_alias(el: ET.Element) -> str:
    """qemuAssignDeviceDiskAlias for the common buses."""
    target = el.find("target")
    bus = target.get("bus", "virtio") if target is not None else "virtio"
    index = _disk_index(_disk_target(el))
    if bus == "virtio":
        return f"virtio-disk{index}"
    if bus == "usb":
        return f"usb-disk{index}"
    if bus == "ide":
        return f"ide{index // 4}-{index % 4 // 2}-{index % 2}"
    if bus == "sata":
        return f"sata{index // 6}-0-{index % 6}"
    if bus == "scsi":
        return f"scsi{index // 7}-0-0-{index % 7}"
    return f"{bus}-disk{index}"


def _mac(el: ET.Element) -> str | None:
    mac = el.find("mac")
    return mac.get("address", "").lower() if mac is not None else None


def _ensure_mac(el: ET.Element) -> None:
    """A new interface without a MAC gets one from QEMU's prefix (virDomainNetGenerateMAC)."""
    if el.find("mac") is None:
        tail = ":".join(f"{random.randrange(256):02x}" for _ in range(3))
        mac = ET.Element("mac", {"address": f"52:54:00:{tail}"})
        el.insert(0, mac)


def _devices(tree: ET.Element) -> ET.Element:
    devices = tree.find("devices")
    if devices is None:
        devices = ET.SubElement(tree, "devices")
    return devices


def _alias(el: ET.Element) -> str | None:
    alias = el.find("alias")
    return alias.get("name") if alias is not None else None


def _set_alias(el: ET.Element, name: str) -> None:
    old = el.find("alias")
    if old is not None:
        el.remove(old)
    el.append(ET.Element("alias", {"name": name}))


def _insert(devices: ET.Element, el: ET.Element) -> None:
    """Disks stay grouped (sorted by bus then target, as virDomainDiskInsert); others go after their kind."""
    same = [i for i, child in enumerate(devices) if child.tag == el.tag]
    if el.tag == "disk":
        key = _disk_sort_key(el)
        for i in same:
            if _disk_sort_key(devices[i]) > key:
                devices.insert(i, el)
                return
    position = same[-1] + 1 if same else _first_after(devices, el.tag)
    devices.insert(position, el)


def _disk_sort_key(el: ET.Element) -> tuple[int, int]:
    target = el.find("target")
    bus = target.get("bus", "virtio") if target is not None else "virtio"
    return _DISK_ORDER_BUSES.get(bus, 99), _disk_index(_disk_target(el))


# virDomainDeviceDefFormat's order of device kinds inside <devices>.
_DEVICE_ORDER = ("emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard")


def _first_after(devices: ET.Element, tag: str) -> int:
    rank = _DEVICE_ORDER.index(tag) if tag in _DEVICE_ORDER else len(_DEVICE_ORDER)
    for i, child in enumerate(devices):
        child_rank = _DEVICE_ORDER.index(child.tag) if child.tag in _DEVICE_ORDER else len(_DEVICE_ORDER)
        if child_rank > rank:
            return i
    return len(devices)


def _find(devices: ET.Element, el: ET.Element) -> ET.Element | None:
    """The device ``el`` names: a disk by target, an interface by MAC."""
    for child in devices.findall(el.tag):
        if el.tag == "disk" and _disk_target(child) == _disk_target(el):
            return child
        if el.tag == "interface" and _mac(child) == _mac(el):
            return child
    return None


@nonblocking
class DeviceAPI(MemoryCore):
    """virDomainAttachDevice*/DetachDevice*/UpdateDeviceFlags, as the QEMU driver shapes the XML."""

    async def domain_attach_device(
        self, args: R.remote_domain_attach_device_args, ctx: ConnectionContext
    ) -> None:
        self._attach(args.dom, args.xml, C.VIR_DOMAIN_AFFECT_LIVE)

    async def domain_attach_device_flags(
        self, args: R.remote_domain_attach_device_flags_args, ctx: ConnectionContext
    ) -> None:
        self._attach(args.dom, args.xml, args.flags)

    async def domain_detach_device(
        self, args: R.remote_domain_detach_device_args, ctx: ConnectionContext
    ) -> None:
        self._detach(args.dom, args.xml, C.VIR_DOMAIN_AFFECT_LIVE)

    async def domain_detach_device_flags(
        self, args: R.remote_domain_detach_device_flags_args, ctx: ConnectionContext
    ) -> None:
        self._detach(args.dom, args.xml, args.flags)

    async def domain_update_device_flags(
        self, args: R.remote_domain_update_device_flags_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _UPDATE_FLAGS, "qemuDomainUpdateDeviceFlags")
        dom = self.lookup(args.dom)
        live, persistent = both_defs(dom, args.flags & _AFFECT)
        el, kind = _parse_device(args.xml)
        if el.tag != "disk":
            where = "live" if live is not None else "persistent"
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED,
                C.VIR_FROM_QEMU,
                f"{where} update of device '{kind}' is not supported",
            )
        if persistent is not None:
            self._replace_disk(persistent, el, live=False)
        if live is not None:
            self._replace_disk(live, el, live=True)
        self._persist(dom, persistent)

    async def domain_detach_device_alias(
        self, args: R.remote_domain_detach_device_alias_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _AFFECT, "qemuDomainDetachDeviceAlias")
        dom = self.lookup(args.dom)
        live, persistent = both_defs(dom, args.flags)
        found: list[tuple[ET.Element, ET.Element]] = []
        for tree in (persistent, live):
            if tree is None:
                continue
            devices = _devices(tree)
            match = next((child for child in devices if _alias(child) == args.alias), None)
            if match is None:
                raise report(
                    C.VIR_ERR_DEVICE_MISSING, C.VIR_FROM_QEMU, f"no device found with alias {args.alias}"
                )
            found.append((devices, match))
        for devices, match in found:
            devices.remove(match)
        self._persist(dom, persistent)
        if live is not None:
            self._device_removed(dom, args.alias)

    # --- helpers ---------------------------------------------------------------------------

    def _attach(self, ref: R.remote_nonnull_domain, xml: str, flags: int) -> None:
        check_flags(flags, _AFFECT, "qemuDomainAttachDeviceFlags")
        dom = self.lookup(ref)
        live, persistent = both_defs(dom, flags)
        el, kind = _parse_device(xml)
        if el.tag not in _KINDS:
            where = "live" if live is not None else "persistent"
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED,
                C.VIR_FROM_QEMU,
                f"{where} attach of device '{kind}' is not supported",
            )
        if el.tag == "interface":
            _ensure_mac(el)
            order_interface_children(el)
        if el.tag == "disk":
            target = _disk_target(el)
            if persistent is not None and _find(_devices(persistent), el) is not None:
                raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_QEMU, f"target {target} already exists")
            if live is not None and _find(_devices(live), el) is not None:
                raise report(C.VIR_ERR_OPERATION_FAILED, C.VIR_FROM_QEMU, f"target {target} already exists")
        if persistent is not None:
            config_copy = copy.deepcopy(el)
            alias = config_copy.find("alias")
            if alias is not None:
                config_copy.remove(alias)
            _insert(_devices(persistent), config_copy)
        alias_name: str | None = None
        if live is not None:
            live_copy = copy.deepcopy(el)
            alias_name = self._new_alias(_devices(live), live_copy)
            _set_alias(live_copy, alias_name)
            _insert(_devices(live), live_copy)
        self._persist(dom, persistent)
        if alias_name is not None:
            self._device_added(dom, alias_name)

    def _detach(self, ref: R.remote_nonnull_domain, xml: str, flags: int) -> None:
        check_flags(flags, _AFFECT, "qemuDomainDetachDeviceFlags")
        dom = self.lookup(ref)
        live, persistent = both_defs(dom, flags)
        el, kind = _parse_device(xml)
        if el.tag not in _KINDS:
            where = "live" if live is not None else "persistent"
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED,
                C.VIR_FROM_QEMU,
                f"{where} detach of device '{kind}' is not supported",
            )
        removals: list[tuple[ET.Element, ET.Element, bool]] = []
        for tree, is_live in ((persistent, False), (live, True)):
            if tree is None:
                continue
            devices = _devices(tree)
            match = _find(devices, el)
            if match is None:
                raise self._missing(el, is_live)
            removals.append((devices, match, is_live))
        alias_name: str | None = None
        for devices, match, is_live in removals:
            if is_live:
                alias_name = _alias(match)
            devices.remove(match)
        self._persist(dom, persistent)
        if alias_name is not None:
            self._device_removed(dom, alias_name)

    def _missing(self, el: ET.Element, live: bool) -> Exception:
        if el.tag == "disk":
            detail = f"disk {_disk_target(el)} not found" if live else f"no target device {_disk_target(el)}"
            return report(C.VIR_ERR_DEVICE_MISSING, C.VIR_FROM_QEMU, detail)
        mac = _mac(el) or ""
        detail = f"no device found at address '(<null>)' matching MAC address '{mac}' and alias '(null)'"
        return report(C.VIR_ERR_DEVICE_MISSING, C.VIR_FROM_DOMAIN, detail)

    def _replace_disk(self, tree: ET.Element, el: ET.Element, *, live: bool) -> None:
        devices = _devices(tree)
        old = _find(devices, el)
        if old is None:
            if live:
                raise report(C.VIR_ERR_DEVICE_MISSING, C.VIR_FROM_QEMU, f"disk {_disk_target(el)} not found")
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_QEMU, f"target {_disk_target(el)} doesn't exist.")
        new = copy.deepcopy(el)
        if live:
            moved = _source_key(old) != _source_key(new)
            if moved and old.get("device", "disk") not in _REMOVABLE:
                raise report(
                    C.VIR_ERR_CONFIG_UNSUPPORTED,
                    C.VIR_FROM_QEMU,
                    "disk source can be changed only in removable drives",
                )
            alias = _alias(old)
            if alias is not None:
                _set_alias(new, alias)
        index = list(devices).index(old)
        devices.remove(old)
        devices.insert(index, new)

    def _new_alias(self, devices: ET.Element, el: ET.Element) -> str:
        if el.tag == "disk":
            return _disk_alias(el)
        used = {_alias(child) for child in devices.findall("interface")}
        index = len(devices.findall("interface"))
        while f"net{index}" in used:
            index += 1
        return f"net{index}"

    def _persist(self, dom: Domain, persistent: ET.Element | None) -> None:
        if persistent is not None:
            self.save(dom)

    def _device_added(self, dom: Domain, alias: str) -> None:
        ref = dom_ref(dom)

        def make(callback_id: int) -> object:
            return R.remote_domain_event_callback_device_added_msg(
                callbackID=callback_id, dom=ref, devAlias=alias
            )

        self.events.callback_only(
            C.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
            ref,
            R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_DEVICE_ADDED,
            make,
        )

    def _device_removed(self, dom: Domain, alias: str) -> None:
        ref = dom_ref(dom)

        def make(callback_id: int) -> object:
            return R.remote_domain_event_callback_device_removed_msg(
                callbackID=callback_id, msg=R.remote_domain_event_device_removed_msg(dom=ref, devAlias=alias)
            )

        self.events.callback_only(
            C.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
            ref,
            R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
            make,
        )


def _source_key(el: ET.Element) -> tuple[tuple[str, str], ...] | None:
    source = el.find("source")
    return None if source is None else tuple(sorted(source.attrib.items()))
