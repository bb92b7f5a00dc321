"""Raw packets against `virtwire serve`: libvirtd's answers to what libvirt.so never sends.

Every expected error below was read off a real libvirtd 9.0 with a raw client
(see docs/server.md); the server must also keep serving other clients.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from virtwire.protocol.generated.virnet import remote_error
from vwtestkit import RawRpcClient, VirtwireServer
from vwtestkit.rawrpc import (
    CALL,
    KEEPALIVE_PROGRAM,
    MESSAGE,
    REMOTE_PROGRAM,
    REPLY,
    STATUS_ERROR,
    STATUS_OK,
    STREAM,
    RawPacket,
    encode_packet,
    xdr_string,
    xdr_uint,
)

PROC_SUPPORTS_FEATURE = 60
PROC_LOOKUP_BY_NAME = 23
PROC_GET_LIB_VERSION = 157
PROC_DOMAIN_SUSPEND = 34


def error_of(packet: RawPacket) -> tuple[object, ...]:
    assert (packet.type, packet.status) == (REPLY, STATUS_ERROR), packet
    e = remote_error.from_bytes(packet.payload)
    return (e.code, e.domain, e.message, e.level, e.str1, e.str2, e.str3, e.int1, e.int2)


def rpc(message: str) -> tuple[object, ...]:
    return (39, 7, message, 2, "%s", message, None, -1, -1)


@pytest.fixture
def raw(virtwire_host: VirtwireServer) -> Iterator[RawRpcClient]:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as client:
        yield client


def test_auth_list_then_open(raw: RawRpcClient) -> None:
    reply = raw.call(66)
    assert (reply.status, reply.payload) == (STATUS_OK, xdr_uint(1) + xdr_uint(0))  # types = [NONE]
    reply = raw.call(1, xdr_uint(1) + xdr_string("test:///default") + xdr_uint(0))
    assert (reply.status, reply.payload) == (STATUS_OK, b"")


def test_calls_before_open(raw: RawRpcClient) -> None:
    not_open = (
        1,
        7,
        "internal error: hypervisor connection not open",
        2,
        "internal error: %s",
        "hypervisor connection not open",
        None,
        -1,
        -1,
    )
    assert error_of(raw.call(PROC_GET_LIB_VERSION)) == not_open
    # Feature 10 is the one feature that may be asked before opening; others are not.
    assert raw.call(PROC_SUPPORTS_FEATURE, xdr_uint(10)).payload == xdr_uint(1)
    assert error_of(raw.call(PROC_SUPPORTS_FEATURE, xdr_uint(14))) == not_open
    # libvirtd decodes the payload before it looks at the connection.
    assert error_of(raw.call(PROC_LOOKUP_BY_NAME, b"\x00\x00\x00\xff")) == rpc(
        "Unable to decode message payload"
    )
    raw.open()  # still usable
    assert raw.call(PROC_GET_LIB_VERSION).payload == struct.pack(">Q", 9000000)


@pytest.mark.parametrize(
    ("program", "version"), [(0x12345678, 1), (REMOTE_PROGRAM, 2), (KEEPALIVE_PROGRAM, 1)]
)
def test_unknown_program_or_version(raw: RawRpcClient, program: int, version: int) -> None:
    reply = raw.call(66, program=program, version=version)
    assert (reply.program, reply.version, reply.procedure) == (program, version, 66)
    assert error_of(reply) == rpc(f"Cannot find program {program} version {version}")


def test_unknown_procedure_status_and_event_procedures(raw: RawRpcClient) -> None:
    raw.open()
    assert error_of(raw.call(9999)) == rpc("unknown procedure: 9999")
    assert error_of(raw.call(318)) == rpc("unknown procedure: 318")  # an event is not callable
    assert error_of(raw.call(66, status=7)) == rpc("Unexpected message status 7")


def test_stray_packet_types_are_ignored(raw: RawRpcClient) -> None:
    raw.open()
    for mtype in (STREAM, REPLY, MESSAGE, 9):
        raw.send_call(66, mtype=mtype)
    # No answer to any of them: the next reply is for the next call.
    reply = raw.call(PROC_GET_LIB_VERSION)
    assert reply.status == STATUS_OK and not raw.unsolicited


@pytest.mark.parametrize(
    ("feature", "supported"),
    [(10, 1), (14, 1), (15, 1), (9, 1), (16, 1), (8, 1), (1, 0), (2, 0), (3, 0), (99, 0), (-1, 0)],
)
def test_supported_features(raw: RawRpcClient, feature: int, supported: int) -> None:
    raw.open()
    reply = raw.call(PROC_SUPPORTS_FEATURE, struct.pack(">i", feature))
    assert (reply.status, reply.payload) == (STATUS_OK, xdr_uint(supported))


def test_call_with_fds_over_tcp_ends_the_connection(raw: RawRpcClient) -> None:
    raw.open()
    # CALL_WITH_FDS over TCP: no descriptor can come with it; libvirtd hangs up
    # (virNetServerClientDispatchRead), with or without a count word.
    with pytest.raises(EOFError):
        raw.call(157, struct.pack(">I", 1), mtype=4)


def test_open_errors(raw: RawRpcClient) -> None:
    reply = raw.call(1, xdr_uint(1) + xdr_string("nosuch:///x") + xdr_uint(0))
    assert error_of(reply) == (
        5,
        0,
        "no connection driver available for nosuch:///x",
        2,
        "no connection driver available for %s",
        "nosuch:///x",
        None,
        -1,
        -1,
    )
    reply = raw.call(1, xdr_uint(1) + xdr_string("") + xdr_uint(0))
    assert error_of(reply)[:3] == (5, 0, "no connection driver available for <null>")
    reply = raw.call(1, xdr_uint(1) + xdr_string("test:///nosuchpath") + xdr_uint(0))
    assert error_of(reply)[:3] == (27, 12, "XML error: failed to parse xml document '/nosuchpath'")
    assert error_of(raw.call(1, xdr_uint(1) + xdr_string("test:///default")))[:3] == (
        39,
        7,
        "Unable to decode message payload",
    )


def test_second_open_drops_the_first(raw: RawRpcClient) -> None:
    raw.open()
    reply = raw.call(1, xdr_uint(1) + xdr_string("test:///default") + xdr_uint(0))
    assert error_of(reply)[:3] == (1, 7, "internal error: connection already open")
    assert error_of(raw.call(PROC_GET_LIB_VERSION))[:3] == (
        1,
        7,
        "internal error: hypervisor connection not open",
    )


def test_close_replies_then_hangs_up(raw: RawRpcClient) -> None:
    raw.open()
    reply = raw.call(2)
    assert (reply.status, reply.payload) == (STATUS_OK, b"")
    assert raw.peer_closed(10)


def test_trailing_junk_after_a_valid_payload_is_accepted(raw: RawRpcClient) -> None:
    raw.open()
    reply = raw.call(PROC_LOOKUP_BY_NAME, xdr_string("test") + b"junkjunk")
    assert reply.status == STATUS_OK
    assert reply.payload[:8] == xdr_string("test")


def test_not_supported_uses_the_api_name(raw: RawRpcClient) -> None:
    raw.open()
    dom = xdr_string("test") + bytes.fromhex("6695eb01f6a4830479aa97f2502e193f") + xdr_uint(1)
    message = "this function is not supported by the connection driver: virDomainBlockStatsFlags"
    # DOMAIN_BLOCK_STATS_FLAGS (243): the test driver has no domainBlockStatsFlags.
    assert error_of(raw.call(243, dom + xdr_string("vda") + struct.pack(">iI", 0, 0))) == (
        3,
        20,
        message,
        2,
        "this function is not supported by the connection driver: %s",
        "virDomainBlockStatsFlags",
        None,
        -1,
        -1,
    )


def test_ping_gets_pong(raw: RawRpcClient) -> None:
    raw.send(encode_packet(KEEPALIVE_PROGRAM, 1, 1, MESSAGE, 0, STATUS_OK))
    pong = RawPacket.parse(raw.recv_packet())
    assert (
        pong.program,
        pong.version,
        pong.procedure,
        pong.type,
        pong.serial,
        pong.status,
        pong.payload,
    ) == (KEEPALIVE_PROGRAM, 1, 2, MESSAGE, 0, STATUS_OK, b"")


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">I", 27) + b"\0" * 24,  # below the 28-byte minimum
        struct.pack(">I", 3),
        struct.pack(">I", 32 * 1024 * 1024 + 5),  # above VIR_NET_MESSAGE_MAX + 4
        struct.pack(">I", 0xFFFFFFFF),
    ],
    ids=["under-28", "under-4", "over-max", "huge"],
)
def test_bad_length_words_hang_up(virtwire_host: VirtwireServer, data: bytes) -> None:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as bad:
        bad.send(data)
        assert bad.peer_closed(10)
    _still_serving(virtwire_host)


def test_truncated_frame_then_disconnect(virtwire_host: VirtwireServer) -> None:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as bad:
        bad.send(encode_packet(REMOTE_PROGRAM, 1, 66, CALL, 0, 0, b"x" * 100)[:60])
    _still_serving(virtwire_host)


def test_garbage_payloads_do_not_hurt(virtwire_host: VirtwireServer) -> None:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as raw:
        raw.open()
        for proc in (23, 11, 273, 316, 1, 60, 14, 212):
            for payload in (b"", b"\xff" * 3, b"\x7f\xff\xff\xff" * 8, b"\x00\x00\x00\x01" + b"\xff" * 40):
                reply = raw.call(proc, payload)
                assert reply.status in (STATUS_OK, STATUS_ERROR)
        assert raw.call(PROC_GET_LIB_VERSION).status == STATUS_OK
    _still_serving(virtwire_host)


def _still_serving(server: VirtwireServer) -> None:
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port, timeout=10) as other:
        other.open()
        assert other.call(PROC_GET_LIB_VERSION).payload == struct.pack(">Q", 9000000)
