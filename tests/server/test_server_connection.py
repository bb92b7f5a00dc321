"""The connection layer in-process: backpressure, disconnect mid-call, slow subscribers, keepalive.

A Service is driven over trio's in-memory streams with a driver whose
``domain_suspend`` blocks on a gate, so calls in flight can be held and
counted.  Keepalive runs on trio's MockClock: no real waiting, no timing
assertions.
"""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from virtwire.protocol.framing import PacketDecoder
from virtwire.server.config import ServerConfig
from virtwire.server.daemon import serve
from virtwire.server.driver.base import ConnectionContext
from virtwire.server.driver.memory.driver import MemoryDriver
from virtwire.server.service import Service
from vwtestkit.rawrpc import (
    CALL,
    KEEPALIVE_PROGRAM,
    MESSAGE,
    REMOTE_PROGRAM,
    REPLY,
    RawPacket,
    encode_packet,
    xdr_string,
    xdr_uint,
)

TEST_DOM = xdr_string("test") + bytes.fromhex("6695eb01f6a4830479aa97f2502e193f") + xdr_uint(1)
PING = encode_packet(KEEPALIVE_PROGRAM, 1, 1, MESSAGE, 0, 0)


class GatedDriver(MemoryDriver):
    """domain_suspend waits for ``gate``; counts calls running at once."""

    def __init__(self) -> None:
        super().__init__(hostname="gated")
        self.gate = trio.Event()
        self.running = 0
        self.peak = 0
        self.cancelled = 0
        self.closed: list[int] = []

    async def domain_suspend(self, args: object, ctx: ConnectionContext) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gate.wait()
        except trio.Cancelled:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def connection_closed(self, ctx: ConnectionContext) -> None:
        self.closed.append(ctx.conn_id)


class Peer:
    """The client end of an in-memory connection."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.decoder = PacketDecoder()
        self.serial = 0

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def call(self, procedure: int, payload: bytes = b"") -> int:
        serial = self.serial
        self.serial += 1
        await self.send(encode_packet(REMOTE_PROGRAM, 1, procedure, CALL, serial, 0, payload))
        return serial

    async def packet(self) -> RawPacket:
        while (raw := self.decoder.next_packet()) is None:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.decoder.feed(data)
        return RawPacket.parse(raw)

    async def reply(self) -> RawPacket:
        while (p := await self.packet()).type != REPLY:
            pass
        return p

    async def open(self) -> None:
        await self.call(1, xdr_uint(1) + xdr_string("test:///default") + xdr_uint(0))
        assert (await self.reply()).status == 0


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    config = ServerConfig(max_client_requests=2, keepalive_interval=5, keepalive_count=5, event_queue_size=8)
    yield Service(config, GatedDriver())


def connect(nursery: trio.Nursery, service: Service, *, lockstep: bool = False) -> Peer:
    client, server = trio.testing.lockstep_stream_pair() if lockstep else trio.testing.memory_stream_pair()
    nursery.start_soon(
        lambda: service.serve_stream(server, transport="test", peer="mem", readonly_socket=False)
    )
    return Peer(client)


def gated(service: Service) -> GatedDriver:
    assert isinstance(service.driver, GatedDriver)
    return service.driver


async def test_calls_in_flight_are_capped_and_reading_stops(service: Service) -> None:
    driver = gated(service)
    async with trio.open_nursery() as nursery:
        peer = connect(nursery, service)
        await peer.open()
        for _ in range(6):
            await peer.call(34, TEST_DOM)
        await peer.send(PING)
        await trio.testing.wait_all_tasks_blocked()
        assert (driver.running, driver.peak) == (2, 2)
        # The server stopped reading: the PING behind the queued calls is not answered yet.
        with trio.move_on_after(1):
            await peer.packet()
            pytest.fail("the server read past its request limit")
        driver.gate.set()
        serials: set[int] = set()
        got_pong = False
        while len(serials) < 6 or not got_pong:
            p = await peer.packet()
            if p.program == KEEPALIVE_PROGRAM:
                got_pong = p.procedure == 2
                continue
            serials.add(p.serial)
        assert got_pong and driver.peak == 2
        nursery.cancel_scope.cancel()


async def test_disconnect_mid_call_frees_everything(service: Service) -> None:
    driver = gated(service)
    async with trio.open_nursery() as nursery:
        peer = connect(nursery, service)
        await peer.open()
        await peer.call(316, xdr_uint(0) + xdr_uint(0))  # an event callback
        await peer.reply()
        assert service.bus.subscriber_count() == 1
        await peer.call(34, TEST_DOM)
        await peer.call(34, TEST_DOM)
        await trio.testing.wait_all_tasks_blocked()
        assert driver.running == 2
        await peer.stream.aclose()
    # The nursery exited: the connection's tasks are all gone.
    assert (driver.running, driver.cancelled) == (0, 2)
    assert service.bus.subscriber_count() == 0
    assert service.connections == set()
    assert len(driver.closed) == 1


async def test_slow_subscriber_is_dropped_others_get_everything(service: Service) -> None:
    async with trio.open_nursery() as nursery:
        slow = connect(nursery, service, lockstep=True)
        fast = connect(nursery, service)
        for peer in (slow, fast):
            await peer.open()
            await peer.call(316, xdr_uint(0) + xdr_uint(0))
            assert (await peer.reply()).status == 0
        driver = service.driver
        assert isinstance(driver, MemoryDriver)
        test = driver.find_by_name("test")
        # The slow client never reads: its queue (8) overflows and it is dropped.
        for n in range(40):
            driver.set_state(test, 3 if n % 2 == 0 else 1, 1, 3 if n % 2 == 0 else 4, 0)
            await trio.sleep(0)
        received: list[int] = []
        while len(received) < 40:
            p = await fast.packet()
            assert (p.procedure, p.type, p.serial) == (318, MESSAGE, 1)
            received.append(struct.unpack(">i", p.payload[-8:-4])[0])
        assert received == [3, 4] * 20
        await trio.testing.wait_all_tasks_blocked()
        assert len(service.connections) == 1  # the slow one is gone
        nursery.cancel_scope.cancel()


def test_keepalive_pings_then_drops_a_silent_client() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result: list[object] = []

    async def scenario() -> None:
        service = Service(ServerConfig(keepalive_interval=5, keepalive_count=5), MemoryDriver(hostname="k"))
        async with trio.open_nursery() as nursery:
            peer = connect(nursery, service)
            await peer.call(60, xdr_uint(10))  # ask for keepalive
            assert (await peer.reply()).payload == xdr_uint(1)
            start = trio.current_time()
            pings = []
            try:
                while True:
                    p = await peer.packet()
                    assert (p.program, p.procedure, p.type, p.serial) == (KEEPALIVE_PROGRAM, 1, MESSAGE, 0)
                    pings.append(trio.current_time() - start)
            except EOFError:
                pass
            result.extend([pings, trio.current_time() - start])

    trio.run(scenario, clock=clock)
    pings, dropped_at = result
    assert pings == [5, 10, 15, 20, 25]
    assert dropped_at == 30


def test_keepalive_answered_pings_keep_the_client() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    seen: list[int] = []

    async def scenario() -> None:
        service = Service(ServerConfig(keepalive_interval=5, keepalive_count=2), MemoryDriver(hostname="k"))
        async with trio.open_nursery() as nursery:
            peer = connect(nursery, service)
            await peer.call(60, xdr_uint(10))
            await peer.reply()
            for _ in range(6):  # 30 s, far past interval x count, answering every ping
                p = await peer.packet()
                seen.append(p.procedure)
                await peer.send(encode_packet(KEEPALIVE_PROGRAM, 1, 2, MESSAGE, 0, 0))
            assert len(service.connections) == 1
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=clock)
    assert seen == [1] * 6


def test_no_pings_without_feature_10() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def scenario() -> None:
        service = Service(ServerConfig(keepalive_interval=5, keepalive_count=1), MemoryDriver(hostname="k"))
        async with trio.open_nursery() as nursery:
            peer = connect(nursery, service)
            await peer.open()
            with trio.move_on_after(120):
                await peer.packet()
                pytest.fail("pinged a client that did not ask for keepalive")
            assert len(service.connections) == 1
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=clock)


async def test_shutdown_finishes_calls_in_flight(service: Service) -> None:
    driver = gated(service)
    async with trio.open_nursery() as nursery:
        peer = connect(nursery, service)
        await peer.open()
        serial = await peer.call(34, TEST_DOM)
        await trio.testing.wait_all_tasks_blocked()
        service.begin_shutdown()
        await trio.testing.wait_all_tasks_blocked()
        driver.gate.set()
        reply = await peer.reply()
        assert (reply.serial, reply.status) == (serial, 0)
        with pytest.raises(EOFError):
            await peer.packet()


async def test_legacy_registration_gets_legacy_lifecycle_events(service: Service) -> None:
    async with trio.open_nursery() as nursery:
        listener = connect(nursery, service)
        actor = connect(nursery, service)
        for peer in (listener, actor):
            await peer.open()
        await listener.call(167, xdr_uint(0))  # legacy REGISTER_ANY, lifecycle
        assert (await listener.reply()).payload == b""
        await listener.call(167, xdr_uint(0))
        again = await listener.reply()
        assert again.status == 1 and b"event callback already tracked" in again.payload
        await actor.call(35, TEST_DOM)  # undefine: 'test' keeps running, as transient
        assert (await actor.reply()).status == 0
        event = await listener.packet()
        # proc 107: {dom, event, detail}, no callbackID
        assert (event.procedure, event.type, event.serial) == (107, MESSAGE, 1)
        assert event.payload == TEST_DOM + xdr_uint(1) + xdr_uint(0)  # UNDEFINED, REMOVED
        await listener.call(168, xdr_uint(0))
        assert (await listener.reply()).status == 0
        await listener.call(168, xdr_uint(0))
        missing = await listener.reply()
        assert missing.status == 1 and b"domain event 0 not registered" in missing.payload
        nursery.cancel_scope.cancel()


async def test_callback_filtered_by_domain_and_deregistered(service: Service) -> None:
    async with trio.open_nursery() as nursery:
        peer = connect(nursery, service)
        await peer.open()
        other_dom = xdr_string("other") + b"\x22" * 16 + xdr_uint(0xFFFFFFFF)
        await peer.call(316, xdr_uint(0) + xdr_uint(1) + other_dom)  # only for 'other'
        filtered = struct.unpack(">i", (await peer.reply()).payload)[0]
        await peer.call(316, xdr_uint(0) + xdr_uint(1) + TEST_DOM)  # only for 'test'
        mine = struct.unpack(">i", (await peer.reply()).payload)[0]
        await peer.call(317, struct.pack(">i", filtered))
        assert (await peer.reply()).status == 0
        await peer.call(317, struct.pack(">i", filtered))
        gone = await peer.reply()
        assert (
            gone.status == 1 and f"domain event callback {filtered} not registered".encode() in gone.payload
        )
        driver = service.driver
        assert isinstance(driver, MemoryDriver)
        driver.set_state(driver.find_by_name("test"), 3, 1, 3, 0)
        event = await peer.packet()
        assert (event.procedure, struct.unpack(">i", event.payload[:4])[0]) == (318, mine)
        nursery.cancel_scope.cancel()


async def test_max_clients_refuses_extra_connections() -> None:
    service = Service(ServerConfig(max_clients=1), MemoryDriver(hostname="m"))
    async with trio.open_nursery() as nursery:
        first = connect(nursery, service)
        await first.open()
        second = connect(nursery, service)
        with pytest.raises(EOFError):
            await second.packet()
        await first.call(157)
        assert (await first.reply()).status == 0
        nursery.cancel_scope.cancel()


class BuggyDriver(MemoryDriver):
    async def domain_resume(self, args: object, ctx: ConnectionContext) -> None:
        raise RuntimeError("a bug in a driver")


async def test_a_driver_bug_is_an_error_reply_not_a_crash() -> None:
    service = Service(ServerConfig(), BuggyDriver(hostname="b"))
    async with trio.open_nursery() as nursery:
        peer = connect(nursery, service)
        await peer.open()
        await peer.call(28, TEST_DOM)
        reply = await peer.reply()
        assert reply.status == 1
        assert b"Library function returned error but did not set virError" in reply.payload
        await peer.call(157)
        assert (await peer.reply()).status == 0
        nursery.cancel_scope.cancel()


async def test_signals_first_drains_second_drops(tmp_path: Path) -> None:
    driver = GatedDriver()
    sock = tmp_path / "s"
    config = ServerConfig(unix=[sock])
    ready = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(serve, config, driver, on_ready=lambda _: ready.set()))
        await ready.wait()
        peer = Peer(await trio.open_unix_socket(str(sock)))
        await peer.open()
        await peer.call(34, TEST_DOM)
        while driver.running == 0:
            await trio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        while sock.exists():  # first signal: listeners close, the call in flight goes on
            await trio.sleep(0.01)
        assert driver.running == 1
        os.kill(os.getpid(), signal.SIGTERM)  # second signal: clients are dropped
    assert (driver.running, driver.cancelled) == (0, 1)


async def test_direct_writes_stay_whole_and_in_order_when_the_socket_fills(service: Service) -> None:
    """On a real socket, replies are written by the task that has them while nothing
    is queued; once the socket is full the rest goes through the writer task.
    Either way every reply arrives whole, in order."""
    import socket

    from virtwire.protocol.generated import remote as R

    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setblocking(False)
    peer = Peer(trio.SocketStream(trio.socket.from_stdlib_socket(theirs)))
    xml_desc = int(R.remote_procedure.REMOTE_PROC_DOMAIN_GET_XML_DESC)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: service.serve_stream(ours, transport="unix", peer="pair", readonly_socket=False)
        )
        await peer.open()
        serials = [await peer.call(xml_desc, TEST_DOM + xdr_uint(0)) for _ in range(60)]
        await trio.testing.wait_all_tasks_blocked()
        (conn,) = service.connections
        assert conn._writer_started  # the socket filled up: the writer took over
        replies = [await peer.reply() for _ in serials]
        assert [r.serial for r in replies] == serials
        assert all(r.status == 0 and r.payload == replies[0].payload for r in replies)
        assert b"<name>test</name>" in replies[0].payload
        nursery.cancel_scope.cancel()
