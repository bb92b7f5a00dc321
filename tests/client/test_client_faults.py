"""A dead or silent server never leaves a call hanging, in either API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
import virtwire.client
from virtwire.protocol.errors import libvirtError

import virtwire.libvirt as vlibvirt

FakeDaemon = Any  # tests/client/conftest.py

GET_LIB_VERSION = 157
EOF_ERROR = (
    38,
    7,
    "End of file while reading data: Input/output error",
    2,
    "%s",
    "End of file while reading data: Input/output error",
    None,
    5,
    -1,
)
CLOSED_ERROR = (
    1,
    7,
    "internal error: client socket is closed",
    2,
    "internal error: %s",
    "client socket is closed",
    None,
    -1,
    -1,
)
KEEPALIVE_ERROR = (
    1,
    7,
    "internal error: connection closed due to keepalive timeout",
    2,
    "internal error: %s",
    "connection closed due to keepalive timeout",
    None,
    -1,
    -1,
)


def _hang(_payload: bytes) -> Any:
    return "hang"


def test_server_killed_mid_call_fails_every_waiting_call(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang})
    conn = vlibvirt.open(daemon.uri)
    errors: list[Any] = []

    def waiter() -> None:
        try:
            conn.getLibVersion()
        except libvirtError as exc:
            errors.append(exc.err)

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for t in threads:
        t.start()
    while daemon.procedures().count(GET_LIB_VERSION) < 4:
        daemon.call_arrived.wait(1)
        daemon.call_arrived.clear()
    daemon.kill()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert errors == [EOF_ERROR] * 4  # libvirt-python's error, verbatim
    with pytest.raises(libvirtError) as later:
        conn.getLibVersion()
    assert later.value.err == CLOSED_ERROR
    assert conn.isAlive() == 0


def test_close_callback_reports_eof(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang})
    vlibvirt.virEventRegisterDefaultImpl()
    conn = vlibvirt.open(daemon.uri)
    reasons: list[Any] = []
    done = threading.Event()

    stop = threading.Event()

    def on_close(c: Any, reason: int, opaque: Any) -> None:
        reasons.append((c is conn, reason, opaque, threading.current_thread()))
        stop.set()  # the loop below ends after this iteration
        done.set()

    conn.registerCloseCallback(on_close, "op")
    assert 360 in daemon.procedures()  # the server supports close callbacks (feature 15)

    def call() -> None:
        with pytest.raises(libvirtError):
            conn.getLibVersion()

    caller = threading.Thread(target=call)
    caller.start()
    daemon.call_arrived.wait(10)

    def loop() -> None:
        while not stop.is_set():
            vlibvirt.virEventRunDefaultImpl()

    runner = threading.Thread(target=loop, daemon=True)
    runner.start()
    daemon.kill()
    caller.join(10)
    done.wait(10)
    runner.join(5)
    # Delivered on the event loop's thread, as libvirt-python does.
    assert reasons == [(True, vlibvirt.VIR_CONNECT_CLOSE_REASON_EOF, "op", runner)]


def test_keepalive_declares_a_silent_server_dead(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang}, answer_pings=False)
    vlibvirt.virEventRegisterDefaultImpl()
    conn = vlibvirt.open(daemon.uri)
    assert conn.setKeepAlive(1, 2) == 0
    with pytest.raises(libvirtError) as info:
        conn.getLibVersion()  # the waiting thread runs the keepalive clock itself
    assert info.value.err == KEEPALIVE_ERROR
    assert daemon.keepalive_seen == [1, 1]  # count PINGs, then dead at interval * (count + 1)


def test_keepalive_answered_keeps_connection(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon()
    vlibvirt.virEventRegisterDefaultImpl()
    conn = vlibvirt.open(daemon.uri)
    # Feature 10 is offered because an event loop is registered.
    assert daemon.procedures()[:3] == [66, 60, 1]
    assert conn.setKeepAlive(1, 1) == 0
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            vlibvirt.virEventRunDefaultImpl()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        for _ in range(60):
            if len(daemon.keepalive_seen) >= 2:
                break
            threading.Event().wait(0.25)
        assert len(daemon.keepalive_seen) >= 2
        assert conn.isAlive() == 1
    finally:
        stop.set()
        conn.close()
        t.join(5)


async def test_trio_call_fails_when_server_dies(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang})
    async with await virtwire.client.connect(daemon.uri) as conn:
        results: list[Any] = []

        async def waiter() -> None:
            try:
                await conn.get_lib_version()
            except libvirtError as exc:
                results.append(exc.err)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(waiter)
            while daemon.procedures().count(GET_LIB_VERSION) < 3:
                await trio.sleep(0.01)
            daemon.kill()
        assert results == [EOF_ERROR] * 3
        assert not conn.alive


async def test_trio_keepalive_timeout(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang}, answer_pings=False)
    async with await virtwire.client.connect(daemon.uri) as conn:
        conn.set_keepalive(0.2, 2)
        with pytest.raises(libvirtError) as info:
            await conn.get_lib_version()
        assert info.value.err == KEEPALIVE_ERROR
        assert daemon.keepalive_seen == [1, 1]


async def test_trio_cancelled_call_does_not_desynchronise(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """A call cancelled while waiting: its late reply is dropped, the next call gets its own."""
    release = threading.Event()
    answers = iter([b"\0\0\0\0\0\0\0\x01", b"\0\0\0\0\0\0\0\x02"])

    def slow_then_fast(_payload: bytes) -> Any:
        body = next(answers)
        if body.endswith(b"\x01"):
            release.wait(10)
        return body

    daemon = fake_daemon(handlers={GET_LIB_VERSION: slow_then_fast})
    async with await virtwire.client.connect(daemon.uri) as conn:
        with trio.move_on_after(0.2) as scope:
            await conn.get_lib_version()
        assert scope.cancelled_caught
        release.set()
        assert await conn.get_lib_version() == 2


def test_ping_answered_while_a_call_waits(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang})
    conn = vlibvirt.open(daemon.uri)
    failures: list[Any] = []

    def call() -> None:
        try:
            conn.getLibVersion()
        except libvirtError as exc:
            failures.append(exc.err)

    caller = threading.Thread(target=call)
    caller.start()
    daemon.call_arrived.wait(10)
    daemon.send_message(1, b"", program=0x6B656570)  # PING
    for _ in range(100):
        if daemon.keepalive_seen:
            break
        threading.Event().wait(0.05)
    assert daemon.keepalive_seen == [2]  # PONG, from the thread blocked in the call
    daemon.kill()
    caller.join(10)
    assert failures == [EOF_ERROR]


async def test_trio_ping_answered_while_a_call_waits(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: _hang})
    async with await virtwire.client.connect(daemon.uri) as conn, trio.open_nursery() as nursery:

        async def call() -> None:
            with pytest.raises(libvirtError):
                await conn.get_lib_version()

        nursery.start_soon(call)
        while GET_LIB_VERSION not in daemon.procedures():
            await trio.sleep(0.01)
        daemon.send_message(1, b"", program=0x6B656570)
        while not daemon.keepalive_seen:
            await trio.sleep(0.01)
        assert daemon.keepalive_seen == [2]
        daemon.kill()


async def test_trio_many_calls_some_cancelled_stay_in_sync(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """40 calls in flight (the coalescing writer), half cancelled: the rest get their own replies."""
    counter = iter(range(5000, 6000))

    def deferred(_payload: bytes) -> Any:
        return ("defer", next(counter).to_bytes(8, "big"))

    daemon = fake_daemon(handlers={GET_LIB_VERSION: deferred})
    results: list[int] = []
    async with await virtwire.client.connect(daemon.uri) as conn:
        scopes: list[trio.CancelScope] = []

        async def call(scope: trio.CancelScope) -> None:
            with scope:
                results.append(await conn.get_lib_version())

        async with trio.open_nursery() as nursery:
            for _ in range(40):
                scope = trio.CancelScope()
                scopes.append(scope)
                nursery.start_soon(call, scope)
            while len(daemon.deferred) < 40:
                await trio.sleep(0.01)
            for scope in scopes[::2]:
                scope.cancel()
            await trio.sleep(0.05)
            sent = {serial: int.from_bytes(body, "big") for _, _, serial, body in daemon.deferred}
            daemon.release_deferred(lambda d: list(reversed(d)))
        assert len(results) == 20 and len(set(results)) == 20 and set(results) <= set(sent.values())
        # Later calls still pair with their own replies.
        daemon.handlers[GET_LIB_VERSION] = lambda p: (7).to_bytes(8, "big")
        assert await conn.get_lib_version() == 7
