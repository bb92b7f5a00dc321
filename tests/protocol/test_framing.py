"""Framing: the length word, the header, and the incremental packet decoder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from virtwire.protocol.errors import ProtocolError, libvirtError
from virtwire.protocol.framing import (
    MAX_PACKET_SIZE,
    MIN_PACKET_SIZE,
    Header,
    MessageStatus,
    MessageType,
    PacketDecoder,
    decode_header,
    encode_header,
    encode_packet,
    peek_raw_header,
)
from virtwire.protocol.generated.constants import VIR_ERR_RPC, VIR_FROM_RPC
from virtwire.protocol.generated.virnet import VIR_NET_MESSAGE_MAX

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

# The header vectors of libvirt's tests/virnetmessagetest.c.
LIBVIRT_CALL_HEADER = bytes.fromhex("0000001c 11223344 00000001 00000666 00000000 00000099 00000000")
LIBVIRT_REPLY_ERROR_HEADER = bytes.fromhex("0000001c 11223344 00000001 00000666 00000001 00000099 00000001")
LIBVIRT_STREAM_PACKET = (
    bytes.fromhex("00000047 11223344 00000001 00000666 00000003 00000099 00000002")
    + b"The quick brown fox jumps over the lazy dog"
)


def _captured_streams() -> list[bytes]:
    """Each captured connection direction as one byte stream, in order."""
    streams: dict[tuple[str, int, str], bytearray] = {}
    for path in sorted(VECTORS.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "dir" not in record:
                continue
            key = (path.name, record["conn"], record["dir"])
            streams.setdefault(key, bytearray()).extend(
                bytes.fromhex(record["header_hex"] + record["payload_hex"])
            )
    return [bytes(s) for s in streams.values()]


CAPTURED = _captured_streams()


def _split(stream: bytes) -> list[bytes]:
    """Reference split of a well-formed stream by its length words."""
    packets = []
    pos = 0
    while pos < len(stream):
        length = int.from_bytes(stream[pos : pos + 4], "big")
        packets.append(stream[pos : pos + length])
        pos += length
    return packets


def test_libvirt_header_encode_vector() -> None:
    header = Header(0x11223344, 1, 0x666, MessageType.VIR_NET_CALL, 0x99, MessageStatus.VIR_NET_OK)
    assert encode_header(header) == LIBVIRT_CALL_HEADER
    assert encode_packet(header, b"") == LIBVIRT_CALL_HEADER


def test_libvirt_header_decode_vector() -> None:
    header = decode_header(LIBVIRT_REPLY_ERROR_HEADER)
    assert header == Header(
        0x11223344, 1, 0x666, MessageType.VIR_NET_REPLY, 0x99, MessageStatus.VIR_NET_ERROR
    )
    assert isinstance(header.type, MessageType)
    assert isinstance(header.status, MessageStatus)


def test_libvirt_stream_encode_vector() -> None:
    header = Header(0x11223344, 1, 0x666, MessageType.VIR_NET_STREAM, 0x99, MessageStatus.VIR_NET_CONTINUE)
    assert encode_packet(header, b"The quick brown fox jumps over the lazy dog") == LIBVIRT_STREAM_PACKET


def test_reply_header_keeps_call_identity() -> None:
    call = decode_header(LIBVIRT_CALL_HEADER)
    reply = call.reply(MessageStatus.VIR_NET_ERROR)
    assert (reply.program, reply.version, reply.procedure, reply.serial) == (0x11223344, 1, 0x666, 0x99)
    assert reply.type is MessageType.VIR_NET_REPLY
    assert reply.status is MessageStatus.VIR_NET_ERROR


def test_limits_come_from_the_spec() -> None:
    assert MIN_PACKET_SIZE == 28
    assert MAX_PACKET_SIZE == VIR_NET_MESSAGE_MAX + 4 == 33554436


@pytest.mark.parametrize("stream", CAPTURED[:4] + CAPTURED[-2:])
def test_decoder_byte_by_byte(stream: bytes) -> None:
    decoder = PacketDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        got.extend(decoder)
    assert got == _split(stream)
    assert not decoder.in_packet
    assert decoder.buffered == 0


def test_decoder_whole_capture_in_one_chunk() -> None:
    for stream in CAPTURED:
        decoder = PacketDecoder()
        decoder.feed(stream)
        assert list(decoder) == _split(stream)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decoder_random_chunks(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(CAPTURED))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    decoder = PacketDecoder()
    got: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[previous:cut])
        previous = cut
        got.extend(decoder)
    assert got == _split(stream)


def test_decoder_waits_for_a_whole_packet() -> None:
    decoder = PacketDecoder()
    decoder.feed(LIBVIRT_STREAM_PACKET[:-1])
    assert decoder.next_packet() is None
    assert decoder.in_packet
    decoder.feed(LIBVIRT_STREAM_PACKET[-1:])
    assert decoder.next_packet() == LIBVIRT_STREAM_PACKET
    assert decoder.next_packet() is None
    assert not decoder.in_packet


def _rpc_error_of(exc: pytest.ExceptionInfo[ProtocolError]) -> tuple[int | None, int | None, str]:
    return exc.value.get_error_code(), exc.value.get_error_domain(), str(exc.value)


def test_too_small_length_is_rejected_with_libvirts_words() -> None:
    decoder = PacketDecoder()
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(b"\x00\x00\x00\x07")
    assert _rpc_error_of(exc) == (
        VIR_ERR_RPC,
        VIR_FROM_RPC,
        "packet 7 bytes received from server too small, want 28",
    )
    assert isinstance(exc.value, libvirtError)
    assert exc.value.get_str1() == "%s"


@pytest.mark.parametrize("length", [0, 4, 27])
def test_lengths_below_a_header_are_rejected(length: int) -> None:
    with pytest.raises(ProtocolError, match="too small"):
        PacketDecoder().feed(length.to_bytes(4, "big") + b"\0" * 40)


def test_huge_length_is_rejected_before_the_body_arrives() -> None:
    decoder = PacketDecoder()
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(b"\xff\xff\xff\xff")
    assert str(exc.value) == f"packet {0xFFFFFFFF - 4} bytes received from server too large, want 33554432"
    assert decoder.buffered == 0


def test_largest_allowed_length_is_accepted() -> None:
    decoder = PacketDecoder()
    decoder.feed(MAX_PACKET_SIZE.to_bytes(4, "big"))
    assert decoder.next_packet() is None
    with pytest.raises(ProtocolError, match="too large"):
        PacketDecoder().feed((MAX_PACKET_SIZE + 1).to_bytes(4, "big"))


def test_custom_limit() -> None:
    decoder = PacketDecoder(max_packet_size=1024)
    with pytest.raises(ProtocolError, match="packet 1021 bytes received from server too large, want 1020"):
        decoder.feed((1025).to_bytes(4, "big"))
    with pytest.raises(ValueError):
        PacketDecoder(max_packet_size=10)


def test_decoder_refuses_input_after_an_error() -> None:
    decoder = PacketDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x01")
    with pytest.raises(ProtocolError):
        decoder.feed(LIBVIRT_CALL_HEADER)
    with pytest.raises(ProtocolError):
        decoder.next_packet()


def test_good_packet_before_a_bad_length_is_still_delivered() -> None:
    decoder = PacketDecoder()
    decoder.feed(LIBVIRT_CALL_HEADER + b"\x00\x00\x00\x03")
    assert decoder.next_packet() == LIBVIRT_CALL_HEADER
    with pytest.raises(ProtocolError, match="too small"):
        decoder.next_packet()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_only_raises_protocol_error(garbage: bytes) -> None:
    decoder = PacketDecoder()
    packets: list[bytes] = []
    try:
        decoder.feed(garbage)
        packets.extend(decoder)
    except ProtocolError as exc:
        assert exc.get_error_code() == VIR_ERR_RPC
    # whatever came out is a whole packet by its own length word, taken in order
    assert b"".join(packets) == garbage[: sum(len(p) for p in packets)]
    for packet in packets:
        assert int.from_bytes(packet[:4], "big") == len(packet) >= MIN_PACKET_SIZE
        with contextlib.suppress(ProtocolError):
            decode_header(packet)


def test_unknown_type_and_status_keep_the_raw_header() -> None:
    bad_type = bytes.fromhex("0000001c 20008086 00000001 00000022 00000009 00000007 00000000")
    with pytest.raises(ProtocolError, match="Unexpected message type 9") as exc:
        decode_header(bad_type)
    assert exc.value.raw_header == (0x20008086, 1, 34, 9, 7, 0)
    bad_status = bytes.fromhex("0000001c 20008086 00000001 00000022 00000000 00000007 00000005")
    with pytest.raises(ProtocolError, match="Unexpected message status 5") as exc:
        decode_header(bad_status)
    assert exc.value.raw_header == (0x20008086, 1, 34, 0, 7, 5)


def test_header_checks_length_word_against_packet() -> None:
    with pytest.raises(ProtocolError, match="length word says 28"):
        decode_header(LIBVIRT_CALL_HEADER + b"\0\0\0\0")
    with pytest.raises(ProtocolError):
        decode_header(LIBVIRT_CALL_HEADER[:20])
    with pytest.raises(ProtocolError):
        decode_header(b"\0\0")
    with pytest.raises(ProtocolError):
        peek_raw_header(b"\0" * 27)


def test_negative_procedure_and_high_serial_roundtrip() -> None:
    header = Header(0xFFFFFFFF, 1, -5, MessageType.VIR_NET_MESSAGE, 0xFFFFFFFF, MessageStatus.VIR_NET_OK)
    assert decode_header(encode_header(header)) == header


def test_encode_rejects_out_of_range_fields_and_oversize_payloads() -> None:
    header = Header(1 << 32, 1, 1, MessageType.VIR_NET_CALL, 0, MessageStatus.VIR_NET_OK)
    with pytest.raises(ProtocolError, match="Unable to encode message header"):
        encode_header(header)
    ok = Header(1, 1, 1, MessageType.VIR_NET_CALL, 0, MessageStatus.VIR_NET_OK)
    with pytest.raises(ProtocolError, match="Unable to encode message payload"):
        encode_header(ok, VIR_NET_MESSAGE_MAX)
    assert len(encode_header(ok, VIR_NET_MESSAGE_MAX - 24)) == 28


def test_a_chunk_that_is_one_packet_is_not_copied() -> None:
    decoder = PacketDecoder()
    decoder.feed(LIBVIRT_STREAM_PACKET)
    assert decoder.buffered == len(LIBVIRT_STREAM_PACKET)
    assert decoder.next_packet() is LIBVIRT_STREAM_PACKET
    assert decoder.buffered == 0


def test_mutable_chunks_are_copied() -> None:
    source = bytearray(LIBVIRT_CALL_HEADER + LIBVIRT_STREAM_PACKET)
    decoder = PacketDecoder()
    decoder.feed(memoryview(source))
    source[:] = b"\0" * len(source)
    assert list(decoder) == [LIBVIRT_CALL_HEADER, LIBVIRT_STREAM_PACKET]


def test_whole_packets_then_a_partial_one() -> None:
    decoder = PacketDecoder()
    decoder.feed(LIBVIRT_CALL_HEADER + LIBVIRT_STREAM_PACKET + LIBVIRT_CALL_HEADER[:10])
    assert decoder.in_packet
    assert decoder.buffered == 28 + len(LIBVIRT_STREAM_PACKET) + 10
    decoder.feed(LIBVIRT_CALL_HEADER[10:])
    assert list(decoder) == [LIBVIRT_CALL_HEADER, LIBVIRT_STREAM_PACKET, LIBVIRT_CALL_HEADER]
    assert not decoder.in_packet


def test_bad_length_after_a_whole_packet_chunk_waits_its_turn() -> None:
    decoder = PacketDecoder()
    decoder.feed(LIBVIRT_CALL_HEADER)
    decoder.feed(b"\x00\x00\x00\x05")
    assert decoder.next_packet() is LIBVIRT_CALL_HEADER
    with pytest.raises(ProtocolError, match="too small"):
        decoder.next_packet()
