"""Random sequences of host interface calls give libvirtd's answers and state.

Hypothesis draws short programs (define, start, stop, undefine, change
transactions, lookups by name and MAC, filtered listings) over a few interface
names; each step's outcome and the final state must be the same on a real
libvirtd and on ``virtwire serve``.  Every example puts the default ``eth1``
back and removes the rest, so one daemon and one server serve the module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import Pair

NAMES = ("eth1", "ifa", "ifb")
VARIANTS = (
    "<interface type='ethernet' name='{name}'><mac address='52:54:00:00:00:{n:02x}'/></interface>",
    "<interface type='ethernet' name='{name}'><start mode='onboot'/>"
    "<mac address='aa:bb:cc:dd:ee:ff'/></interface>",
    "<interface type='bridge' name='{name}'><bridge stp='off'/></interface>",
    "<interface type='vlan' name='{name}'><vlan tag='{n}'><interface name='eth1'/></vlan></interface>",
)
ETH1 = """<interface type="ethernet" name="eth1">
  <start mode="onboot"/>
  <mac address="aa:bb:cc:dd:ee:ff"/>
  <mtu size="1492"/>
  <protocol family="ipv4">
    <ip address="192.168.0.5" prefix="24"/>
    <route gateway="192.168.0.1"/>
  </protocol>
</interface>"""


def _step(kind: str, name: str, arg: int) -> Any:
    if kind == "define":
        xml = VARIANTS[arg % len(VARIANTS)].format(name=name, n=NAMES.index(name) + 1)
        return lambda c: c.interfaceDefineXML(xml).name()
    if kind == "start":
        return lambda c: c.interfaceLookupByName(name).create()
    if kind == "stop":
        return lambda c: c.interfaceLookupByName(name).destroy()
    if kind == "undefine":
        return lambda c: c.interfaceLookupByName(name).undefine()
    if kind == "begin":
        return lambda c: c.changeBegin()
    if kind == "commit":
        return lambda c: c.changeCommit()
    if kind == "rollback":
        return lambda c: c.changeRollback()
    if kind == "mac":
        mac = ("aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF", "52:54:00:00:00:02", "52:54:00:00:00:09")[arg % 4]
        return lambda c: c.interfaceLookupByMACString(mac).name()
    if kind == "xml":
        return lambda c: (c.interfaceLookupByName(name).XMLDesc(), c.interfaceLookupByName(name).isActive())
    return lambda c: (
        sorted(i.name() for i in c.listAllInterfaces(arg % 4)),
        c.numOfInterfaces(),
        sorted(c.listDefinedInterfaces()),
    )


STEPS = st.tuples(
    st.sampled_from(
        ["define", "start", "stop", "undefine", "begin", "commit", "rollback", "mac", "xml", "list"]
    ),
    st.sampled_from(NAMES),
    st.integers(min_value=0, max_value=7),
)


@pytest.fixture(scope="module")
def pair(real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Pair]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-iface-sequences"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    both = Pair(real_libvirt, daemon.tcp_uri, server.tcp_uri)
    try:
        yield both
    finally:
        both.close()
        stop_servers([server])
        stop_libvirtd(daemon)


def _reset(conn: Any, lv: ModuleType) -> None:
    """No transaction, eth1 as test:///default has it and running, nothing else."""
    with contextlib.suppress(lv.libvirtError):
        conn.changeCommit()
    for iface in conn.listAllInterfaces():
        if iface.name() != "eth1":
            iface.undefine()
    eth1 = conn.interfaceDefineXML(ETH1)
    if not eth1.isActive():
        eth1.create()


def _state(conn: Any) -> list[tuple[str, str, int, str]]:
    return [
        (i.name(), i.MACString(), i.isActive(), i.XMLDesc())
        for i in sorted(conn.listAllInterfaces(), key=lambda i: i.name())
    ]


@settings(max_examples=30)
@given(program=st.lists(STEPS, min_size=1, max_size=14))
def test_random_programs_match_libvirtd(
    real_libvirt: ModuleType, pair: Pair, program: list[tuple[str, str, int]]
) -> None:
    try:
        for kind, name, arg in program:
            real, ours = pair.both(_step(kind, name, arg))
            assert ours == real, (kind, name, arg)
        assert _state(pair.ours) == _state(pair.real)
    finally:
        _reset(pair.real, real_libvirt)
        _reset(pair.ours, real_libvirt)
