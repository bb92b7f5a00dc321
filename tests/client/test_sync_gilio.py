"""The thread shell's GIL-holding sends and reads (client/gilio.py).

With other threads about, a call's packet goes out through a MSG_DONTWAIT send
made without releasing the GIL, and a reader with other calls waiting takes
what the socket already holds the same way. These tests pin down the cases
where that path must hand over to the socket's own methods: a socket too full
for the whole packet, a peer gone, end of file. Each runs the shell with the
path on and off and expects the same outcome, so a difference fails the test.
"""

from __future__ import annotations

import ctypes
import errno
import select
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from virtwire.client import gilio, sync
from virtwire.client.sync import SyncConnection
from virtwire.protocol import wire
from virtwire.protocol.errors import libvirtError
from vwtestkit.rawrpc import RawPacket, RawRpcClient

pytestmark = pytest.mark.skipif(not gilio.AVAILABLE, reason="GIL-holding socket calls are Linux only")


def read_packet(daemon: socket.socket) -> bytes:
    """One whole packet from the client (a timeout, not a hang, if it never comes)."""
    return RawRpcClient(daemon).recv_packet()


def serial_of(packet: bytes) -> tuple[int, int]:
    parsed = RawPacket.parse(packet)
    return parsed.procedure, parsed.serial


@pytest.fixture(params=[True, False], ids=["gil-held", "socket-methods"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[SyncConnection, socket.socket]]:
    client, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    conn = SyncConnection(client)
    assert conn._gil_io  # a plain socket on Linux
    conn._gil_io = request.param
    yield conn, daemon
    conn.shutdown()
    daemon.close()


Pair = tuple[SyncConnection, socket.socket]


def test_a_packet_larger_than_the_socket_buffer_arrives_whole(pair: Pair) -> None:
    conn, daemon = pair
    client_end: socket.socket = conn._sock  # type: ignore[assignment]
    client_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 4096  # 1 MiB: the non-blocking send takes only part
    helper = threading.Thread(target=lambda: None)  # another thread exists: the GIL-holding path is taken
    helper.start()
    got: list[bytes] = []

    def daemon_side() -> None:
        packet = read_packet(daemon)
        got.append(packet)
        proc, serial = serial_of(packet)
        daemon.sendall(wire.remote_packet(proc, wire.REPLY, serial, wire.OK, b"done"))

    server = threading.Thread(target=daemon_side)
    server.start()
    reply = conn.call(42, payload)
    server.join()
    helper.join()
    assert reply.payload == b"done"
    assert got[0][wire.HEADER_SIZE :] == payload  # nothing lost, nothing sent twice


def test_a_send_to_a_closed_peer_fails_as_before(pair: Pair) -> None:
    conn, daemon = pair
    daemon.close()
    keep = threading.Event()
    helper = threading.Thread(target=keep.wait)  # another thread: the GIL-holding send is tried
    helper.start()
    try:
        with pytest.raises(libvirtError) as caught:
            conn.call(42, b"x" * 64)
    finally:
        keep.set()
        helper.join()
    assert caught.value.get_error_message() == "Cannot write data: Broken pipe"
    assert not conn.alive


def test_batched_replies_and_end_of_file_reach_every_waiter(pair: Pair) -> None:
    """Eight calls wait; the daemon answers six in one write and then closes:
    six get their replies, two the end-of-file error."""
    conn, daemon = pair
    outcomes: dict[int, bytes | str] = {}
    started = threading.Barrier(9)

    def caller(i: int) -> None:
        started.wait()
        try:
            outcomes[i] = conn.call(100 + i, b"").payload
        except libvirtError as exc:
            outcomes[i] = str(exc.get_error_message())

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    started.wait()
    calls = [serial_of(read_packet(daemon)) for _ in range(8)]
    answered = sorted(calls)[:6]
    daemon.sendall(
        b"".join(
            wire.remote_packet(proc, wire.REPLY, serial, wire.OK, struct.pack(">I", proc))
            for proc, serial in answered
        )
    )
    for proc, _ in answered:  # every answered call has its reply before the end of file
        while proc - 100 not in outcomes:
            threading.Event().wait(0.001)
    daemon.shutdown(socket.SHUT_RDWR)
    for t in threads:
        t.join()
    for proc, _ in answered:
        assert outcomes[proc - 100] == struct.pack(">I", proc)
    failed = [v for i, v in outcomes.items() if 100 + i not in {p for p, _ in answered}]
    assert failed == ["End of file while reading data: Input/output error"] * 2


def test_read_waiting_takes_what_is_there_and_never_waits() -> None:
    client, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    conn = SyncConnection(client)
    assert conn._read_waiting(65536) is None  # nothing there: no wait, no bytes
    daemon.sendall(b"abc")
    daemon.sendall(b"def")
    assert conn._read_waiting(4) == b"abcd"
    assert conn._read_waiting(65536) == b"ef"
    daemon.close()
    assert conn._read_waiting(65536) == b""  # end of file
    conn.shutdown()


def test_read_waiting_never_reads_past_its_buffer() -> None:
    """A stream read asks for 1 MiB; the C call's buffer holds RECV_SIZE."""
    client, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    conn = SyncConnection(client)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * sync.STREAM_RECV_SIZE)
    daemon.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * sync.STREAM_RECV_SIZE)
    data = bytes(range(256)) * (sync.STREAM_RECV_SIZE // 256)
    daemon.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            sent += daemon.send(data[sent:])
    except BlockingIOError:
        pass
    assert sent > sync.RECV_SIZE  # more waits than the buffer holds
    got = conn._read_waiting(sync.STREAM_RECV_SIZE)
    assert got == data[: sync.RECV_SIZE]
    conn.shutdown()
    daemon.close()


def test_read_waiting_reports_a_reset_as_the_socket_would() -> None:
    tcp_listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(tcp_listener.getsockname())
    server, _ = tcp_listener.accept()
    tcp = SyncConnection(client)
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.close()  # an RST
        assert select.select([client], [], [], 10)[0]  # it has arrived
        with pytest.raises(ConnectionResetError) as caught:
            tcp._read_waiting(65536)
        assert caught.value.strerror == "Connection reset by peer"
    finally:
        tcp.shutdown()
        tcp_listener.close()


def test_failed_tells_would_block_from_an_error() -> None:
    ctypes.set_errno(errno.EAGAIN)
    assert gilio.failed() is None
    ctypes.set_errno(errno.EINTR)
    assert gilio.failed() is None
    ctypes.set_errno(errno.ECONNRESET)
    error = gilio.failed()
    assert isinstance(error, ConnectionResetError)
    assert (error.errno, error.strerror) == (errno.ECONNRESET, "Connection reset by peer")
