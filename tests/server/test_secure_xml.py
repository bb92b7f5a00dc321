"""Secrets in descriptions: graphics passwords and HTTP cookies only with the SECURE flags.

libvirt prints a graphics ``passwd`` and a network disk's ``<cookies>`` only when
the caller asks for secure information (VIR_DOMAIN_XML_SECURE and the snapshot's
VIR_DOMAIN_SNAPSHOT_XML_SECURE), which a read-only connection may not.  Both ends
are driven through real libvirt-python: libvirt's own test:///default in process,
and `virtwire serve` over its unix socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from vwtestkit.server import VirtwireServer

DOMAIN = (
    "<domain type='test'><name>{name}</name><uuid>3c7e2b1a-5d4f-4e6a-9b8c-0d1e2f3a4b{n:02d}</uuid>"
    "<memory>65536</memory><os><type>hvm</type></os><devices>"
    "<disk type='network' device='cdrom'><source protocol='https' name='/images/boot.iso'>"
    "<host name='images.example' port='443'/><cookies><cookie name='session'>s3cr3t</cookie>"
    "<cookie name='lang'>en</cookie></cookies></source><target dev='hdc'/><readonly/></disk>"
    "<graphics type='vnc' passwd='vncpass' passwdValidTo='2031-05-06T07:08:09'/>"
    "<graphics type='spice' autoport='yes' passwd='sp&apos;ice'/>"
    "</devices></domain>"
)


@pytest.fixture(scope="module")
def sides(real_libvirt: ModuleType, virtwire_host: VirtwireServer) -> Iterator[dict[str, Any]]:
    lv = real_libvirt
    theirs = lv.open("test:///default")
    ours = lv.open(f"test+unix:///default?socket={virtwire_host.unix_path}")
    ours_ro = lv.openReadOnly(f"test+unix:///default?socket={virtwire_host.unix_ro_path}")
    try:
        yield {"theirs": theirs, "ours": ours, "ours_ro": ours_ro}
    finally:
        for conn in (theirs, ours, ours_ro):
            conn.close()


def _uuidless(xml: str) -> str:
    return re.sub(r"<uuid>[^<]*</uuid>", "<uuid/>", xml)


@pytest.mark.parametrize("flags", [0, 1, 2, 3], ids=["plain", "secure", "inactive", "secure-inactive"])
def test_domain_xml_hides_secrets_without_secure(
    real_libvirt: ModuleType, sides: dict[str, Any], flags: int
) -> None:
    lv = real_libvirt
    assert lv.VIR_DOMAIN_XML_SECURE == 1 and lv.VIR_DOMAIN_XML_INACTIVE == 2
    name = f"secret{flags}"
    xml = DOMAIN.format(name=name, n=flags)
    got = {}
    for side in ("theirs", "ours"):
        dom = sides[side].defineXML(xml)
        try:
            got[side] = dom.XMLDesc(flags)
        finally:
            dom.undefine()
    assert got["ours"] == got["theirs"]
    secret_shown = bool(flags & lv.VIR_DOMAIN_XML_SECURE)
    assert ("vncpass" in got["ours"]) is secret_shown
    assert ("s3cr3t" in got["ours"]) is secret_shown
    assert "passwdValidTo='2031-05-06T07:08:09'" in got["ours"]  # not a secret: always shown


def test_read_only_connection_may_not_ask_for_secrets(
    real_libvirt: ModuleType, sides: dict[str, Any]
) -> None:
    lv = real_libvirt
    dom = sides["ours"].defineXML(DOMAIN.format(name="secret-ro", n=9))
    try:
        ro_dom = sides["ours_ro"].lookupByName("secret-ro")
        assert "vncpass" not in ro_dom.XMLDesc(0)
        with pytest.raises(lv.libvirtError) as info:
            ro_dom.XMLDesc(lv.VIR_DOMAIN_XML_SECURE)
        assert info.value.get_error_code() == lv.VIR_ERR_OPERATION_DENIED
        assert info.value.get_error_message() == "operation forbidden: virDomainGetXMLDesc with secure flag"
    finally:
        dom.undefine()


def test_snapshot_xml_hides_the_domains_secrets(real_libvirt: ModuleType, sides: dict[str, Any]) -> None:
    lv = real_libvirt
    got: dict[str, tuple[str, str]] = {}
    for side in ("theirs", "ours"):
        dom = sides[side].defineXML(DOMAIN.format(name="secret-snap", n=10))
        try:
            snap = dom.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
            got[side] = (snap.getXMLDesc(0), snap.getXMLDesc(lv.VIR_DOMAIN_SNAPSHOT_XML_SECURE))
            snap.delete(0)
        finally:
            dom.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    plain, secure = got["ours"]
    assert "vncpass" not in plain and "s3cr3t" not in plain
    assert "vncpass" in secure and "s3cr3t" in secure
    # creation times differ between the two ends
    assert _timeless(plain) == _timeless(got["theirs"][0])
    assert _timeless(secure) == _timeless(got["theirs"][1])


def _timeless(xml: str) -> str:
    return re.sub(r"<creationTime>\d+</creationTime>", "", xml)
