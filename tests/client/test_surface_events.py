"""Network and storage pool events: the same actions on a real
libvirtd give the same callbacks through the real libvirt-python and through
virtwire.libvirt (object, event, detail, opaque), each with its default event
loop running in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import virtwire.libvirt as ours


def _loop(module: Any, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            module.virEventRunDefaultImpl()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait(cond: Callable[[], bool], tick: threading.Event) -> None:
    for _ in range(200):  # bounded: at most ~10 s
        if cond():
            return
        tick.wait(0.05)
        tick.clear()


def _record(module: Any, uri: str) -> list[tuple[Any, ...]]:
    """Register for the events, act on the daemon with a second connection, return what arrived."""
    module.virEventRegisterDefaultImpl()
    listener = module.open(uri)
    actor = module.open(uri)
    seen: list[tuple[Any, ...]] = []
    tick = threading.Event()

    def with_detail(kind: str) -> Callable[..., None]:
        def cb(conn: Any, obj: Any, event: int, detail: int, opaque: Any) -> None:
            seen.append(
                (
                    kind,
                    conn is listener,
                    obj.name() if kind != "secret" else obj.usageID(),
                    event,
                    detail,
                    opaque,
                )
            )
            tick.set()

        return cb

    def plain(kind: str) -> Callable[..., None]:
        def cb(conn: Any, obj: Any, opaque: Any) -> None:
            seen.append((kind, conn is listener, obj.name() if kind != "secret" else obj.usageID(), opaque))
            tick.set()

        return cb

    ids = [
        ("network", listener.networkEventRegisterAny(None, 0, with_detail("network"), "n")),
        ("pool", listener.storagePoolEventRegisterAny(None, 0, with_detail("pool"), "p")),
        ("pool", listener.storagePoolEventRegisterAny(None, 1, plain("pool-refresh"), "r")),
    ]
    assert listener.networkEventCallbackID[ids[0][1]] == "n"
    stop = threading.Event()
    runner = _loop(module, stop)
    try:
        net = actor.networkLookupByName("default")
        net.destroy()
        net.create()
        pool = actor.storagePoolLookupByName("default-pool")
        pool.destroy()
        pool.create()
        pool.refresh()
        _wait(lambda: len(seen) >= 5, tick)
    finally:
        stop.set()
        for kind, cb_id in ids:
            {
                "network": listener.networkEventDeregisterAny,
                "pool": listener.storagePoolEventDeregisterAny,
                "secret": listener.secretEventDeregisterAny,
            }[kind](cb_id)
        listener.close()
        actor.close()
        runner.join(5)
    return seen


def test_object_events_as_libvirt_python(fresh_libvirtd: Any, real_libvirt: ModuleType) -> None:
    expected = _record(real_libvirt, fresh_libvirtd().unix_uri)
    got = _record(ours, fresh_libvirtd().unix_uri)
    assert len(expected) == 5
    assert got == expected


def test_bad_event_ids_and_callback_ids(real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    ours.virEventRegisterDefaultImpl()
    real_libvirt.virEventRegisterDefaultImpl()
    mine = ours.open(real_libvirtd.unix_uri)
    theirs = real_libvirt.open(real_libvirtd.unix_uri)
    try:
        calls: list[Callable[[Any], Any]] = [
            lambda c: c.networkEventRegisterAny(None, 5, lambda *a: None, None),
            lambda c: c.secretEventRegisterAny(None, 2, lambda *a: None, None),
            lambda c: c.nodeDeviceEventDeregisterAny(12345),
        ]
        for call in calls:
            errs = []
            for conn, module in ((theirs, real_libvirt), (mine, ours)):
                module.virResetLastError()
                try:
                    call(conn)
                except module.libvirtError as exc:
                    errs.append((str(exc), exc.err))
            assert len(errs) == 2
            assert errs[0] == errs[1]
    finally:
        mine.close()
        theirs.close()
