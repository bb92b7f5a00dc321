"""Whole messages: the body type follows (program, procedure, type, status), and
every accepted packet re-encodes to the same bytes.  The hand-built packets follow
libvirt's layout in src/remote/remote_protocol.x, one XDR word at a time."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from virtwire.protocol import message as message_module
from virtwire.protocol.errors import ProtocolError
from virtwire.protocol.framing import Header, MessageStatus, MessageType, encode_packet
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import keepalive, remote
from virtwire.protocol.generated.virnet import remote_error, virNetStreamHole
from virtwire.protocol.message import Message, decode_message, encode_message, lookup_procedure
from virtwire.protocol.typedparams import dict_to_params, params_to_dict

REMOTE = remote.REMOTE_PROGRAM
TEST_UUID = uuid.UUID("6695eb01-f6a4-8304-79aa-97f2502e193f").bytes

CALL, REPLY, MESSAGE, STREAM = (
    MessageType.VIR_NET_CALL,
    MessageType.VIR_NET_REPLY,
    MessageType.VIR_NET_MESSAGE,
    MessageType.VIR_NET_STREAM,
)
OK, ERROR, CONTINUE = MessageStatus.VIR_NET_OK, MessageStatus.VIR_NET_ERROR, MessageStatus.VIR_NET_CONTINUE


def word(value: int) -> bytes:
    return struct.pack(">i" if value < 0 else ">I", value)


def hyper(value: int) -> bytes:
    return struct.pack(">Q", value)


def string(text: str) -> bytes:
    raw = text.encode()
    return word(len(raw)) + raw + b"\0" * (-len(raw) % 4)


def domain_bytes(name: str = "test", dom_id: int = 1) -> bytes:
    return string(name) + TEST_UUID + word(dom_id)


def header(
    proc: int, mtype: MessageType, status: MessageStatus = OK, serial: int = 5, program: int = REMOTE
) -> Header:
    return Header(program, 1, proc, mtype, serial, status)


def roundtrip(packet: bytes) -> Message:
    message = decode_message(packet)
    assert encode_message(message) == packet
    return message


# The 116-byte error packet of libvirt's tests/virnetmessagetest.c (payload part).
LIBVIRT_ERROR_PAYLOAD = (
    word(1)
    + word(7)
    + word(1)
    + string("Hello World")
    + word(2)
    + word(0)
    + word(1)
    + string("One")
    + word(1)
    + string("Two")
    + word(1)
    + string("Three")
    + word(1)
    + word(2)
    + word(0)
)


def test_libvirt_error_packet_vector() -> None:
    packet = encode_packet(header(0x666, MESSAGE, ERROR, 0x99, program=0x11223344), LIBVIRT_ERROR_PAYLOAD)
    assert len(packet) == 116
    assert packet[:28].hex() == "000000741122334400000001000006660000000200000099" + "00000001"
    message = roundtrip(packet)
    assert message.body == LIBVIRT_ERROR_PAYLOAD  # unknown program: kept raw
    err = remote_error.from_bytes(LIBVIRT_ERROR_PAYLOAD)
    assert (err.code, err.domain, err.message, err.level, err.dom) == (1, 7, "Hello World", 2, None)
    assert (err.str1, err.str2, err.str3, err.int1, err.int2, err.net) == ("One", "Two", "Three", 1, 2, None)
    assert err.to_bytes() == LIBVIRT_ERROR_PAYLOAD


def test_error_reply_decodes_to_remote_error() -> None:
    packet = encode_packet(header(34, REPLY, ERROR), LIBVIRT_ERROR_PAYLOAD)
    body = roundtrip(packet).body
    assert isinstance(body, remote_error)
    assert body.message == "Hello World"


def test_job_completed_event_363() -> None:
    payload = (
        word(7)
        + domain_bytes()
        + word(3)
        + string("operation")
        + word(C.VIR_TYPED_PARAM_INT)
        + word(C.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)
        + string("time_elapsed")
        + word(C.VIR_TYPED_PARAM_ULLONG)
        + hyper(4321)
        + string("success")
        + word(C.VIR_TYPED_PARAM_BOOLEAN)
        + word(1)
    )
    packet = encode_packet(header(363, MESSAGE, serial=1), payload)
    body = roundtrip(packet).body
    assert isinstance(body, remote.remote_domain_event_callback_job_completed_msg)
    assert body.callbackID == 7
    assert (body.dom.name, body.dom.uuid, body.dom.id) == ("test", TEST_UUID, 1)
    assert params_to_dict(body.params) == {"operation": 5, "time_elapsed": 4321, "success": True}
    # built the other way round, from the dict a server holds:
    rebuilt = remote.remote_domain_event_callback_job_completed_msg(
        callbackID=7,
        dom=body.dom,
        params=dict_to_params({"operation": 5, "time_elapsed": 4321, "success": True}),
    )
    assert encode_message(Message(header(363, MESSAGE, serial=1), rebuilt)) == packet


def test_get_job_stats_reply_298() -> None:
    payload = (
        word(C.VIR_DOMAIN_JOB_UNBOUNDED)
        + word(2)
        + string("memory_remaining")
        + word(C.VIR_TYPED_PARAM_ULLONG)
        + hyper(2**33)
        + string("errmsg")
        + word(C.VIR_TYPED_PARAM_STRING)
        + string("none yet")
    )
    body = roundtrip(encode_packet(header(298, REPLY), payload)).body
    assert isinstance(body, remote.remote_domain_get_job_stats_ret)
    assert body.type == C.VIR_DOMAIN_JOB_UNBOUNDED
    assert params_to_dict(body.params) == {"memory_remaining": 2**33, "errmsg": "none yet"}


def test_migration_iteration_event_359() -> None:
    payload = word(54) + domain_bytes() + word(3)
    body = roundtrip(encode_packet(header(359, MESSAGE, serial=1), payload)).body
    assert isinstance(body, remote.remote_domain_event_callback_migration_iteration_msg)
    assert (body.callbackID, body.dom.name, body.iteration) == (54, "test", 3)


def test_call_args_and_void_bodies() -> None:
    call = roundtrip(encode_packet(header(23, CALL), string("test")))
    assert isinstance(call.body, remote.remote_domain_lookup_by_name_args)
    assert call.body.name == "test"
    assert roundtrip(encode_packet(header(34, REPLY))).body is None  # suspend: void ret
    assert roundtrip(encode_packet(header(66, CALL))).body is None  # auth list: void args


def test_keepalive_ping_is_void() -> None:
    ping = bytes.fromhex("0000001c 6b656570 00000001 00000001 00000002 00000000 00000000")
    message = roundtrip(ping)
    assert message.body is None
    assert message.header.program == keepalive.KEEPALIVE_PROGRAM


def test_raw_bodies() -> None:
    data = b"The quick brown fox"
    assert roundtrip(encode_packet(header(9999, CALL), b"\0\0\0\1")).body == b"\0\0\0\1"  # unknown procedure
    assert roundtrip(encode_packet(header(209, STREAM, CONTINUE), data)).body == data  # stream data, unpadded
    assert roundtrip(encode_packet(header(209, STREAM, OK))).body == b""
    assert roundtrip(encode_packet(header(23, CALL, program=0x12345678), b"x")).body == b"x"


def test_stream_error_and_hole() -> None:
    err = roundtrip(encode_packet(header(209, STREAM, ERROR), LIBVIRT_ERROR_PAYLOAD)).body
    assert isinstance(err, remote_error)
    hole = roundtrip(encode_packet(header(209, MessageType.VIR_NET_STREAM_HOLE), hyper(4096) + word(0))).body
    assert hole == virNetStreamHole(length=4096, flags=0)


def test_payload_that_does_not_decode() -> None:
    packet = encode_packet(header(23, CALL, serial=77), word(100) + b"ab")  # string longer than the data
    with pytest.raises(ProtocolError, match="Unable to decode message payload") as exc:
        decode_message(packet)
    assert exc.value.raw_header == (REMOTE, 1, 23, 0, 77, 0)
    assert exc.value.get_error_code() == C.VIR_ERR_RPC


def test_trailing_bytes_strict_and_lenient() -> None:
    packet = encode_packet(header(23, CALL), string("test") + b"junk")
    with pytest.raises(ProtocolError):
        decode_message(packet)
    lenient = decode_message(packet, exact=False)
    assert isinstance(lenient.body, remote.remote_domain_lookup_by_name_args)
    assert lenient.body.name == "test"
    void_with_junk = encode_packet(header(66, CALL), b"junk")
    with pytest.raises(ProtocolError):
        decode_message(void_with_junk)
    assert decode_message(void_with_junk, exact=False).body is None


def test_encode_refuses_a_body_of_the_wrong_type() -> None:
    wrong = remote.remote_domain_lookup_by_name_args(name="x")
    with pytest.raises(TypeError, match="remote_domain_lookup_by_name_ret"):
        encode_message(Message(header(23, REPLY), wrong))
    with pytest.raises(TypeError):
        encode_message(Message(header(23, CALL)))  # args expected, none given
    with pytest.raises(TypeError, match="void"):
        encode_message(Message(header(34, REPLY), wrong))


def test_lookup_procedure() -> None:
    proc = lookup_procedure(REMOTE, 1, 34)
    assert proc is not None and proc.name == "DOMAIN_SUSPEND" and proc.api == "virDomainSuspend"
    assert lookup_procedure(REMOTE, 2, 34) is None
    assert lookup_procedure(REMOTE, 1, 100000) is None
    ping = lookup_procedure(keepalive.KEEPALIVE_PROGRAM, 1, 1)
    assert ping is not None and ping.event == "ping"


MODELLED = sorted(n for n, p in remote.PROCEDURES.items() if p.modelled)


@settings(max_examples=300, deadline=None)
@given(
    proc=st.sampled_from(MODELLED),
    mtype=st.sampled_from([CALL, REPLY, MESSAGE]),
    status=st.sampled_from([OK, ERROR]),
    payload=st.binary(max_size=120).map(lambda b: b[: len(b) // 4 * 4]),
)
def test_hostile_payloads_fail_cleanly(
    proc: int, mtype: MessageType, status: MessageStatus, payload: bytes
) -> None:
    packet = encode_packet(header(proc, mtype, status), payload)
    try:
        message = decode_message(packet)
    except ProtocolError as exc:
        assert exc.get_error_code() == C.VIR_ERR_RPC
        assert exc.raw_header is not None
        return
    # Accepted: encoding is canonical (zero padding), so a second trip is exact.
    again = encode_message(message)
    assert decode_message(again) == message
    assert encode_message(decode_message(again)) == again


@settings(max_examples=300, deadline=None)
@given(
    words=st.tuples(
        st.sampled_from([REMOTE, keepalive.KEEPALIVE_PROGRAM, 0x20008087, 0]),
        st.integers(0, 2),
        st.one_of(st.sampled_from(MODELLED), st.integers(-(2**31), 2**31 - 1)),
        st.integers(-2, 8),
        st.integers(0, 2**32 - 1),
        st.integers(-2, 4),
    ),
    payload=st.binary(max_size=64),
)
def test_random_headers_fail_cleanly(words: tuple[int, int, int, int, int, int], payload: bytes) -> None:
    packet = (28 + len(payload)).to_bytes(4, "big") + struct.pack(">IIiiIi", *words) + payload
    try:
        message = decode_message(packet)
    except ProtocolError as exc:
        assert exc.get_error_code() == C.VIR_ERR_RPC
        return
    again = encode_message(message)
    assert decode_message(again) == message


def test_made_up_procedure_numbers_are_not_remembered() -> None:
    before = len(message_module._CODEC_CACHE)
    for number in range(100000, 100050):
        decode_message(encode_packet(header(number, CALL), b""))
    assert len(message_module._CODEC_CACHE) == before


def test_job_stats_over_the_limit_is_refused_before_decoding() -> None:
    # 65 parameters claimed: REMOTE_DOMAIN_JOB_STATS_MAX is 64
    payload = word(C.VIR_DOMAIN_JOB_UNBOUNDED) + word(65) + b"\0" * 64
    with pytest.raises(ProtocolError, match="Unable to decode message payload") as exc:
        decode_message(encode_packet(header(298, REPLY), payload))
    assert "params" in "".join(getattr(exc.value, "__notes__", []))
    huge = word(C.VIR_DOMAIN_JOB_UNBOUNDED) + word(0xFFFFFFFF)
    with pytest.raises(ProtocolError):
        decode_message(encode_packet(header(298, REPLY), huge))
