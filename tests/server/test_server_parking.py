"""Parked connections (server/parking.py): idle clients hold no trio task.

A Service and its parking task run in-process over real socket pairs (parking
watches descriptors), on trio's MockClock: the parking delay and keepalive
intervals pass without real waiting, and nothing asserts on time.
"""

from __future__ import annotations

import resource
import socket
import struct
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing
from virtwire.protocol.framing import PacketDecoder
from virtwire.server.config import ServerConfig
from virtwire.server.connection import Connection
from virtwire.server.driver.base import ConnectionContext
from virtwire.server.driver.memory.driver import MemoryDriver
from virtwire.server.parking import PARK_AFTER, Parker
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

OPEN_ARGS = xdr_uint(1) + xdr_string("test:///default") + xdr_uint(0)
GET_HOSTNAME = 59
SUPPORTS_FEATURE = 60
LIFECYCLE_REGISTER_ANY = 316  # CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
LIFECYCLE_EVENT = 318
PONG = encode_packet(KEEPALIVE_PROGRAM, 1, 2, MESSAGE, 0, 0)


class ClosingDriver(MemoryDriver):
    """Records the connections the server told it were closed."""

    def __init__(self) -> None:
        super().__init__(hostname="parking")
        self.closed: list[int] = []

    async def connection_closed(self, ctx: ConnectionContext) -> None:
        self.closed.append(ctx.conn_id)


class Client:
    """The client end of a socket pair, read and written through trio."""

    def __init__(self, sock: socket.socket) -> None:
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self.decoder = PacketDecoder()
        self.serial = 0

    async def call(self, procedure: int, payload: bytes = b"") -> RawPacket:
        await self.send_call(procedure, payload)
        while (p := await self.packet()).type != REPLY:
            pass
        return p

    async def send_call(self, procedure: int, payload: bytes = b"") -> None:
        self.serial += 1
        await self.stream.send_all(encode_packet(REMOTE_PROGRAM, 1, procedure, CALL, self.serial, 0, payload))

    async def packet(self) -> RawPacket:
        while (raw := self.decoder.next_packet()) is None:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.decoder.feed(data)
        return RawPacket.parse(raw)

    async def at_eof(self) -> bool:
        try:
            await self.packet()
        except EOFError:
            return True
        return False


def live_tasks() -> int:
    """Every task of this trio run, walked from the root task."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    count, todo = 0, [root]
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


def serve_pair(nursery: trio.Nursery, service: Service) -> socket.socket:
    """Serve one end of a new unix socket pair, counted as the accept loop counts
    a client; the other end is returned."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    service.client_accepted()
    serve = partial(service.serve_stream, ours, transport="unix", peer="pair", readonly_socket=False)
    nursery.start_soon(partial(serve, accepted=True))
    return theirs


def only_connection(service: Service) -> Connection:
    (conn,) = service.connections
    return conn


async def until(condition: Callable[[], bool]) -> None:
    """Let (mock) time pass until ``condition`` holds."""
    while not condition():
        await trio.sleep(PARK_AFTER[0] / 4)


Scenario = Callable[[Service, Parker, trio.Nursery], Awaitable[None]]


def run_parked(scenario: Scenario, config: ServerConfig | None = None) -> ClosingDriver:
    """Run ``scenario`` with a service, its parking task and their nursery, on a MockClock."""
    driver = ClosingDriver()

    async def main() -> None:
        service = Service(config or ServerConfig(max_clients=5000), driver)
        async with trio.open_nursery() as nursery:
            parker = Parker(nursery, [service])
            nursery.start_soon(parker.run)
            await scenario(service, parker, nursery)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return driver


def test_a_parked_connection_is_served_when_it_calls() -> None:
    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        before = live_tasks()
        client = Client(serve_pair(nursery, service))
        assert (await client.call(1, OPEN_ARGS)).status == 0
        conn = only_connection(service)
        await until(lambda: parker.is_parked(conn))
        assert live_tasks() == before  # its task is gone
        for _ in range(3):
            reply = await client.call(GET_HOSTNAME)
            assert (reply.status, reply.serial) == (0, client.serial)
            assert reply.payload == xdr_string("parking")
            await until(lambda: parker.is_parked(conn))
        assert parker.wakes == 3 and parker.parks == 4
        # Woken soon after parking, each time: it now waits the longest step first.
        assert conn.park_step == len(PARK_AFTER) - 1
        await trio.sleep(60)  # a long quiet spell: one step back
        assert (await client.call(GET_HOSTNAME)).status == 0
        assert conn.park_step == len(PARK_AFTER) - 2

    run_parked(scenario)


def test_an_event_reaches_a_parked_client() -> None:
    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        client = Client(serve_pair(nursery, service))
        await client.call(1, OPEN_ARGS)
        assert (await client.call(LIFECYCLE_REGISTER_ANY, xdr_uint(0) + xdr_uint(0))).status == 0
        conn = only_connection(service)
        await until(lambda: parker.is_parked(conn))
        driver = service.driver
        assert isinstance(driver, MemoryDriver)
        test = driver.find_by_name("test")
        driver.set_state(test, 3, 1, 3, 0)  # suspended
        driver.set_state(test, 1, 1, 4, 0)  # resumed
        got = [await client.packet() for _ in range(2)]
        assert [(p.procedure, p.type, p.serial) for p in got] == [(LIFECYCLE_EVENT, MESSAGE, 1)] * 2
        assert [struct.unpack(">i", p.payload[-8:-4])[0] for p in got] == [3, 4]
        # Written straight to the socket: the connection never needed its task back.
        assert parker.is_parked(conn) and parker.wakes == 0

    run_parked(scenario)


def test_events_a_parked_socket_cannot_take_at_once_wake_it_and_stay_in_order() -> None:
    count = 300

    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        nursery.start_soon(
            lambda: service.serve_stream(ours, transport="unix", peer="pair", readonly_socket=False)
        )
        client = Client(theirs)
        await client.call(1, OPEN_ARGS)
        await client.call(LIFECYCLE_REGISTER_ANY, xdr_uint(0) + xdr_uint(0))
        conn = only_connection(service)
        await until(lambda: parker.is_parked(conn))
        driver = service.driver
        assert isinstance(driver, MemoryDriver)
        test = driver.find_by_name("test")
        for n in range(count):
            driver.set_state(test, 3 if n % 2 == 0 else 1, 1, 3 if n % 2 == 0 else 4, 0)
        assert parker.wakes == 1  # the socket filled: the writer took the rest
        got = [await client.packet() for _ in range(count)]
        assert [struct.unpack(">i", p.payload[-8:-4])[0] for p in got] == [3, 4] * (count // 2)
        await until(lambda: parker.is_parked(conn))  # all written: parked again

    run_parked(scenario, ServerConfig(event_queue_size=count + 8))


def test_keepalive_pings_a_parked_client_then_drops_it() -> None:
    seen: list[tuple[float, bool]] = []

    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        client = Client(serve_pair(nursery, service))
        assert (await client.call(SUPPORTS_FEATURE, xdr_uint(10))).payload == xdr_uint(1)
        conn = only_connection(service)
        start = trio.current_time()
        await until(lambda: parker.is_parked(conn))
        try:
            while True:
                p = await client.packet()
                assert (p.program, p.procedure, p.type) == (KEEPALIVE_PROGRAM, 1, MESSAGE)
                seen.append((trio.current_time() - start, parker.is_parked(conn)))
        except EOFError:
            seen.append((trio.current_time() - start, False))
        await until(lambda: not service.connections)

    run_parked(scenario, ServerConfig(keepalive_interval=5, keepalive_count=3))
    # Three pings while parked, 5 s apart; no answer: dropped 5 s after the last.
    assert seen == [(5, True), (10, True), (15, True), (20, False)]


def test_a_parked_client_that_answers_pings_is_kept() -> None:
    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        client = Client(serve_pair(nursery, service))
        await client.call(SUPPORTS_FEATURE, xdr_uint(10))
        conn = only_connection(service)
        for _ in range(6):  # 30 s, far past interval x count
            p = await client.packet()
            assert (p.program, p.procedure) == (KEEPALIVE_PROGRAM, 1)
            assert parker.is_parked(conn)
            await client.stream.send_all(PONG)
            await until(lambda: not parker.is_parked(conn))  # the answer woke it
            await until(lambda: parker.is_parked(conn))
        assert service.connections == {conn} and parker.wakes == 6

    run_parked(scenario, ServerConfig(keepalive_interval=5, keepalive_count=2))


def test_a_thousand_idle_connections_have_no_task_each() -> None:
    count = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(hard, 2 * count + 256) > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * count + 256), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * count + 64:
        pytest.skip("not enough file descriptors for 1000 socket pairs")
    clients: list[socket.socket] = []

    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        before = live_tasks()
        try:
            for _ in range(count):
                theirs = serve_pair(nursery, service)
                theirs.sendall(encode_packet(REMOTE_PROGRAM, 1, 1, CALL, 1, 0, OPEN_ARGS))
                clients.append(theirs)
            await until(lambda: len(parker) == count)
            assert len(service.connections) == count
            assert all(c.opened for c in service.connections)
            assert live_tasks() == before
            # Each has its reply waiting, written before it parked.
            replies = [RawPacket.parse(c.recv(4096, socket.MSG_DONTWAIT)) for c in clients]
            assert {(r.type, r.serial, r.status) for r in replies} == {(REPLY, 1, 0)}
        finally:
            for c in clients:
                c.close()
        await until(lambda: not service.connections)
        assert len(parker) == 0
        await until(lambda: live_tasks() == before)  # the last one's task may wait to trim the heap

    driver = run_parked(scenario)
    assert len(driver.closed) == count


def test_closing_a_parked_connection_frees_it() -> None:
    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        client = Client(serve_pair(nursery, service))
        await client.call(1, OPEN_ARGS)
        await client.call(LIFECYCLE_REGISTER_ANY, xdr_uint(0) + xdr_uint(0))
        conn = only_connection(service)
        await until(lambda: parker.is_parked(conn))
        assert service.bus.subscriber_count() == 1
        assert service.accepted == 1  # a parked client still counts against max_clients
        await client.stream.aclose()
        await until(lambda: not service.connections)
        assert len(parker) == 0 and service.bus.subscriber_count() == 0
        assert service.accepted == 0

    driver = run_parked(scenario)
    assert len(driver.closed) == 1


def test_parked_connections_end_with_the_server() -> None:
    """Shutdown wakes and closes them; a cancelled server closes them too."""
    clients: list[Client] = []

    async def scenario(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        for _ in range(2):
            clients.append(Client(serve_pair(nursery, service)))
            await clients[-1].call(1, OPEN_ARGS)
        await until(lambda: len(parker) == 2)
        service.begin_shutdown()
        parker.stop()
        await service.all_closed.wait()
        assert [await c.at_eof() for c in clients] == [True, True]

    assert len(run_parked(scenario).closed) == 2
    clients.clear()

    async def cancelled(service: Service, parker: Parker, nursery: trio.Nursery) -> None:
        clients.append(Client(serve_pair(nursery, service)))
        await clients[-1].call(1, OPEN_ARGS)
        await until(lambda: len(parker) == 1)
        # run_parked cancels the nursery: the parking task ends the parked connection.

    assert len(run_parked(cancelled).closed) == 1
