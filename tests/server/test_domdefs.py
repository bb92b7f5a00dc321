"""Unit checks of the memory driver's definition helpers: bitmaps and section placement."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st
from virtwire.protocol.errors import libvirtError
from virtwire.server.driver.memory.domdefs import (
    bitmap_from_bytes,
    bitmap_to_bytes,
    format_bitmap,
    parse_bitmap,
    put_section,
)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("0", {0}),
        ("0-3", {0, 1, 2, 3}),
        ("0-3,^2", {0, 1, 3}),
        (" 1 , 5 - 7 ", {1, 5, 6, 7}),
        ("4095", {4095}),
        ("2,^2", set()),
    ],
)
def test_parse_bitmap_accepts_what_libvirt_accepts(text: str, bits: set[int]) -> None:
    assert parse_bitmap(text) == bits


@pytest.mark.parametrize("text", ["", "  ", "x", "3-x", "3-1", "^1-2", "1,,2", "4096", "0-4096", "-1"])
def test_parse_bitmap_refuses_what_libvirt_refuses(text: str) -> None:
    with pytest.raises(libvirtError) as info:
        parse_bitmap(text)
    assert info.value.err is not None
    assert info.value.err[:3] == (8, 0, f"invalid argument: Failed to parse bitmap '{text}'")


@given(st.sets(st.integers(min_value=0, max_value=200)))
def test_format_then_parse_gives_the_bits_back(bits: set[int]) -> None:
    text = format_bitmap(bits)
    assert (parse_bitmap(text) if text else set()) == bits
    assert "--" not in text and not text.startswith(",")


@given(st.binary(max_size=8))
def test_cpumap_bytes_round_trip(data: bytes) -> None:
    assert bitmap_to_bytes(bitmap_from_bytes(data), len(data)) == data


def test_format_bitmap_uses_ranges() -> None:
    assert format_bitmap({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_bitmap(set()) == ""


def test_put_section_places_tuning_where_libvirt_prints_it() -> None:
    tree = ET.fromstring(
        "<domain><name>a</name><memory>1</memory><currentMemory>1</currentMemory><vcpu>1</vcpu>"
        "<os/><clock/><on_crash/><devices/></domain>"
    )
    for tag in ("perf", "cputune", "memtune", "iothreads", "numatune", "blkiotune"):
        put_section(tree, tag, ET.Element(tag))
    assert [el.tag for el in tree] == [
        "name", "memory", "currentMemory", "blkiotune", "memtune", "vcpu", "iothreads", "cputune",
        "numatune", "os", "clock", "on_crash", "perf", "devices",
    ]  # fmt: skip
    put_section(tree, "memtune", None)
    assert tree.find("memtune") is None
