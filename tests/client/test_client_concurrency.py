"""Many threads on one sync connection: replies routed by serial, whatever their order;
and the connection's lifetime follows libvirt's reference counting."""

from __future__ import annotations

import gc
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
from virtwire.protocol.generated import remote

import virtwire.libvirt as vlibvirt

FakeDaemon = Any  # tests/client/conftest.py
GET_LIB_VERSION = remote.PROCEDURES_BY_NAME["CONNECT_GET_LIB_VERSION"].number
LOOKUP_BY_NAME = remote.PROCEDURES_BY_NAME["DOMAIN_LOOKUP_BY_NAME"].number
CONNECT_CLOSE = remote.PROCEDURES_BY_NAME["CONNECT_CLOSE"].number


def test_replies_out_of_order_reach_their_callers(fake_daemon: Callable[..., FakeDaemon]) -> None:
    counter = iter(range(1000, 2000))

    def deferred(_payload: bytes) -> Any:
        # Each call gets a distinct answer; all are held, then sent in reverse.
        return ("defer", struct.pack(">Q", next(counter)))

    daemon = fake_daemon(handlers={GET_LIB_VERSION: deferred})
    conn = vlibvirt.open(daemon.uri)
    results: dict[int, int] = {}

    def worker(i: int) -> None:
        results[i] = conn.getLibVersion()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    while daemon.procedures().count(GET_LIB_VERSION) < 8:
        daemon.call_arrived.wait(0.5)
        daemon.call_arrived.clear()
    sent = {serial: struct.unpack(">Q", body)[0] for _, _, serial, body in daemon.deferred}
    daemon.release_deferred(lambda d: list(reversed(d)))
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    # Every thread got the answer to its own serial: the 8 distinct values, once each.
    assert sorted(results.values()) == sorted(sent.values())
    conn.close()


@pytest.mark.parametrize("transport", ["tcp", "unix", "tls"])
def test_threads_share_a_connection_to_real_libvirtd(real_libvirtd: Any, transport: str) -> None:
    """One thread reads while others write: over TLS too (one SSL object, many threads)."""
    conn = vlibvirt.open(getattr(real_libvirtd, f"{transport}_uri"))
    dom = conn.lookupByName("test")
    expected = dom.info()[:4]
    errors: list[BaseException] = []
    seen: list[list[int]] = []

    def worker() -> None:
        try:
            for _ in range(50):
                seen.append(dom.info()[:4])
                assert conn.lookupByName("test").UUIDString() == dom.UUIDString()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(seen) == 800 and all(s == expected for s in seen)
    conn.close()


def test_domains_keep_a_closed_connection_open(fake_daemon: Callable[..., FakeDaemon]) -> None:
    ref = remote.remote_nonnull_domain(name="vm", uuid=b"\x01" * 16, id=1)
    daemon = fake_daemon(
        handlers={
            LOOKUP_BY_NAME: lambda p: remote.remote_domain_lookup_by_name_ret(dom=ref).to_bytes(),
            GET_LIB_VERSION: lambda p: struct.pack(">Q", 9000000),
        }
    )
    conn = vlibvirt.open(daemon.uri)
    first, second = conn.lookupByName("vm"), conn.lookupByName("vm")
    assert conn.close() == 2
    assert CONNECT_CLOSE not in daemon.procedures()
    assert first.name() == "vm" and first.connect() is conn
    del first
    gc.collect()
    assert CONNECT_CLOSE not in daemon.procedures()
    del second
    gc.collect()
    # The last reference sends CONNECT_CLOSE, as libvirt does.
    assert daemon.procedures()[-1] == CONNECT_CLOSE


def test_sixty_four_threads_with_events_and_keepalive(real_libvirtd: Any) -> None:
    """64 threads calling on one connection while the event loop thread runs
    keepalive and delivers lifecycle events: every call gets its own answer,
    every event arrives once."""
    import uuid

    from virtwire.client import eventloop

    vlibvirt.virEventRegisterDefaultImpl()
    conn = vlibvirt.open(real_libvirtd.tcp_uri)
    conn.setKeepAlive(1, 3)
    name = f"vw-many-{uuid.uuid4().hex[:8]}"
    seen_events: list[tuple[str, int]] = []
    stop = threading.Event()

    def on_lifecycle(_c: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        if dom.name() == name:
            seen_events.append((dom.name(), event))

    def run_loop() -> None:
        while not stop.is_set():
            vlibvirt.virEventRunDefaultImpl()

    callback = conn.domainEventRegisterAny(None, vlibvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
    loop = threading.Thread(target=run_loop, daemon=True)
    loop.start()
    dom = conn.lookupByName("test")
    expected = dom.info()[:4]
    errors: list[BaseException] = []
    counts = [0] * 64

    def worker(i: int) -> None:
        try:
            for _ in range(20):
                assert dom.info()[:4] == expected
                counts[i] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    xml = (
        f"<domain type='test'><name>{name}</name><memory>65536</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )
    transient = conn.createXML(xml, 0)
    transient.destroy()
    for t in threads:
        t.join(120)
    for _ in range(200):
        if len(seen_events) >= 2:
            break
        threading.Event().wait(0.05)  # the loop thread delivers them
    conn.domainEventDeregisterAny(callback)
    stop.set()
    conn.close()
    default_loop = eventloop.default()
    assert default_loop is not None
    default_loop.wake()  # out of its select, to see `stop`
    loop.join(10)
    assert not loop.is_alive()
    assert errors == [] and counts == [20] * 64
    started, stopped = vlibvirt.VIR_DOMAIN_EVENT_STARTED, vlibvirt.VIR_DOMAIN_EVENT_STOPPED
    assert seen_events == [(name, started), (name, stopped)]


def test_a_thread_finding_the_socket_busy_queues_its_packet() -> None:
    """While one thread is blocked writing, another does not wait for the send
    lock: its packet is queued and the writing thread sends it, whole, after its own."""
    import socket

    from virtwire.client.sync import SyncConnection

    ours, peer = socket.socketpair()
    try:
        conn = SyncConnection(ours)
        big = b"A" * (4 * 1024 * 1024)  # more than the socket buffers: the write blocks
        writer = threading.Thread(target=conn._send, args=(big,))
        writer.start()
        while not conn._send_lock.locked() or conn._outbox:  # the big packet is being written
            threading.Event().wait(0.01)
        conn._send(b"B" * 100)  # returns at once: queued for the writing thread
        assert conn._outbox == [b"B" * 100]
        received = bytearray()
        while len(received) < len(big) + 100:
            received += peer.recv(1 << 20)
        writer.join()
        assert bytes(received) == big + b"B" * 100 and conn._outbox == []
    finally:
        ours.close()
        peer.close()


@pytest.mark.parametrize("nthreads", [1, 4])
def test_calls_leave_no_garbage_for_the_cycle_collector(real_libvirtd: Any, nthreads: int) -> None:
    """A call's reply, waiter and wake-up lock die by reference counting: a
    cycle among them (reply -> waiter -> reply) would leave the cyclic GC
    objects to collect on every call, a cost paid per call under load."""
    conn = vlibvirt.open(real_libvirtd.tcp_uri)
    dom = conn.lookupByName("test")
    dom.info()  # first-call paths (caches, lazy imports) before counting
    calls_per_thread = 50

    def worker() -> None:
        for _ in range(calls_per_thread):
            dom.info()

    gc.collect()
    gc.disable()
    try:
        threads = [threading.Thread(target=worker) for _ in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del threads
        unreachable = gc.collect()
    finally:
        gc.enable()
        conn.close()
    # Thread objects themselves may leave a few cycles; one per call would be hundreds.
    assert unreachable < calls_per_thread, unreachable


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("role", ["sleeper", "reader"])
def test_an_interrupted_call_leaves_the_connection_usable(
    fake_daemon: Callable[..., FakeDaemon], role: str
) -> None:
    """A call cut short by an exception (a signal handler's, in the main thread)
    while it sleeps or while it reads: the lock and the reader role are given
    back, the thread's wake-up lock (reused from sleep to sleep) stays usable,
    and the thread's next call is answered as usual."""
    import signal

    def deferred(_payload: bytes) -> Any:
        return ("defer", struct.pack(">Q", 9000000))

    daemon = fake_daemon(handlers={GET_LIB_VERSION: deferred})
    conn = vlibvirt.open(daemon.uri)
    sock_conn = conn._sock
    results: list[int] = []

    def other_call() -> None:
        results.append(conn.getLibVersion())

    def wait_for_calls(n: int) -> None:
        while daemon.procedures().count(GET_LIB_VERSION) < n:
            daemon.call_arrived.wait(0.5)
            daemon.call_arrived.clear()

    def interrupt(_signum: int, _frame: Any) -> None:
        raise _Interrupted

    background = threading.Thread(target=other_call)
    if role == "sleeper":
        background.start()  # its call reads the socket; the main thread's sleeps
        while not sock_conn.busy:
            daemon.call_arrived.wait(0.01)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(_Interrupted):
            conn.getLibVersion()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if role == "reader":
        background.start()  # it takes the reader role the main thread gave back
        while not sock_conn.busy:
            daemon.call_arrived.wait(0.01)
    def release_when_all_three_arrived() -> None:
        wait_for_calls(3)
        daemon.release_deferred()

    releaser = threading.Thread(target=release_when_all_three_arrived)
    releaser.start()
    # The main thread's next call sleeps (the other thread reads) until its reply.
    assert conn.getLibVersion() == 9000000
    releaser.join(10)
    background.join(10)
    assert not background.is_alive()
    assert results == [9000000]
    conn.close()
