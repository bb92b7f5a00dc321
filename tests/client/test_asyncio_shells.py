"""One scenario suite, run under both async shells (trio: virtwire.client;
asyncio: virtwire.client.asyncio): connect, calls, events, errors, keepalive,
cancellation in the middle of a call, against a real libvirtd, `virtwire
serve` and the scriptable fake daemon.

Each scenario is written once against `Shell`, the few primitives that differ
between the two event loops (run, sleep, a task that can be cancelled).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
import trio
import virtwire.client
import virtwire.client.asyncio as vasyncio
from virtwire.protocol.errors import libvirtError

import virtwire.libvirt as vlibvirt

FakeDaemon = Any  # tests/client/conftest.py
GET_LIB_VERSION = 157
KEEPALIVE_ERROR_CODE = vlibvirt.VIR_ERR_INTERNAL_ERROR


class Handle:
    """A coroutine running in its own task, which the test may cancel."""

    def __init__(self) -> None:
        self.cancel: Callable[[], None] = lambda: None
        self.cancelled = False
        self.result: Any = None
        self.finished: Callable[[], Awaitable[Any]] = _nothing


async def _nothing() -> None:
    return None


Scenario = Callable[["Tasks"], Awaitable[None]]


class Tasks:
    """Start coroutines as tasks of the running shell."""

    def __init__(self, start: Callable[[Callable[[], Awaitable[Any]]], Handle]) -> None:
        self.start = start


@dataclass(frozen=True)
class Shell:
    name: str
    connect: Callable[..., Awaitable[Any]]
    run: Callable[[Scenario], None]
    sleep: Callable[[float], Awaitable[None]]


def _trio_run(scenario: Scenario) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:

            def start(fn: Callable[[], Awaitable[Any]]) -> Handle:
                handle = Handle()
                scope = trio.CancelScope()
                done = trio.Event()
                handle.cancel = scope.cancel
                handle.finished = done.wait

                async def body() -> None:
                    try:
                        with scope:
                            handle.result = await fn()
                        handle.cancelled = scope.cancelled_caught
                    finally:
                        done.set()

                nursery.start_soon(body)
                return handle

            await scenario(Tasks(start))

    trio.run(main)


def _asyncio_run(scenario: Scenario) -> None:
    async def main() -> None:
        tasks: list[asyncio.Task[None]] = []

        def start(fn: Callable[[], Awaitable[Any]]) -> Handle:
            handle = Handle()

            async def body() -> None:
                try:
                    handle.result = await fn()
                except asyncio.CancelledError:
                    handle.cancelled = True

            task = asyncio.get_running_loop().create_task(body())
            tasks.append(task)

            def cancel() -> None:
                task.cancel()

            handle.cancel = cancel

            async def finished() -> None:
                await task

            handle.finished = finished
            return handle

        try:
            await scenario(Tasks(start))
        finally:
            for task in tasks:
                await task

    asyncio.run(main())


SHELLS = [
    Shell("trio", virtwire.client.connect, _trio_run, trio.sleep),
    Shell("asyncio", vasyncio.connect, _asyncio_run, asyncio.sleep),
]


@pytest.fixture(params=SHELLS, ids=[s.name for s in SHELLS])
def shell(request: pytest.FixtureRequest) -> Shell:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["libvirtd-tcp", "libvirtd-unix", "virtwire-tcp"])
def server_uri(request: pytest.FixtureRequest) -> str:
    kind, transport = request.param.split("-")
    server = request.getfixturevalue("real_libvirtd" if kind == "libvirtd" else "virtwire_host")
    return str(getattr(server, f"{transport}_uri"))


def _error_fields(exc: Any) -> tuple[Any, ...]:
    return (exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())


# -- scenarios -------------------------------------------------------------------------------


def test_connect_and_calls_match_the_thread_shell(shell: Shell, server_uri: str) -> None:
    sync = vlibvirt.open(server_uri)

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(server_uri) as conn:
            assert conn.alive
            assert await conn.get_type() == sync.getType()
            assert await conn.get_hostname() == sync.getHostname()
            assert await conn.get_info() == sync.getInfo()
            assert sorted(d.name for d in await conn.list_all_domains()) == sorted(
                d.name() for d in sync.listAllDomains()
            )
            dom = await conn.lookup_by_name("test")
            sdom = sync.lookupByName("test")
            assert (dom.name, dom.uuid_string, dom.id) == (sdom.name(), sdom.UUIDString(), sdom.ID())
            assert await dom.state() == sdom.state()
            assert await dom.xml_desc() == sdom.XMLDesc()

    try:
        shell.run(main)
    finally:
        sync.close()


def test_errors_match_libvirt_python(shell: Shell, real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    theirs = real_libvirt.open(real_libvirtd.tcp_uri)
    with pytest.raises(real_libvirt.libvirtError) as expected:
        theirs.lookupByName("no-such-domain")
    theirs.close()

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri) as conn:
            with pytest.raises(libvirtError) as got:
                await conn.lookup_by_name("no-such-domain")
            assert _error_fields(got.value) == _error_fields(expected.value)
            assert await conn.get_type() == "TEST"  # the connection goes on

    shell.run(main)


def test_read_only_refused_locally(shell: Shell, real_libvirtd: Any) -> None:
    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri, readonly=True) as conn:
            dom = await conn.lookup_by_name("test")
            with pytest.raises(libvirtError) as got:
                await dom.suspend()
            assert got.value.get_error_code() == vlibvirt.VIR_ERR_OPERATION_DENIED

    shell.run(main)


def _transient_xml(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )


def test_lifecycle_events(shell: Shell, server_uri: str) -> None:
    """Start and destroy a transient domain: STARTED then STOPPED, for that domain."""
    name = f"vw-ev-{uuid.uuid4().hex[:8]}"

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(server_uri) as conn, conn.domain_events() as subscription:
            dom = await conn.create_xml(_transient_xml(name))
            await dom.destroy()
            seen: list[tuple[str, int]] = []
            async for event in subscription:
                if event.domain.name == name:
                    seen.append((event.domain.name, event.args[0]))
                if len(seen) == 2:
                    break
            assert seen == [
                (name, vlibvirt.VIR_DOMAIN_EVENT_STARTED),
                (name, vlibvirt.VIR_DOMAIN_EVENT_STOPPED),
            ]

    shell.run(main)


def test_event_overflow_is_reported(shell: Shell, real_libvirtd: Any) -> None:
    """A consumer that falls behind its buffer hears so after draining it; nothing is skipped silently."""

    async def main(tasks: Tasks) -> None:
        async with (
            await shell.connect(real_libvirtd.tcp_uri) as conn,
            conn.domain_events(buffer=1) as subscription,
        ):
            for n in range(2):
                dom = await conn.create_xml(_transient_xml(f"vw-of-{n}-{uuid.uuid4().hex[:6]}"))
                await dom.destroy()
            assert await conn.get_type() == "TEST"  # replies flow while events pile up
            got = []
            with pytest.raises(libvirtError) as overflow:
                async for event in subscription:
                    got.append(event)
            assert len(got) == 1
            assert overflow.value.get_error_code() == vlibvirt.VIR_ERR_RPC
            assert "fell behind by more than 1 events" in str(overflow.value.get_error_message())

    shell.run(main)


def test_keepalive_answered_by_libvirtd(shell: Shell, real_libvirtd: Any) -> None:
    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri) as conn:
            # Several intervals: PINGs go out and PONGs come back.  Two missed intervals
            # (0.2 s) before the peer counts as dead, so a loaded machine's late PONG is
            # not a death, while a daemon that never answered would be one long before 1 s.
            conn.set_keepalive(0.1, 2)
            await shell.sleep(1.0)
            assert conn.alive
            assert await conn.get_type() == "TEST"

    shell.run(main)


def test_keepalive_declares_silent_peer_dead(shell: Shell, fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: "hang"}, answer_pings=False)

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(daemon.uri) as conn:
            conn.set_keepalive(0.05, 2)
            with pytest.raises(libvirtError) as got:
                await conn.get_lib_version()
            assert got.value.get_error_code() == KEEPALIVE_ERROR_CODE
            message = "internal error: connection closed due to keepalive timeout"
            assert got.value.get_error_message() == message
            assert not conn.alive
            assert daemon.keepalive_seen == [1, 1]

    shell.run(main)


def test_cancel_mid_call_keeps_the_connection_in_sync(
    shell: Shell, fake_daemon: Callable[..., FakeDaemon]
) -> None:
    """A call cancelled after its packet went out: its late reply is dropped, the next
    call gets its own reply, and the daemon saw whole packets only."""
    answers = iter([(1).to_bytes(8, "big"), (2).to_bytes(8, "big")])
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: ("defer", next(answers))})

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(daemon.uri) as conn:
            handle = tasks.start(conn.get_lib_version)
            while not daemon.deferred:
                await shell.sleep(0.01)
            handle.cancel()
            await handle.finished()
            assert handle.cancelled
            daemon.release_deferred()  # the reply to the cancelled call arrives now
            second = tasks.start(conn.get_lib_version)
            while not daemon.deferred:
                await shell.sleep(0.01)
            daemon.release_deferred()
            await second.finished()
            assert second.result == 2
            assert conn.protocol.pending.waiters == {}
            assert [p for p in daemon.procedures() if p == GET_LIB_VERSION] == [GET_LIB_VERSION] * 2

    shell.run(main)


def test_many_tasks_share_one_connection(shell: Shell, real_libvirtd: Any) -> None:
    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri) as conn:
            dom = await conn.lookup_by_name("test")
            handles = []

            async def worker() -> list[list[int]]:
                return [(await dom.info())[:4] for _ in range(10)]

            for _ in range(32):
                handles.append(tasks.start(worker))
            for handle in handles:
                await handle.finished()
            results = [r for h in handles for r in h.result]
            assert len(results) == 320 and all(r == results[0] for r in results)

    shell.run(main)


def test_calls_leave_no_garbage_for_the_cycle_collector(shell: Shell, real_libvirtd: Any) -> None:
    """A call's reply and its future (asyncio) or waiter (trio) die by reference
    counting: a link back from the reply (reply -> waiter -> reply) would leave
    the cyclic GC two objects to collect per call, a cost paid per call under load."""
    ntasks, calls_per_task = 8, 25

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri, keepalive=False) as conn:
            dom = await conn.lookup_by_name("test")
            await dom.info()  # first-call paths (caches, lazy imports) before counting

            async def worker() -> None:
                for _ in range(calls_per_task):
                    await dom.info()

            gc.collect()
            gc.disable()
            try:
                handles = [tasks.start(worker) for _ in range(ntasks)]
                for handle in handles:
                    await handle.finished()
                del handles
                unreachable = gc.collect()
            finally:
                gc.enable()
            # The tasks themselves may leave a few cycles; one per call would be hundreds.
            assert unreachable < calls_per_task, unreachable

    shell.run(main)


def test_server_death_fails_waiting_calls(shell: Shell, fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: "hang"})
    arrived = threading.Event()

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(daemon.uri) as conn:

            async def call() -> Any:
                try:
                    return await conn.get_lib_version()
                except libvirtError as exc:
                    return exc

            handles = [tasks.start(call) for _ in range(3)]
            while len([p for p in daemon.procedures() if p == GET_LIB_VERSION]) < 3:
                await shell.sleep(0.01)
            arrived.set()
            daemon.kill()
            for handle in handles:
                await handle.finished()
            assert [h.result.get_error_message() for h in handles] == [
                "End of file while reading data: Input/output error"
            ] * 3
            assert not conn.alive

    shell.run(main)


def test_screenshot_stream(shell: Shell, real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    """A stream in the async shells: the test driver's screenshot, as libvirt-python gets it."""
    theirs_conn = real_libvirt.open(real_libvirtd.tcp_uri)
    theirs_stream = theirs_conn.newStream(0)
    theirs_mime = theirs_conn.lookupByName("test").screenshot(theirs_stream, 0, 0)
    parts: list[bytes] = []
    theirs_stream.recvAll(lambda _st, buf, _o: parts.append(buf), None)
    theirs_stream.finish()
    theirs_conn.close()

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri) as conn:
            dom = await conn.lookup_by_name("test")
            async with await conn.screenshot(dom) as stream:
                image = b"".join([chunk async for chunk in stream if isinstance(chunk, bytes)])
            assert (stream.result, image) == (theirs_mime, b"".join(parts))
            assert stream.state.closed == "finished"

    shell.run(main)


def test_cancel_mid_facade_shaped_call(shell: Shell, fake_daemon: Callable[..., FakeDaemon]) -> None:
    """The same through a libvirt-python-named method whose shape is the facade's
    (getLibVersion runs the facade's code in a greenlet, client/bridge.py): the
    cancellation unwinds that code, and the connection stays in sync."""
    answers = iter([(1).to_bytes(8, "big"), (2).to_bytes(8, "big")])
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: ("defer", next(answers))})

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(daemon.uri) as conn:
            handle = tasks.start(conn.getLibVersion)
            while not daemon.deferred:
                await shell.sleep(0.01)
            handle.cancel()
            await handle.finished()
            assert handle.cancelled
            daemon.release_deferred()
            second = tasks.start(conn.getLibVersion)
            while not daemon.deferred:
                await shell.sleep(0.01)
            daemon.release_deferred()
            await second.finished()
            assert second.result == 2
            assert conn.protocol.pending.waiters == {}

    shell.run(main)


def test_new_stream_bound_by_screenshot(shell: Shell, real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    """libvirt-python's stream calling convention in the async API: newStream(), then
    the call binds it (dom.screenshot(stream, screen, flags))."""
    theirs_conn = real_libvirt.open(real_libvirtd.tcp_uri)
    theirs_stream = theirs_conn.newStream(0)
    theirs_mime = theirs_conn.lookupByName("test").screenshot(theirs_stream, 0, 0)
    parts: list[bytes] = []
    theirs_stream.recvAll(lambda _st, buf, _o: parts.append(buf), None)
    theirs_stream.finish()
    theirs_conn.close()

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.tcp_uri) as conn:
            dom = await conn.lookupByName("test")
            stream = await conn.newStream(0)
            with pytest.raises(libvirtError) as unbound:
                await stream.recv(10)
            assert unbound.value.get_error_code() == vlibvirt.VIR_ERR_NO_SUPPORT
            mime = await dom.screenshot(stream, 0, 0)
            image = b""
            while chunk := await stream.recv(65536):
                assert isinstance(chunk, bytes)
                image += chunk
            await stream.finish()
            assert (mime, image) == (theirs_mime, b"".join(parts))
            assert await stream.connect() is conn

    shell.run(main)


def test_network_events_as_an_async_iterator(shell: Shell, server_uri: str) -> None:
    """Object events (here a network's lifecycle) as an async iterator, as domain events."""
    name = f"evnet-{uuid.uuid4().hex[:8]}"
    xml = f"<network><name>{name}</name><bridge name='vw{name[-8:]}'/></network>"

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(server_uri) as conn:
            lifecycle = vlibvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE
            async with conn.object_events("NETWORK", lifecycle) as events:
                net = await conn.networkDefineXML(xml)
                await net.create()
                await net.destroy()
                await net.undefine()
                got = [await events.__anext__() for _ in range(4)]
            assert [(e.family, e.event_id, e.obj.name) for e in got] == [("NETWORK", lifecycle, name)] * 4
            assert [e.args for e in got] == [
                (vlibvirt.VIR_NETWORK_EVENT_DEFINED, 0),
                (vlibvirt.VIR_NETWORK_EVENT_STARTED, 0),
                (vlibvirt.VIR_NETWORK_EVENT_STOPPED, 0),
                (vlibvirt.VIR_NETWORK_EVENT_UNDEFINED, 0),
            ]
            assert await got[0].obj.UUIDString() == str(uuid.UUID(bytes=got[0].obj._ref.uuid))
            assert conn._subscribers == {}  # deregistered on leaving the block

    shell.run(main)


def test_file_descriptors_passed_with_a_call(shell: Shell, real_libvirtd: Any) -> None:
    """createXMLWithFiles / createWithFiles in the async API: over the unix socket the
    descriptors follow the packet (CALL_WITH_FDS); over TCP libvirt's error, and the
    connection is closed, as with the thread shell."""
    import os

    name = f"fdasync-{uuid.uuid4().hex[:8]}"
    xml = (
        f"<domain type='test'><name>{name}</name><memory>65536</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )
    r, w = os.pipe()

    async def main(tasks: Tasks) -> None:
        async with await shell.connect(real_libvirtd.unix_uri) as conn:
            # Other calls in flight meanwhile: their packets never come between.
            busy = [tasks.start(conn.get_lib_version) for _ in range(4)]
            dom = await conn.createXMLWithFiles(xml, [r, w], 0)
            assert (dom.name, await dom.isActive()) == (name, 1)
            await dom.destroy()
            defined = await conn.defineXML(xml)
            assert await defined.createWithFiles([r], 0) == 0
            assert defined.id > 0  # the running id, as libvirt's remote driver sets it
            await defined.destroy()
            await defined.undefine()
            for handle in busy:
                await handle.finished()
                assert handle.result == real_libvirtd_lib_version
        async with await shell.connect(real_libvirtd.tcp_uri) as conn:
            with pytest.raises(libvirtError) as got:
                await conn.createXMLWithFiles(xml, [r], 0)
            assert _error_fields(got.value) == (
                vlibvirt.VIR_ERR_INTERNAL_ERROR,
                vlibvirt.VIR_FROM_RPC,
                "internal error: Sending file descriptors is not supported on this socket",
            )
            assert not conn.alive

    real_libvirtd_lib_version = vlibvirt.open(real_libvirtd.unix_uri).getLibVersion()
    try:
        shell.run(main)
    finally:
        os.close(r)
        os.close(w)
