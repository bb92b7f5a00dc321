"""Storage XML and volume bytes, without a server: path sanitising, size units,
every pool type printed back stably, and the sparse volume files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.server.driver.memory import storage_xml as X
from virtwire.server.driver.memory.volume_data import VolumeFiles, VolumeReader, VolumeWriter, extents

MIB = 1 << 20


@pytest.mark.parametrize(
    ("given", "sanitized"),
    [
        ("/foo///bar/", "/foo/bar"),
        ("//", "//"),
        ("//foo/", "//foo"),
        ("///foo", "/foo"),
        ("/", "/"),
        ("/../foo", "/../foo"),
        ("gluster://host//vol/", "gluster://host//vol/"),
    ],
)
def test_paths_are_sanitized_like_virFileSanitizePath(given: str, sanitized: str) -> None:
    assert X.sanitize_path(given) == sanitized


@pytest.mark.parametrize(
    ("text", "unit", "size"),
    [
        ("1", None, 1),
        ("2", "KiB", 2048),
        ("2", "KB", 2000),
        ("3", "m", 3 * MIB),
        ("1", "bytes", 1),
        ("+4", "b", 4),
    ],
)
def test_sizes_scale_like_virScaleInteger(text: str, unit: str | None, size: int) -> None:
    assert X.scale_size(text, unit) == size


def test_bad_sizes() -> None:
    with pytest.raises(libvirtError, match="unknown suffix 'Q'"):
        X.scale_size("1", "Q")
    with pytest.raises(libvirtError, match="value too large: 9E"):
        X.scale_size("9", "E")
    with pytest.raises(libvirtError, match="malformed capacity element"):
        X.scale_size("-1", None)


ISCSI = "<source><host name='h'/><device path='iqn.t'/><initiator><iqn name='iqn.i'/></initiator></source>"
SOURCES = {
    "dir": "",
    "fs": "<source><device path='/dev/a'/><format type='xfs'/></source>",
    "netfs": "<source><host name='h' port='1'/><dir path='/e'/><format type='cifs'/></source>",
    "logical": "<source><device path='/dev/b'/><name>vg</name></source>",
    "disk": "<source><device path='/dev/c' part_separator='yes'/><format type='dos'/></source>",
    "iscsi": ISCSI,
    "iscsi-direct": ISCSI,
    "scsi": "<source><adapter type='scsi_host' name='host3'/></source>",
    "mpath": "",
    "rbd": "<source><host name='m'/><name>p</name></source>",
    "sheepdog": "<source><host name='s' port='7000'/><name>p</name></source>",
    "gluster": "<source><host name='g'/><name>v</name><dir path='/sub'/></source>",
    "zfs": "<source><name>tank</name><device path='/dev/d'/></source>",
    "vstorage": "<source><name>cluster</name></source>",
}


@pytest.mark.parametrize("kind", sorted(X.POOL_KINDS))
def test_every_pool_type_prints_back_stably(kind: str) -> None:
    xml = (
        f"<pool type='{kind}'><name>p</name><uuid>01234567-89ab-cdef-0123-456789abcdef</uuid>"
        f"{SOURCES[kind]}<target><path>/t</path></target></pool>"
    )
    first = X.format_pool(X.parse_pool(xml), 1, 0, 1)
    assert X.format_pool(X.parse_pool(first), 1, 0, 1) == first
    assert first.startswith(f"<pool type='{kind}'>\n  <name>p</name>\n")


def test_volume_files_keep_holes(tmp_path: Path) -> None:
    files = VolumeFiles(tmp_path)
    fd = files.open("pool", "v", write=True)
    assert fd is not None
    writer = VolumeWriter(fd, 0, 8 * MIB, durable=True)
    writer.write(b"a" * MIB)
    writer.hole(3 * MIB)
    writer.write(b"b" * MIB)
    writer.finish()
    fd = files.open("pool", "v", write=False)
    assert fd is not None
    try:
        sections = extents(fd, 0, 8 * MIB)
    finally:
        os.close(fd)
    assert sections == [
        (True, 0, MIB),
        (False, MIB, 4 * MIB),
        (True, 4 * MIB, 5 * MIB),
        (False, 5 * MIB, 8 * MIB),
    ]
    reader = VolumeReader(files.open("pool", "v", write=False), MIB - 2, 8 * MIB)
    assert reader.section() == (True, 2)
    assert reader.read(2) == b"aa"
    assert reader.section() == (False, 3 * MIB)
    reader.close()
    files.clone("pool", "v", "copy", 8 * MIB)
    copy = files.open("pool", "copy", write=False)
    assert copy is not None
    try:
        assert extents(copy, 0, 8 * MIB) == sections
    finally:
        os.close(copy)
    assert VolumeReader(files.open("pool", "never", write=False), 0, 10).read(20) == bytes(10)
