"""The real libvirt-python 9.0 against `virtwire serve`, side by side with a real libvirtd."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, stop_libvirtd

MINI = "<domain type='test'><name>{}</name><memory>1024</memory><os><type>hvm</type></os></domain>"


@pytest.fixture
def both(
    real_libvirt: ModuleType, virtwire_host: VirtwireServer, real_libvirtd: RealLibvirtd
) -> Iterator[tuple[Any, Any]]:
    ours = real_libvirt.open(virtwire_host.tcp_uri)
    real = real_libvirt.open(real_libvirtd.tcp_uri)
    try:
        yield ours, real
    finally:
        ours.close()
        real.close()


def _error(lv: ModuleType, call: Callable[[], object]) -> tuple[object, ...]:
    with pytest.raises(lv.libvirtError) as info:
        call()
    return tuple(info.value.err)


def test_host_answers_match(both: tuple[Any, Any]) -> None:
    ours, real = both
    for name in (
        "getType",
        "getVersion",
        "getLibVersion",
        "getInfo",
        "getCapabilities",
        "getFreeMemory",
        "isSecure",
        "isEncrypted",
        "getSecurityModel",
        "listDomainsID",
        "numOfDomains",
    ):
        assert getattr(ours, name)() == getattr(real, name)(), name
    assert ours.getMaxVcpus(None) == real.getMaxVcpus(None)


def test_test_domain_matches(both: tuple[Any, Any]) -> None:
    ours, real = both
    mine, theirs = ours.lookupByName("test"), real.lookupByName("test")
    assert (mine.name(), mine.UUIDString(), mine.ID()) == (theirs.name(), theirs.UUIDString(), theirs.ID())
    assert mine.info()[:4] == theirs.info()[:4]
    for name in ("state", "OSType", "isActive", "isPersistent", "autostart", "maxMemory", "securityLabel"):
        assert getattr(mine, name)() == getattr(theirs, name)(), name
    for flags in (0, 1, 2):
        assert mine.XMLDesc(flags) == theirs.XMLDesc(flags)
    assert ours.lookupByID(1).name() == "test"
    assert ours.lookupByUUIDString("6695eb01-f6a4-8304-79aa-97f2502e193f").name() == "test"


def test_errors_match_field_for_field(real_libvirt: ModuleType, both: tuple[Any, Any]) -> None:
    ours, real = both
    cases: list[Callable[[Any], object]] = [
        lambda c: c.lookupByName("nosuch"),
        lambda c: c.lookupByID(99),
        lambda c: c.lookupByUUIDString("6695eb01-f6a4-8304-79aa-97f2502e1930"),
        lambda c: c.lookupByName("test").resume(),
        lambda c: c.lookupByName("test").create(),
        lambda c: c.lookupByName("test").state(1),
        lambda c: c.listAllDomains(1 << 30),
        lambda c: c.defineXML("<foo/>"),
        lambda c: c.defineXML("<domain type='test'></domain>"),
        lambda c: c.defineXML(MINI.format("test")),
        lambda c: c.defineXML(
            MINI.format("o</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid><name>o")
        ),
        lambda c: c.createXML(MINI.format("test"), 0),
    ]
    for case in cases:
        mine = _error(real_libvirt, lambda case=case: case(ours))  # type: ignore[misc]
        assert mine == _error(real_libvirt, lambda case=case: case(real))  # type: ignore[misc]


def test_lifecycle_through_the_api(
    real_libvirt: ModuleType, virtwire_server: Callable[..., VirtwireServer]
) -> None:
    server = virtwire_server(tls=False)
    conn = real_libvirt.open(server.unix_uri)
    try:
        dom = conn.defineXML(MINI.format("py1"))
        assert (dom.ID(), dom.isActive(), dom.isPersistent(), dom.state()) == (-1, 0, 1, [5, 0])
        dom.create()
        assert (dom.ID(), dom.state()) == (2, [1, 1])
        dom.suspend()
        assert dom.state() == [3, 1]
        dom.resume()
        assert dom.state() == [1, 5]
        dom.shutdown()
        assert dom.state() == [5, 1]
        dom.setAutostart(1)
        assert dom.autostart() == 1
        names = sorted(d.name() for d in conn.listAllDomains(real_libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE))
        assert names == ["py1"]
        assert conn.listDefinedDomains() == ["py1"]
        dom.undefine()
        err = _error(real_libvirt, dom.info)
        assert err[:2] == (42, 12)
        assert err[2] == f"Domain not found: no domain with matching uuid '{dom.UUIDString()}' (py1)"
        t = conn.createXML(MINI.format("tr1"), 0)
        assert (t.isPersistent(), t.state()) == (0, [1, 1])
        assert _error(real_libvirt, t.undefine)[:3] == (
            55,
            12,
            "Requested operation is not valid: cannot undefine transient domain",
        )
        t.destroy()
        assert _error(real_libvirt, lambda: conn.lookupByName("tr1"))[:3] == (42, 12, "Domain not found")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (0, ["p-off", "p-run", "t-run", "test"]),
        (1, ["p-run", "t-run", "test"]),  # ACTIVE
        (2, ["p-off"]),  # INACTIVE
        (4, ["p-off", "p-run", "test"]),  # PERSISTENT
        (8, ["t-run"]),  # TRANSIENT
        (16, ["p-run", "t-run"]),  # RUNNING
        (32, ["test"]),  # PAUSED
        (64, ["p-off"]),  # SHUTOFF
        (1 | 8, ["t-run"]),
        (1024, ["p-off"]),  # AUTOSTART
        (2048, ["p-run", "t-run", "test"]),  # NO_AUTOSTART
        (4096, []),  # HAS_SNAPSHOT
    ],
)
def test_list_all_domains_filters(
    real_libvirt: ModuleType, virtwire_server: Callable[..., VirtwireServer], flags: int, expected: list[str]
) -> None:
    server = virtwire_server(tls=False, ro=False)
    conn = real_libvirt.open(server.tcp_uri)
    try:
        conn.defineXML(MINI.format("p-off")).setAutostart(1)
        conn.defineXML(MINI.format("p-run")).create()
        conn.createXML(MINI.format("t-run"), 0)
        conn.lookupByName("test").suspend()
        assert sorted(d.name() for d in conn.listAllDomains(flags)) == expected
    finally:
        conn.close()


def test_read_only_open_is_enforced_by_the_server_too(
    real_libvirt: ModuleType, virtwire_host: VirtwireServer
) -> None:
    conn = real_libvirt.openReadOnly(virtwire_host.tcp_uri)
    try:
        err = _error(real_libvirt, conn.lookupByName("test").suspend)
        assert err == (
            29,
            20,
            "operation forbidden: read only access prevents virDomainSuspend",
            2,
            "operation forbidden: %s",
            "read only access prevents virDomainSuspend",
            None,
            -1,
            -1,
        )
        assert conn.lookupByName("test").info()[0] in (1, 3)
    finally:
        conn.close()


def _probe_domain_answers(lv: ModuleType, conn: Any) -> list[tuple[str, object]]:
    xml = (
        "<domain type='test'><name>vc1</name><uuid>df34067f-b57c-4eb3-931a-57b41a287c8b</uuid>"
        "<memory>1024</memory><vcpu current='1'>3</vcpu><os><type>hvm</type></os></domain>"
    )
    inactive = conn.defineXML(xml)
    out: list[tuple[str, object]] = []
    try:
        for dom in (conn.lookupByName("test"), inactive):
            calls: list[tuple[str, Callable[[], object]]] = [
                *((f"vcpusFlags({f})", partial(dom.vcpusFlags, f)) for f in (0, 1, 2, 4, 5, 6, 8, 16)),
                ("controlInfo", dom.controlInfo),
                ("hostname", dom.hostname),
                ("schedulerType", dom.schedulerType),
                ("maxVcpus", dom.maxVcpus),
                ("info", dom.info),
                ("XMLDesc", dom.XMLDesc),
            ]
            for label, call in calls:
                try:
                    answer = call()
                    if label == "info":
                        answer = answer[:4]  # type: ignore[index]  # cpuTime is the wall clock
                    out.append((f"{dom.name()} {label}", answer))
                except lv.libvirtError as exc:
                    out.append((f"{dom.name()} {label}", tuple(exc.err)))
    finally:
        inactive.undefine()
    return out


def test_vcpus_control_hostname_scheduler_match(real_libvirt: ModuleType, both: tuple[Any, Any]) -> None:
    ours, real = both
    assert _probe_domain_answers(real_libvirt, ours) == _probe_domain_answers(real_libvirt, real)


def _events_then_close(
    lv: ModuleType, uri: str, stop_server: Callable[[], object]
) -> tuple[list[object], list[int]]:
    """What OpenStack does: the default event loop, lifecycle callbacks, a close callback."""
    import threading

    lv.virEventRegisterDefaultImpl()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            lv.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = lv.open(uri)
    seen: list[object] = []
    closed: list[int] = []
    got_two = threading.Event()
    got_close = threading.Event()

    def on_lifecycle(_c: Any, dom: Any, event: int, detail: int, _o: Any) -> None:
        seen.append((dom.name(), event, detail))
        if len(seen) == 2:
            got_two.set()

    def on_close(_c: Any, reason: int, _o: Any) -> None:
        closed.append(reason)
        got_close.set()

    try:
        conn.setKeepAlive(5, 3)
        conn.registerCloseCallback(on_close, None)
        callback_id = conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
        other = lv.open(uri)
        other.lookupByName("test").suspend()
        other.lookupByName("test").resume()
        other.close()
        assert got_two.wait(20)
        conn.domainEventDeregisterAny(callback_id)
        stop_server()
        assert got_close.wait(20)
    finally:
        stop.set()
        with contextlib.suppress(lv.libvirtError):
            conn.close()
    return seen, closed


def test_events_and_close_callback_match_libvirtd(
    real_libvirt: ModuleType,
    virtwire_server: Callable[..., VirtwireServer],
    fresh_libvirtd: Callable[..., RealLibvirtd],
) -> None:
    server = virtwire_server(tls=False, ro=False)
    ours = _events_then_close(real_libvirt, server.tcp_uri, server.stop)
    daemon = fresh_libvirtd()
    real = _events_then_close(real_libvirt, daemon.tcp_uri, lambda: stop_libvirtd(daemon))
    assert ours == real
    assert ours[0] == [("test", 3, 0), ("test", 4, 0)]
