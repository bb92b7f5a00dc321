"""Domain snapshots: the same calls through real libvirt-python against a real
libvirtd's test driver and against ``virtwire serve``; results, XML, errors and
domain lifecycle events compared.

Each side runs in a subprocess (this file run as a script) with libvirt's
default event loop, which must not be registered in the pytest process.  Only
what libvirt makes non-deterministic is normalised: creation times (and the
names made from them), and the order of unordered listings (libvirt walks a
hash table), which are compared sorted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import run_scenario_script

DOM_UUID = "9a3f6f2e-6d51-4b8e-a3a4-2f0c5b7d9e10"
SNAPDOM_XML = f"""<domain type='test'>
  <name>snapdom</name>
  <uuid>{DOM_UUID}</uuid>
  <memory>1048576</memory>
  <vcpu>2</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/virtwire/snapdom.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/virtwire/base.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
  </devices>
</domain>"""
TRANSIENT_XML = """<domain type='test'><name>passing</name>
  <uuid>1c7a2f0e-4b3d-4e5f-8a9b-0c1d2e3f4a5b</uuid><memory>65536</memory><os><type>hvm</type></os></domain>"""

BAD_SNAPSHOTS = [
    "<domainsnapshot>",
    "<snapshot/>",
    "<domainsnapshot><memory snapshot='sideways'/></domainsnapshot>",
    "<domainsnapshot><memory snapshot='default'/></domainsnapshot>",
    "<domainsnapshot><memory snapshot='manual'/></domainsnapshot>",
    "<domainsnapshot><memory snapshot='internal' file='/m.img'/></domainsnapshot>",
    "<domainsnapshot><memory snapshot='external'/></domainsnapshot>",
    "<domainsnapshot><memory file='relative.img'/></domainsnapshot>",
    "<domainsnapshot><disks><disk/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vdz'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda' snapshot='bogus'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda' type='dir'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda'><driver type='wat'/></disk></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda'><source file='rel.qcow2'/></disk></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda' snapshot='manual'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda' snapshot='external'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda' snapshot='no'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda'/><disk name='vda'/></disks></domainsnapshot>",
    "<domainsnapshot><disks><disk name='vda'/><disk name='vdb'/></disks></domainsnapshot>",
    "<domainsnapshot><name>s1</name></domainsnapshot>",
]
# Each is redefined on domain "test" (REDEFINE); {uuid} is test's UUID.
REDEFINITIONS = [
    "<domainsnapshot><description>no name</description></domainsnapshot>",
    "<domainsnapshot><name>r</name><state>running</state></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime><state>flying</state></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime><state>nostate</state></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime><state>shutoff</state>"
    "<memory snapshot='internal'/></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime><state>running</state>"
    "<parent><name>r</name></parent></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime><state>running</state>"
    "<parent><name>ghost</name></parent></domainsnapshot>",
    "<domainsnapshot><name>r</name><creationTime>12</creationTime><state>running</state></domainsnapshot>",
    "<domainsnapshot><name>s1</name><creationTime>12</creationTime><state>running</state>"
    "<parent><name>s3</name></parent><domain><uuid>{uuid}</uuid></domain></domainsnapshot>",
    "<domainsnapshot><name>s1</name><creationTime>12</creationTime><state>shutoff</state>"
    "<domain><uuid>{uuid}</uuid></domain></domainsnapshot>",
    "<domainsnapshot><name>s1</name><creationTime>12</creationTime><state>disk-snapshot</state>"
    "<domain><uuid>{uuid}</uuid></domain></domainsnapshot>",
    "<domainsnapshot><name>other-uuid</name><creationTime>12</creationTime><state>running</state>"
    "<domain type='test'><name>test</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
    "<memory>1024</memory><os><type>hvm</type></os></domain></domainsnapshot>",
]

LIST_FLAGS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 4 | 8, 2 | 16, 1 | 4, 32 | 64, 256 | 512, 1024, 1025]


def _scenario(libvirt: ModuleType, conn: Any) -> list[Any]:
    out: list[Any] = []
    lv = libvirt

    def step(label: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            value = call(*args)
        except lv.libvirtError as exc:
            out.append([label, "error", exc.get_error_code(), exc.get_error_domain(), str(exc)])
            return None
        except AttributeError:  # an earlier step failed to make the object
            out.append([label, "no-object"])
            return None
        out.append([label, "ok", _plain(value)])
        return value

    test = conn.lookupByName("test")
    snapdom = conn.defineXML(SNAPDOM_XML)

    def names(dom: Any, flags: int = 0) -> list[str]:
        return sorted(s.getName() for s in dom.listAllSnapshots(flags))

    step("num-empty", lambda: test.snapshotNum(0))
    step("has-current-empty", lambda: test.hasCurrentSnapshot(0))
    step("current-none", lambda: test.snapshotCurrent(0))
    step("lookup-none", lambda: test.snapshotLookupByName("s1", 0))
    s1 = step(
        "create-s1",
        lambda: test.snapshotCreateXML(
            "<domainsnapshot><name>s1</name>"
            "<description>first &amp; &lt;one&gt;</description></domainsnapshot>",
            0,
        ),
    )
    step("s1-xml", lambda: s1.getXMLDesc(0))
    step("s1-xml-secure", lambda: s1.getXMLDesc(1))
    step("s1-xml-bad-flags", lambda: s1.getXMLDesc(2))
    stamped = step("create-unnamed", lambda: test.snapshotCreateXML("<domainsnapshot/>", 0))
    step(
        "unnamed-is-time",
        lambda: (
            stamped.getName() == re.findall(r"<creationTime>(\d+)</creationTime>", stamped.getXMLDesc(0))[0]
        ),
    )
    step("unnamed-parent", lambda: stamped.getParent(0).getName())
    step("suspend", lambda: test.suspend())
    s3 = step(
        "create-s3-paused",
        lambda: test.snapshotCreateXML(
            "<domainsnapshot><name>s3</name><memory snapshot='internal'/>"
            "<disks><disk name='vda' snapshot='internal'/></disks></domainsnapshot>",
            0,
        ),
    )
    step("s3-xml", lambda: s3.getXMLDesc(0))
    step("resume", lambda: test.resume())
    step("s3-current", lambda: [s3.isCurrent(0), s1.isCurrent(0), test.snapshotCurrent(0).getName()])
    step("s1-no-parent", lambda: s1.getParent(0))
    step("has-metadata", lambda: s3.hasMetadata(0))
    for index, xml in enumerate(BAD_SNAPSHOTS):
        step(f"bad-{index}", lambda xml: snapdom.snapshotCreateXML(xml, 0), xml)
    for flags in (4, 16, 32, 1 << 10, 2, 1 | 8, 1 | 4):
        step(f"create-flags-{flags}", lambda flags: test.snapshotCreateXML("<domainsnapshot/>", flags), flags)
    step(
        "create-quiesce-atomic-live",
        lambda: test.snapshotCreateXML(
            "<domainsnapshot><name>q</name></domainsnapshot>", 64 | 128 | 256
        ).getName(),
    )
    for flags in LIST_FLAGS:
        step(f"num-{flags}", lambda flags: test.snapshotNum(flags), flags)
        step(f"list-all-{flags}", lambda flags: names(test, flags), flags)
        step(f"list-names-{flags}", lambda flags: sorted(test.snapshotListNames(flags)), flags)
    step(
        "topological",
        lambda: [s.getName() for s in test.listAllSnapshots(1024)] == names(test, 0) or _topological_ok(test),
    )
    for flags in (0, 1, 4, 8, 1024, 1025, 2):
        step(f"children-{flags}", lambda flags: sorted(s.getName() for s in s1.listAllChildren(flags)), flags)
        step(f"num-children-{flags}", lambda flags: s1.numChildren(flags), flags)
        step(f"children-names-{flags}", lambda flags: sorted(s1.listChildrenNames(flags)), flags)
    step("children-bad-flags", lambda: s1.numChildren(1 << 11))
    step("list-bad-flags", lambda: test.snapshotNum(1 << 11))
    # Redefinitions.
    for index, xml in enumerate(REDEFINITIONS):
        xml = xml.replace("{uuid}", test.UUIDString())
        step(f"redefine-{index}", lambda xml: test.snapshotCreateXML(xml, 1).getName(), xml)
    step("r-xml", lambda: test.snapshotLookupByName("r", 0).getXMLDesc(0))
    step("s1-redefined-xml", lambda: s1.getXMLDesc(0))
    step("current-after-redefine", lambda: test.snapshotCurrent(0).getName())
    full = s1.getXMLDesc(0).replace("<name>s1</name>", "<name>imported</name>", 1)
    step("redefine-current", lambda: test.snapshotCreateXML(full, 1 | 2).getName())
    step("imported-xml", lambda: test.snapshotLookupByName("imported", 0).getXMLDesc(0))
    step("current-imported", lambda: test.snapshotCurrent(0).getName())
    cycle = s1.getXMLDesc(0).replace("<parent>\n    <name>s3</name>", "<parent>\n    <name>imported</name>")
    step(
        "redefine-cycle",
        lambda: test.snapshotCreateXML(cycle.replace("<name>s1</name>", "<name>s3</name>", 1), 1),
    )
    step("tree", lambda: {n: (test.snapshotLookupByName(n, 0).numChildren(0)) for n in names(test)})
    # Revert.
    for flags in (1 | 2, 8):
        step(f"revert-flags-{flags}", lambda flags: test.revertToSnapshot(s3, flags), flags)
    step("revert-s3", lambda: test.revertToSnapshot(s3, 0))
    step("state-after-s3", lambda: [test.state(0), test.ID() > 0, test.snapshotCurrent(0).getName()])
    step("revert-s1", lambda: test.revertToSnapshot(s1, 0))
    step("state-after-s1", lambda: test.state(0))
    step("revert-s1-paused", lambda: test.revertToSnapshot(s1, 2))
    step("state-after-s1-paused", lambda: test.state(0))
    step("revert-s3-running", lambda: test.revertToSnapshot(s3, 1 | 4))
    step("state-after-s3-running", lambda: test.state(0))
    step("r-revert-risky", lambda: test.revertToSnapshot(test.snapshotLookupByName("r", 0), 0))
    off = step(
        "snapdom-off",
        lambda: snapdom.snapshotCreateXML("<domainsnapshot><name>off</name></domainsnapshot>", 0),
    )
    step("off-xml", lambda: off.getXMLDesc(0))
    step("snapdom-start", lambda: snapdom.create())
    on = step(
        "snapdom-on",
        lambda: snapdom.snapshotCreateXML(
            "<domainsnapshot><name>on</name><disks><disk name='vdb' snapshot='no'/></disks></domainsnapshot>",
            0,
        ),
    )
    step("on-xml", lambda: on.getXMLDesc(0))
    step("revert-off", lambda: snapdom.revertToSnapshot(off, 0))
    step("snapdom-after-off", lambda: [snapdom.state(0), snapdom.isActive()])
    step("revert-off-running", lambda: snapdom.revertToSnapshot(off, 1))
    step("snapdom-after-off-running", lambda: [snapdom.state(0), snapdom.isActive()])
    step("revert-off-paused", lambda: snapdom.revertToSnapshot(off, 2))
    step("revert-on", lambda: snapdom.revertToSnapshot(on, 0))
    step("snapdom-after-on", lambda: [snapdom.state(0), snapdom.isActive()])
    step(
        "halt",
        lambda: snapdom.snapshotCreateXML(
            "<domainsnapshot><name>halted</name></domainsnapshot>", 8
        ).getName(),
    )
    step("snapdom-after-halt", lambda: [snapdom.state(0), snapdom.isActive()])
    step("halted-xml", lambda: snapdom.snapshotLookupByName("halted", 0).getXMLDesc(0))
    # Delete.
    step("delete-flags-both", lambda: s1.delete(1 | 4))
    step("delete-metadata-only", lambda: s1.delete(2))
    step("delete-s3", lambda: s3.delete(0))
    step(
        "tree-after-s3",
        lambda: {
            n: [test.snapshotLookupByName(n, 0).numChildren(0), _parent(test.snapshotLookupByName(n, 0))]
            for n in names(test)
        },
    )
    step("s3-gone", lambda: s3.getXMLDesc(0))
    step("current-after-delete", lambda: [test.hasCurrentSnapshot(0), _name(test, lv)])
    step("delete-children-only", lambda: s1.delete(4))
    step("after-children-only", lambda: [names(test), _name(test, lv)])
    step("delete-children", lambda: s1.delete(1))
    step("after-children", lambda: [names(test), test.hasCurrentSnapshot(0)])
    # Undefine refuses an inactive domain with snapshots.
    step("snapdom-undefine", lambda: snapdom.undefine())
    step("snapdom-undefine-flags", lambda: snapdom.undefineFlags(0))
    step("snapdom-still", lambda: snapdom.snapshotNum(0))
    step("snapdom-undefine-meta", lambda: snapdom.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA))
    step("snapdom-gone", lambda: [d.name() for d in conn.listAllDomains(0)])
    # A transient domain cannot halt; it may revert only by running/pausing.
    passing = conn.createXML(TRANSIENT_XML, 0)
    step("transient-halt", lambda: passing.snapshotCreateXML("<domainsnapshot/>", 8))
    step(
        "transient-snap",
        lambda: passing.snapshotCreateXML("<domainsnapshot><name>t</name></domainsnapshot>", 0).getName(),
    )
    step("transient-destroy", lambda: passing.destroy())
    step("test-snapshots-left", lambda: names(test))
    return out


def _parent(snap: Any) -> str | None:
    try:
        return str(snap.getParent(0).getName())
    except Exception:
        return None


def _name(dom: Any, lv: Any) -> str | None:
    try:
        return str(dom.snapshotCurrent(0).getName())
    except lv.libvirtError:
        return None


def _topological_ok(dom: Any) -> bool:
    seen: set[str] = set()
    for snap in dom.listAllSnapshots(1024):
        parent = _parent(snap)
        if parent is not None and parent not in seen:
            return False
        seen.add(snap.getName())
    return True


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "getName"):
        return f"<snapshot {value.getName()}>"
    return type(value).__name__


def _normalised(text: str) -> str:
    # Creation times (and the names libvirt makes of them) are the clock's.
    return re.sub(r"\b1\d{9}\b", "TIME", text)


def _run(uri: str) -> None:
    import libvirt

    libvirt.virEventRegisterDefaultImpl()

    def loop() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = libvirt.open(uri)
    events: list[Any] = []
    done = threading.Event()

    def lifecycle(_c: Any, dom: Any, event: int, detail: int, _o: Any) -> None:
        if dom.name() == "end-marker":
            done.set()
            return
        events.append([dom.name(), event, detail])

    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
    result = _scenario(libvirt, conn)
    conn.createXML(TRANSIENT_XML.replace("passing", "end-marker").replace("1c7a", "2c7a"), 0).destroy()
    if not done.wait(30):
        raise SystemExit("events never arrived")
    result.append(["events", events])
    print(_normalised(json.dumps(result)))
    sys.stdout.flush()
    os._exit(0)


def run_scenario(uri: str) -> list[Any]:
    return run_scenario_script(__file__, uri)


@pytest.fixture(scope="module")
def real_daemon(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[RealLibvirtd]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("snapshot-libvirtd"), pki=pki, hold=True)
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


@pytest.fixture(scope="module")
def both_sides(
    real_libvirt: ModuleType, real_daemon: RealLibvirtd, our_server: VirtwireServer
) -> tuple[list[Any], list[Any]]:
    return run_scenario(real_daemon.tcp_uri), run_scenario(our_server.tcp_uri)


def _syntax_free(step: list[Any]) -> list[Any]:
    # libxml2 and expat word a syntax error differently; code, domain and the
    # "(domain_snapshot):LINE:" prefix are what we match.
    if len(step) == 5 and step[1] == "error" and step[2] == 35:
        return [*step[:4], step[4].split(": ", 1)[0]]
    return step


def test_every_step_matches_the_test_driver(both_sides: tuple[list[Any], list[Any]]) -> None:
    real, ours = both_sides
    assert [s[0] for s in ours] == [s[0] for s in real]
    for mine, theirs in zip(ours[:-1], real[:-1], strict=True):
        assert _syntax_free(mine) == _syntax_free(theirs), mine[0]


def test_lifecycle_events_match_the_test_driver(both_sides: tuple[list[Any], list[Any]]) -> None:
    real, ours = both_sides
    assert ours[-1] == real[-1]
    # Reverting to a running snapshot from a running domain: stopped, then started, from the snapshot.
    assert ["test", 5, 6] in ours[-1][1] and ["test", 2, 3] in ours[-1][1]


if __name__ == "__main__":
    _run(sys.argv[1])
