"""Domain checkpoints: the same calls through real libvirt-python against a real
libvirtd's test driver and against ``virtwire serve``; results, XML and errors
compared (creation times, and the names made of them, normalised; unordered
listings compared sorted).  Checkpoints emit no events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_libvirtd, start_server, stop_libvirtd, stop_servers

UUID = "3b2a1c0d-9e8f-4a7b-b6c5-d4e3f2a1b0c9"
CHKDOM_XML = f"""<domain type='test'>
  <name>chkdom</name>
  <uuid>{UUID}</uuid>
  <memory>1048576</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/virtwire/chk.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/virtwire/chk.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
  </devices>
</domain>"""
DISKLESS_XML = """<domain type='test'><name>diskless</name><uuid>4b2a1c0d-9e8f-4a7b-b6c5-d4e3f2a1b0c9</uuid>
<memory>65536</memory><os><type>hvm</type></os></domain>"""

BAD = [
    "<domaincheckpoint>",
    "<checkpoint/>",
    "<domaincheckpoint><bogus/></domaincheckpoint>",
    "<domaincheckpoint><disks/></domaincheckpoint>",
    "<domaincheckpoint><disks><disk/></disks></domaincheckpoint>",
    "<domaincheckpoint><disks><disk name='vda' checkpoint='maybe'/></disks></domaincheckpoint>",
    "<domaincheckpoint><disks><disk name='vdz'/></disks></domaincheckpoint>",
    "<domaincheckpoint><disks><disk name='vda'/><disk name='vda'/></disks></domaincheckpoint>",
    "<domaincheckpoint><disks><disk name='vdb'/></disks></domaincheckpoint>",
    "<domaincheckpoint><disks><disk name='vda'/><disk name='vdb' checkpoint='no'/>"
    "<disk name='vdc'/></disks></domaincheckpoint>",
    "<domaincheckpoint><name>c1</name></domaincheckpoint>",
]
REDEFINE = [
    "<domaincheckpoint><description>x</description></domaincheckpoint>",
    "<domaincheckpoint><name>r1</name></domaincheckpoint>",
    "<domaincheckpoint><name>r1</name><creationTime>5</creationTime><parent><name>r1</name></parent>"
    "</domaincheckpoint>",
    "<domaincheckpoint><name>r1</name><creationTime>5</creationTime><parent><name>ghost</name></parent>"
    "</domaincheckpoint>",
    "<domaincheckpoint><name>r1</name><creationTime>5</creationTime><parent><name>c2</name></parent>"
    "<disks><disk name='vda'/></disks></domaincheckpoint>",
    "<domaincheckpoint><name>c1</name><creationTime>7</creationTime><parent><name>r1</name></parent>"
    "</domaincheckpoint>",
    "<domaincheckpoint><name>r2</name><creationTime>9</creationTime>"
    "<domain type='test'><name>chkdom</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
    "<memory>1024</memory><os><type>hvm</type></os></domain></domaincheckpoint>",
]


def _scenario(lv: ModuleType, conn: Any) -> list[Any]:
    out: list[Any] = []

    def step(label: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            value = call(*args)
        except lv.libvirtError as exc:
            message = str(exc)
            if exc.get_error_code() in (lv.VIR_ERR_XML_DETAIL, lv.VIR_ERR_XML_INVALID_SCHEMA):
                message = message.split("\n")[0].split(": ")[0]  # libxml2's own words are not ours
            out.append([label, "error", exc.get_error_code(), exc.get_error_domain(), message])
            return None
        except AttributeError:
            out.append([label, "no-object"])
            return None
        out.append([label, "ok", _plain(value)])
        return value

    dom = conn.defineXML(CHKDOM_XML)
    step("inactive", lambda: dom.checkpointCreateXML("<domaincheckpoint/>", 0))
    dom.create()

    def names(flags: int = 0, start: Any = None) -> list[str]:
        found = start.listAllChildren(flags) if start is not None else dom.listAllCheckpoints(flags)
        return sorted(c.getName() for c in found)

    step("list-empty", names)
    step("lookup-missing", lambda: dom.checkpointLookupByName("c1", 0))
    c1 = step(
        "create-c1",
        lambda: dom.checkpointCreateXML("<domaincheckpoint><name>c1</name></domaincheckpoint>", 0),
    )
    step("c1-xml", lambda: c1.getXMLDesc(0))
    step("c1-no-parent", lambda: c1.getParent(0))
    c2 = step(
        "create-c2",
        lambda: dom.checkpointCreateXML(
            "<domaincheckpoint><name>c2</name><description>with &lt;disks&gt;</description>"
            "<disks><disk name='vda' bitmap='bm'/><disk name='vdb' checkpoint='no'/></disks>"
            "</domaincheckpoint>",
            0,
        ),
    )
    step("c2-xml", lambda: c2.getXMLDesc(0))
    step("c2-xml-no-domain", lambda: c2.getXMLDesc(2))
    step("c2-xml-size", lambda: c2.getXMLDesc(4 | 1))
    step("c2-xml-bad-flags", lambda: c2.getXMLDesc(8))
    step("c2-parent", lambda: c2.getParent(0).getName())
    stamped = step("create-unnamed", lambda: dom.checkpointCreateXML("<domaincheckpoint/>", 0))
    step("unnamed-xml", lambda: stamped.getXMLDesc(2))
    step(
        "create-by-path",
        lambda: dom.checkpointCreateXML(
            "<domaincheckpoint><name>c3</name><disks><disk name='/var/lib/virtwire/chk.img'/></disks>"
            "</domaincheckpoint>",
            0,
        ).getXMLDesc(2),
    )
    for index, xml in enumerate(BAD):
        step(f"bad-{index}", lambda xml: dom.checkpointCreateXML(xml, 0), xml)
    for flags in (1 | 2, 4, 8, 2):
        step(
            f"create-flags-{flags}",
            lambda flags: dom.checkpointCreateXML(
                "<domaincheckpoint><name>f</name></domaincheckpoint>", flags
            ),
            flags,
        )
    step("quiesce-name", lambda: dom.checkpointLookupByName("f", 0).getName())
    for flags in (0, 1, 2, 4, 8, 4 | 8, 1 | 4, 16):
        step(f"list-{flags}", lambda flags: names(flags), flags)
        step(f"children-{flags}", lambda flags: names(flags, c1), flags)
    step("topological-first", lambda: next(c.getName() for c in dom.listAllCheckpoints(2)))
    for index, xml in enumerate(REDEFINE):
        xml = xml.replace("{uuid}", UUID)
        step(f"redefine-{index}", lambda xml: dom.checkpointCreateXML(xml, 1).getXMLDesc(2), xml)
    full = c2.getXMLDesc(0).replace("<name>c2</name>", "<name>imported</name>", 1)
    step("redefine-full", lambda: dom.checkpointCreateXML(full, 1).getXMLDesc(0))
    step(
        "tree",
        lambda: {
            n: [
                dom.checkpointLookupByName(n, 0).listAllChildren(0).__len__(),
                _parent(dom.checkpointLookupByName(n, 0)),
            ]
            for n in names()
        },
    )
    # Snapshots and checkpoints exclude each other.
    step("snapshot-with-checkpoint", lambda: dom.snapshotCreateXML("<domainsnapshot/>", 0))
    test = conn.lookupByName("test")
    step(
        "test-snapshot",
        lambda: test.snapshotCreateXML("<domainsnapshot><name>s</name></domainsnapshot>", 0).getName(),
    )
    step("checkpoint-with-snapshot", lambda: test.checkpointCreateXML("<domaincheckpoint/>", 0))
    diskless = conn.createXML(DISKLESS_XML, 0)
    step("diskless", lambda: diskless.checkpointCreateXML("<domaincheckpoint/>", 0))
    # Delete.
    step("delete-both-flags", lambda: c1.delete(1 | 4))
    step("delete-bad-flags", lambda: c1.delete(8))
    step("delete-c2", lambda: c2.delete(0))
    step("tree-after-c2", lambda: {n: _parent(dom.checkpointLookupByName(n, 0)) for n in names()})
    step("c2-gone", lambda: c2.getXMLDesc(0))
    step("delete-metadata-only", lambda: dom.checkpointLookupByName("f", 0).delete(2))
    step("delete-children-only", lambda: c1.delete(4))
    step("after-children-only", names)
    step("delete-children", lambda: c1.delete(1))
    step("after-children", names)
    dom.destroy()
    step(
        "size-inactive",
        lambda: dom.listAllCheckpoints(0)[0].getXMLDesc(4) if dom.listAllCheckpoints(0) else None,
    )
    step("undefine-with-checkpoints", lambda: dom.undefine())
    return out


def _parent(chk: Any) -> str | None:
    try:
        return str(chk.getParent(0).getName())
    except Exception:
        return None


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str, float)):
        return re.sub(r"\b1\d{9}\b", "TIME", value) if isinstance(value, str) else value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {re.sub(r"\b1\d{9}\b", "TIME", k): _plain(v) for k, v in value.items()}
    if hasattr(value, "getName"):
        return "<object>"
    return type(value).__name__


@pytest.fixture(scope="module")
def real_daemon(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[RealLibvirtd]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("checkpoint-libvirtd"), pki=pki, hold=True)
    try:
        yield daemon
    finally:
        stop_libvirtd(daemon)


@pytest.fixture(scope="module")
def our_server(pki: Path) -> Iterator[VirtwireServer]:
    server = start_server(pki=pki)
    try:
        yield server
    finally:
        stop_servers([server])


def test_every_step_matches_the_test_driver(
    real_libvirt: ModuleType, real_daemon: RealLibvirtd, our_server: VirtwireServer
) -> None:
    results = []
    for uri in (real_daemon.tcp_uri, our_server.tcp_uri):
        conn = real_libvirt.open(uri)
        try:
            results.append(_scenario(real_libvirt, conn))
        finally:
            conn.close()
    real, ours = results
    assert [s[0] for s in ours] == [s[0] for s in real]
    for mine, theirs in zip(ours, real, strict=True):
        assert mine == theirs, mine[0]
