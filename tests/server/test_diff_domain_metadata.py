"""Metadata, lifecycle actions, renames and *WithFiles starts: virtwire vs a real libvirtd.

Results, XML (live and persistent), errors (all nine fields) and the lifecycle
and METADATA_CHANGE events, call for call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit.domaindiff import Side, side_pair

GUEST = (
    "<domain type='test'><name>meta</name><uuid>11111111-2222-3333-4444-555555555503</uuid>"
    "<memory>65536</memory><os><type>hvm</type></os></domain>"
)
NS = "http://example.org/app/"
Step = Callable[[Side], Any]
TITLE, DESCRIPTION, ELEMENT = 1, 0, 2
LIVE, CONFIG = 1, 2


@pytest.fixture(scope="module")
def pair(
    real_libvirt: ModuleType, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Side, Side]]:
    with side_pair(real_libvirt, pki, tmp_path_factory.mktemp("diff-metadata")) as sides:
        yield sides


def _both(pair: tuple[Side, Side], steps: list[Step]) -> tuple[list[Any], list[tuple[Any, ...]]]:
    ours, real = pair
    mine, theirs = ours.run(steps), real.run(steps)
    assert mine == theirs
    events = ours.settle()
    assert events == real.settle()
    return mine, events


def _meta(s: Side) -> Any:
    return s.conn.lookupByName("meta")


def _xml(flags: int = 0) -> Step:
    return lambda s: _meta(s).XMLDesc(flags).replace(f"id='{_meta(s).ID()}'", "id='N'")


def test_title_description_element_on_inactive_domain(pair: tuple[Side, Side]) -> None:
    mine, events = _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            lambda s: _meta(s).metadata(TITLE, None, 0),
            lambda s: _meta(s).setMetadata(TITLE, "A title", None, None, 0),
            lambda s: _meta(s).setMetadata(DESCRIPTION, "Some <text> & more", None, None, 0),
            lambda s: _meta(s).setMetadata(
                ELEMENT, "<info a='1'><item>x</item><empty/></info>", "app", NS, 0
            ),
            _xml(),
            lambda s: _meta(s).metadata(TITLE, None, 0),
            lambda s: _meta(s).metadata(DESCRIPTION, None, CONFIG),
            lambda s: _meta(s).metadata(ELEMENT, NS, 0),
            lambda s: _meta(s).metadata(ELEMENT, "http://other/", 0),
            lambda s: _meta(s).metadata(TITLE, None, LIVE),
            lambda s: _meta(s).setMetadata(ELEMENT, "<mixed>t<b>u</b> v</mixed>", "app", NS, 0),
            lambda s: _meta(s).metadata(ELEMENT, NS, 0),
            lambda s: _meta(s).setMetadata(ELEMENT, None, None, NS, 0),
            lambda s: _meta(s).metadata(ELEMENT, NS, 0),
            lambda s: _meta(s).setMetadata(TITLE, "", None, None, 0),
            lambda s: _meta(s).setMetadata(DESCRIPTION, None, None, None, 0),
            _xml(),
            lambda s: _meta(s).undefine(),
        ],
    )
    assert mine[8] == ("ok", '<info a="1">\n  <item>x</item>\n  <empty/>\n</info>')
    assert ("metadata", "meta", ELEMENT, NS) in events


def test_live_and_config_of_a_running_domain(pair: tuple[Side, Side]) -> None:
    _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            lambda s: _meta(s).create(),
            lambda s: _meta(s).setMetadata(TITLE, "live only", None, None, LIVE),
            lambda s: _meta(s).setMetadata(TITLE, "config only", None, None, CONFIG),
            lambda s: _meta(s).setMetadata(DESCRIPTION, "both", None, None, LIVE | CONFIG),
            lambda s: _meta(s).setMetadata(ELEMENT, "<x/>", "k", NS, 0),
            lambda s: _meta(s).metadata(TITLE, None, 0),
            lambda s: _meta(s).metadata(TITLE, None, CONFIG),
            lambda s: _meta(s).metadata(ELEMENT, NS, CONFIG),
            lambda s: _meta(s).metadata(TITLE, None, LIVE | CONFIG),
            _xml(),
            _xml(2),
            lambda s: _meta(s).destroy(),
            _xml(),
            lambda s: _meta(s).setMetadata(TITLE, "x", None, None, LIVE),
            lambda s: _meta(s).undefine(),
            lambda s: s.conn.createXML(GUEST, 0).name(),
            lambda s: _meta(s).setMetadata(TITLE, "x", None, None, CONFIG),
            lambda s: _meta(s).setMetadata(TITLE, "x", None, None, 0),
            _xml(),
            lambda s: _meta(s).destroy(),
        ],
    )


def test_bad_metadata_input(pair: tuple[Side, Side]) -> None:
    _mine, _ = _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            lambda s: _meta(s).setMetadata(7, "x", None, None, 0),
            lambda s: _meta(s).metadata(7, None, 0),
            lambda s: _meta(s).setMetadata(ELEMENT, "<a/>", "1bad", NS, 0),
            lambda s: _meta(s).setMetadata(TITLE, "x", None, None, 1 << 4),
            lambda s: _meta(s).metadata(TITLE, None, 1 << 4),
            lambda s: _meta(s).setMetadata(TITLE, "two\nlines", None, None, 0),
            lambda s: _meta(s).setMetadata(TITLE, "t", "key", None, 0),
            lambda s: _meta(s).setMetadata(TITLE, "t", None, NS, 0),
            lambda s: _meta(s).setMetadata(ELEMENT, "<a/>", None, NS, 0),
            lambda s: _meta(s).setMetadata(ELEMENT, "<a/>", "k", None, 0),
            lambda s: _meta(s).metadata(ELEMENT, None, 0),
            lambda s: _meta(s).metadata(TITLE, NS, 0),
            _xml(),
            lambda s: s.ro.lookupByName("meta").setMetadata(TITLE, "ro", None, None, 0),
            lambda s: s.ro.lookupByName("test").metadata(TITLE, None, 0),
            lambda s: _meta(s).undefine(),
        ],
    )
    malformed = pair[0].run([lambda s: s.conn.lookupByName("test").setMetadata(ELEMENT, "<a>", "k", NS, 0)])
    real = pair[1].run([lambda s: s.conn.lookupByName("test").setMetadata(ELEMENT, "<a>", "k", NS, 0)])
    # expat and libxml2 word a parse error differently; code, domain and the document name agree.
    assert malformed[0][1][:2] == real[0][1][:2] == (35, 20)
    assert malformed[0][1][2].startswith("(metadata_xml):1: ")
    assert real[0][1][2].startswith("(metadata_xml):1: ")


def test_lifecycle_actions(pair: tuple[Side, Side]) -> None:
    _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            lambda s: _meta(s).setLifecycleAction(0, 3, 0),
            lambda s: _meta(s).setLifecycleAction(1, 0, 0),
            lambda s: _meta(s).setLifecycleAction(2, 4, 0),
            _xml(),
            lambda s: _meta(s).create(),
            lambda s: _meta(s).setLifecycleAction(2, 5, LIVE),
            lambda s: _meta(s).setLifecycleAction(0, 1, CONFIG),
            _xml(),
            _xml(2),
            lambda s: _meta(s).reboot(0),  # on_reboot destroy: the domain stops
            lambda s: _meta(s).state(),
            lambda s: _meta(s).setLifecycleAction(0, 4, 0),
            lambda s: _meta(s).setLifecycleAction(1, 5, 0),
            lambda s: _meta(s).setLifecycleAction(3, 0, 0),
            lambda s: _meta(s).setLifecycleAction(0, 6, 0),
            lambda s: _meta(s).setLifecycleAction(0, 0, 1 << 4),
            lambda s: _meta(s).setLifecycleAction(0, 0, LIVE),
            lambda s: s.ro.lookupByName("meta").setLifecycleAction(0, 0, 0),
            _xml(),
            lambda s: _meta(s).undefine(),
        ],
    )


def test_rename(pair: tuple[Side, Side]) -> None:
    _mine, events = _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            lambda s: _meta(s).rename("renamed", 0),
            lambda s: s.conn.lookupByName("renamed").XMLDesc(0),
            lambda s: s.conn.lookupByName("meta"),
            lambda s: s.conn.lookupByName("renamed").rename("renamed", 0),
            lambda s: s.conn.lookupByName("renamed").rename("test", 0),
            lambda s: s.conn.lookupByName("renamed").rename("a/b", 0),
            lambda s: s.conn.lookupByName("renamed").rename("", 0),
            lambda s: s.conn.lookupByName("renamed").rename("x", 1),
            lambda s: s.conn.lookupByName("test").rename("x", 0),
            lambda s: s.ro.lookupByName("renamed").rename("x", 0),
            lambda s: s.conn.lookupByName("renamed").rename("meta", 0),
            lambda s: s.conn.createXML(GUEST.replace("meta", "temp").replace("503", "504"), 0).name(),
            lambda s: s.conn.lookupByName("temp").rename("x", 0),
            lambda s: s.conn.lookupByName("temp").destroy(),
            lambda s: sorted(d.name() for d in s.conn.listAllDomains(0)),
            lambda s: _meta(s).undefine(),
        ],
    )
    assert ("lifecycle", "meta", 1, 1) in events  # UNDEFINED_RENAMED under the old name
    assert ("lifecycle", "renamed", 0, 2) in events  # DEFINED_RENAMED under the new one


def test_create_with_files(pair: tuple[Side, Side]) -> None:
    _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            lambda s: _meta(s).createWithFiles([], 0),
            lambda s: _meta(s).state(),
            lambda s: _meta(s).createWithFiles([], 0),
            lambda s: _meta(s).destroy(),
            lambda s: _meta(s).createWithFiles([], 1),
            lambda s: _meta(s).undefine(),
            lambda s: s.conn.createXMLWithFiles(GUEST, [], 0).name(),
            lambda s: s.conn.createXMLWithFiles(GUEST, [], 0).name(),
            lambda s: _meta(s).destroy(),
            lambda s: s.conn.createXMLWithFiles("<domain/>", [], 0),
            lambda s: s.conn.createXMLWithFiles(GUEST, [], 1 << 6),
            lambda s: s.conn.createXMLWithFiles(GUEST, [], s.lv.VIR_DOMAIN_START_VALIDATE).name(),
            lambda s: _meta(s).destroy(),
            lambda s: s.ro.createXMLWithFiles(GUEST, [], 0),
        ],
    )
