"""The thread shell's stream I/O against a scripted daemon on a socketpair.

A download is read a packet at a time (header, then the payload with
MSG_WAITALL, or read by read under a keepalive clock) and an upload writes
header and data with one sendmsg: these tests check that whatever way the
bytes arrive or leave, the packets are libvirt's, whole and in order, and that
the connection's other traffic (replies, events, the end of file) still gets
where it belongs.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from virtwire.client import core
from virtwire.client.streamstate import StreamState
from virtwire.client.sync import SyncConnection
from virtwire.protocol import wire
from virtwire.protocol.errors import libvirtError

PROC = 209  # STORAGE_VOL_DOWNLOAD: any procedure number does
CHUNK = wire.STREAM_CHUNK


def packet(mtype: int, serial: int, status: int, payload: bytes = b"", proc: int = PROC) -> bytes:
    return wire.remote_packet(proc, mtype, serial, status, payload)


def read_packet(sock: socket.socket) -> bytes:
    """One whole packet from the client."""
    head = b""
    while len(head) < 4:
        more = sock.recv(4 - len(head))
        assert more, "client closed"
        head += more
    length = int.from_bytes(head, "big")
    body = bytearray()
    while len(body) < length - 4:
        more = sock.recv(length - 4 - len(body))
        assert more, "client closed"
        body += more
    return head + bytes(body)


def send_in_pieces(sock: socket.socket, data: bytes, piece: int) -> None:
    """Write `data` a few bytes at a time (the client then sees short reads)."""
    for pos in range(0, len(data), piece):
        sock.sendall(data[pos : pos + piece])


class Daemon:
    """A scripted peer: answers the opening call, then runs `script(sock, serial)`."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.theirs.settimeout(30)  # only a deadlock would hit this
        self.script = script
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            call = read_packet(self.theirs)
            serial = wire.PACKET_HEADER.unpack_from(call)[5]
            self.theirs.sendall(packet(wire.REPLY, serial, wire.OK))
            self.script(self.theirs, serial)
        except BaseException as exc:  # reported by the test
            self.failure = exc

    def join(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def run_daemon() -> Iterator[Callable[[Callable[[socket.socket, int], None]], tuple[Daemon, SyncConnection]]]:
    started: list[tuple[Daemon, SyncConnection]] = []

    def start(script: Callable[[socket.socket, int], None]) -> tuple[Daemon, SyncConnection]:
        daemon = Daemon(script)
        conn = SyncConnection(daemon.ours)
        started.append((daemon, conn))
        return daemon, conn

    yield start
    for daemon, conn in started:
        conn.shutdown()
        daemon.theirs.close()
        daemon.thread.join(30)


def drain(conn: SyncConnection, stream: StreamState, nbytes: int = CHUNK) -> list[bytes]:
    """Every recv's result until the end of the data."""
    out: list[bytes] = []
    while True:
        got = conn.stream_recv(stream, nbytes, False, True)
        assert isinstance(got, bytes)
        if not got:
            return out
        out.append(got)


def open_download(conn: SyncConnection) -> StreamState:
    stream, reply = conn.open_stream(PROC, b"", False)
    assert reply.status == wire.OK
    return stream


@pytest.mark.parametrize("piece", [1 << 20, 4096, 7])
def test_download_comes_out_whole_however_the_bytes_arrive(run_daemon: Any, piece: int) -> None:
    """The data comes out whole and in order, whether the daemon wrote the
    packets at once or a few bytes at a time (header and payload cut anywhere);
    an event between data packets goes to on_event, the end of data ends it.
    (A recv may join queued packets, as libvirt's does, up to its size.)"""
    payloads = [os.urandom(CHUNK), os.urandom(1000), os.urandom(CHUNK - 1), b"x"]
    event = wire.remote_packet(315, wire.MESSAGE, 1, wire.OK, b"\0\0\0\1")
    if piece == 7:
        payloads = [os.urandom(3000), os.urandom(40)]  # a few bytes at a time: keep it short

    def script(sock: socket.socket, serial: int) -> None:
        wire_bytes = b"".join(packet(wire.STREAM, serial, wire.CONTINUE, p) for p in payloads[:1])
        wire_bytes += event
        wire_bytes += b"".join(packet(wire.STREAM, serial, wire.CONTINUE, p) for p in payloads[1:])
        wire_bytes += packet(wire.STREAM, serial, wire.CONTINUE)  # the end of the data
        send_in_pieces(sock, wire_bytes, piece)

    daemon, conn = run_daemon(script)
    events: list[core.Event] = []
    conn.on_event = events.append
    stream = open_download(conn)
    got = drain(conn, stream)
    daemon.join()
    assert b"".join(got) == b"".join(payloads)
    assert all(type(chunk) is bytes and 0 < len(chunk) <= CHUNK for chunk in got)
    assert [(ev.procedure, ev.payload) for ev in events] == [(315, b"\0\0\0\1")]
    assert conn.protocol.packet_boundary()


def test_download_smaller_reads_split_a_packet(run_daemon: Any) -> None:
    """recv(n) below a packet's size hands it out in n-byte parts, in order."""
    payload = os.urandom(CHUNK)

    def script(sock: socket.socket, serial: int) -> None:
        sock.sendall(packet(wire.STREAM, serial, wire.CONTINUE, payload))
        sock.sendall(packet(wire.STREAM, serial, wire.CONTINUE))

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    got = drain(conn, stream, 100000)
    daemon.join()
    assert [len(part) for part in got] == [100000, 100000, CHUNK - 200000]
    assert b"".join(got) == payload


def test_a_call_reply_between_stream_packets_reaches_its_caller(run_daemon: Any) -> None:
    """A thread reading the stream reads a reply meant for another thread's call:
    the call gets it, the stream goes on."""
    payloads = [os.urandom(CHUNK), os.urandom(CHUNK)]
    call_seen = threading.Event()

    def script(sock: socket.socket, serial: int) -> None:
        sock.sendall(packet(wire.STREAM, serial, wire.CONTINUE, payloads[0]))
        call = read_packet(sock)
        call_serial = wire.PACKET_HEADER.unpack_from(call)[5]
        call_seen.set()
        sock.sendall(packet(wire.REPLY, call_serial, wire.OK, b"\0\0\0\7", proc=60))
        sock.sendall(packet(wire.STREAM, serial, wire.CONTINUE, payloads[1]))
        sock.sendall(packet(wire.STREAM, serial, wire.CONTINUE))

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    first = conn.stream_recv(stream, CHUNK, False, True)
    replies: list[core.Reply] = []
    caller = threading.Thread(target=lambda: replies.append(conn.call(60, b"")))
    caller.start()
    assert call_seen.wait(30)
    rest = drain(conn, stream)
    caller.join(30)
    daemon.join()
    assert [first, *rest] == payloads
    assert len(replies) == 1 and replies[0].payload == b"\0\0\0\7"


def test_end_of_file_inside_a_packet_fails_the_stream(run_daemon: Any) -> None:
    """The daemon goes away half-way through a data packet: libvirt's end of file error."""

    def script(sock: socket.socket, serial: int) -> None:
        data = packet(wire.STREAM, serial, wire.CONTINUE, os.urandom(CHUNK))
        sock.sendall(data[: len(data) // 2])
        sock.shutdown(socket.SHUT_WR)

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    with pytest.raises(libvirtError, match="End of file while reading data"):
        conn.stream_recv(stream, CHUNK, False, True)
    daemon.join()
    assert not conn.alive


def test_end_of_file_inside_a_header_fails_the_stream(run_daemon: Any) -> None:
    def script(sock: socket.socket, serial: int) -> None:
        sock.sendall(packet(wire.STREAM, serial, wire.CONTINUE, b"abc")[:10])
        sock.shutdown(socket.SHUT_WR)

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    with pytest.raises(libvirtError, match="End of file while reading data"):
        conn.stream_recv(stream, CHUNK, False, True)
    daemon.join()


def test_a_bad_length_word_fails_the_connection(run_daemon: Any) -> None:
    """A length word past libvirt's limit: the payload is never read, the connection fails."""

    opened = threading.Event()

    def script(sock: socket.socket, serial: int) -> None:
        header = bytearray(packet(wire.STREAM, serial, wire.CONTINUE))
        header[:4] = (64 * 1024 * 1024).to_bytes(4, "big")
        opened.wait(30)  # not in the same read as the opening call's reply
        sock.sendall(bytes(header))

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    opened.set()
    with pytest.raises(libvirtError):
        conn.stream_recv(stream, CHUNK, False, True)
    daemon.join()
    assert not conn.alive


def test_download_under_a_keepalive_clock(run_daemon: Any) -> None:
    """With keepalive on, reads wait through the clock and take what is there;
    the data still comes out packet by packet."""
    payloads = [os.urandom(CHUNK), os.urandom(5000)]

    def script(sock: socket.socket, serial: int) -> None:
        wire_bytes = b"".join(packet(wire.STREAM, serial, wire.CONTINUE, p) for p in payloads)
        send_in_pieces(sock, wire_bytes + packet(wire.STREAM, serial, wire.CONTINUE), 65536)

    daemon, conn = run_daemon(script)
    conn.set_keepalive(60, 5)
    stream = open_download(conn)
    got = drain(conn, stream)
    daemon.join()
    assert b"".join(got) == b"".join(payloads)


def _stream_recv_stalled_mid_packet(
    run_daemon: Any, keepalive: tuple[float, int], shut_reads: bool, error: str
) -> Any:
    """The daemon sends half a stream packet and stops there (with shut_reads,
    it also stops reading what the client writes): stream_recv, under a
    keepalive clock of `keepalive` (interval, count), must fail with `error`.
    Returns the connection."""
    release = threading.Event()

    def script(sock: socket.socket, serial: int) -> None:
        data = packet(wire.STREAM, serial, wire.CONTINUE, os.urandom(CHUNK))
        sock.sendall(data[: len(data) // 2])
        if shut_reads:
            sock.shutdown(socket.SHUT_RD)  # the client's writes now fail (EPIPE)
        release.wait(30)

    daemon, conn = run_daemon(script)
    conn.set_keepalive(*keepalive)
    stream = open_download(conn)
    try:
        with pytest.raises(libvirtError, match=error):
            conn.stream_recv(stream, CHUNK, False, True)
    finally:
        release.set()
    daemon.join()
    return conn


def test_keepalive_ends_a_download_stalled_inside_a_packet(run_daemon: Any) -> None:
    """The daemon stops half-way through a packet and answers no PING: the
    keepalive clock still runs (the payload read does not block for the whole
    packet) and fails the stream with libvirt's keepalive error."""
    _stream_recv_stalled_mid_packet(run_daemon, (0.05, 1), shut_reads=False, error="keepalive")


def test_a_ping_that_cannot_be_written_mid_packet_fails_the_stream(run_daemon: Any) -> None:
    """Stalled mid-packet, the keepalive clock's PING write fails (the daemon
    reads no more): the connection and the stream fail with the write error."""
    conn = _stream_recv_stalled_mid_packet(run_daemon, (0.05, 5), shut_reads=True, error="Cannot write data")
    assert not conn.alive


def test_upload_packets_are_libvirts(run_daemon: Any) -> None:
    """Header and data written by one sendmsg arrive as the packet libvirt sends."""
    chunks = [os.urandom(CHUNK), b"tail"]
    received: list[bytes] = []

    def script(sock: socket.socket, serial: int) -> None:
        for _ in chunks:
            received.append(read_packet(sock))

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    for chunk in chunks:
        conn.stream_send(stream, chunk)
    daemon.join()
    assert received == [packet(wire.STREAM, stream.serial, wire.CONTINUE, c) for c in chunks]


def test_upload_write_cut_short_sends_the_rest(run_daemon: Any) -> None:
    """On a socket with a timeout (non-blocking inside) sendmsg writes what fits;
    the rest follows, and the packet arrives whole."""
    big = os.urandom(4 * 1024 * 1024)  # more than the socket buffers hold
    received: list[bytes] = []
    go = threading.Event()

    def script(sock: socket.socket, serial: int) -> None:
        go.wait(30)
        received.append(read_packet(sock))

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    daemon.ours.settimeout(30)
    sender = threading.Thread(target=conn.stream_send, args=(stream, big))
    sender.start()
    go.set()
    sender.join(30)
    daemon.join()
    assert received == [packet(wire.STREAM, stream.serial, wire.CONTINUE, big)]


def test_upload_while_another_thread_writes_queues_the_joined_packet(run_daemon: Any) -> None:
    """The send lock held by another writer: the data packet takes the queue, whole."""
    received: list[bytes] = []

    def script(sock: socket.socket, serial: int) -> None:
        received.append(read_packet(sock))

    daemon, conn = run_daemon(script)
    stream = open_download(conn)
    conn._send_lock.acquire()
    try:
        conn.stream_send(stream, b"queued")
        assert conn._outbox == [packet(wire.STREAM, stream.serial, wire.CONTINUE, b"queued")]
    finally:
        conn._send_lock.release()
    conn._send(b"")  # the next writer sends what is queued
    daemon.join()
    assert received == [packet(wire.STREAM, stream.serial, wire.CONTINUE, b"queued")]


# -- the core's side --------------------------------------------------------------


def test_receive_packet_queues_stream_data_as_is() -> None:
    protocol: core.ClientProtocol[object] = core.ClientProtocol()
    stream, _ = protocol.start_stream(PROC, b"", object())
    payload = os.urandom(1000)
    data = packet(wire.STREAM, stream.serial, wire.CONTINUE, payload)
    events = protocol.receive_packet(data[: wire.HEADER_SIZE], data[wire.HEADER_SIZE :], 0.0)
    assert [type(ev) for ev in events] == [core.StreamReady]
    assert stream.rx_bytes == 1000 and stream.recv(CHUNK, False) == payload


def test_receive_packet_hands_other_packets_to_receive_data() -> None:
    """A reply, an error on the stream, a hole: the same events as receive_data gives."""
    waiter = object()
    protocol: core.ClientProtocol[object] = core.ClientProtocol()
    stream, _ = protocol.start_stream(PROC, b"", waiter)
    reply = packet(wire.REPLY, stream.serial, wire.OK)
    events = protocol.receive_packet(reply[: wire.HEADER_SIZE], reply[wire.HEADER_SIZE :], 0.0)
    assert len(events) == 1 and isinstance(events[0], core.Reply) and events[0].waiter is waiter
    assert protocol.packet_boundary()


def test_packet_boundary_is_false_inside_a_split_packet() -> None:
    protocol: core.ClientProtocol[object] = core.ClientProtocol()
    stream, _ = protocol.start_stream(PROC, b"", object())
    data = packet(wire.STREAM, stream.serial, wire.CONTINUE, b"abcdef")
    protocol.receive_data(data[:2], 0.0)
    assert not protocol.packet_boundary()
    protocol.receive_data(data[2:10], 0.0)
    assert not protocol.packet_boundary()
    protocol.receive_data(data[10:], 0.0)
    assert protocol.packet_boundary()
    assert stream.recv(100, False) == b"abcdef"
