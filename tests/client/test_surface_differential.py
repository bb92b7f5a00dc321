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


@pytest.mark.parametrize(
    ("family", "server"),
    [(_domain_family, "libvirtd"), (_object_families, "libvirtd"), (_domain_family, "virtwire")],
    ids=["domain-libvirtd", "objects-libvirtd", "domain-virtwire"],
)
def test_mutating_sequences_as_libvirt_python(
    family: Callable[[Any], list[tuple[str, Any]]],
    server: str,
    request: pytest.FixtureRequest,
    real_libvirt: ModuleType,
) -> None:
    # Two fresh daemons of the same kind, one per client.
    if server == "libvirtd":
        fresh = request.getfixturevalue("fresh_libvirtd")
        uris = [fresh(hold=False).unix_uri, fresh(hold=False).unix_uri]
    else:
        start = request.getfixturevalue("virtwire_server")
        uris = [start(ro=False, tls=False).unix_uri, start(ro=False, tls=False).unix_uri]
    theirs = real_libvirt.open(uris[0])
    try:
        expected = family(theirs)
    finally:
        theirs.close()
    mine = ours.open(uris[1])
    try:
        got = family(mine)
    finally:
        mine.close()
    assert [name for name, _ in got] == [name for name, _ in expected]
    # Against libvirtd, mostly successful calls (the script is not a list of refusals).
    if server == "libvirtd":
        assert sum(kind == "value" for _, (kind, _) in expected) > len(expected) * 2 // 3
    for (name, mine_outcome), (_, their_outcome) in zip(got, expected, strict=True):
        assert mine_outcome == their_outcome, name


# -- read calls with arguments: the overrides' shapes, and lookups ------------------------

CPU_XML = "<cpu><arch>x86_64</arch><model>Haswell</model></cpu>"
WITH_ARGS: list[tuple[str, Callable[[Any], Any]]] = [
    ("lookupByName", lambda c: c.lookupByName("test")),
    ("lookupByID", lambda c: c.lookupByID(1)),
    ("lookupByUUIDString", lambda c: c.lookupByUUIDString("6695eb01-f6a4-8304-79aa-97f2502e193f")),
    ("lookupByUUID", lambda c: c.lookupByUUID(bytes.fromhex("6695eb01f6a4830479aa97f2502e193f"))),
    ("lookupByName missing", lambda c: c.lookupByName("nope")),
    ("lookupByUUIDString bad", lambda c: c.lookupByUUIDString("not-a-uuid")),
    ("networkLookupByUUIDString bad", lambda c: c.networkLookupByUUIDString("zz")),
    ("networkLookupByName", lambda c: c.networkLookupByName("default")),
    ("storagePoolLookupByName", lambda c: c.storagePoolLookupByName("default-pool")),
    ("interfaceLookupByMACString", lambda c: c.interfaceLookupByMACString("aa:bb:cc:dd:ee:ff")),
    ("nodeDeviceLookupByName", lambda c: c.nodeDeviceLookupByName("computer")),
    ("getCPUStats total", lambda c: c.getCPUStats(-1)),
    ("getCPUStats 0", lambda c: c.getCPUStats(0)),
    ("getMemoryStats", lambda c: c.getMemoryStats(-1)),
    ("getCellsFreeMemory", lambda c: c.getCellsFreeMemory(0, 2)),
    ("getFreePages", lambda c: c.getFreePages([4, 2048], 0, 1)),
    ("listDevices", lambda c: c.listDevices(None)),
    ("numOfDevices", lambda c: c.numOfDevices(None)),
    ("getMaxVcpus", lambda c: c.getMaxVcpus(None)),
    ("getCPUModelNames", lambda c: c.getCPUModelNames("x86_64")),
    ("baselineCPU", lambda c: c.baselineCPU([CPU_XML])),
    ("compareCPU", lambda c: c.compareCPU(CPU_XML)),
    ("getDomainCapabilities", lambda c: c.getDomainCapabilities()),
    ("getAllDomainStats", lambda c: [(d.name(), sorted(s)) for d, s in c.getAllDomainStats()]),
    (
        "domainListGetStats",
        lambda c: [(d.name(), sorted(s)) for d, s in c.domainListGetStats(c.listAllDomains())],
    ),
    ("dom.getCPUStats total", lambda c: c.lookupByName("test").getCPUStats(True)),
    ("dom.getCPUStats per cpu", lambda c: c.lookupByName("test").getCPUStats(False)),
    ("dom.memoryStats", lambda c: c.lookupByName("test").memoryStats()),
    ("dom.blockStats", lambda c: c.lookupByName("test").blockStats("vda")),
    ("dom.blockStatsFlags", lambda c: c.lookupByName("test").blockStatsFlags("vda")),
    ("dom.blockInfo", lambda c: c.lookupByName("test").blockInfo("vda")),
    ("dom.blockIoTune", lambda c: c.lookupByName("test").blockIoTune("vda")),
    ("dom.interfaceStats", lambda c: c.lookupByName("test").interfaceStats("testnet0")),
    ("dom.interfaceParameters", lambda c: c.lookupByName("test").interfaceParameters("testnet0")),
    ("dom.interfaceAddresses", lambda c: c.lookupByName("test").interfaceAddresses(0)),
    ("dom.blockJobInfo", lambda c: c.lookupByName("test").blockJobInfo("vda")),
    ("dom.vcpuPinInfo", lambda c: c.lookupByName("test").vcpuPinInfo()),
    ("dom.emulatorPinInfo", lambda c: c.lookupByName("test").emulatorPinInfo()),
    ("dom.ioThreadInfo", lambda c: c.lookupByName("test").ioThreadInfo()),
    ("dom.fsInfo", lambda c: c.lookupByName("test").fsInfo()),
    ("dom.guestInfo", lambda c: c.lookupByName("test").guestInfo()),
    ("dom.getTime", lambda c: sorted(c.lookupByName("test").getTime())),
    ("dom.metadata", lambda c: c.lookupByName("test").metadata(0, None)),
    ("dom.blockPeek", lambda c: c.lookupByName("test").blockPeek("vda", 0, 16)),
    ("dom.memoryPeek", lambda c: c.lookupByName("test").memoryPeek(0, 16, 1)),
    ("dom.jobStats", lambda c: c.lookupByName("test").jobStats()),
    ("dom.perfEvents", lambda c: c.lookupByName("test").perfEvents()),
    ("dom.launchSecurityInfo", lambda c: c.lookupByName("test").launchSecurityInfo()),
    ("dom.checkpointLookupByName", lambda c: c.lookupByName("test").checkpointLookupByName("x")),
    ("dom.snapshotLookupByName", lambda c: c.lookupByName("test").snapshotLookupByName("x")),
    (
        "pool.storageVolLookupByName",
        lambda c: c.storagePoolLookupByName("default-pool").storageVolLookupByName("x"),
    ),
    ("net.DHCPLeases", lambda c: c.networkLookupByName("default").DHCPLeases()),
    ("net.portLookupByUUIDString", lambda c: c.networkLookupByName("default").portLookupByUUIDString("bad")),
]


# Counters that move between two calls: compared with every int as 0.
MOVING = {"dom.blockStats", "dom.interfaceStats"}


@pytest.mark.parametrize(("name", "call"), WITH_ARGS, ids=[name for name, _ in WITH_ARGS])
def test_same_result_with_arguments(both: Any, name: str, call: Callable[[Any], Any]) -> None:
    theirs, mine = both
    expected, got = _outcome(lambda: call(theirs)), _outcome(lambda: call(mine))
    if name in MOVING:
        expected, got = _steady(expected), _steady(got)
    assert got == expected
