"""Descriptors on the server's unix socket, raw: CALL_WITH_FDS as libvirtd reads it
(a count word, then one carrier byte per descriptor), its limits, and descriptors
nobody asked for, which are closed (libvirtd's plain read drops them too).  Counted
in the server's /proc/PID/fd; every count is taken after a later call's reply, which
the server only reads once the earlier packets are dealt with."""

from __future__ import annotations

import array
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from virtwire.protocol.generated.virnet import remote_error
from vwtestkit import RawRpcClient, VirtwireServer
from vwtestkit.rawrpc import CALL, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, REPLY, STATUS_OK, encode_packet

PROC_GET_LIB_VERSION = 157
PROC_OPEN_GRAPHICS = 249
CALL_WITH_FDS = 4


@pytest.fixture
def server(virtwire_server: Callable[..., VirtwireServer]) -> VirtwireServer:
    return virtwire_server(tls=False, ro=False)


@pytest.fixture
def raw(server: VirtwireServer) -> Iterator[RawRpcClient]:
    with RawRpcClient.unix(server.unix_path, timeout=10) as client:
        client.open()
        yield client


@pytest.fixture
def shared_raw(virtwire_host: VirtwireServer) -> Iterator[RawRpcClient]:
    with RawRpcClient.unix(virtwire_host.unix_path, timeout=10) as client:
        client.open()
        yield client


def _fds(server: VirtwireServer) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def _send_fd(sock: socket.socket, data: bytes, fd: int) -> None:
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())])


def _packet(raw: RawRpcClient, procedure: int, payload: bytes, mtype: int = CALL) -> tuple[int, bytes]:
    serial = raw.next_serial
    raw.next_serial += 1
    return serial, encode_packet(
        REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, procedure, mtype, serial, STATUS_OK, payload
    )


def _settled(raw: RawRpcClient) -> None:
    assert raw.call(PROC_GET_LIB_VERSION).status == STATUS_OK


def test_descriptors_with_a_call_are_closed_after_it(server: VirtwireServer, raw: RawRpcClient) -> None:
    _settled(raw)
    before = _fds(server)
    r, w = os.pipe()
    try:
        # A CALL_WITH_FDS to a procedure that takes none: served, its descriptors closed.
        serial, packet = _packet(raw, PROC_GET_LIB_VERSION, struct.pack(">I", 2), CALL_WITH_FDS)
        raw.send(packet)
        _send_fd(raw.sock, b"\0", r)
        _send_fd(raw.sock, b"\0", w)
        reply = raw.recv_reply(serial)
        assert (reply.type, reply.status) == (REPLY, STATUS_OK)
        # A descriptor riding on a plain CALL's bytes: dropped.
        serial, packet = _packet(raw, PROC_GET_LIB_VERSION, b"")
        _send_fd(raw.sock, packet, r)
        assert raw.recv_reply(serial).status == STATUS_OK
        _settled(raw)
        assert _fds(server) == before
    finally:
        os.close(r)
        os.close(w)


def test_open_graphics_without_its_descriptor(virtwire_host: VirtwireServer, real_libvirtd: Any) -> None:
    """A plain CALL of OPEN_GRAPHICS: libvirtd's answer (its dispatcher wants slot 0)."""
    args = (
        struct.pack(">I", 4)
        + b"test"
        + bytes.fromhex("6695eb01f6a4830479aa97f2502e193f")
        + struct.pack(">iII", 1, 0, 0)
    )
    answers = []
    for path in (virtwire_host.unix_path, real_libvirtd.sockdir / "libvirt-sock"):
        with RawRpcClient.unix(path, timeout=10) as client:
            client.open()
            e = remote_error.from_bytes(client.call(PROC_OPEN_GRAPHICS, args).payload)
            answers.append((e.code, e.domain, e.message, e.str1, e.str2, e.int1))
    assert answers[0] == answers[1]
    assert answers[0][2] == "internal error: No FD available at slot 0"


@pytest.mark.parametrize("case", ["too-many", "carrier-without-descriptor"])
def test_bad_descriptor_transfers_end_the_connection(
    case: str, virtwire_host: VirtwireServer, shared_raw: RawRpcClient
) -> None:
    raw = shared_raw
    count = 33 if case == "too-many" else 1
    _, packet = _packet(raw, PROC_GET_LIB_VERSION, struct.pack(">I", count), CALL_WITH_FDS)
    raw.send(packet + (b"\0" if case != "too-many" else b""))
    assert raw.peer_closed()
    # The server goes on serving others.
    with RawRpcClient.unix(virtwire_host.unix_path, timeout=10) as other:
        other.open()
        _settled(other)
