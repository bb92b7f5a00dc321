"""The thread shell reads unix sockets with a plain recv() while no call in flight
may be answered with descriptors; a call that may (call_receiving_fds) must not
send while such a read is in progress, or its descriptors could ride on bytes a
plain recv() takes, and the kernel would close them.

A fake daemon on a socketpair answers; the client's socket holds one plain
recv() at its start until the test lets it go, so the race is made to happen,
not hoped for.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from virtwire.client import core
from virtwire.client.sync import SyncConnection
from virtwire.protocol import wire


class HeldSocket(socket.socket):
    """A unix socket whose next plain recv() waits for `go` (recvmsg is not held).

    A real socket.socket (the shell tells a daemon's unix socket by its type and
    family), taking over the descriptor of one end of a socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(fileno=sock.detach())
        self.in_recv = threading.Event()
        self.go = threading.Event()
        self.plain_reads = 0
        self.recvmsg_reads = 0

    def getpeername(self) -> str:
        return "/fake/daemon.sock"  # as a daemon's socket: descriptors may pass

    def recv(self, size: int, flags: int = 0, /) -> bytes:
        self.plain_reads += 1
        self.in_recv.set()
        self.go.wait()
        return super().recv(size, flags)

    def recvmsg(self, size: int, ancsize: int = 0, flags: int = 0, /) -> Any:
        self.recvmsg_reads += 1
        return super().recvmsg(size, ancsize, flags)


def read_call(daemon: socket.socket) -> tuple[int, int]:
    """One CALL packet from the client: (procedure, serial)."""
    head = b""
    while len(head) < 4:
        head += daemon.recv(4 - len(head))
    (length,) = struct.unpack(">I", head)
    rest = b""
    while len(rest) < length - 4:
        rest += daemon.recv(length - 4 - len(rest))
    _, _, _, proc, mtype, serial, _ = wire.PACKET_HEADER.unpack(head + rest[: wire.HEADER_SIZE - 4])
    assert mtype == wire.CALL
    return proc, serial


@pytest.fixture
def pair() -> Iterator[tuple[SyncConnection, HeldSocket, socket.socket]]:
    client, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    held = HeldSocket(client)
    conn = SyncConnection(held)
    yield conn, held, daemon
    conn.shutdown()
    daemon.close()


Pair = tuple[SyncConnection, HeldSocket, socket.socket]


def test_descriptor_call_waits_out_a_plain_read(pair: Pair) -> None:
    conn, held, daemon = pair
    results: dict[str, Any] = {}

    def plain_call() -> None:
        results["plain"] = conn.call(7, b"")

    def fd_call() -> None:
        results["fd"] = conn.call_receiving_fds(8, b"")

    reader = threading.Thread(target=plain_call)
    reader.start()
    proc, serial = read_call(daemon)
    assert proc == 7
    daemon.sendall(wire.remote_packet(7, wire.REPLY, serial, wire.OK, b""))
    held.in_recv.wait()  # the reader is inside a plain recv(), held there

    caller = threading.Thread(target=fd_call)
    caller.start()
    # The descriptor call goes to sleep until the read is over (or, wrongly, sends).
    while conn._plain_done is None and not select.select([daemon], [], [], 0)[0]:
        time.sleep(0.001)
    # It has sent nothing: its reply could otherwise come during the plain read.
    assert select.select([daemon], [], [], 0)[0] == []

    held.go.set()
    reader.join()
    assert results["plain"].procedure == 7

    proc, serial = read_call(daemon)
    assert proc == 8
    read_end, write_end = os.pipe()
    try:
        payload = struct.pack(">I", 1)  # REPLY_WITH_FDS: the descriptor count first
        daemon.sendall(wire.remote_packet(8, wire.REPLY_WITH_FDS, serial, wire.OK, payload))
        socket.send_fds(daemon, [b"\0"], [read_end])  # one carrier byte per descriptor, as libvirtd
        caller.join()
    finally:
        os.close(read_end)
    reply = results["fd"]
    fds = core.take_fds(reply)
    assert len(fds) == 1
    try:
        os.write(write_end, b"x")
        assert os.read(fds[0], 1) == b"x"  # the daemon's pipe end, alive
    finally:
        os.close(fds[0])
        os.close(write_end)
    assert held.recvmsg_reads >= 1  # read with recvmsg while the call was in flight
    assert conn._fd_calls == 0 and conn.alive


def test_plain_reads_when_no_descriptor_call(pair: tuple[SyncConnection, HeldSocket, socket.socket]) -> None:
    conn, held, daemon = pair
    held.go.set()
    got: list[core.Reply] = []
    reader = threading.Thread(target=lambda: got.append(conn.call(3, b"")))
    reader.start()
    _, serial = read_call(daemon)
    daemon.sendall(wire.remote_packet(3, wire.REPLY, serial, wire.OK, b"abcd"))
    reader.join()
    assert got[0].payload == b"abcd"
    assert (held.plain_reads, held.recvmsg_reads) == (1, 0)
