"""Storage pools and volumes: the same calls through real libvirt-python against a real
libvirtd (test:///default) and against `virtwire serve`; results, XML, errors and
pool events must be the same.

Known differences that are not compared: the text of libxml2's parse errors (code
and domain are), and the procedures the test driver lacks (upload, download,
wipe, resize, GetInfoFlags: NO_SUPPORT there, served here; tests/server/
test_storage_streams.py covers them; LookupByTargetPath and GetStoragePoolCapabilities:
tests/server/test_diff_storage_driver.py compares them with libvirt's storage driver).
Lists are sorted: libvirt answers in its hash table's order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers

POOL = "<pool type='dir'><name>{name}</name><uuid>{uuid}</uuid><target><path>/{name}</path></target></pool>"
U1 = "11111111-2222-3333-4444-555555555551"
U2 = "11111111-2222-3333-4444-555555555552"
VOL = (
    "<volume><name>{name}</name><capacity unit='{unit}'>{cap}</capacity>"
    "<allocation>{alloc}</allocation></volume>"
)
RO_POOL = POOL.format(name="ro", uuid=U1)
RO_VOL = VOL.format(name="ro", unit="K", cap=1, alloc=0)
_DISK_SOURCE = "<source><device path='/dev/x'/></source>"
_DEV_TARGET = "<target><path>/dev</path></target>"
_NETFS_SOURCE = (
    "<source><host name='h' port='2049'/><dir path='/exp//a/'/>"
    "<format type='nfs'/><protocol ver='3'/></source>"
)
_NETFS_TARGET = (
    "<target><path>/mnt/x/</path><permissions><mode>0755</mode><owner>0</owner><group>10</group>"
    "<label>l&amp;b</label></permissions></target>"
)
_COW_NO = "<features><cow state='no'/></features>"
_REFRESH = "<refresh><volume allocation='capacity'/></refresh>"
_ISCSI_SOURCE = (
    "<source><host name='h'/><device path='iqn.x'/><initiator><iqn name='iqn.y'/></initiator></source>"
)
_SCSI_SOURCE = "<source><adapter type='scsi_host' name='host0'/></source>"
_GPT_SOURCE = "<source><device path='/dev/sdc' part_separator='no'/><format type='gpt'/></source>"


def _uuid(n: int) -> str:
    return f"11111111-2222-3333-4444-55555555555{n}"


def _adapter(attributes: str) -> str:
    return f"<source><adapter {attributes}/></source><target><path>/by-id</path></target>"


def _pool(kind: str, name: str, uuid: str, inner: str) -> str:
    return f"<pool type='{kind}'><name>{name}</name><uuid>{uuid}</uuid>{inner}</pool>"


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[tuple[str, str]]:
    """A private real libvirtd and a private virtwire server for this module (both change state)."""
    real = start_libvirtd(tmp_path_factory.mktemp("storage-libvirtd"), pki=pki, hold=True)
    try:
        ours = start_server(pki=None, tls=False, ro=True)
    except BaseException:
        stop_libvirtd(real)
        raise
    try:
        yield ours.tcp_uri, real.tcp_uri
    finally:
        stop_servers([ours])
        stop_libvirtd(real)


def _outcome(lv: ModuleType, call: Callable[[], Any]) -> object:
    try:
        value = call()
    except lv.libvirtError as exc:
        code, domain, message = exc.get_error_code(), exc.get_error_domain(), exc.get_error_message()
        if code == lv.VIR_ERR_XML_DETAIL:
            message = message.split(":", 1)[0]  # libxml2's wording is not ours
        return ("error", code, domain, message)
    if isinstance(value, list):
        return sorted(value)
    return value


def _sequence(lv: ModuleType, conn: Any) -> list[tuple[str, object]]:
    """Pools and volumes through their life, with bad input at every step."""
    out: list[tuple[str, object]] = []

    def step(label: str, call: Callable[[], Any]) -> None:
        out.append((label, _outcome(lv, call)))

    def names(items: list[Any]) -> list[str]:
        return sorted(item.name() for item in items)  # libvirt answers in hash order

    def define_and_dump(xml: str) -> str:
        xml_desc: str = conn.storagePoolDefineXML(xml, 0).XMLDesc(0)
        return xml_desc

    def undefine(name: str) -> None:
        conn.storagePoolLookupByName(name).undefine()

    step("list all", lambda: names(conn.listAllStoragePools(0)))
    step("num active", conn.numOfStoragePools)
    step("num defined", conn.numOfDefinedStoragePools)
    step("list", conn.listStoragePools)
    step("default xml", lambda: conn.storagePoolLookupByName("default-pool").XMLDesc(0))
    step("default info", lambda: conn.storagePoolLookupByName("default-pool").info())
    step("xml inactive flag", lambda: conn.storagePoolLookupByName("default-pool").XMLDesc(1))
    for label, xml in [
        ("malformed", "<pool"),
        ("wrong root", "<foo/>"),
        ("no type", "<pool><name>x</name></pool>"),
        ("unknown type", "<pool type='zz'><name>x</name></pool>"),
        ("no name", "<pool type='dir'><target><path>/x</path></target></pool>"),
        ("no target", "<pool type='dir'><name>x</name></pool>"),
        ("bad uuid", "<pool type='dir'><name>x</name><uuid>zz</uuid><target><path>/x</path></target></pool>"),
        ("slash", "<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>"),
        ("dup name", POOL.format(name="default-pool", uuid=U1)),
        ("dup uuid", POOL.format(name="p9", uuid="dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566")),
        ("dup target", _pool("dir", "p9", U2, "<target><path>/default-pool</path></target>")),
        ("fs no device", _pool("fs", "f", U2, "<target><path>/f</path></target>")),
        (
            "cow on disk",
            _pool("disk", "d", U2, _DISK_SOURCE + _DEV_TARGET + "<features><cow state='yes'/></features>"),
        ),
        (
            "bad format",
            _pool("netfs", "n", U2, "<source><host name='h'/><dir path='/e'/><format type='zz'/></source>"),
        ),
        ("scsi no adapter", _pool("scsi", "s1", U2, "<target><path>/s1</path></target>")),
        ("adapter type", _pool("scsi", "s1", U2, _adapter("type='zz'"))),
        ("fc_host no wwpn", _pool("scsi", "s1", U2, _adapter("type='fc_host' wwnn='1'"))),
        ("untyped wwnn", _pool("scsi", "s1", U2, _adapter("wwnn='1'"))),
        ("scsi_host no name", _pool("scsi", "s1", U2, _adapter("type='scsi_host'"))),
    ]:
        step(f"define {label}", partial(conn.storagePoolDefineXML, xml, 0))
    step("define bad flags", lambda: conn.storagePoolDefineXML(POOL.format(name="p1", uuid=U1), 8))
    for label, xml in [
        ("netfs", _pool("netfs", "nf", U2, _NETFS_SOURCE + _NETFS_TARGET)),
        ("logical", _pool("logical", "vg", _uuid(3), "<source><device path='/dev/sdb'/></source>")),
        ("rbd", _pool("rbd", "r", _uuid(4), "<source><name>rp</name><host name='mon'/></source>")),
        ("dir cow", _pool("dir", "dc", _uuid(5), _COW_NO + "<target><path>/dc</path></target>" + _REFRESH)),
        (
            "iscsi",
            _pool("iscsi", "is", _uuid(6), _ISCSI_SOURCE + "<target><path>/dev/disk/by-path</path></target>"),
        ),
        (
            "scsi",
            _pool("scsi", "sc", _uuid(7), _SCSI_SOURCE + "<target><path>/dev/disk/by-id</path></target>"),
        ),
        ("gluster", _pool("gluster", "gl", _uuid(8), "<source><host name='g'/><name>v</name></source>")),
        ("disk", _pool("disk", "dk", _uuid(9), _GPT_SOURCE + _DEV_TARGET)),
        ("legacy adapter", _pool("scsi", "la", _uuid(0), _adapter("name='host5'"))),
    ]:
        step(f"define {label}", partial(define_and_dump, xml))
    for name in ("nf", "vg", "r", "dc", "is", "sc", "gl", "dk", "la"):
        step(f"undefine {name}", partial(undefine, name))

    pool = conn.storagePoolDefineXML(POOL.format(name="p1", uuid=U1), 0)
    step("p1 xml", lambda: pool.XMLDesc(0))
    step("p1 state", lambda: (pool.isActive(), pool.isPersistent(), pool.autostart(), pool.info()))
    step("p1 defined list", conn.listDefinedStoragePools)
    step("p1 vols inactive", pool.numOfVolumes)
    step("p1 listall inactive", lambda: pool.listAllVolumes(0))
    step("p1 refresh inactive", lambda: pool.refresh(0))
    step("p1 destroy inactive", pool.destroy)
    step("p1 build", lambda: pool.build(0))
    step("p1 delete", lambda: pool.delete(0))
    step("p1 create", lambda: pool.create(0))
    step("p1 create again", lambda: pool.create(0))
    step("p1 build active", lambda: pool.build(0))
    step("p1 undefine active", pool.undefine)
    step("p1 refresh", lambda: pool.refresh(0))
    step("p1 autostart on", lambda: pool.setAutostart(1))
    step("p1 autostart", pool.autostart)
    flag_sets = (1, 2, 4, 8, 16, 32, 64, 128, 64 | 1)
    step("filters", lambda: {f: names(conn.listAllStoragePools(f)) for f in flag_sets})
    step("bad list flags", lambda: conn.listAllStoragePools(1 << 25))

    for label, xml in [
        ("malformed", "<volume"),
        ("no name", "<volume><capacity>1</capacity></volume>"),
        ("no capacity", "<volume><name>a</name></volume>"),
        ("bad capacity", "<volume><name>a</name><capacity>x</capacity></volume>"),
        ("bad unit", "<volume><name>a</name><capacity unit='Q'>1</capacity></volume>"),
        ("overflow", "<volume><name>a</name><capacity unit='E'>99</capacity></volume>"),
        (
            "bad format",
            "<volume><name>a</name><capacity>1</capacity><target><format type='zz'/></target></volume>",
        ),
        ("bad type", "<volume type='zz'><name>a</name><capacity>1</capacity></volume>"),
        ("too big", VOL.format(name="a", unit="T", cap=1000, alloc="1099511627776000")),
    ]:
        step(f"vol {label}", partial(pool.createXML, xml, 0))
    a = pool.createXML(VOL.format(name="a", unit="M", cap=10, alloc=4096), 0)
    step("vol a xml", lambda: a.XMLDesc(0))
    step("vol a info", a.info)
    step("vol a path key", lambda: (a.path(), a.key(), a.name()))
    step("vol dup", lambda: pool.createXML(VOL.format(name="a", unit="M", cap=1, alloc=0), 0))
    step(
        "vol features",
        lambda: pool.createXML(
            "<volume><name>q</name><capacity>1024</capacity>"
            "<target><format type='qcow2'/><compat>1.1</compat>"
            "<features><lazy_refcounts/></features><permissions><mode>0600</mode></permissions></target>"
            "<backingStore><path>/b</path><format type='raw'/></backingStore></volume>",
            0,
        ).XMLDesc(0),
    )
    clone_xml = VOL.format(name="b", unit="K", cap=64, alloc=1)
    step("clone", lambda: pool.createXMLFrom(clone_xml, a, 0).XMLDesc(0))
    step("clone dup", lambda: pool.createXMLFrom(clone_xml, a, 0))
    step("pool info with vols", pool.info)
    step("pool xml with vols", lambda: pool.XMLDesc(0))
    step("vol names", pool.listVolumes)
    step("vol count", pool.numOfVolumes)
    step("listAllVolumes", lambda: names(pool.listAllVolumes(0)))
    step("lookup by key", lambda: conn.storageVolLookupByKey("/p1/b").name())
    step("lookup by path", lambda: conn.storageVolLookupByPath("/p1/a").name())
    step("lookup by name missing", lambda: pool.storageVolLookupByName("zz"))
    step("lookup by key missing", lambda: conn.storageVolLookupByKey("/p1/zz"))
    step("lookup by path missing", lambda: conn.storageVolLookupByPath("zz"))
    step("pool by volume", lambda: a.storagePoolLookupByVolume().name())
    step("vol xml flags", lambda: a.XMLDesc(1))
    step("vol delete flags", lambda: a.delete(1))
    step("vol delete b", lambda: pool.storageVolLookupByName("b").delete(0))
    step("pool info after delete", pool.info)
    step("p1 destroy", pool.destroy)
    step("vol lookup in inactive pool", lambda: pool.storageVolLookupByName("a"))
    step("vol info in inactive pool", a.info)
    step("key lookup in inactive pool", lambda: conn.storageVolLookupByKey("/p1/a"))
    step("p1 create again", lambda: pool.create(0))
    step("vols kept", pool.listVolumes)
    step("redefine active", lambda: conn.storagePoolDefineXML(POOL.format(name="p1", uuid=U1), 0).XMLDesc(0))
    step("p1 destroy", pool.destroy)
    step("p1 undefine", pool.undefine)
    step("p1 gone", lambda: conn.storagePoolLookupByName("p1"))
    step("uuid gone", lambda: conn.storagePoolLookupByUUIDString(U1))

    step("create transient", lambda: conn.storagePoolCreateXML(POOL.format(name="t1", uuid=U2), 0).XMLDesc(0))
    t1 = conn.storagePoolLookupByName("t1")
    step("t1 state", lambda: (t1.isActive(), t1.isPersistent(), t1.autostart()))
    step("t1 set autostart", lambda: t1.setAutostart(1))
    step("t1 create again", lambda: conn.storagePoolCreateXML(POOL.format(name="t1", uuid=U2), 0))
    step("create bad flags", lambda: conn.storagePoolCreateXML(POOL.format(name="t2", uuid=U1), 1))
    step("t1 destroy", t1.destroy)
    step("t1 gone", lambda: conn.storagePoolLookupByName("t1"))

    step("find logical", lambda: conn.findStoragePoolSources("logical", None, 0))
    step("find netfs", lambda: conn.findStoragePoolSources("netfs", "<source><host name='nas'/></source>", 0))
    step("find netfs no host", lambda: conn.findStoragePoolSources("netfs", None, 0))
    step("find dir", lambda: conn.findStoragePoolSources("dir", None, 0))
    step("find unknown", lambda: conn.findStoragePoolSources("zz", None, 0))
    step("find unknown with source", lambda: conn.findStoragePoolSources("zz", "<source/>", 0))
    step("find flags", lambda: conn.findStoragePoolSources("logical", None, 1))
    step("final list", lambda: names(conn.listAllStoragePools(0)))
    return out


def _with_events(lv: ModuleType, uri: str) -> tuple[list[tuple[str, object]], list[tuple[object, ...]]]:
    lv.virEventRegisterDefaultImpl()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            lv.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = lv.open(uri)
    seen: list[tuple[object, ...]] = []
    marker = threading.Event()

    def lifecycle(_c: Any, pool: Any, event: int, detail: int, _o: Any) -> None:
        seen.append(("lifecycle", pool.name(), event, detail))
        if pool.name() == "marker" and event == lv.VIR_STORAGE_POOL_EVENT_UNDEFINED:
            marker.set()

    def refresh(_c: Any, pool: Any, _o: Any) -> None:
        seen.append(("refresh", pool.name()))

    try:
        ids = [
            conn.storagePoolEventRegisterAny(None, lv.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, lifecycle, None),
            conn.storagePoolEventRegisterAny(None, lv.VIR_STORAGE_POOL_EVENT_ID_REFRESH, refresh, None),
        ]
        results = _sequence(lv, conn)
        conn.storagePoolDefineXML(POOL.format(name="marker", uuid=U1), 0).undefine()
        assert marker.wait(30), seen
        for callback_id in ids:
            conn.storagePoolEventDeregisterAny(callback_id)
    finally:
        stop.set()
        conn.close()
    return results, seen


def test_pools_and_volumes_match_libvirtd(real_libvirt: ModuleType, daemons: tuple[str, str]) -> None:
    ours_uri, real_uri = daemons
    theirs, their_events = _with_events(real_libvirt, real_uri)
    mine, my_events = _with_events(real_libvirt, ours_uri)
    for (label, want), (_, got) in zip(theirs, mine, strict=True):
        assert got == want, label
    assert my_events == their_events
    assert ("refresh", "p1") in my_events


def test_read_only_connection_is_refused(real_libvirt: ModuleType, daemons: tuple[str, str]) -> None:
    ours_uri, real_uri = daemons
    answers = []
    for uri in (ours_uri, real_uri):
        conn = real_libvirt.openReadOnly(uri)
        try:
            pool = conn.storagePoolLookupByName("default-pool")
            calls: list[Callable[[], Any]] = [
                partial(conn.storagePoolDefineXML, RO_POOL, 0),
                partial(pool.createXML, RO_VOL, 0),
                pool.destroy,
                partial(pool.setAutostart, 1),
                partial(pool.XMLDesc, 0),
                pool.info,
            ]
            answers.append([_outcome(real_libvirt, call) for call in calls])
        finally:
            conn.close()
    assert answers[0] == answers[1]
