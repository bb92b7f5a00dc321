"""Random sequences of network calls give libvirtd's answers, state and events.

Hypothesis draws short programs over a few network names (define, start, stop,
undefine, transient create, autostart, DNS TXT updates live or config, lookups,
filtered listings); each step's outcome, the final state and the lifecycle
events must be the same on a real libvirtd and on ``virtwire serve``.  Every
example cleans up after itself, so one daemon and one server serve the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import EventLoop, NetworkEventLog, Pair

NAMES = ("alpha", "beta", "gamma")
UUIDS = {name: f"7a7a7a7a-0000-4000-8000-00000000000{i}" for i, name in enumerate(NAMES, start=1)}
VARIANTS = (
    "<bridge name='{short}br'/>",
    "<forward mode='route'/><ip address='10.{n}.0.1' prefix='24'/>",
    "<forward/><ip address='10.{n}.1.1' netmask='255.255.255.0'><dhcp>"
    "<range start='10.{n}.1.10' end='10.{n}.1.20'/></dhcp></ip>",
)


def _xml(name: str, variant: int, with_uuid: bool) -> str:
    n = NAMES.index(name) + 1
    uuid = f"<uuid>{UUIDS[name]}</uuid>" if with_uuid else ""
    body = VARIANTS[variant].format(short=name[:3], n=n)
    return f"<network><name>{name}</name>{uuid}{body}</network>"


def _step(kind: str, name: str, arg: int) -> Any:
    """One call, as a function of a connection."""
    if kind == "define":
        return lambda c: c.networkDefineXML(_xml(name, arg % 3, arg < 3)).name()
    if kind == "create_xml":
        return lambda c: c.networkCreateXML(_xml(name, arg % 3, True)).name()
    if kind == "start":
        return lambda c: c.networkLookupByName(name).create()
    if kind == "stop":
        return lambda c: c.networkLookupByName(name).destroy()
    if kind == "undefine":
        return lambda c: c.networkLookupByName(name).undefine()
    if kind == "autostart":
        return lambda c: c.networkLookupByName(name).setAutostart(arg % 2)
    if kind == "txt":
        command = 3 if arg % 2 == 0 else 2  # ADD_LAST or DELETE
        return lambda c: c.networkLookupByName(name).update(
            command, 11, -1, f"<txt name='t{arg % 2}' value='v'/>", arg % 4
        )
    if kind == "xml":
        return lambda c: c.networkLookupByName(name).XMLDesc()
    if kind == "info":
        return lambda c: (
            c.networkLookupByName(name).isActive(),
            c.networkLookupByName(name).isPersistent(),
            c.networkLookupByName(name).autostart(),
        )
    return lambda c: sorted(n.name() for n in c.listAllNetworks(arg * 4 % 64))


STEPS = st.tuples(
    st.sampled_from(
        ["define", "create_xml", "start", "stop", "undefine", "autostart", "txt", "xml", "info", "list"]
    ),
    st.sampled_from(NAMES),
    st.integers(min_value=0, max_value=15),
)


@pytest.fixture(scope="module")
def pair(
    real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory, pki: Path
) -> Iterator[tuple[Pair, NetworkEventLog, NetworkEventLog]]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-net-sequences"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    loop = EventLoop(real_libvirt)
    both = Pair(real_libvirt, daemon.tcp_uri, server.tcp_uri)
    real_log, our_log = NetworkEventLog(real_libvirt, both.real), NetworkEventLog(real_libvirt, both.ours)
    try:
        yield both, real_log, our_log
    finally:
        real_log.close()
        our_log.close()
        both.close()
        loop.stop()
        stop_servers([server])
        stop_libvirtd(daemon)


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FIXED = frozenset(UUIDS.values())


def _masked(value: object) -> str:
    """``value``'s repr with generated UUIDs (which differ between the sides) masked."""
    return _UUID_RE.sub(lambda m: m.group(0) if m.group(0) in _FIXED else "<generated>", repr(value))


def _clean(conn: Any) -> None:
    for net in conn.listAllNetworks():
        if net.name() in NAMES:
            persistent = net.isPersistent()
            if net.isActive():
                net.destroy()  # a transient network is gone with it
            if persistent:
                net.undefine()


def _state(conn: Any) -> str:
    return _masked(
        [
            (n.name(), n.isActive(), n.isPersistent(), n.autostart(), n.XMLDesc())
            for n in sorted(conn.listAllNetworks(), key=lambda n: n.name())
        ]
    )


@settings(max_examples=30)
@given(program=st.lists(STEPS, min_size=1, max_size=14))
def test_random_programs_match_libvirtd(
    pair: tuple[Pair, NetworkEventLog, NetworkEventLog], program: list[tuple[str, str, int]]
) -> None:
    both, real_log, our_log = pair
    try:
        for kind, name, arg in program:
            real, ours = both.both(_step(kind, name, arg))
            assert _masked(ours) == _masked(real), (kind, name, arg)
        assert _state(both.ours) == _state(both.real)
        assert our_log.drain() == real_log.drain()
    finally:
        _clean(both.real)
        _clean(both.ours)
        real_log.drain()
        our_log.drain()
