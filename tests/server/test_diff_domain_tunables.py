"""Domain CPU/memory tunables, statistics and node procedures: `virtwire serve` against a real libvirtd.

Each test runs the same sequence of libvirt-python calls against a fresh real
libvirtd (test driver) and a fresh `virtwire serve`, and compares the two
transcripts step by step: answers, errors (every field of the virError), and
the XML (live and inactive) after the changes.  Answers the test driver makes
up from the wall clock are reduced to their shape and their fixed ratios.
"""

from __future__ import annotations

import difflib
import pprint
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import make_param
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer

Conn = Any
Step = tuple[str, Callable[[Conn], object]]
Entry = tuple[str, tuple[str, object]]  # (step label, ("ok", answer) or ("error", virError fields))

# Written as libvirt prints it back: device defaults are not what these tests are about.
DEFINED = (
    "<domain type='test'><name>vc1</name><uuid>df34067f-b57c-4eb3-931a-57b41a287c8b</uuid>"
    "<memory>1048576</memory><vcpu current='2'>4</vcpu><os><type>hvm</type></os><devices>"
    "<disk type='file' device='disk'><source file='/img/a'/><target dev='vdb' bus='virtio'/></disk>"
    "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/>"
    "<address type='drive' controller='0' bus='1' target='0' unit='0'/></disk>"
    "<controller type='ide' index='0'/>"
    "<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/>"
    "<target dev='tap7'/></interface><memballoon model='virtio'/></devices></domain>"
)
TRANSIENT = (
    "<domain type='test'><name>tr1</name><memory>524288</memory><vcpu>2</vcpu>"
    "<os><type>hvm</type></os></domain>"
)


@dataclass
class Pair:
    real: str
    ours: str
    real_port: int
    ours_port: int


@pytest.fixture
def pair(fresh_libvirtd: Callable[..., RealLibvirtd], virtwire_server: Callable[..., VirtwireServer]) -> Pair:
    # One after the other: each picks free ports, and picking them at once could collide.
    real, ours = fresh_libvirtd(), virtwire_server(tls=False)
    return Pair(real.tcp_uri, ours.tcp_uri, real.tcp_port, ours.tcp_port)


@pytest.fixture
def shared(real_libvirtd: RealLibvirtd, virtwire_host: VirtwireServer) -> Pair:
    """The session's servers, for sequences that change nothing."""
    return Pair(real_libvirtd.tcp_uri, virtwire_host.tcp_uri, real_libvirtd.tcp_port, virtwire_host.tcp_port)


def _outcome(lv: ModuleType, conn: Conn, call: Callable[[Conn], object]) -> tuple[str, object]:
    try:
        return ("ok", call(conn))
    except lv.libvirtError as exc:
        return ("error", tuple(exc.err))


def transcript(lv: ModuleType, uri: str, steps: list[Step], *, readonly: bool = False) -> list[Entry]:
    conn = lv.openReadOnly(uri) if readonly else lv.open(uri)
    try:
        return [(label, _outcome(lv, conn, call)) for label, call in steps]
    finally:
        conn.close()


def assert_same(lv: ModuleType, pair: Pair, steps: list[Step], *, readonly: bool = False) -> list[Entry]:
    with ThreadPoolExecutor(2) as pool:
        running = [
            pool.submit(transcript, lv, uri, steps, readonly=readonly) for uri in (pair.real, pair.ours)
        ]
        real, ours = (future.result() for future in running)
    for theirs, mine in zip(real, ours, strict=True):
        if mine != theirs:
            diff = difflib.unified_diff(
                _lines(theirs), _lines(mine), "real libvirtd", "virtwire", lineterm=""
            )
            pytest.fail("\n".join(diff))
    return ours


def _lines(entry: Entry) -> list[str]:
    """A transcript entry as lines (an XML answer one line per line) for a readable diff."""
    label, (kind, answer) = entry
    if isinstance(answer, str):
        return [f"{label} {kind}:", *answer.splitlines()]
    return [f"{label} {kind}:", *pprint.pformat(answer, width=100).splitlines()]


def dom(name: str) -> Callable[[Conn], Any]:
    return lambda c: c.lookupByName(name)


def xml(name: str, flags: int = 0) -> Step:
    return (f"XMLDesc({name}, {flags})", lambda c: dom(name)(c).XMLDesc(flags))


def clock_shape(values: object) -> object:
    """A wall-clock answer: its layout and its fixed ratios, not its value."""
    if isinstance(values, dict):
        return {k: type(v).__name__ for k, v in values.items()}
    assert isinstance(values, list | tuple)
    return [type(v).__name__ for v in values]


def vcpus_masked(c: Conn, name: str) -> object:
    info, maps = dom(name)(c).vcpus()
    times = {cpu_time for _, _, cpu_time, _ in info}
    assert len(times) <= 1
    return [(n, s, cpu) for n, s, _, cpu in info], maps


# --- vCPUs, pinning, CPU stats ---------------------------------------------------------------


def test_vcpu_counts_pins_and_cpu_stats_match(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    live, config, maximum = lv.VIR_DOMAIN_AFFECT_LIVE, lv.VIR_DOMAIN_AFFECT_CONFIG, lv.VIR_DOMAIN_VCPU_MAXIMUM
    t = dom("test")
    steps: list[Step] = [
        ("define vc1", lambda c: c.defineXML(DEFINED).name()),
        ("createXML tr1", lambda c: c.createXML(TRANSIENT, 0).name()),
        ("vcpus", lambda c: vcpus_masked(c, "test")),
        ("vcpus inactive", lambda c: vcpus_masked(c, "vc1")),
        ("pinVcpu", lambda c: t(c).pinVcpu(0, (False, True, False, True))),
        ("pinVcpu wide", lambda c: t(c).pinVcpu(1, (False,) * 9 + (True,) * 3)),
        ("pinVcpuFlags config", lambda c: t(c).pinVcpuFlags(0, (True,), config)),
        ("pinVcpu absent vcpu", lambda c: t(c).pinVcpu(5, (True,))),
        ("pinVcpu inactive", lambda c: dom("vc1")(c).pinVcpu(0, (True,))),
        ("vcpus pinned", lambda c: vcpus_masked(c, "test")),
        ("vcpuPinInfo", lambda c: t(c).vcpuPinInfo(0)),
        ("vcpuPinInfo config", lambda c: t(c).vcpuPinInfo(config)),
        ("vcpuPinInfo live+config", lambda c: t(c).vcpuPinInfo(live | config)),
        ("vcpuPinInfo inactive", lambda c: dom("vc1")(c).vcpuPinInfo(0)),
        ("vcpuPinInfo inactive live", lambda c: dom("vc1")(c).vcpuPinInfo(live)),
        ("pinEmulator", lambda c: t(c).pinEmulator((False, False, True, True), live)),
        ("pinEmulator empty", lambda c: t(c).pinEmulator((False,), 0)),
        ("pinEmulator config", lambda c: t(c).pinEmulator((True,), config)),
        ("pinEmulator transient config", lambda c: dom("tr1")(c).pinEmulator((True,), config)),
        ("emulatorPinInfo", lambda c: t(c).emulatorPinInfo(0)),
        ("emulatorPinInfo config", lambda c: t(c).emulatorPinInfo(config)),
        ("emulatorPinInfo bad flags", lambda c: t(c).emulatorPinInfo(4)),
        xml("test"),
        xml("test", lv.VIR_DOMAIN_XML_INACTIVE),
        ("setVcpus", lambda c: t(c).setVcpus(1)),
        ("setVcpus above max", lambda c: t(c).setVcpus(3)),
        ("setVcpus above driver max", lambda c: t(c).setVcpus(40)),
        ("setVcpusFlags config max", lambda c: t(c).setVcpusFlags(6, config | maximum)),
        ("setVcpusFlags config", lambda c: t(c).setVcpusFlags(5, config)),
        ("setVcpusFlags live max", lambda c: t(c).setVcpusFlags(2, live | maximum)),
        ("setVcpusFlags bad flag", lambda c: t(c).setVcpusFlags(1, 64)),
        ("vcpusFlags", lambda c: [t(c).vcpusFlags(f) for f in (0, live, config, config | maximum)]),
        ("vcpus after", lambda c: vcpus_masked(c, "test")),
        ("maxVcpus", lambda c: t(c).maxVcpus()),
        ("shrink max below pins", lambda c: dom("vc1")(c).setVcpusFlags(1, maximum)),
        xml("test"),
        xml("test", lv.VIR_DOMAIN_XML_INACTIVE),
        xml("vc1"),
        ("getCPUStats total", lambda c: t(c).getCPUStats(True)),
        ("getCPUStats percpu", lambda c: t(c).getCPUStats(False)),
        ("getCPUStats inactive", lambda c: dom("vc1")(c).getCPUStats(True)),
        ("destroy", lambda c: t(c).destroy()),
        xml("test"),
        ("vcpus after destroy", lambda c: t(c).vcpuPinInfo(0)),
        ("start", lambda c: t(c).create()),
        xml("test"),
        ("undefine vc1", lambda c: dom("vc1")(c).undefine()),
    ]
    assert_same(lv, pair, steps)


# --- IOThreads -----------------------------------------------------------------------------


def test_iothreads_match(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    live, config = lv.VIR_DOMAIN_AFFECT_LIVE, lv.VIR_DOMAIN_AFFECT_CONFIG
    t = dom("test")
    with_threads = DEFINED.replace("<vcpu", "<iothreads>2</iothreads><vcpu")
    steps: list[Step] = [
        ("define vc1 with 2 iothreads", lambda c: c.defineXML(with_threads).name()),
        ("ioThreadInfo none", lambda c: t(c).ioThreadInfo(0)),
        ("add 3", lambda c: t(c).addIOThread(3, 0)),
        ("add 3 again", lambda c: t(c).addIOThread(3, 0)),
        ("add 0", lambda c: t(c).addIOThread(0, 0)),
        ("add 1 config", lambda c: t(c).addIOThread(1, config)),
        ("add 5 live+config", lambda c: t(c).addIOThread(5, live | config)),
        ("ioThreadInfo", lambda c: t(c).ioThreadInfo(0)),
        ("ioThreadInfo config", lambda c: t(c).ioThreadInfo(config)),
        ("pin 3", lambda c: t(c).pinIOThread(3, (False, True, True), 0)),
        ("pin 3 empty", lambda c: t(c).pinIOThread(3, (False,), 0)),
        ("pin 9", lambda c: t(c).pinIOThread(9, (True,), 0)),
        ("set params 3", lambda c: t(c).setIOThreadParams(3, {"poll_max_ns": 100, "poll_grow": 2}, live)),
        ("set params 7", lambda c: t(c).setIOThreadParams(7, {"poll_max_ns": 1}, live)),
        ("set params config flag", lambda c: t(c).setIOThreadParams(3, {"poll_max_ns": 1}, config)),
        ("stats", lambda c: _stats(lv, c, lv.VIR_DOMAIN_STATS_IOTHREAD, 0)),
        ("ioThreadInfo pinned", lambda c: t(c).ioThreadInfo(0)),
        ("vc1 ioThreadInfo", lambda c: dom("vc1")(c).ioThreadInfo(0)),
        ("vc1 pin 2", lambda c: dom("vc1")(c).pinIOThread(2, (True,), 0)),
        ("vc1 params 2", lambda c: dom("vc1")(c).setIOThreadParams(2, {"poll_max_ns": 1}, 0)),
        xml("vc1"),
        ("vc1 del 1", lambda c: dom("vc1")(c).delIOThread(1, 0)),
        xml("vc1"),
        ("vc1 del 2", lambda c: dom("vc1")(c).delIOThread(2, 0)),
        ("vc1 del 2 again", lambda c: dom("vc1")(c).delIOThread(2, 0)),
        xml("vc1"),
        xml("test"),
        xml("test", lv.VIR_DOMAIN_XML_INACTIVE),
        ("del 3", lambda c: t(c).delIOThread(3, 0)),
        ("del 0", lambda c: t(c).delIOThread(0, 0)),
        xml("test"),
        ("destroy", lambda c: t(c).destroy()),
        ("ioThreadInfo after destroy", lambda c: t(c).ioThreadInfo(0)),
        xml("test"),
        ("undefine vc1", lambda c: dom("vc1")(c).undefine()),
    ]
    assert_same(lv, pair, steps)


# --- memory ------------------------------------------------------------------------------


def test_memory_balloon_memtune_numatune_match(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    live, config = lv.VIR_DOMAIN_AFFECT_LIVE, lv.VIR_DOMAIN_AFFECT_CONFIG
    maximum = lv.VIR_DOMAIN_MEM_MAXIMUM
    t = dom("test")
    hard, soft, swap = (
        lv.VIR_DOMAIN_MEMORY_HARD_LIMIT,
        lv.VIR_DOMAIN_MEMORY_SOFT_LIMIT,
        lv.VIR_DOMAIN_MEMORY_SWAP_HARD_LIMIT,
    )
    mode, nodeset = lv.VIR_DOMAIN_NUMA_MODE, lv.VIR_DOMAIN_NUMA_NODESET
    steps: list[Step] = [
        ("define vc1", lambda c: c.defineXML(DEFINED).name()),
        ("setMemory", lambda c: t(c).setMemory(1048576)),
        ("info", lambda c: t(c).info()[:4]),
        ("setMemory too high", lambda c: t(c).setMemory(99999999)),
        ("setMaxMemory running", lambda c: t(c).setMaxMemory(4194304)),
        ("setMemoryFlags config max", lambda c: t(c).setMemoryFlags(1048576, config | maximum)),
        ("setMemoryFlags config", lambda c: t(c).setMemoryFlags(524288, config)),
        ("setMemoryFlags both", lambda c: t(c).setMemoryFlags(1000, live | config)),
        ("setMaxMemory inactive", lambda c: dom("vc1")(c).setMaxMemory(2097152)),
        ("setMemory inactive", lambda c: dom("vc1")(c).setMemory(1000)),
        ("memoryStats", lambda c: t(c).memoryStats()),
        ("memoryStats inactive", lambda c: dom("vc1")(c).memoryStats()),
        ("setMemoryStatsPeriod", lambda c: t(c).setMemoryStatsPeriod(5, 0)),
        ("setMemoryStatsPeriod config", lambda c: t(c).setMemoryStatsPeriod(7, config)),
        ("memoryParameters", lambda c: t(c).memoryParameters(0)),
        ("setMemoryParameters", lambda c: t(c).setMemoryParameters({hard: 100000, soft: 50000}, 0)),
        ("setMemoryParameters swap < hard", lambda c: t(c).setMemoryParameters({swap: 1000}, 0)),
        ("setMemoryParameters config", lambda c: t(c).setMemoryParameters({swap: 200000}, config)),
        ("memoryParameters config", lambda c: t(c).memoryParameters(config)),
        ("memoryParameters live", lambda c: t(c).memoryParameters(live)),
        ("numaParameters", lambda c: t(c).numaParameters(0)),
        ("setNuma mode only", lambda c: t(c).setNumaParameters({mode: 2}, 0)),
        ("setNuma nodeset", lambda c: t(c).setNumaParameters({nodeset: "0-1"}, 0)),
        ("setNuma change mode live", lambda c: t(c).setNumaParameters({mode: 1}, 0)),
        ("setNuma config", lambda c: t(c).setNumaParameters({mode: 2, nodeset: "1,3-4"}, config)),
        ("setNuma bad nodeset", lambda c: t(c).setNumaParameters({nodeset: "3-x"}, config)),
        ("setNuma bad mode", lambda c: t(c).setNumaParameters({mode: 9}, config)),
        ("numaParameters config", lambda c: t(c).numaParameters(config)),
        ("numaParameters live", lambda c: t(c).numaParameters(0)),
        xml("test"),
        xml("test", lv.VIR_DOMAIN_XML_INACTIVE),
        xml("vc1"),
        (
            "redefine while running",
            lambda c: c.defineXML(
                t(c).XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE).replace("'static'>2<", "'static'>3<")
            ).name(),
        ),
        xml("test"),
        xml("test", lv.VIR_DOMAIN_XML_INACTIVE),
        ("destroy", lambda c: t(c).destroy()),
        ("info after destroy", lambda c: t(c).info()[:4]),
        xml("test"),
        ("undefine vc1", lambda c: dom("vc1")(c).undefine()),
    ]
    ours = assert_same(lv, pair, steps)
    after = [label for label, _ in ours].index("redefine while running")
    live, inactive = (str(answer) for _, (_, answer) in ours[after + 1 : after + 3])
    assert "'static'>2</vcpu>" in live and "'static'>3</vcpu>" in inactive


# --- scheduler, blkio, iotune, bandwidth, perf, launch security ----------------------------------------


def test_tunables_match(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    config = lv.VIR_DOMAIN_AFFECT_CONFIG
    t = dom("test")
    weights, read_iops = lv.VIR_DOMAIN_BLKIO_DEVICE_WEIGHT, lv.VIR_DOMAIN_BLKIO_DEVICE_READ_IOPS
    steps: list[Step] = [
        ("schedulerType", lambda c: t(c).schedulerType()),
        ("schedulerParameters", lambda c: t(c).schedulerParameters()),
        ("schedulerParametersFlags config", lambda c: t(c).schedulerParametersFlags(config)),
        ("setSchedulerParameters", lambda c: t(c).setSchedulerParameters({"weight": 100})),
        (
            "setSchedulerParametersFlags config",
            lambda c: t(c).setSchedulerParametersFlags({"weight": 1}, config),
        ),
        ("blkioParameters", lambda c: t(c).blkioParameters(0)),
        ("setBlkio weight", lambda c: t(c).setBlkioParameters({"weight": 500}, 0)),
        ("setBlkio devices", lambda c: t(c).setBlkioParameters({weights: "/dev/sda,100,/dev/sdb,200"}, 0)),
        ("setBlkio iops", lambda c: t(c).setBlkioParameters({read_iops: "/dev/sda,10"}, 0)),
        ("setBlkio bad value", lambda c: t(c).setBlkioParameters({weights: "/dev/sda,abc", "weight": 7}, 0)),
        ("setBlkio odd fields", lambda c: t(c).setBlkioParameters({weights: "/dev/sda"}, 0)),
        ("setBlkio zero", lambda c: t(c).setBlkioParameters({weights: "/dev/sdb,0"}, 0)),
        ("setBlkio config", lambda c: t(c).setBlkioParameters({"weight": 300}, config)),
        ("blkioParameters after", lambda c: t(c).blkioParameters(0)),
        ("blkioParameters config", lambda c: t(c).blkioParameters(config)),
        ("blockIoTune", lambda c: t(c).blockIoTune("vda", 0)),
        ("setBlockIoTune no max", lambda c: t(c).setBlockIoTune("vda", {"total_bytes_sec": 100}, 0)),
        (
            "setBlockIoTune",
            lambda c: t(c).setBlockIoTune("vda", {"total_bytes_sec": 100, "total_bytes_sec_max": 200}, 0),
        ),
        ("setBlockIoTune total+read", lambda c: t(c).setBlockIoTune("vda", {"read_bytes_sec": 10}, 0)),
        (
            "setBlockIoTune group",
            lambda c: t(c).setBlockIoTune(
                "vda", {"read_iops_sec": 10, "read_iops_sec_max": 20, "group_name": "grp"}, 0
            ),
        ),
        (
            "setBlockIoTune limit",
            lambda c: t(c).setBlockIoTune("vda", {"total_bytes_sec_max": 2 * 10**15}, 0),
        ),
        ("setBlockIoTune no disk", lambda c: t(c).setBlockIoTune("vdz", {"total_bytes_sec": 1}, 0)),
        (
            "setBlockIoTune by path",
            lambda c: t(c).setBlockIoTune("/guest/diskimage1", {"size_iops_sec": 7}, 0),
        ),
        ("setBlockIoTune config", lambda c: t(c).setBlockIoTune("vda", {"write_iops_sec": 0}, config)),
        ("blockIoTune after", lambda c: t(c).blockIoTune("vda", 0)),
        ("blockIoTune config", lambda c: t(c).blockIoTune("vda", config)),
        ("blockIoTune no disk", lambda c: t(c).blockIoTune("vdz", 0)),
        ("interfaceParameters", lambda c: t(c).interfaceParameters("testnet0", 0)),
        (
            "setInterfaceParameters in",
            lambda c: t(c).setInterfaceParameters(
                "testnet0", {"inbound.average": 100, "inbound.peak": 200, "inbound.burst": 300}, 0
            ),
        ),
        (
            "setInterfaceParameters out by mac",
            lambda c: t(c).setInterfaceParameters("aa:bb:cc:dd:ee:ff", {"outbound.average": 10}, 0),
        ),
        (
            "setInterfaceParameters clear in",
            lambda c: t(c).setInterfaceParameters("testnet0", {"inbound.average": 0}, 0),
        ),
        (
            "setInterfaceParameters nosuch",
            lambda c: t(c).setInterfaceParameters("nosuch", {"inbound.average": 1}, 0),
        ),
        (
            "setInterfaceParameters empty config",
            lambda c: t(c).setInterfaceParameters("testnet0", {"outbound.peak": 5}, config),
        ),
        ("interfaceParameters after", lambda c: t(c).interfaceParameters("testnet0", 0)),
        ("perfEvents", lambda c: t(c).perfEvents(0)),
        (
            "setPerfEvents",
            lambda c: t(c).setPerfEvents({"cmt": True, "cpu_cycles": True, "instructions": False}, 0),
        ),
        ("setPerfEvents config", lambda c: t(c).setPerfEvents({"page_faults": True}, config)),
        ("perfEvents after", lambda c: t(c).perfEvents(0)),
        ("perfEvents config", lambda c: t(c).perfEvents(config)),
        ("launchSecurityInfo", lambda c: t(c).launchSecurityInfo(0)),
        ("launchSecurityInfo flags", lambda c: t(c).launchSecurityInfo(1)),
        xml("test"),
        xml("test", lv.VIR_DOMAIN_XML_INACTIVE),
        ("destroy", lambda c: t(c).destroy()),
        xml("test"),
    ]
    assert_same(lv, pair, steps)


# --- statistics ------------------------------------------------------------------------------


def _stats(lv: ModuleType, c: Conn, stats: int, flags: int) -> object:
    # libvirtd lists the domains in its hash table's order: compare them by name.
    return sorted((dom.name(), params) for dom, params in c.getAllDomainStats(stats, flags))


def test_statistics_match(real_libvirt: ModuleType, pair: Pair) -> None:
    lv = real_libvirt
    t = dom("test")

    def block_stats(c: Conn, path: str) -> object:
        values = t(c).blockStats(path)
        assert values[0] >= values[1] >= values[3] >= 0  # rd_req, rd_bytes, wr_bytes: t/10, t/20, t/40
        return clock_shape(values)

    def interface_stats(c: Conn, device: str) -> object:
        values = t(c).interfaceStats(device)
        assert values[0] >= values[4] >= values[1] >= 0  # rx_bytes t/10, tx_bytes t/20, rx_packets t/100
        return clock_shape(values)

    steps: list[Step] = [
        ("define vc1", lambda c: c.defineXML(DEFINED).name()),
        ("createXML tr1", lambda c: c.createXML(TRANSIENT, 0).name()),
        ("blockStats vda", lambda c: block_stats(c, "vda")),
        ("blockStats by path", lambda c: block_stats(c, "/guest/diskimage1")),
        ("blockStats nosuch", lambda c: block_stats(c, "vdz")),
        ("blockStats summary", lambda c: block_stats(c, "")),
        ("blockStats inactive", lambda c: dom("vc1")(c).blockStats("vdb")),
        ("blockStatsFlags", lambda c: t(c).blockStatsFlags("vda", 0)),
        ("interfaceStats", lambda c: interface_stats(c, "testnet0")),
        ("interfaceStats by mac", lambda c: interface_stats(c, "aa:bb:cc:dd:ee:ff")),
        ("interfaceStats nosuch", lambda c: interface_stats(c, "nosuch")),
        ("blockInfo", lambda c: t(c).blockInfo("vda", 0)),
        ("blockInfo by path", lambda c: t(c).blockInfo("/guest/diskimage1", 0)),
        ("blockInfo nosuch", lambda c: t(c).blockInfo("vdz", 0)),
        ("blockInfo inactive", lambda c: dom("vc1")(c).blockInfo("vdb", 0)),
        ("blockInfo no source", lambda c: dom("vc1")(c).blockInfo("hdc", 0)),
        ("blockInfo bad flags", lambda c: t(c).blockInfo("vda", 1)),
        ("all stats", lambda c: _stats(lv, c, 0, 0)),
        ("state stats", lambda c: _stats(lv, c, lv.VIR_DOMAIN_STATS_STATE, 0)),
        ("cpu stats", lambda c: _stats(lv, c, lv.VIR_DOMAIN_STATS_CPU_TOTAL, 0)),
        (
            "enforced",
            lambda c: _stats(
                lv,
                c,
                lv.VIR_DOMAIN_STATS_CPU_TOTAL | lv.VIR_DOMAIN_STATS_STATE,
                lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS,
            ),
        ),
        ("inactive only", lambda c: _stats(lv, c, 0, lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE)),
        (
            "active persistent",
            lambda c: _stats(
                lv,
                c,
                0,
                lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE | lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_PERSISTENT,
            ),
        ),
        ("transient", lambda c: _stats(lv, c, 0, lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_TRANSIENT)),
        ("bad flags", lambda c: _stats(lv, c, 0, 1 << 20)),
        (
            "domainListGetStats",
            lambda c: [(d.name(), p) for d, p in c.domainListGetStats([dom("vc1")(c), t(c)], 0, 0)],
        ),
        (
            "domainListGetStats filtered",
            lambda c: [
                (d.name(), p)
                for d, p in c.domainListGetStats(
                    [dom("vc1")(c), t(c)], 0, lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_SHUTOFF
                )
            ],
        ),
        ("destroy tr1", lambda c: dom("tr1")(c).destroy()),
        ("blockStats after destroy", lambda c: block_stats(c, "vda")),
        ("undefine vc1", lambda c: dom("vc1")(c).undefine()),
    ]
    assert_same(lv, pair, steps)


# --- node --------------------------------------------------------------------------------------


def test_node_procedures_match(real_libvirt: ModuleType, shared: Pair) -> None:
    lv = real_libvirt
    steps: list[Step] = [
        ("getCPUMap", lambda c: c.getCPUMap()),
        ("getCellsFreeMemory", lambda c: c.getCellsFreeMemory(0, 5)),
        ("getCellsFreeMemory 1", lambda c: c.getCellsFreeMemory(1, 1)),
        ("getCellsFreeMemory beyond", lambda c: c.getCellsFreeMemory(2, 1)),
        ("getCPUStats", lambda c: c.getCPUStats(-1)),
        ("getCPUStats cpu 3", lambda c: c.getCPUStats(3)),
        ("getCPUStats flags", lambda c: c.getCPUStats(0, 1)),
        ("getMemoryStats", lambda c: c.getMemoryStats(-1)),
        ("getFreePages", lambda c: c.getFreePages([4, 2048], 0, 2)),
        ("getFreePages flags", lambda c: c.getFreePages([4], 0, 1, 1)),
        ("getSysinfo", lambda c: c.getSysinfo()),
        ("getSysinfo flags", lambda c: c.getSysinfo(1)),
        *(
            (f"getCPUModelNames {arch}", lambda c, arch=arch: c.getCPUModelNames(arch))
            for arch in (
                "i686",
                "x86_64",
                "ppc64",
                "ppc64le",
                "aarch64",
                "s390x",
                "ppc",
                "mips",
                "foo",
                "none",
            )
        ),
        ("getCPUModelNames flags", lambda c: c.getCPUModelNames("x86_64", 1)),
        ("getInfo", lambda c: c.getInfo()),
        ("getFreeMemory", lambda c: c.getFreeMemory()),
    ]
    assert_same(lv, shared, steps)


# --- read-only connections -------------------------------------------------------------------


def test_read_only_connection_reads_but_cannot_tune(real_libvirt: ModuleType, shared: Pair) -> None:
    lv = real_libvirt
    t = dom("test")
    steps: list[Step] = [
        ("vcpuPinInfo", lambda c: t(c).vcpuPinInfo(0)),
        ("emulatorPinInfo", lambda c: t(c).emulatorPinInfo(0)),
        ("ioThreadInfo", lambda c: t(c).ioThreadInfo(0)),
        ("memoryParameters", lambda c: t(c).memoryParameters(0)),
        ("numaParameters", lambda c: t(c).numaParameters(0)),
        ("blkioParameters", lambda c: t(c).blkioParameters(0)),
        ("blockIoTune", lambda c: t(c).blockIoTune("vda", 0)),
        ("interfaceParameters", lambda c: t(c).interfaceParameters("testnet0", 0)),
        ("perfEvents", lambda c: t(c).perfEvents(0)),
        ("schedulerParameters", lambda c: t(c).schedulerParameters()),
        ("blockInfo", lambda c: t(c).blockInfo("vda", 0)),
        ("memoryStats", lambda c: t(c).memoryStats()),
        ("getCPUMap", lambda c: c.getCPUMap()),
        ("getSysinfo", lambda c: c.getSysinfo()),
        ("state stats", lambda c: _stats(lv, c, lv.VIR_DOMAIN_STATS_STATE, 0)),
        ("vcpus", lambda c: vcpus_masked(c, "test")),
        ("getCPUStats", lambda c: t(c).getCPUStats(True)),
        ("setVcpus", lambda c: t(c).setVcpus(1)),
        ("pinVcpu", lambda c: t(c).pinVcpu(0, (True,))),
        ("pinEmulator", lambda c: t(c).pinEmulator((True,), 0)),
        ("addIOThread", lambda c: t(c).addIOThread(1, 0)),
        ("setMemory", lambda c: t(c).setMemory(1024)),
        ("setMemoryStatsPeriod", lambda c: t(c).setMemoryStatsPeriod(1, 0)),
        ("setMemoryParameters", lambda c: t(c).setMemoryParameters({"hard_limit": 1}, 0)),
        ("setNumaParameters", lambda c: t(c).setNumaParameters({"numa_nodeset": "0"}, 0)),
        ("setBlkioParameters", lambda c: t(c).setBlkioParameters({"weight": 1}, 0)),
        ("setBlockIoTune", lambda c: t(c).setBlockIoTune("vda", {"total_bytes_sec": 1}, 0)),
        (
            "setInterfaceParameters",
            lambda c: t(c).setInterfaceParameters("testnet0", {"inbound.average": 1}, 0),
        ),
        ("setPerfEvents", lambda c: t(c).setPerfEvents({"cmt": True}, 0)),
        ("setSchedulerParameters", lambda c: t(c).setSchedulerParameters({"weight": 1})),
        xml("test"),
    ]
    assert_same(lv, shared, steps, readonly=True)


# --- events ------------------------------------------------------------------------------------


@pytest.fixture
def event_loop(real_libvirt: ModuleType) -> Iterator[None]:
    """libvirt's default event loop in a thread, stopped (and woken) at the end."""
    lv = real_libvirt
    lv.virEventRegisterDefaultImpl()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            lv.virEventRunDefaultImpl()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        lv.virEventAddTimeout(0, lambda timer, opaque: lv.virEventRemoveTimeout(timer), None)
        thread.join(30)


def _events_of_tuning(lv: ModuleType, uri: str) -> list[object]:
    """Every domain event a round of tuning calls causes, up to a suspend/resume marker."""
    conn = lv.open(uri)
    seen: list[object] = []
    marker = threading.Event()

    def on_event(_c: Any, d: Any, *rest: Any) -> None:
        seen.append((d.name(), *rest[:-1]))
        if rest[:-1] == (lv.VIR_DOMAIN_EVENT_RESUMED, lv.VIR_DOMAIN_EVENT_RESUMED_UNPAUSED):
            marker.set()

    ids = [
        conn.domainEventRegisterAny(None, event, on_event, None)
        for event in (lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lv.VIR_DOMAIN_EVENT_ID_TUNABLE)
    ]
    try:
        t = conn.lookupByName("test")
        t.setVcpus(1)
        t.pinVcpu(0, (True,))
        t.pinEmulator((True,), 0)
        t.addIOThread(2, 0)
        t.pinIOThread(2, (True,), 0)
        t.setMemory(1048576)
        t.setMemoryParameters({"hard_limit": 100000}, 0)
        t.setBlkioParameters({"weight": 200}, 0)
        t.setBlockIoTune("vda", {"total_bytes_sec": 1, "total_bytes_sec_max": 2}, 0)
        t.setInterfaceParameters("testnet0", {"inbound.average": 10}, 0)
        t.setPerfEvents({"cmt": True}, 0)
        t.suspend()
        t.resume()
        assert marker.wait(20)
        for callback in ids:
            conn.domainEventDeregisterAny(callback)
    finally:
        conn.close()
    return seen


def test_tuning_emits_the_same_events(real_libvirt: ModuleType, pair: Pair, event_loop: None) -> None:
    real = _events_of_tuning(real_libvirt, pair.real)
    assert _events_of_tuning(real_libvirt, pair.ours) == real
    assert real == [
        ("test", 3, 0),
        ("test", 4, 0),
    ]  # only the marker: the test driver emits no tunable events


# --- what libvirt-python never sends: checked by the server -------------------------------------------


TEST_REF = R.remote_nonnull_domain(name="test", uuid=bytes.fromhex("6695eb01f6a4830479aa97f2502e193f"), id=1)
U, UL, S, INT = (
    C.VIR_TYPED_PARAM_UINT,
    C.VIR_TYPED_PARAM_ULLONG,
    C.VIR_TYPED_PARAM_STRING,
    C.VIR_TYPED_PARAM_INT,
)


def _raw_calls() -> list[tuple[str, Any]]:
    p = make_param
    return [
        (
            "DOMAIN_SET_MEMORY_PARAMETERS",
            R.remote_domain_set_memory_parameters_args(TEST_REF, [p("bogus", UL, 1)], 0),
        ),
        (
            "DOMAIN_SET_MEMORY_PARAMETERS",
            R.remote_domain_set_memory_parameters_args(TEST_REF, [p("hard_limit", U, 1)], 0),
        ),
        (
            "DOMAIN_SET_MEMORY_PARAMETERS",
            R.remote_domain_set_memory_parameters_args(
                TEST_REF, [p("soft_limit", UL, 1), p("soft_limit", UL, 2)], 0
            ),
        ),
        (
            "DOMAIN_SET_SCHEDULER_PARAMETERS",
            R.remote_domain_set_scheduler_parameters_args(TEST_REF, [p("cap", U, 3)]),
        ),
        (
            "DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS",
            R.remote_domain_set_scheduler_parameters_flags_args(TEST_REF, [p("weight", UL, 3)], 0),
        ),
        (
            "DOMAIN_SET_NUMA_PARAMETERS",
            R.remote_domain_set_numa_parameters_args(TEST_REF, [p("numa_mode", U, 1)], 0),
        ),
        (
            "DOMAIN_SET_BLKIO_PARAMETERS",
            R.remote_domain_set_blkio_parameters_args(TEST_REF, [p("zzz", U, 1), p("weight", U, 1)], 0),
        ),
        (
            "DOMAIN_SET_BLOCK_IO_TUNE",
            R.remote_domain_set_block_io_tune_args(TEST_REF, "vda", [p("group_name", UL, 1)], 0),
        ),
        (
            "DOMAIN_SET_INTERFACE_PARAMETERS",
            R.remote_domain_set_interface_parameters_args(
                TEST_REF, "testnet0", [p("inbound.average", UL, 1)], 0
            ),
        ),
        ("DOMAIN_SET_PERF_EVENTS", R.remote_domain_set_perf_events_args(TEST_REF, [p("cmt", INT, 1)], 0)),
        (
            "DOMAIN_SET_IOTHREAD_PARAMS",
            R.remote_domain_set_iothread_params_args(TEST_REF, 1, [p("poll_max_ns", UL, 1)], 0),
        ),
        ("DOMAIN_GET_MEMORY_PARAMETERS", R.remote_domain_get_memory_parameters_args(TEST_REF, 17, 0)),
        ("DOMAIN_GET_MEMORY_PARAMETERS", R.remote_domain_get_memory_parameters_args(TEST_REF, 2, 0)),
        ("DOMAIN_GET_NUMA_PARAMETERS", R.remote_domain_get_numa_parameters_args(TEST_REF, 2, 0)),
        ("DOMAIN_GET_BLKIO_PARAMETERS", R.remote_domain_get_blkio_parameters_args(TEST_REF, 3, 0)),
        ("DOMAIN_GET_BLOCK_IO_TUNE", R.remote_domain_get_block_io_tune_args(TEST_REF, "vda", 33, 0)),
        ("DOMAIN_GET_CPU_STATS", R.remote_domain_get_cpu_stats_args(TEST_REF, 17, -1, 1, 0)),
        ("DOMAIN_GET_CPU_STATS", R.remote_domain_get_cpu_stats_args(TEST_REF, 3, 0, 4, 0)),
        ("DOMAIN_GET_CPU_STATS", R.remote_domain_get_cpu_stats_args(TEST_REF, 1, 1, 1, 0)),
        ("DOMAIN_GET_CPU_STATS", R.remote_domain_get_cpu_stats_args(TEST_REF, 0, 0, 0, 0)),
        ("DOMAIN_GET_VCPU_PIN_INFO", R.remote_domain_get_vcpu_pin_info_args(TEST_REF, 3, 2, 0)),
        ("DOMAIN_GET_VCPU_PIN_INFO", R.remote_domain_get_vcpu_pin_info_args(TEST_REF, 16385, 1, 0)),
        ("DOMAIN_GET_EMULATOR_PIN_INFO", R.remote_domain_get_emulator_pin_info_args(TEST_REF, 3, 0)),
        ("DOMAIN_GET_VCPUS", R.remote_domain_get_vcpus_args(TEST_REF, 16385, 1)),
        ("DOMAIN_MEMORY_STATS", R.remote_domain_memory_stats_args(TEST_REF, 3, 0)),
        ("DOMAIN_MEMORY_STATS", R.remote_domain_memory_stats_args(TEST_REF, 1025, 0)),
        ("NODE_GET_CPU_MAP", R.remote_node_get_cpu_map_args(0, 1, 0)),
        ("NODE_GET_CPU_MAP", R.remote_node_get_cpu_map_args(1, 0, 0)),
        ("NODE_GET_CELLS_FREE_MEMORY", R.remote_node_get_cells_free_memory_args(0, 1025)),
        ("NODE_GET_CPU_STATS", R.remote_node_get_cpu_stats_args(0, 2, 0)),
        ("NODE_GET_CPU_STATS", R.remote_node_get_cpu_stats_args(0, 17, 0)),
        ("NODE_GET_FREE_PAGES", R.remote_node_get_free_pages_args([4] * 600, 0, 2, 0)),
        ("NODE_GET_FREE_PAGES", R.remote_node_get_free_pages_args([], 0, 1, 0)),
        ("CONNECT_GET_CPU_MODEL_NAMES", R.remote_connect_get_cpu_model_names_args("ppc64", 0, 0)),
        (
            "DOMAIN_GET_LAUNCH_SECURITY_INFO",
            R.remote_domain_get_launch_security_info_args(
                R.remote_nonnull_domain(name="nosuch", uuid=bytes(16), id=-1), 0
            ),
        ),
        (
            "DOMAIN_GET_MEMORY_PARAMETERS",
            R.remote_domain_get_memory_parameters_args(
                R.remote_nonnull_domain(name="nosuch", uuid=bytes(16), id=-1), 0, 0
            ),
        ),
        (
            "DOMAIN_GET_SCHEDULER_TYPE",
            R.remote_domain_get_scheduler_type_args(
                R.remote_nonnull_domain(name="nosuch", uuid=bytes(16), id=-1)
            ),
        ),
    ]


def _raw_replies(port: int) -> list[tuple[str, int, bytes]]:
    with RawRpcClient.tcp("127.0.0.1", port) as client:
        client.open()
        replies = []
        for name, args in _raw_calls():
            reply = client.call(R.PROCEDURES_BY_NAME[name].number, args.to_bytes())
            replies.append((name, reply.status, bytes(reply.payload)))
        return replies


def test_raw_calls_answer_byte_for_byte_as_libvirtd(shared: Pair) -> None:
    """Typed-parameter validation, libvirtd's own limits, nparams=0 probes, unchecked domains."""
    real = _raw_replies(shared.real_port)
    ours = _raw_replies(shared.ours_port)
    for theirs, mine in zip(real, ours, strict=True):
        assert mine == theirs
