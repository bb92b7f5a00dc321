"""Device attach/detach/update: served beyond libvirt's test driver, shaped like the QEMU driver.

The real test driver answers NO_SUPPORT (checked here, so the difference stays
deliberate); against `virtwire serve` the device lands in the live and/or
persistent definition the flags name, hot-plugged devices carry QEMU's aliases,
and DEVICE_ADDED / DEVICE_REMOVED arrive with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit.domaindiff import Side, side_pair

DISK = (
    "<disk type='file' device='disk'><source file='/var/lib/x/{0}.img'/>"
    "<target dev='{0}' bus='virtio'/></disk>"
)
CDROM = (
    "<disk type='file' device='cdrom'><source file='{1}'/><target dev='{0}' bus='sata'/><readonly/></disk>"
)
NIC = (
    "<interface type='network'><mac address='{0}'/><source network='default'/>"
    "<model type='virtio'/></interface>"
)
LIVE, CONFIG = 1, 2


@pytest.fixture(scope="module")
def pair(
    real_libvirt: ModuleType, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Side, Side]]:
    with side_pair(real_libvirt, pki, tmp_path_factory.mktemp("devices")) as sides:
        yield sides


@pytest.fixture
def ours(pair: tuple[Side, Side]) -> Iterator[Side]:
    side = pair[0]
    side.settle()
    yield side
    side.settle()


def _error(side: Side, call: Any) -> tuple[int, int, str]:
    with pytest.raises(side.lv.libvirtError) as info:
        call()
    return info.value.get_error_code(), info.value.get_error_domain(), info.value.get_error_message()


def _disks(xml: str) -> list[str]:
    import xml.etree.ElementTree as ET

    return [
        f"{d.find('target').get('dev')}:{d.find('alias').get('name') if d.find('alias') is not None else '-'}"  # type: ignore[union-attr]
        for d in ET.fromstring(xml).findall("devices/disk")
    ]


def test_the_test_driver_does_not_serve_them(pair: tuple[Side, Side]) -> None:
    real = pair[1]
    dom = real.conn.lookupByName("test")
    for call in (
        lambda: dom.attachDeviceFlags(DISK.format("vdb"), LIVE),
        lambda: dom.detachDeviceFlags(DISK.format("vda"), LIVE),
        lambda: dom.updateDeviceFlags(DISK.format("vda"), LIVE),
        lambda: dom.detachDeviceAlias("virtio-disk0", LIVE),
    ):
        assert _error(real, call)[0] == real.lv.VIR_ERR_NO_SUPPORT


def test_attach_and_detach_a_disk_live_and_config(ours: Side) -> None:
    lv = ours.lv
    dom = ours.conn.lookupByName("test")
    dom.attachDeviceFlags(DISK.format("vdb"), LIVE | CONFIG)
    assert _disks(dom.XMLDesc(0)) == ["vda:-", "vdb:virtio-disk1"]
    assert _disks(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)) == ["vda:-", "vdb:-"]
    assert _error(ours, lambda: dom.attachDeviceFlags(DISK.format("vdb"), CONFIG)) == (
        lv.VIR_ERR_OPERATION_INVALID,
        lv.VIR_FROM_QEMU,
        "Requested operation is not valid: target vdb already exists",
    )
    assert _error(ours, lambda: dom.attachDevice(DISK.format("vdb")))[:2] == (
        lv.VIR_ERR_OPERATION_FAILED,
        lv.VIR_FROM_QEMU,
    )
    dom.detachDeviceFlags(DISK.format("vdb"), LIVE)
    assert _disks(dom.XMLDesc(0)) == ["vda:-"]
    assert _disks(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)) == ["vda:-", "vdb:-"]
    assert _error(ours, lambda: dom.detachDevice(DISK.format("vdb"))) == (
        lv.VIR_ERR_DEVICE_MISSING,
        lv.VIR_FROM_QEMU,
        "device not found: disk vdb not found",
    )
    dom.detachDeviceFlags(DISK.format("vdb"), CONFIG)
    assert _error(ours, lambda: dom.detachDeviceFlags(DISK.format("vdb"), CONFIG))[2] == (
        "device not found: no target device vdb"
    )
    assert ours.settle() == [
        ("device-added", "test", "virtio-disk1"),
        ("device-removed", "test", "virtio-disk1"),
    ]


def test_interfaces_get_a_mac_and_an_alias(ours: Side) -> None:
    dom = ours.conn.lookupByName("test")
    dom.attachDevice("<interface type='network'><source network='default'/></interface>")
    xml = dom.XMLDesc(0)
    assert "<mac address='52:54:00:" in xml and "<alias name='net1'/>" in xml
    dom.attachDeviceFlags(NIC.format("52:54:00:00:00:02"), LIVE)
    assert "<alias name='net2'/>" in dom.XMLDesc(0)
    dom.detachDeviceAlias("net2", LIVE)
    assert "52:54:00:00:00:02" not in dom.XMLDesc(0)
    assert _error(ours, lambda: dom.detachDeviceFlags(NIC.format("52:54:00:00:00:09"), LIVE))[:2] == (
        ours.lv.VIR_ERR_DEVICE_MISSING,
        ours.lv.VIR_FROM_DOMAIN,
    )
    added = [e for e in ours.settle() if e[0] != "lifecycle"]
    assert added == [
        ("device-added", "test", "net1"),
        ("device-added", "test", "net2"),
        ("device-removed", "test", "net2"),
    ]
    dom.detachDeviceAlias("net1", LIVE)
    assert ours.settle() == [("device-removed", "test", "net1")]


def test_update_changes_removable_media_only(ours: Side) -> None:
    lv = ours.lv
    dom = ours.conn.lookupByName("test")
    dom.attachDeviceFlags(CDROM.format("sdb", "/isos/a.iso"), LIVE | CONFIG)
    dom.updateDeviceFlags(CDROM.format("sdb", "/isos/b.iso"), LIVE)
    assert "/isos/b.iso" in dom.XMLDesc(0) and "/isos/a.iso" in dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)
    assert "<alias name='sata0-0-1'/>" in dom.XMLDesc(0)
    assert _error(
        ours, lambda: dom.updateDeviceFlags(DISK.format("vda").replace("vda.img", "o.img"), LIVE)
    ) == (
        lv.VIR_ERR_CONFIG_UNSUPPORTED,
        lv.VIR_FROM_QEMU,
        "unsupported configuration: disk source can be changed only in removable drives",
    )
    assert _error(ours, lambda: dom.updateDeviceFlags(DISK.format("vdq"), CONFIG))[2] == (
        "invalid argument: target vdq doesn't exist."
    )
    dom.detachDeviceFlags(CDROM.format("sdb", ""), LIVE | CONFIG)
    assert "sdb" not in dom.XMLDesc(0) + dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)


def test_bad_input_and_states(ours: Side) -> None:
    lv = ours.lv
    dom = ours.conn.lookupByName("test")
    assert _error(ours, lambda: dom.attachDevice("<sound model='ich6'/>")) == (
        lv.VIR_ERR_OPERATION_UNSUPPORTED,
        lv.VIR_FROM_QEMU,
        "Operation not supported: live attach of device 'sound' is not supported",
    )
    assert _error(ours, lambda: dom.attachDevice("<disk"))[:2] == (lv.VIR_ERR_XML_DETAIL, lv.VIR_FROM_DOMAIN)
    assert _error(ours, lambda: dom.attachDevice("<disk type='file'><source file='/a'/></disk>"))[:2] == (
        lv.VIR_ERR_NO_TARGET,
        lv.VIR_FROM_DOMAIN,
    )
    assert (
        _error(ours, lambda: dom.attachDeviceFlags(DISK.format("vdc"), 1 << 5))[0] == lv.VIR_ERR_INVALID_ARG
    )
    shut = ours.conn.defineXML(
        "<domain type='test'><name>devoff</name><memory>1024</memory><os><type>hvm</type></os></domain>"
    )
    try:
        assert _error(ours, lambda: shut.attachDevice(DISK.format("vdb")))[2] == (
            "Requested operation is not valid: domain is not running"
        )
        shut.attachDeviceFlags(DISK.format("vdb"), 0)  # CURRENT on a shut-off domain: its config
        assert _disks(shut.XMLDesc(0)) == ["vdb:-"]
        ro = ours.ro.lookupByName("devoff")
        assert _error(ours, lambda: ro.detachDeviceFlags(DISK.format("vdb"), 0))[0] == (
            lv.VIR_ERR_OPERATION_DENIED
        )
        assert _disks(shut.XMLDesc(0)) == ["vdb:-"]
    finally:
        shut.undefine()
    assert _disks(dom.XMLDesc(0)) == ["vda:-"]
