"""The asyncio shell's own I/O (client/asyncio_client.py): its asyncio.Protocol,
the batching of concurrent calls' packets, backpressure on writes, and
cancellation at each point a call can wait (for a writable transport, with its
packet still in the batch, for its reply), against the scriptable fake daemon
(tests/client/conftest.py) and a real libvirtd.

The scenarios both async shells share are in test_asyncio_shells.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import virtwire.client.asyncio as vasyncio
from virtwire.protocol import wire
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import remote

FakeDaemon = Any  # tests/client/conftest.py
GET_LIB_VERSION = 157
DOMAIN_DEFINE_XML = 11


class CountingTransport:
    """A transport that records each write (the size of what one write() took)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _version(n: int) -> bytes:
    return n.to_bytes(8, "big")


def test_a_batch_of_calls_goes_out_in_one_write(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """Calls made in one turn of the loop: the first is written at once, the packets of
    the others together in one write; each call still gets its own reply."""
    answers = iter(range(1, 100))
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: ("defer", _version(next(answers)))})

    async def main() -> None:
        async with await vasyncio.connect(daemon.uri) as conn:
            counting = CountingTransport(conn._transport)  # type: ignore[arg-type]
            conn._transport = counting  # type: ignore[assignment]
            calls = [asyncio.create_task(conn.get_lib_version()) for _ in range(8)]
            while len(daemon.deferred) < 8:
                await asyncio.sleep(0.01)
            assert len(counting.writes) == 2
            assert counting.writes[1] == 7 * counting.writes[0]
            # Released in reverse: each reply still finds its own call.
            daemon.release_deferred(lambda d: list(reversed(d)))
            assert sorted(await asyncio.gather(*calls)) == list(range(1, 9))
            serials = [serial for proc, serial, _ in daemon.calls if proc == GET_LIB_VERSION]
            assert len(set(serials)) == 8
            assert conn.protocol.pending.waiters == {}

    asyncio.run(main())


def test_after_replies_woke_several_calls_the_first_next_packet_goes_out_at_once(
    fake_daemon: Callable[..., FakeDaemon],
) -> None:
    """Replies read together wake several calls while another is still in flight:
    the first packet those tasks make next is written at once (the daemon starts
    on it while the others still run), the packets of the others together in one
    write after them."""
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: ("defer", _version(7))})

    async def main() -> None:
        async with await vasyncio.connect(daemon.uri) as conn:

            async def twice() -> list[int]:
                return [await conn.get_lib_version(), await conn.get_lib_version()]

            calls = [asyncio.create_task(twice()) for _ in range(9)]
            while len(daemon.deferred) < 9:
                await asyncio.sleep(0.01)
            counting = CountingTransport(conn._transport)  # type: ignore[arg-type]
            conn._transport = counting  # type: ignore[assignment]
            # Eight replies in one send, so that one read takes them all; the ninth
            # call stays in flight.
            first_round, daemon.deferred = daemon.deferred[:8], daemon.deferred[8:]
            first_round[0][0].sendall(
                b"".join(
                    wire.remote_packet(proc, wire.REPLY, serial, wire.OK, body)
                    for _sock, proc, serial, body in first_round
                )
            )
            while len(daemon.deferred) < 9:
                await asyncio.sleep(0.01)
            assert len(counting.writes) == 2
            assert counting.writes[1] == 7 * counting.writes[0]
            daemon.release_deferred()
            while not daemon.deferred:  # the ninth task's second call
                await asyncio.sleep(0.01)
            daemon.release_deferred()
            assert await asyncio.gather(*calls) == [[7, 7]] * 9
            assert conn.protocol.pending.waiters == {}

    asyncio.run(main())


def test_cancelled_while_its_packet_waits_in_the_batch(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """A call cancelled after its packet was batched but before the batch was written:
    the packet still goes out whole, its reply is dropped, the next call gets its own."""
    answers = iter(range(1, 100))
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: ("defer", _version(next(answers)))})

    async def main() -> None:
        async with await vasyncio.connect(daemon.uri) as conn:
            first = asyncio.create_task(conn.get_lib_version())
            second = asyncio.create_task(conn.get_lib_version())
            await asyncio.sleep(0)  # both ran: the first was written, the second is batched
            assert len(conn._outbox) == 1 and conn._flush_scheduled
            second.cancel()
            while len(daemon.deferred) < 2:
                await asyncio.sleep(0.01)
            daemon.release_deferred()
            assert await first == 1
            assert second.cancelled()
            third = asyncio.create_task(conn.get_lib_version())
            while not daemon.deferred:
                await asyncio.sleep(0.01)
            daemon.release_deferred()
            assert await third == 3
            assert conn.protocol.pending.waiters == {}
            assert daemon.procedures().count(GET_LIB_VERSION) == 3

    asyncio.run(main())


def test_writes_wait_while_the_transport_is_full(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """Backpressure: while the daemon reads nothing, the transport pauses writing and
    calls wait before writing, so what the client buffers stays bounded; a call
    cancelled while it waits sends nothing; once the daemon reads again every other
    call completes, each packet having arrived whole."""
    gate = threading.Event()
    done_xml = remote.remote_domain_define_xml_ret(remote.remote_nonnull_domain("big", b"\1" * 16, -1))

    def define(_payload: bytes) -> bytes:
        gate.wait()  # the daemon's thread stops reading: the client's writes pile up
        return done_xml.to_bytes()

    daemon = fake_daemon(handlers={DOMAIN_DEFINE_XML: define})
    xml = "<domain>" + "x" * (512 * 1024) + "</domain>"
    ntasks = 24

    async def main() -> None:
        async with await vasyncio.connect(daemon.uri) as conn:
            transport = conn._transport
            assert transport is not None
            first = asyncio.create_task(conn.define_xml(xml))
            while not daemon.calls or daemon.calls[-1][0] != DOMAIN_DEFINE_XML:
                await asyncio.sleep(0.01)
            calls = [asyncio.create_task(conn.define_xml(xml)) for _ in range(ntasks)]
            try:
                while conn._writable is None:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)  # (a bound that holds has to hold a while later too)
                buffered = transport.get_write_buffer_size() + sum(map(len, conn._outbox))
                assert buffered < 2 * len(xml) + 65536  # not the 12 MiB the calls asked for
                assert not any(t.done() for t in calls)
                calls[-1].cancel()
                calls[-2].cancel()
            finally:
                gate.set()
            results = await asyncio.gather(first, *calls[:-2])
            assert {d.name for d in results} == {"big"}
            assert calls[-1].cancelled() and calls[-2].cancelled()
            assert conn._writable is None
            got = [payload for proc, _, payload in daemon.calls if proc == DOMAIN_DEFINE_XML]
            assert len(got) == ntasks - 1
            assert all(remote.remote_domain_define_xml_args.from_bytes(p).xml == xml for p in got)
            assert conn.protocol.pending.waiters == {}

    asyncio.run(main())


def test_cancelled_while_waiting_for_its_reply(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """Cancelled after its packet went out (the common case): the future is dropped from
    the pending calls at once, the reply that comes later is ignored."""
    answers = iter(range(1, 100))
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: ("defer", _version(next(answers)))})

    async def main() -> None:
        async with await vasyncio.connect(daemon.uri) as conn:
            call = asyncio.create_task(conn.get_lib_version())
            while not daemon.deferred:
                await asyncio.sleep(0.01)
            assert len(conn.protocol.pending.waiters) == 1
            call.cancel()
            await asyncio.sleep(0)
            assert call.cancelled() and conn.protocol.pending.waiters == {}
            daemon.release_deferred()
            again = asyncio.create_task(conn.get_lib_version())
            while not daemon.deferred:
                await asyncio.sleep(0.01)
            daemon.release_deferred()
            assert await again == 2

    asyncio.run(main())


def test_peer_reset_fails_waiting_calls_with_libvirts_error(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """The daemon resets the connection (RST): the protocol's connection_lost fails the
    waiting call with libvirt's "Cannot recv data" error, and the connection is dead."""
    daemon = fake_daemon(handlers={GET_LIB_VERSION: lambda _p: "hang"})

    async def main() -> None:
        async with await vasyncio.connect(daemon.uri) as conn:
            call = asyncio.create_task(conn.get_lib_version())
            while GET_LIB_VERSION not in daemon.procedures():
                await asyncio.sleep(0.01)
            for peer in list(daemon._conns):
                # SO_LINGER 0: closing sends a reset instead of a FIN. The daemon's
                # thread closes it once its read ends (SHUT_RD wakes it).
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                peer.shutdown(socket.SHUT_RD)
            with pytest.raises(libvirtError) as got:
                await call
            assert got.value.get_error_message() == "Cannot recv data: Connection reset by peer"
            assert not conn.alive

    asyncio.run(main())


def test_keepalive_runs_on_a_timer_without_a_task(real_libvirtd: Any) -> None:
    """Keepalive is a timer at the core's deadline: PINGs go out, PONGs come back, no
    task runs for the connection; leaving the block cancels the timer."""

    async def main() -> None:
        tasks_before = len(asyncio.all_tasks())
        async with await vasyncio.connect(real_libvirtd.tcp_uri) as conn:
            assert len(asyncio.all_tasks()) == tasks_before
            conn.set_keepalive(0.05, 1)
            assert conn._keepalive_timer is not None
            await asyncio.sleep(0.3)
            assert conn.alive
            assert await conn.get_type() == "TEST"
        assert conn._keepalive_timer is None

    asyncio.run(main())
