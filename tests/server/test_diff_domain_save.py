"""Save, restore, save images, managed save and core dumps: virtwire vs a real libvirtd.

Every scenario runs the same libvirt-python calls on both ends and compares
results, errors (all nine fields) and the lifecycle events they caused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit.domaindiff import Side, side_pair

UUID = "11111111-2222-3333-4444-555555555501"
GUEST = (
    "<domain type='test'><name>saver</name><uuid>{uuid}</uuid><memory>65536</memory>"
    "<vcpu>2</vcpu><os><type>hvm</type></os><devices><disk type='file' device='disk'>"
    "<source file='/tmp/x.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
)
Step = Callable[[Side], Any]


@pytest.fixture(scope="module")
def pair(
    real_libvirt: ModuleType, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Side, Side]]:
    with side_pair(real_libvirt, pki, tmp_path_factory.mktemp("diff-save")) as sides:
        yield sides


def _both(pair: tuple[Side, Side], steps: list[Step]) -> tuple[list[Any], list[Any]]:
    ours, real = pair
    mine, theirs = ours.run(steps), real.run(steps)
    assert mine == theirs
    assert ours.settle() == real.settle()
    return mine, theirs


def _dom(s: Side, name: str = "saver") -> Any:
    return s.conn.lookupByName(name)


def _errno_free(s: Side, call: Callable[[], Any]) -> Any:
    """A short read's error without its strerror: libvirtd leaves a stale errno there."""
    try:
        return call()
    except s.lv.libvirtError as exc:
        return exc.get_error_code(), exc.get_error_domain(), s.clean(exc.get_error_message()).split(": ")[0]


def _state(name: str = "saver") -> Step:
    return lambda s: (_dom(s, name).state(), _dom(s, name).isActive(), _dom(s, name).ID() > 0)


def test_save_and_restore_round_trip(pair: tuple[Side, Side]) -> None:
    steps: list[Step] = [
        lambda s: s.conn.defineXML(GUEST.format(uuid=UUID)).name(),
        lambda s: _dom(s).save(str(s.directory / "saver.img")),  # not running
        lambda s: _dom(s).create(),
        lambda s: _dom(s).save(str(s.directory / "saver.img")),
        _state(),
        lambda s: (s.directory / "saver.img").read_bytes()[:15],
        lambda s: s.conn.saveImageGetXMLDesc(str(s.directory / "saver.img"), 0),
        lambda s: s.conn.restore(str(s.directory / "saver.img")),
        _state(),
        lambda s: _dom(s).XMLDesc(0).replace(f"id='{_dom(s).ID()}'", "id='N'"),
        lambda s: s.conn.restore(str(s.directory / "saver.img")),  # already active
        lambda s: _dom(s).destroy(),
        lambda s: _dom(s).undefine(),
    ]
    mine, _ = _both(pair, steps)
    assert mine[3] == ("ok", 0)
    assert mine[5] == ("ok", b"TestGuestMagic\0")


def test_transient_domain_saved_and_restored(pair: tuple[Side, Side]) -> None:
    steps: list[Step] = [
        lambda s: s.conn.createXML(GUEST.format(uuid=UUID), 0).name(),
        lambda s: _dom(s).save(str(s.directory / "transient.img")),
        lambda s: s.conn.lookupByName("saver"),  # gone
        lambda s: s.conn.restore(str(s.directory / "transient.img")),
        lambda s: (_dom(s).isPersistent(), _dom(s).state()),
        lambda s: _dom(s).destroy(),
    ]
    _both(pair, steps)


def test_save_image_define_and_bad_images(pair: tuple[Side, Side]) -> None:
    other = GUEST.format(uuid=UUID).replace("65536", "131072")
    steps: list[Step] = [
        lambda s: s.conn.createXML(GUEST.format(uuid=UUID), 0).name(),
        lambda s: _dom(s).save(str(s.directory / "define.img")),
        lambda s: s.conn.saveImageDefineXML(str(s.directory / "define.img"), other, 0),
        lambda s: s.conn.saveImageGetXMLDesc(str(s.directory / "define.img"), 0),
        lambda s: s.conn.saveImageDefineXML(str(s.directory / "define.img"), "<domain/>", 0),
        lambda s: s.conn.saveImageDefineXML(str(s.directory / "define.img"), other, 1 << 8),
        lambda s: s.conn.saveImageGetXMLDesc(str(s.directory / "missing.img"), 0),
        lambda s: (s.directory / "junk.img").write_bytes(b"NotAGuestMagic!rest"),
        lambda s: s.conn.saveImageGetXMLDesc(str(s.directory / "junk.img"), 0),
        lambda s: s.conn.restore(str(s.directory / "junk.img")),
        lambda s: (s.directory / "short.img").write_bytes(b"TestGuestMagic\0\x00\x00\x00\x00"),
        lambda s: s.conn.restore(str(s.directory / "short.img")),
        lambda s: (s.directory / "long.img").write_bytes(b"TestGuestMagic\0\x00\x40\x00\x00"),
        lambda s: s.conn.restore(str(s.directory / "long.img")),
        lambda s: (s.directory / "cut.img").write_bytes(b"TestGuestMagic\0\x20\x00\x00\x00<domain"),
        lambda s: _errno_free(s, lambda: s.conn.restore(str(s.directory / "cut.img"))),
        lambda s: s.conn.restore(str(s.directory)),
        lambda s: s.conn.restore(str(s.directory / "define.img")),
        lambda s: _dom(s).info()[1],
        lambda s: s.conn.restoreFlags(str(s.directory / "define.img"), None, 1),
        lambda s: s.conn.restoreFlags(str(s.directory / "define.img"), "<domain/>", 0),
        lambda s: _dom(s).saveFlags(str(s.directory / "flags.img"), "<domain/>", 0),
        lambda s: _dom(s).saveFlags(str(s.directory / "flags.img"), None, 1 << 8),
        lambda s: _dom(s).save("/nonexistent-dir/x.img"),
        _state(),
        lambda s: _dom(s).destroy(),
    ]
    _both(pair, steps)


def test_managed_save(pair: tuple[Side, Side]) -> None:
    steps: list[Step] = [
        lambda s: s.conn.defineXML(GUEST.format(uuid=UUID)).name(),
        lambda s: _dom(s).hasManagedSaveImage(0),
        lambda s: _dom(s).managedSave(0),  # not running
        lambda s: _dom(s).create(),
        lambda s: _dom(s).managedSave(1 << 8),
        lambda s: _dom(s).managedSave(0),
        _state(),
        lambda s: _dom(s).hasManagedSaveImage(0),
        lambda s: _dom(s).undefine(),  # refused while the image exists
        lambda s: _dom(s).undefineFlags(1 << 10),  # the flags are checked first
        lambda s: _dom(s).create(),  # the test driver boots afresh and drops the image
        _state(),
        lambda s: _dom(s).hasManagedSaveImage(0),
        lambda s: _dom(s).managedSave(0),
        lambda s: _dom(s).managedSaveRemove(0),
        lambda s: _dom(s).hasManagedSaveImage(0),
        lambda s: _dom(s).managedSaveRemove(1),
        lambda s: _dom(s).hasManagedSaveImage(1),
        lambda s: _dom(s).create(),
        lambda s: _dom(s).managedSave(0),
        lambda s: _dom(s).undefineFlags(s.lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE),
        lambda s: s.conn.lookupByName("saver"),
        lambda s: s.conn.createXML(GUEST.format(uuid=UUID), 0).managedSave(0),  # transient
        lambda s: _dom(s).destroy(),
    ]
    _both(pair, steps)


def test_core_dump(pair: tuple[Side, Side]) -> None:
    steps: list[Step] = [
        lambda s: s.conn.defineXML(GUEST.format(uuid=UUID)).name(),
        lambda s: _dom(s).coreDump(str(s.directory / "core"), 0),  # not running
        lambda s: _dom(s).create(),
        lambda s: _dom(s).coreDump(str(s.directory / "core"), 0),
        lambda s: (s.directory / "core").read_bytes(),
        _state(),
        lambda s: _dom(s).coreDumpWithFormat(str(s.directory / "kdump"), 1, 0),
        lambda s: (s.directory / "kdump").exists(),
        lambda s: _dom(s).coreDump(str(s.directory / "core"), s.lv.VIR_DUMP_LIVE),
        lambda s: _dom(s).coreDump("/nonexistent-dir/core", 0),
        lambda s: _dom(s).coreDump(str(s.directory / "crash"), s.lv.VIR_DUMP_CRASH),
        _state(),
        lambda s: _dom(s).undefine(),
    ]
    _both(pair, steps)


def test_read_only_connection_is_refused(pair: tuple[Side, Side]) -> None:
    steps: list[Step] = [
        lambda s: s.ro.lookupByName("test").save(str(s.directory / "ro.img")),
        lambda s: s.ro.lookupByName("test").managedSave(0),
        lambda s: s.ro.lookupByName("test").managedSaveRemove(0),
        lambda s: s.ro.lookupByName("test").hasManagedSaveImage(0),
        lambda s: s.ro.lookupByName("test").coreDump(str(s.directory / "ro.core"), 0),
        lambda s: s.ro.restore(str(s.directory / "ro.img")),
        lambda s: s.ro.saveImageGetXMLDesc(str(s.directory / "ro.img"), 0),
        lambda s: s.ro.saveImageDefineXML(str(s.directory / "ro.img"), "<domain/>", 0),
        lambda s: (s.directory / "ro.img").exists(),
        lambda s: s.conn.lookupByName("test").state(),
    ]
    _both(pair, steps)
