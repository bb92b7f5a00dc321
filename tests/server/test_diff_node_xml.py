"""``--node-xml``, differentially: the same node file behind a real libvirtd and ``virtwire serve``.

libvirtd opens ``test:///PATH`` (its test driver parses the file for each
connection); our server boots from ``--node-xml PATH``.  Through real
libvirt-python, every object family's listing, XML and state, the node's
info, capabilities and memory, and the domains' snapshots must be the same.
The files: libvirt's own examples/xml/test/testnode.xml (with the files it
includes, and its inline twin) and lab-full.xml, which adds what the example
lacks: test: namespace elements, snapshots, interfaces, node devices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import outcome

DATA = Path(__file__).with_name("data") / "node"
NODE_FILES = [
    DATA / "libvirt-examples" / "testnode.xml",
    DATA / "libvirt-examples" / "testnodeinline.xml",
    DATA / "lab-full.xml",
]


@pytest.fixture(scope="module")
def daemon_uri(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[str]:
    """A real libvirtd's TCP URI without the path (test+tcp://127.0.0.1:P)."""
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-nodexml"), pki=pki, hold=False)
    try:
        yield daemon.tcp_uri.rsplit("/", 1)[0]
    finally:
        stop_libvirtd(daemon)


def _parent_name(snap: Any) -> str:
    return str(snap.getParent().getName())


def _current_name(dom: Any) -> str:
    return str(dom.snapshotCurrent().getName())


def _domains(conn: Any, lv: ModuleType) -> list[Any]:
    out = []
    for dom in sorted(conn.listAllDomains(), key=lambda d: d.name()):
        state = dom.state()
        info = dom.info()
        snaps = sorted(dom.listAllSnapshots(), key=lambda s: s.getName())
        out.append(
            (
                dom.name(),
                dom.ID(),
                dom.UUIDString(),
                state,
                (info[0], info[1], info[2], info[3]),  # not the CPU time: the test driver's is the clock
                dom.isPersistent(),
                dom.hasManagedSaveImage(),
                dom.XMLDesc(),
                dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE),
                dom.hasCurrentSnapshot(),
                [(s.getName(), s.getXMLDesc(), s.isCurrent()) for s in snaps],
                [outcome(functools.partial(_parent_name, s), lv) for s in snaps],
                sorted(dom.snapshotListNames()),  # libvirt lists its hash table's order
                outcome(functools.partial(_current_name, dom), lv),
            )
        )
    return out


def _networks(conn: Any) -> list[Any]:
    return [
        (n.name(), n.isActive(), n.isPersistent(), n.autostart(), n.XMLDesc())
        for n in sorted(conn.listAllNetworks(), key=lambda n: n.name())
    ]


def _interfaces(conn: Any) -> list[Any]:
    return [
        (i.name(), i.MACString(), i.isActive(), i.XMLDesc())
        for i in sorted(conn.listAllInterfaces(), key=lambda i: i.name())
    ]


def _storage(conn: Any) -> list[Any]:
    out = []
    for pool in sorted(conn.listAllStoragePools(), key=lambda p: p.name()):
        vols = sorted(pool.listAllVolumes(), key=lambda v: v.name())
        out.append(
            (
                pool.name(),
                pool.info(),
                pool.isActive(),
                pool.XMLDesc(),
                [(v.name(), v.key(), v.path(), v.info(), v.XMLDesc()) for v in vols],
            )
        )
    return out


def _devices(conn: Any, lv: ModuleType) -> list[Any]:
    return [
        (d.name(), outcome(d.parent, lv), d.listCaps(), d.XMLDesc())
        for d in sorted(conn.listAllDevices(), key=lambda d: d.name())
    ]


def _host(conn: Any, lv: ModuleType) -> list[Any]:
    return [
        conn.getInfo(),
        conn.getCapabilities(),
        outcome(lambda: conn.getCellsFreeMemory(0, 8), lv),
        outcome(lambda: conn.getCellsFreeMemory(1, 1), lv),
        outcome(conn.getFreeMemory, lv),
        sorted(conn.listDomainsID()),  # hash table order in libvirt
        sorted(conn.listDefinedDomains()),
        conn.numOfDevices(None),
        conn.listDevices("system"),
    ]


ASPECTS: dict[str, Callable[[Any, ModuleType], list[Any]]] = {
    "domains": _domains,
    "networks": lambda c, lv: _networks(c),
    "interfaces": lambda c, lv: _interfaces(c),
    "storage": lambda c, lv: _storage(c),
    "devices": _devices,
    "host": _host,
}


@pytest.mark.parametrize("node", NODE_FILES, ids=lambda p: p.name)
def test_node_file_serves_what_libvirts_test_driver_does(
    node: Path, daemon_uri: str, real_libvirt: ModuleType, pki: Path
) -> None:
    path = node.resolve()
    server = start_server("--node-xml", str(path), pki=pki, ro=False, tls=False)
    real = real_libvirt.open(f"{daemon_uri}{path}")
    ours = real_libvirt.open(server.tcp_uri)
    try:
        for name, aspect in ASPECTS.items():
            theirs = aspect(real, real_libvirt)
            assert theirs or node.name != "lab-full.xml", f"{name}: the full node file must have some"
            assert aspect(ours, real_libvirt) == theirs, name
    finally:
        ours.close()
        real.close()
        stop_servers([server])
