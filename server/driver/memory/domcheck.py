"""The checks libvirt's domain parser makes on enumerated values and required parts.

virDomainDefParseXML refuses a value outside an enumeration (a domain type, a
lifecycle action, a disk device...) and a device missing a part it cannot do
without (a disk's source or target, a network interface's source), before the
definition reaches the driver.  Two wordings, as libvirt has them:

* attributes read with virXMLPropEnum: VIR_ERR_XML_ERROR from VIR_FROM_XML,
  "Invalid value for attribute 'type' in element 'disk': 'weird'.";
* the hand-written checks: VIR_ERR_CONFIG_UNSUPPORTED (or NO_SOURCE, NO_TARGET,
  XML_ERROR) from VIR_FROM_DOMAIN with their own sentences.

The checks run in the parser's order (features, lifecycle, clock, then the
device kinds as virDomainDefParseXML reads them), so the first fault libvirt
would report is the one reported.  Enumerations are libvirt 9.0's
(src/conf/domain_conf.c VIR_ENUM_IMPL).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

from virtwire.protocol.generated import constants as C

from ...errors import report
from .devnorm import DEVICE_ORDER, c_uint, disk_bus


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DOMAIN_TYPES = _words(
    "none qemu kqemu kvm xen lxc uml openvz test vmware hyperv vbox phyp parallels bhyve vz hvf"
)
LIFECYCLE_ACTIONS = _words("destroy restart rename-restart preserve coredump-destroy coredump-restart")
CLOCK_OFFSETS = _words("utc localtime variable timezone absolute")
FEATURES = _words(
    "acpi apic pae hap viridian privnet hyperv kvm pvspinlock capabilities pmu vmport gic smm ioapic hpt"
    " vmcoreinfo htm nested-hv msrs ccf-assist xen cfpc sbbc ibs tcg"
)
DISK_TYPES = _words("file block dir network volume nvme vhostuser")
DISK_DEVICES = _words("disk cdrom floppy lun")
NET_TYPES = _words(
    "user ethernet vhostuser server client mcast network bridge internal direct hostdev udp vdpa null vds"
)
CHR_TYPES = _words("null vc pty dev file pipe stdio udp tcp unix spicevmc spiceport nmdm qemu-vdagent dbus")
CONTROLLER_TYPES = _words("ide fdc scsi sata virtio-serial ccid usb pci xenbus isa")
INPUT_TYPES = _words("mouse tablet keyboard passthrough evdev")
GRAPHICS_TYPES = _words("sdl vnc rdp desktop spice egl-headless dbus")
VIDEO_MODELS = _words("default vga cirrus vmvga xen vbox qxl parallels virtio gop none bochs ramfb")
MEMBALLOON_MODELS = _words("virtio xen none virtio-transitional virtio-non-transitional")
# interface types whose <source> libvirt requires
NET_TYPES_WITH_SOURCE = _words("network vds internal bridge direct vhostuser vdpa client server mcast udp")


def _unsupported(detail: str) -> Exception:
    return report(C.VIR_ERR_CONFIG_UNSUPPORTED, C.VIR_FROM_DOMAIN, detail)


def _bad_attribute(attr: str, element: str, value: str) -> Exception:
    detail = f"Invalid value for attribute '{attr}' in element '{element}': '{value}'."
    return report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)


def _enum_attr(el: ET.Element, attr: str, allowed: frozenset[str]) -> None:
    value = el.get(attr)
    if value is not None and value not in allowed:
        raise _bad_attribute(attr, el.tag, value)


def check_domain_type(root: ET.Element) -> None:
    kind = root.get("type", "")
    if kind not in DOMAIN_TYPES:
        raise _unsupported(f"invalid domain type {kind}")


def _features(root: ET.Element) -> None:
    features = root.find("features")
    for el in features if features is not None else ():
        if el.tag not in FEATURES:
            raise _unsupported(f"unexpected feature '{el.tag}'")


def _lifecycle(root: ET.Element) -> None:
    for name in ("on_reboot", "on_poweroff", "on_crash"):
        text = root.findtext(name)
        if text is not None and text.strip() and text.strip() not in LIFECYCLE_ACTIONS:
            raise _unsupported(f"unknown {name} action: {text.strip()}")


def _clock(root: ET.Element) -> None:
    clock = root.find("clock")
    offset = clock.get("offset") if clock is not None else None
    if offset is not None and offset not in CLOCK_OFFSETS:
        raise _unsupported(f"unknown clock offset '{offset}'")


def _disk(disk: ET.Element) -> None:
    _enum_attr(disk, "type", DISK_TYPES)
    _enum_attr(disk, "device", DISK_DEVICES)


_LOCAL_SOURCE = {"file": "file", "block": "dev", "dir": "dir"}


def _validate_disk(disk: ET.Element) -> None:
    """virDomainDiskDefValidate: a target first, then a source unless the medium may be absent."""
    source = disk.find("source")
    target = disk.find("target")
    target_dev = target.get("dev") if target is not None else None
    if not target_dev:
        if source is not None and source.get("pool"):
            raise report(C.VIR_ERR_NO_TARGET, C.VIR_FROM_DOMAIN,
                         f"pool = '{source.get('pool')}', volume = '{source.get('volume')}'")  # fmt: skip
        path = next(
            (source.get(a) for a in ("file", "dev", "dir") if source is not None and source.get(a)), None
        )
        raise report(C.VIR_ERR_NO_TARGET, C.VIR_FROM_DOMAIN, path)
    attr = _LOCAL_SOURCE.get(disk.get("type", "file"))
    empty = source is None or (attr is not None and not source.get(attr))
    if empty and disk.get("device", "disk") == "disk":
        raise report(C.VIR_ERR_NO_SOURCE, C.VIR_FROM_DOMAIN, target_dev)


def _disk_address(disk: ET.Element) -> None:
    """virDomainDiskAddressDiskBusCompatibility: IDE, FDC, SCSI and SATA disks sit on drive addresses."""
    address = disk.find("address")
    bus = disk_bus(disk)
    kind = address.get("type") if address is not None else None
    if kind and bus in ("ide", "fdc", "scsi", "sata") and kind != "drive":
        target = disk.find("target")
        dst = target.get("dev") if target is not None else None
        raise _unsupported(f"Invalid address type '{kind}' for the disk '{dst}' with the bus type '{bus}'")


def _pci_address(address: ET.Element) -> None:
    """virPCIDeviceAddressIsValid on a PCI address that is not empty (libvirt's util code, so
    reported from no particular domain)."""
    numbers = {k: c_uint(address.get(k)) or 0 for k in ("domain", "bus", "slot", "function")}
    if not (numbers["domain"] or numbers["bus"] or numbers["slot"]):
        return
    if numbers["bus"] > 0xFF:
        detail = f"Invalid PCI address bus='0x{numbers['bus']:x}', must be <= 0xFF"
    elif numbers["slot"] > 0x1F:
        detail = f"Invalid PCI address slot='0x{numbers['slot']:x}', must be <= 0x1F"
    elif numbers["function"] > 7:
        detail = f"Invalid PCI address function=0x{numbers['function']:x}, must be <= 7"
    else:
        return
    raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_NONE, detail)


def _numbers(el: ET.Element | None, *names: str) -> tuple[int, ...]:
    return tuple(c_uint(el.get(n)) or 0 if el is not None else 0 for n in names)


def _hostdev_match(a: ET.Element, b: ET.Element) -> bool:
    """virDomainHostdevMatch for subsystem devices: the same host device, by source."""
    kind = a.get("type")
    if a.get("mode", "subsystem") != "subsystem" or b.get("mode", "subsystem") != "subsystem":
        return False
    if kind != b.get("type"):
        return False
    sa, sb = a.find("source"), b.find("source")
    if kind == "pci":
        names = ("domain", "bus", "slot", "function")
        return _numbers(_child(sa, "address"), *names) == _numbers(_child(sb, "address"), *names)
    if kind == "usb":
        addr_a = _child(sa, "address")
        if _numbers(addr_a, "bus", "device")[0] and _numbers(addr_a, "bus", "device")[1]:
            return _numbers(addr_a, "bus", "device") == _numbers(_child(sb, "address"), "bus", "device")
        ids = (_child_attr(sa, "vendor"), _child_attr(sa, "product"))
        return ids == (_child_attr(sb, "vendor"), _child_attr(sb, "product"))
    if kind == "scsi":
        if (sa.get("protocol") if sa is not None else None) == "iscsi":
            host_a, host_b = _child(sa, "host"), _child(sb, "host")
            return (
                sb is not None and sb.get("protocol") == "iscsi" and sa is not None
                and sa.get("name") == sb.get("name")
                and (host_a.get("name") if host_a is not None else None)
                == (host_b.get("name") if host_b is not None else None)
            )  # fmt: skip
        adapters = (_child(sa, "adapter"), _child(sb, "adapter"))
        adapter_names = [x.get("name") if x is not None else None for x in adapters]
        fields = ("bus", "target", "unit")
        return adapter_names[0] == adapter_names[1] and _numbers(_child(sa, "address"), *fields) == _numbers(
            _child(sb, "address"), *fields
        )
    if kind == "mdev":
        uuids = (_child(sa, "address"), _child(sb, "address"))
        return None not in uuids and uuids[0].get("uuid") == uuids[1].get("uuid")  # type: ignore[union-attr]
    return False


def _child(el: ET.Element | None, tag: str) -> ET.Element | None:
    return el.find(tag) if el is not None else None


def _child_attr(source: ET.Element | None, tag: str) -> int:
    found = _child(source, tag)
    return c_uint(found.get("id")) or 0 if found is not None else 0


def _hostdevs(devices: ET.Element) -> None:
    """virDomainDefHostdevValidate: no host device given twice."""
    hostdevs = devices.findall("hostdev")
    for i, dev in enumerate(hostdevs):
        if any(_hostdev_match(dev, other) for other in hostdevs[i + 1 :]):
            raise report(
                C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, "Hostdev already exists in the domain configuration"
            )


# ICH9 UHCI companions: the parser gives each a <master> when none is written.
_USB_COMPANIONS = frozenset({"ich9-uhci1", "ich9-uhci2", "ich9-uhci3"})


def _usb_disabled(devices: ET.Element) -> bool:
    """virDomainDefParseXML's USB controller rules; True when USB is disabled (model 'none')."""
    usb_none = usb_other = usb_master = False
    for controller in devices.findall("controller"):
        if controller.get("type") != "usb":
            continue
        if usb_none or (controller.get("model") == "none" and usb_other):
            detail = "Can't add another USB controller: USB is disabled for this domain"
            raise report(C.VIR_ERR_XML_DETAIL, C.VIR_FROM_DOMAIN, detail)
        if controller.get("model") == "none":
            usb_none = True
        else:
            usb_other = True
        if controller.find("master") is None and controller.get("model") not in _USB_COMPANIONS:
            usb_master = True
    if usb_other and not usb_master:
        raise report(C.VIR_ERR_XML_DETAIL, C.VIR_FROM_DOMAIN, "No master USB controller specified")
    if usb_none:
        for el in devices.findall("input"):
            if el.get("bus") == "usb":
                raise _unsupported("Can't add USB input device. USB bus is disabled")
        for el in devices.findall("hub"):
            if el.get("type") == "usb":
                raise _unsupported("Can't add USB hub: USB is disabled for this domain")
    return usb_none


def _videos(devices: ET.Element) -> None:
    """virDomainVideoDefValidate on each card (the test driver's default model is cirrus)."""
    videos = devices.findall("video")
    for video in videos:
        model = video.find("model")
        kind = model.get("type", "cirrus") if model is not None else "cirrus"
        if kind == "none" and len(videos) > 1:
            raise _unsupported("a 'none' video type must be the only video device defined for the domain")
        if kind != "qxl" and model is not None:
            for attr in ("ram", "vram64", "vgamem"):
                if c_uint(model.get(attr)):
                    raise _unsupported(f"{attr} attribute only supported for video type qxl")
        if kind == "ramfb" and video.find("address") is not None:
            raise _unsupported("address not supported for video type ramfb")


def _redirdevs(devices: ET.Element) -> None:
    """virDomainRedirdevDefValidate: a USB redirection needs an enabled USB controller."""
    has_usb = any(c.get("type") == "usb" and c.get("model") != "none" for c in devices.findall("controller"))
    for redirdev in devices.findall("redirdev"):
        if redirdev.get("bus", "usb") == "usb" and not has_usb:
            raise _unsupported("cannot add redirected USB device: USB is disabled for this domain")


def _primary_video(devices: ET.Element) -> None:
    models = [video.find("model") for video in devices.findall("video")]
    primaries = [m for m in models if m is not None and m.get("primary") == "yes"]
    if len(primaries) > 1:
        raise _unsupported("Only one primary video device is supported")


def _interface(net: ET.Element) -> None:
    _enum_attr(net, "type", NET_TYPES)
    kind = net.get("type", "")
    if kind in NET_TYPES_WITH_SOURCE and net.find("source") is None:
        detail = f"interface type='{kind}' requires a 'source' element"
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, detail)


def _chr(chr_el: ET.Element) -> None:
    kind = chr_el.get("type")
    if kind is not None and kind not in CHR_TYPES:
        raise _unsupported(f"unknown type presented to host for character device: {kind}")
    # virDomainChrSourceDefParseXML: one <source>, two for UDP (bind and connect ends)
    sources = len(chr_el.findall("source"))
    if sources > 1 and kind != "udp":
        detail = "only one source element is allowed for character device"
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, detail)
    if sources > 2:
        detail = "only two source elements are allowed for character device"
        raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_DOMAIN, detail)
    _reconnect(chr_el)


def _reconnect(chr_el: ET.Element) -> None:
    """virDomainChrSourceReconnectDefParseXML: an enabled reconnect needs its timeout."""
    for source in chr_el.findall("source"):
        reconnect = source.find("reconnect")
        if reconnect is not None and reconnect.get("enabled") == "yes" and reconnect.get("timeout") is None:
            detail = "Missing required attribute 'timeout' in element 'reconnect'"
            raise report(C.VIR_ERR_XML_ERROR, C.VIR_FROM_XML, detail)


def _input(el: ET.Element) -> None:
    kind = el.get("type", "")
    if kind not in INPUT_TYPES:
        raise _unsupported(f"unknown input device type '{kind}'")


def _video(el: ET.Element) -> None:
    model = el.find("model")
    kind = model.get("type") if model is not None else None
    if kind is not None and kind not in VIDEO_MODELS:
        raise _unsupported(f"unknown video model '{kind}'")


# virDomainDefParseXML's order of device kinds (those checked here)
_DEVICE_CHECKS: tuple[tuple[str, Callable[[ET.Element], None]], ...] = (
    ("disk", _disk),
    ("controller", lambda el: _enum_attr(el, "type", CONTROLLER_TYPES)),
    ("interface", _interface),
    ("parallel", _chr),
    ("serial", _chr),
    ("console", _chr),
    ("channel", _chr),
    ("input", _input),
    ("graphics", lambda el: _enum_attr(el, "type", GRAPHICS_TYPES)),
    ("video", _video),
    ("memballoon", lambda el: _enum_attr(el, "model", MEMBALLOON_MODELS)),
)


def _devices(root: ET.Element) -> Iterator[tuple[Callable[[ET.Element], None], ET.Element]]:
    devices = root.find("devices")
    if devices is None:
        return
    for tag, check in _DEVICE_CHECKS:
        for el in devices.findall(tag):
            yield check, el


def _chr_source_error(detail: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_DOMAIN, detail)


def _validate_chr_source(holder: ET.Element, kind: str | None, path_optional: bool = False) -> None:
    """virDomainChrSourceDefValidate: what each source type cannot do without. ``holder`` is
    the element whose <source> children describe the host side."""
    sources = holder.findall("source")
    first = sources[0] if sources else None

    def attr(name: str) -> str | None:
        return first.get(name) if first is not None else None

    if kind in ("file", "dev", "pipe") and attr("path") is None:
        raise _chr_source_error("Missing source path attribute for char device")
    reconnect = first.find("reconnect") if first is not None else None
    reconnecting = reconnect is not None and reconnect.get("enabled") == "yes"
    if kind == "tcp":
        if attr("host") is None:
            raise _chr_source_error("Missing source host attribute for char device")
        if attr("service") is None:
            raise _chr_source_error("Missing source service attribute for char device")
        if attr("mode") == "bind" and reconnecting:
            raise _chr_source_error("chardev reconnect is possible only for connect mode")
    elif kind == "udp":
        connect = next((s for s in sources if s.get("mode", "connect") == "connect"), None)
        if connect is None or connect.get("service") is None:
            raise _chr_source_error("Missing source service attribute for char device")
    elif kind == "unix":
        if attr("path") is None and not path_optional:
            raise _chr_source_error("Missing source path attribute for char device")
        if attr("mode") == "bind" and reconnecting:
            raise _chr_source_error("chardev reconnect is possible only for connect mode")


def _chr_sources(devices: ET.Element) -> Iterator[tuple[ET.Element, str | None, bool]]:
    """The character-device sources libvirt validates, in its device iteration order."""
    for card in devices.findall("smartcard"):
        if card.get("mode") == "passthrough":
            yield card, card.get("type"), False
    for tag in ("serial", "parallel", "channel", "console"):
        for el in devices.findall(tag):
            target = el.find("target")
            target_type = target.get("type") if target is not None else None
            yield el, el.get("type", "pty"), tag == "channel" and target_type in ("virtio", "xen")
    for rng in devices.findall("rng"):
        backend = rng.find("backend")
        if backend is not None and backend.get("model") == "egd":
            yield backend, backend.get("type"), False
    for redirdev in devices.findall("redirdev"):
        yield redirdev, redirdev.get("type"), False


def check_definition(root: ET.Element) -> None:
    """Raise the first error libvirt's parser (then its validation) would, after the os section."""
    _features(root)
    _lifecycle(root)
    _clock(root)
    for check, el in _devices(root):
        check(el)
    devices = root.find("devices")
    if devices is not None:
        _usb_disabled(devices)
    for tag in DEVICE_ORDER if devices is not None else ():
        for device in devices.findall(tag) if devices is not None else ():
            address = device.find("address")
            if address is not None and address.get("type") == "pci":
                _pci_address(address)
    for disk in devices.findall("disk") if devices is not None else ():
        _validate_disk(disk)
        _disk_address(disk)
    for holder, kind, path_optional in _chr_sources(devices) if devices is not None else ():
        _validate_chr_source(holder, kind, path_optional)
    if devices is not None:
        _videos(devices)
        _redirdevs(devices)
        _primary_video(devices)
        _hostdevs(devices)
