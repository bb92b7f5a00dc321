"""Differential: the same read-only calls through the real libvirt-python and
through virtwire.libvirt on one real libvirtd (test driver) give the same
result, types included, or the same error (all nine fields).

The calls are generated: every method of the surface's classes that takes no
argument besides optional flags and whose procedure only reads (its name says
GET, LIST, NUM_OF, IS_, LOOKUP, ...), on one object of each class the test
driver has."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from virtwire.client.surface import generated
from virtwire.client.surface.generated import BINDINGS
from virtwire.protocol.generated import remote

import virtwire.libvirt as ours

_READS = ("_GET_", "_LIST_", "_NUM_OF_", "_IS_", "GET_", "LIST_", "NUM_OF_", "_NUM", "_HAS_", "_CURRENT")
_APIS = {p.api: p for p in remote.PROCEDURES.values() if p.api}

# The objects of test:///default to call methods on, per class.
_OBJECTS: dict[str, Callable[[Any], Any]] = {
    "virConnect": lambda conn: conn,
    "virDomain": lambda conn: conn.lookupByName("test"),
    "virNetwork": lambda conn: conn.networkLookupByName("default"),
    "virStoragePool": lambda conn: conn.storagePoolLookupByName("default-pool"),
    "virInterface": lambda conn: conn.interfaceLookupByName("eth1"),
    "virNodeDevice": lambda conn: conn.nodeDeviceLookupByName("computer"),
}


def _calls() -> list[tuple[str, str]]:
    out = []
    for cname, (klass, method) in sorted(BINDINGS.items()):
        proc = _APIS.get(cname)
        if (
            klass not in _OBJECTS
            or proc is None
            or (not proc.name.startswith(_READS, 0) and not any(r in proc.name for r in _READS))
        ):
            continue
        fn = getattr(getattr(ours, klass), method, None)
        if fn is None:
            continue
        params = list(inspect.signature(fn).parameters.values())[1:]
        if all(p.default is not inspect.Parameter.empty for p in params):
            out.append((klass, method))
    return out


CALLS = _calls()


# Results that move between two calls (CPU time): compared with every int as 0.
VOLATILE = {("virDomain", "info"), ("virDomain", "vcpus")}


def _steady(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "int":
        return ("int", 0)
    if isinstance(value, list | tuple):
        return type(value)(_steady(v) for v in value)
    return value


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        value = fn()
    except Exception as exc:  # libvirtError of either module, or a Python error
        err = getattr(exc, "err", None)
        return ("error", (type(exc).__name__ if err is None else "libvirtError", err))
    return ("value", _plain(value))


def _plain(value: Any) -> Any:
    """Objects by class name and identity; containers kept with their types."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    kind = type(value).__name__
    if kind.startswith("vir"):
        ident = value.UUIDString() if hasattr(value, "UUIDString") else value.name()
        return (kind, ident)
    return (type(value).__name__, value)


@pytest.fixture(scope="module", params=["libvirtd", "virtwire"])
def both(request: pytest.FixtureRequest, real_libvirt: ModuleType) -> Any:
    # The same daemon for both clients: a real libvirtd, or `virtwire serve`.
    server = request.getfixturevalue("real_libvirtd" if request.param == "libvirtd" else "virtwire_host")
    theirs = real_libvirt.openReadOnly(server.unix_ro_uri)
    mine = ours.openReadOnly(server.unix_ro_uri)
    yield theirs, mine
    mine.close()
    theirs.close()


def test_the_generated_call_list_is_broad() -> None:
    assert len(CALLS) > 60
    assert {klass for klass, _ in CALLS} == set(_OBJECTS)


@pytest.mark.parametrize(("klass", "method"), CALLS, ids=[f"{k}.{m}" for k, m in CALLS])
def test_same_result_or_error(both: Any, klass: str, method: str) -> None:
    theirs, mine = both
    expected = _outcome(lambda: getattr(_OBJECTS[klass](theirs), method)())
    got = _outcome(lambda: getattr(_OBJECTS[klass](mine), method)())
    if (klass, method) in VOLATILE:
        expected, got = _steady(expected), _steady(got)
    assert got == expected


def test_generated_classes_cover_the_object_classes() -> None:
    for klass in _OBJECTS:
        assert issubclass(getattr(ours, klass), getattr(generated, f"{klass}Generated"))


# -- mutating calls: one scripted sequence per family, on a fresh daemon each ----------

DOM_XML = """<domain type='test'><name>vw-diff</name><uuid>5e2b07c4-1d3f-4a8e-9b61-0c7d2f4a9e35</uuid>
<memory>131072</memory><currentMemory>131072</currentMemory><vcpu>2</vcpu>
<os><type>hvm</type></os></domain>"""
NET_XML = """<network><name>vw-net</name><uuid>7a3ef2f0-9b1c-4a55-8a01-5b0d1a9f5e11</uuid>
<bridge name='vwbr0'/><ip address='192.168.150.1' netmask='255.255.255.0'/></network>"""
POOL_XML = """<pool type='dir'><name>vw-pool</name><uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53b1</uuid>
<target><path>/vw-pool</path></target></pool>"""
VOL_XML = "<volume><name>vw-vol.img</name><capacity unit='M'>8</capacity></volume>"
SECRET_XML = """<secret ephemeral='no' private='no'><uuid>0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f</uuid>
<usage type='volume'><volume>/vw/vol</volume></usage></secret>"""
IFACE_XML = """<interface type='ethernet' name='vwif0'><start mode='onboot'/>
<mac address='aa:bb:cc:dd:ee:ff'/><protocol family='ipv4'><dhcp/></protocol></interface>"""
SNAP_XML = "<domainsnapshot><name>vw-snap</name><description>d</description></domainsnapshot>"


def _domain_family(conn: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def step(name: str, fn: Callable[[], Any]) -> None:
        out.append((name, _outcome(fn)))

    dom = conn.defineXML(DOM_XML)
    step("isActive", dom.isActive)
    step("create", dom.create)
    step("ID>0", lambda: dom.ID() > 0)
    step("suspend", dom.suspend)
    step("state", dom.state)
    step("resume", dom.resume)
    step("setMemory", lambda: dom.setMemory(65536))
    step("info", lambda: dom.info()[:3])
    step("setAutostart", lambda: dom.setAutostart(1))
    step("autostart", dom.autostart)
    step("setMetadata", lambda: dom.setMetadata(0, "a description", None, None))
    step("metadata", lambda: dom.metadata(0, None))
    step("memoryParameters", dom.memoryParameters)
    step("setMemoryParameters", lambda: dom.setMemoryParameters({"hard_limit": 1048576}))
    step("setSchedulerParameters", lambda: dom.setSchedulerParameters({"weight": 60}))
    step("schedulerParameters", dom.schedulerParameters)
    step("snapshotCreateXML", lambda: dom.snapshotCreateXML(SNAP_XML).getName())
    step("snapshotNum", dom.snapshotNum)
    step("snapshotListNames", dom.snapshotListNames)
    step("listAllSnapshots", lambda: [s.getName() for s in dom.listAllSnapshots()])
    step("hasCurrentSnapshot", dom.hasCurrentSnapshot)
    step("snapshotCurrent", lambda: dom.snapshotCurrent().getName())
    step("snapshot.isCurrent", lambda: dom.snapshotLookupByName("vw-snap").isCurrent())
    step("snapshot.listAllChildren", lambda: dom.snapshotLookupByName("vw-snap").listAllChildren())
    step("snapshot.getParent", lambda: dom.snapshotLookupByName("vw-snap").getParent())
    step("revertToSnapshot", lambda: dom.revertToSnapshot(dom.snapshotLookupByName("vw-snap")))
    step("snapshot.delete", lambda: dom.snapshotLookupByName("vw-snap").delete())
    step("snapshotLookupByName gone", lambda: dom.snapshotLookupByName("vw-snap"))
    step("rename running", lambda: dom.rename("vw-renamed"))
    step("destroy", dom.destroy)
    step("undefine", dom.undefine)
    step("lookup gone", lambda: conn.lookupByName("vw-diff"))
    return out


def _object_families(conn: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def step(name: str, fn: Callable[[], Any]) -> None:
        out.append((name, _outcome(fn)))

    net = conn.networkDefineXML(NET_XML)
    step("net.isActive", net.isActive)
    step("net.create", net.create)
    step("net.bridgeName", net.bridgeName)
    step("net.setAutostart", lambda: net.setAutostart(1))
    step("net.autostart", net.autostart)
    step("net.isPersistent", net.isPersistent)
    step("networkLookupByUUIDString", lambda: conn.networkLookupByUUIDString(net.UUIDString()).name())
    step("net.destroy", net.destroy)
    step("net.undefine", net.undefine)
    step("net gone", lambda: conn.networkLookupByName("vw-net"))

    pool = conn.storagePoolDefineXML(POOL_XML)
    step("pool.create", pool.create)
    step("pool.info", pool.info)
    step("pool.createXML", lambda: pool.createXML(VOL_XML).name())
    step("pool.numOfVolumes", pool.numOfVolumes)
    step("pool.listVolumes", pool.listVolumes)
    step("pool.listAllVolumes", lambda: [v.name() for v in pool.listAllVolumes()])
    step("vol.info", lambda: pool.storageVolLookupByName("vw-vol.img").info())
    step("vol.key", lambda: pool.storageVolLookupByName("vw-vol.img").key())
    step("vol.path", lambda: pool.storageVolLookupByName("vw-vol.img").path())
    step("storageVolLookupByPath", lambda: conn.storageVolLookupByPath("/vw-pool/vw-vol.img").name())
    step(
        "vol.storagePoolLookupByVolume",
        lambda: pool.storageVolLookupByName("vw-vol.img").storagePoolLookupByVolume(),
    )
    step("vol.resize", lambda: pool.storageVolLookupByName("vw-vol.img").resize(16 * 1024 * 1024))
    step("vol.delete", lambda: pool.storageVolLookupByName("vw-vol.img").delete())
    step("pool.destroy", pool.destroy)
    step("pool.undefine", pool.undefine)

    # The test driver has no secrets: the same refusals are compared.
    step("secretDefineXML", lambda: conn.secretDefineXML(SECRET_XML))
    step("secretLookupByUsage", lambda: conn.secretLookupByUsage(1, "/vw/vol"))
    step(
        "secretLookupByUUIDString",
        lambda: conn.secretLookupByUUIDString("0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"),
    )
    step("listSecrets", conn.listSecrets)

    step("interfaceDefineXML", lambda: conn.interfaceDefineXML(IFACE_XML).name())
    step("iface.MACString", lambda: conn.interfaceLookupByName("vwif0").MACString())
    step("iface.create", lambda: conn.interfaceLookupByName("vwif0").create())
    step("iface.isActive", lambda: conn.interfaceLookupByName("vwif0").isActive())
    step("iface.destroy", lambda: conn.interfaceLookupByName("vwif0").destroy())
    step("iface.undefine", lambda: conn.interfaceLookupByName("vwif0").undefine())
    step("listAllNWFilters", conn.listAllNWFilters)
    step("nodeDevice.listCaps", lambda: conn.nodeDeviceLookupByName("computer").listCaps())
    return out


@pytest.mark.parametrize("family", [_domain_family, _object_families], ids=["domain", "objects"])
def test_mutating_sequences_as_libvirt_python(
    family: Callable[[Any], list[tuple[str, Any]]], fresh_libvirtd: Any, real_libvirt: ModuleType
) -> None:
    theirs = real_libvirt.open(fresh_libvirtd(hold=False).unix_uri)
    try:
        expected = family(theirs)
    finally:
        theirs.close()
    mine = ours.open(fresh_libvirtd(hold=False).unix_uri)
    try:
        got = family(mine)
    finally:
        mine.close()
    assert [name for name, _ in got] == [name for name, _ in expected]
    # Mostly successful calls (the script is not a list of refusals).
    assert sum(kind == "value" for _, (kind, _) in expected) > len(expected) * 2 // 3
    for (name, mine_outcome), (_, their_outcome) in zip(got, expected, strict=True):
        assert mine_outcome == their_outcome, name
