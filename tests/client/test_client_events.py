"""Domain events through both APIs, from a real daemon and from crafted messages."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
import virtwire.client
from virtwire.protocol.generated import remote
from virtwire.protocol.typedparams import dict_to_params

import virtwire.libvirt as vlibvirt

FakeDaemon = Any  # tests/client/conftest.py


def _run_loop_until(stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            vlibvirt.virEventRunDefaultImpl()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def _wait_for(cond: Callable[[], bool], done: threading.Event) -> None:
    """Wait (bounded) until `cond()` holds; `done` is set by callbacks as they run."""
    for _ in range(200):
        if cond():
            return
        done.wait(0.05)
        done.clear()


@pytest.fixture(params=["libvirtd", "virtwire"])
def server(request: pytest.FixtureRequest) -> Any:
    if request.param == "libvirtd":
        return request.getfixturevalue("real_libvirtd")
    return request.getfixturevalue("virtwire_host")


def test_lifecycle_events(server: Any) -> None:
    vlibvirt.virEventRegisterDefaultImpl()
    listener = vlibvirt.open(server.tcp_uri)
    actor = vlibvirt.open(server.unix_uri)
    seen: list[tuple[Any, ...]] = []
    got = threading.Event()
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []

    def cb(conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        threads.append(threading.current_thread())
        seen.append((conn is listener, dom.name(), event, detail, opaque))
        got.set()

    cb_id = listener.domainEventRegisterAny(None, vlibvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, "opaque")
    stop = threading.Event()
    runner = _run_loop_until(stop)
    try:
        dom = actor.lookupByName("test")
        dom.suspend()
        dom.resume()
        _wait_for(lambda: len(seen) >= 2, got)
    finally:
        stop.set()
        listener.domainEventDeregisterAny(cb_id)
        listener.close()  # wakes the loop, which then sees `stop`
        actor.close()
        runner.join(5)
    assert seen[:2] == [
        (
            True,
            "test",
            vlibvirt.VIR_DOMAIN_EVENT_SUSPENDED,
            vlibvirt.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED,
            "opaque",
        ),
        (
            True,
            "test",
            vlibvirt.VIR_DOMAIN_EVENT_RESUMED,
            vlibvirt.VIR_DOMAIN_EVENT_RESUMED_UNPAUSED,
            "opaque",
        ),
    ]
    # Callbacks run on the thread that runs virEventRunDefaultImpl.
    assert all(t is runner for t in threads) and loop_thread is not runner


def test_legacy_domain_event_register(server: Any) -> None:
    """domainEventRegister/Deregister: several lifecycle callbacks on one registration."""
    vlibvirt.virEventRegisterDefaultImpl()
    listener = vlibvirt.open(server.tcp_uri)
    actor = vlibvirt.open(server.unix_uri)
    seen: list[tuple[Any, ...]] = []
    got = threading.Event()

    def first(conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        seen.append(("first", dom.name(), event, detail, opaque))
        got.set()

    def second(conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        seen.append(("second", dom.name(), event, detail, opaque))

    listener.domainEventRegister(first, 1)
    listener.domainEventRegister(second, 2)
    stop = threading.Event()
    runner = _run_loop_until(stop)
    try:
        dom = actor.lookupByName("test")
        dom.suspend()
        dom.resume()
        _wait_for(lambda: len(seen) >= 4, got)
    finally:
        stop.set()
        listener.domainEventDeregister(first)
        listener.domainEventDeregister(second)
        listener.close()
        actor.close()
        runner.join(5)
    suspended = (vlibvirt.VIR_DOMAIN_EVENT_SUSPENDED, vlibvirt.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED)
    assert seen[:2] == [("first", "test", *suspended, 1), ("second", "test", *suspended, 2)]
    assert len(seen) == 4


def _dom() -> Any:
    return remote.remote_nonnull_domain(name="vm1", uuid=b"\x11" * 16, id=7)


def _msg(name: str, **fields: Any) -> bytes:
    proc = remote.PROCEDURES_BY_NAME[name]
    assert proc.msg is not None
    return bytes(proc.msg(**fields).to_bytes())


def test_migration_iteration_and_job_completed_callbacks(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """Events the test driver never emits, crafted on the wire as libvirtd sends them."""
    registered: list[int] = []

    def register(payload: bytes) -> bytes:
        callback_id = 40 + len(registered)
        registered.append(callback_id)
        return remote.remote_connect_domain_event_callback_register_any_ret(callbackID=callback_id).to_bytes()

    daemon = fake_daemon(handlers={316: register, 317: lambda p: b""})
    vlibvirt.virEventRegisterDefaultImpl()
    conn = vlibvirt.open(daemon.uri)
    seen: list[Any] = []
    got = threading.Event()

    def on_iter(c: Any, dom: Any, iteration: int, opaque: Any) -> None:
        seen.append(("iteration", dom.name(), dom.ID(), iteration, opaque))
        got.set()

    def on_done(c: Any, dom: Any, params: dict[str, Any], opaque: Any) -> None:
        seen.append(("completed", dom.name(), params, opaque))
        got.set()

    it_id = conn.domainEventRegisterAny(None, vlibvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, on_iter, 1)
    done_id = conn.domainEventRegisterAny(None, vlibvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, on_done, 2)
    assert (it_id, done_id) == (40, 41)
    stop = threading.Event()
    runner = _run_loop_until(stop)
    try:
        daemon.send_message(
            remote.PROCEDURES_BY_NAME["DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION"].number,
            _msg("DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION", callbackID=it_id, dom=_dom(), iteration=3),
        )
        params = dict_to_params({"operation": 5, "time_elapsed": 1234, "success": True})
        daemon.send_message(
            remote.PROCEDURES_BY_NAME["DOMAIN_EVENT_CALLBACK_JOB_COMPLETED"].number,
            _msg("DOMAIN_EVENT_CALLBACK_JOB_COMPLETED", callbackID=done_id, dom=_dom(), params=params),
        )
        # An event for a callback ID nobody registered is dropped.
        daemon.send_message(
            remote.PROCEDURES_BY_NAME["DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION"].number,
            _msg("DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION", callbackID=999, dom=_dom(), iteration=9),
        )
        _wait_for(lambda: len(seen) >= 2, got)
        conn.domainEventDeregisterAny(it_id)
    finally:
        stop.set()
        conn.close()  # wakes the loop, which then sees `stop`
        runner.join(5)
    assert seen == [
        ("iteration", "vm1", 7, 3, 1),
        ("completed", "vm1", {"operation": 5, "time_elapsed": 1234, "success": True}, 2),
    ]
    assert daemon.procedures().count(317) == 1


async def test_trio_domain_events(server: Any) -> None:
    got = []
    async with (
        await virtwire.client.connect(server.tcp_uri) as listener,
        await virtwire.client.connect(server.unix_uri) as actor,
        listener.domain_events(vlibvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE) as events,
    ):
        dom = await actor.lookup_by_name("test")
        await dom.suspend()
        await dom.resume()
        with trio.fail_after(10):
            async for ev in events:
                got.append((ev.event_id, ev.domain.name, ev.args))
                if len(got) == 2:
                    break
    assert got == [
        (0, "test", (vlibvirt.VIR_DOMAIN_EVENT_SUSPENDED, vlibvirt.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED)),
        (0, "test", (vlibvirt.VIR_DOMAIN_EVENT_RESUMED, vlibvirt.VIR_DOMAIN_EVENT_RESUMED_UNPAUSED)),
    ]


def _decode(name: str, **fields: Any) -> Any:
    from virtwire.client import events

    proc = remote.PROCEDURES_BY_NAME[name]
    return events.decode(proc.number, _msg(name, **fields))


def test_every_domain_event_id_has_a_procedure() -> None:
    from virtwire.client import events

    assert sorted(events.PROC_BY_EVENT_ID) == list(range(vlibvirt.VIR_DOMAIN_EVENT_ID_LAST))


def test_event_arguments_have_libvirt_pythons_shapes() -> None:
    R = remote
    graphics = _decode(
        "DOMAIN_EVENT_CALLBACK_GRAPHICS",
        callbackID=5,
        msg=R.remote_domain_event_graphics_msg(
            dom=_dom(),
            phase=1,
            local=R.remote_domain_event_graphics_address(family=0, node="127.0.0.1", service="5900"),
            remote=R.remote_domain_event_graphics_address(family=0, node="10.0.0.9", service="41000"),
            authScheme="vnc",
            subject=[R.remote_domain_event_graphics_identity(type="x509dname", name="CN=me")],
        ),
    )
    assert (graphics.event_id, graphics.callback_id, graphics.dom.name) == (5, 5, "vm1")
    assert graphics.args == (
        1,
        {"family": 0, "node": "127.0.0.1", "service": "5900"},
        {"family": 0, "node": "10.0.0.9", "service": "41000"},
        "vnc",
        [("x509dname", "CN=me")],
    )
    wake = _decode(
        "DOMAIN_EVENT_CALLBACK_PMWAKEUP",
        callbackID=1,
        reason=0,
        msg=R.remote_domain_event_pmwakeup_msg(dom=_dom()),
    )
    assert (wake.event_id, wake.args) == (vlibvirt.VIR_DOMAIN_EVENT_ID_PMWAKEUP, (0,))
    tunable = _decode(
        "DOMAIN_EVENT_CALLBACK_TUNABLE",
        callbackID=2,
        dom=_dom(),
        params=dict_to_params({"cputune.shares": 1024}),
    )
    assert tunable.args == ({"cputune.shares": 1024},)
    disk = _decode(
        "DOMAIN_EVENT_CALLBACK_DISK_CHANGE",
        callbackID=3,
        msg=R.remote_domain_event_disk_change_msg(
            dom=_dom(), oldSrcPath=None, newSrcPath="/b.iso", devAlias="ide0-1-0", reason=0
        ),
    )
    assert disk.args == (None, "/b.iso", "ide0-1-0", 0)
    threshold = _decode(
        "DOMAIN_EVENT_BLOCK_THRESHOLD", callbackID=4, dom=_dom(), dev="vda", path=None, threshold=10, excess=2
    )
    assert (threshold.event_id, threshold.args) == (24, ("vda", None, 10, 2))


async def test_trio_subscriber_that_falls_behind_is_told_not_skipped() -> None:
    from virtwire.client.aio import DomainEventRecord, EventSubscription

    subscription = EventSubscription(2)
    for n in range(4):  # two fit, the third ends the subscription, the fourth is lost too
        subscription.deliver(DomainEventRecord(0, None, (n,)))  # type: ignore[arg-type]
    assert subscription.lost == 2
    got = [await subscription.receive(), await subscription.receive()]
    assert [ev.args for ev in got] == [(0,), (1,)]
    with pytest.raises(vlibvirt.libvirtError) as caught:
        await subscription.receive()
    assert caught.value.get_error_code() == vlibvirt.VIR_ERR_RPC
    assert "fell behind by more than 2 events" in str(caught.value.get_error_message())


async def test_trio_subscription_ends_quietly_when_closed() -> None:
    from virtwire.client.aio import EventSubscription

    subscription = EventSubscription(2)
    subscription.close()
    assert [ev async for ev in subscription] == []
