"""core.ClientProtocol without any I/O: bytes in, events out."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from virtwire.client import core
from virtwire.client.streamstate import AT_HOLE
from virtwire.protocol import wire
from virtwire.protocol.errors import libvirtError, make_error, to_remote_error
from virtwire.protocol.generated import virnet

P = wire.REMOTE_PROGRAM


def reply(serial: int, proc: int = 157, status: int = wire.OK, payload: bytes = b"") -> bytes:
    return wire.remote_packet(proc, wire.REPLY, serial, status, payload)


def stream_packet(serial: int, proc: int, status: int, payload: bytes = b"", hole: bool = False) -> bytes:
    return wire.remote_packet(proc, wire.STREAM_HOLE if hole else wire.STREAM, serial, status, payload)


def hole(length: int) -> bytes:
    return virnet.virNetStreamHole(length=length, flags=0).to_bytes()


def test_call_reply_event_ping_in_one_read() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    serial, packet = proto.start_call(157, b"", "waiter-a")
    assert packet == core.call_packet(serial, 157, b"")
    event = wire.remote_packet(318, wire.MESSAGE, 1, wire.OK, b"\0\0\0\1")
    data = wire.PING_PACKET + reply(serial, payload=b"\0" * 8) + event + reply(999)
    evs = proto.receive_data(data, 0.0)
    assert [type(e) for e in evs] == [core.SendPacket, core.Reply, core.Event]  # reply 999: nobody waits
    assert evs[0].data == wire.PONG_PACKET  # type: ignore[union-attr]
    assert evs[1].waiter == "waiter-a" and evs[1].payload == b"\0" * 8  # type: ignore[union-attr]
    assert proto.pending.waiters == {}


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    proto: core.ClientProtocol[int] = core.ClientProtocol()
    serials = [proto.start_call(157, b"", n)[0] for n in range(3)]
    data = b"".join(reply(s, payload=bytes([s]) * 4) for s in reversed(serials)) + wire.PING_PACKET
    got: list[Any] = []
    pos = 0
    for cut in cuts:
        got += proto.receive_data(data[pos : pos + cut], 0.0)
        pos += cut
    if pos < len(data):
        got += proto.receive_data(data[pos:], 0.0)
    assert [(e.waiter, e.payload) for e in got if isinstance(e, core.Reply)] == [
        (2, b"\2" * 4),
        (1, b"\1" * 4),
        (0, b"\0" * 4),
    ]
    assert sum(isinstance(e, core.SendPacket) for e in got) == 1


def test_cancelled_call_reply_is_dropped() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    first, _ = proto.start_call(157, b"", "cancelled")
    proto.discard(first)
    second, _ = proto.start_call(157, b"", "live")
    evs = proto.receive_data(reply(first) + reply(second), 0.0)
    assert [e.waiter for e in evs if isinstance(e, core.Reply)] == ["live"]


def test_eof_and_bad_length_fail_every_waiter() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    proto.start_call(1, b"", "a")
    proto.start_call(1, b"", "b")
    (closed,) = proto.receive_data(b"", 0.0)
    assert isinstance(closed, core.Closed) and closed.reason == "eof" and sorted(closed.waiters) == ["a", "b"]
    assert closed.error.get_error_message() == "End of file while reading data: Input/output error"
    with pytest.raises(libvirtError):
        proto.start_call(1, b"", "c")
    other: core.ClientProtocol[str] = core.ClientProtocol()
    other.start_call(1, b"", "x")
    evs = other.receive_data((64 * 1024 * 1024).to_bytes(4, "big"), 0.0)
    assert isinstance(evs[-1], core.Closed) and evs[-1].waiters == ["x"]


def test_keepalive_clock_pings_then_declares_death() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    proto.start_call(1, b"", "w")
    proto.set_keepalive(5, 1, now=0.0)
    assert proto.deadline() == 5.0
    assert proto.tick(4.0) == []
    (ping,) = proto.tick(5.0)
    assert isinstance(ping, core.SendPacket) and ping.data == wire.PING_PACKET
    (dead,) = proto.tick(10.0)
    assert isinstance(dead, core.Closed) and dead.reason == "keepalive" and dead.waiters == ["w"]
    assert proto.deadline() == float("inf")


def test_download_stream_data_holes_end_and_finish() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(209, b"", "open", allow_skip=True)
    s = stream.serial
    evs = proto.receive_data(
        reply(s, 209)
        + stream_packet(s, 209, wire.CONTINUE, b"abc")
        + stream_packet(s, 209, wire.CONTINUE, hole(5), hole=True)
        + stream_packet(s, 209, wire.CONTINUE, b"de")
        + stream_packet(s, 209, wire.CONTINUE),  # end of data
        0.0,
    )
    assert [type(e) for e in evs] == [core.Reply] + [core.StreamReady] * 4
    assert stream.recv(100, stop_at_hole=True) == b"abc"
    assert stream.recv(100, stop_at_hole=True) == AT_HOLE
    assert stream.recv_hole() == 5
    assert stream.recv(1, stop_at_hole=True) == b"d"
    assert stream.recv(100, stop_at_hole=False) == b"e"
    assert stream.recv(100, stop_at_hole=False) == b""
    packet = proto.close_stream(stream, False, "finish")
    assert packet == stream_packet(s, 209, wire.OK)
    (done,) = proto.receive_data(stream_packet(s, 209, wire.OK), 0.0)
    assert isinstance(done, core.Reply) and done.waiter == "finish" and done.status == wire.OK
    assert proto.streams == {} and stream.closed == "finished"


def test_holes_read_as_zeroes_without_stop_at_hole() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(209, b"", "open", allow_skip=True)
    s = stream.serial
    proto.receive_data(
        reply(s, 209)
        + stream_packet(s, 209, wire.CONTINUE, hole(4), hole=True)
        + stream_packet(s, 209, wire.CONTINUE, b"xy"),
        0.0,
    )
    assert stream.recv(3, stop_at_hole=False) == b"\0\0\0"
    assert stream.recv(10, stop_at_hole=False) == b"\0xy"


def test_stream_error_is_raised_on_next_use_and_fails_finish() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(208, b"", "open")
    s = stream.serial
    err = to_remote_error(make_error(38, 0, "write failed")).to_bytes()
    proto.receive_data(reply(s, 208) + stream_packet(s, 208, wire.ERROR, err), 0.0)
    with pytest.raises(libvirtError) as caught:
        stream.data_packet(b"more")
    assert caught.value.get_error_code() == 38
    with pytest.raises(libvirtError):
        proto.close_stream(stream, False, "finish")


def test_unexpected_hole_on_a_plain_stream_is_an_error() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(209, b"", "open", allow_skip=False)
    s = stream.serial
    proto.receive_data(reply(s, 209) + stream_packet(s, 209, wire.CONTINUE, hole(4), hole=True), 0.0)
    with pytest.raises(libvirtError) as caught:
        stream.recv(10, stop_at_hole=False)
    assert caught.value.get_error_message() == "Unexpected stream hole"
    with pytest.raises(libvirtError) as caught:
        stream.hole_packet(10, 0)
    expected = "Requested operation is not valid: Skipping is not supported with this stream"
    assert caught.value.get_error_message() == expected


def test_failed_opening_call_forgets_the_stream() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(209, b"", "open")
    err = to_remote_error(make_error(3, 18, "no")).to_bytes()
    (ev,) = proto.receive_data(reply(stream.serial, 209, wire.ERROR, err), 0.0)
    assert isinstance(ev, core.Reply) and ev.status == wire.ERROR
    assert proto.streams == {}
    # late packets for it are dropped, not misrouted
    assert proto.receive_data(stream_packet(stream.serial, 209, wire.CONTINUE, b"zz"), 0.0) == []


def test_connection_death_errors_open_streams() -> None:
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(209, b"", "open")
    proto.receive_data(reply(stream.serial, 209), 0.0)
    evs = proto.receive_data(b"", 0.0)
    assert [type(e) for e in evs] == [core.StreamReady, core.Closed]
    with pytest.raises(libvirtError):
        stream.recv(10, stop_at_hole=False)


def test_large_packet_read_straight_into_its_buffer() -> None:
    """The rest of a large split packet is offered as a buffer to recv_into; small ones are not."""
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    stream, _ = proto.start_stream(209, b"", "open")
    s = stream.serial
    proto.receive_data(reply(s, 209), 0.0)
    data = os.urandom(300_000)
    packet = stream_packet(s, 209, wire.CONTINUE, data)
    assert proto.read_buffer() is None
    assert proto.receive_data(packet[:2], 0.0) == []  # not even the length word yet
    assert proto.receive_data(packet[2:1000], 0.0) == []
    view = proto.read_buffer()
    assert view is not None and len(view) == len(packet) - 1000
    view[:100_000] = packet[1000:101_000]
    assert proto.received_into(100_000, 0.0) == []
    view = proto.read_buffer()
    assert view is not None and len(view) == len(packet) - 101_000
    view[:] = packet[101_000:]
    (ready,) = proto.received_into(len(view), 0.0)
    assert isinstance(ready, core.StreamReady)
    got = stream.recv(len(data), stop_at_hole=False)
    assert got == data and type(got) is bytes
    assert proto.read_buffer() is None
    closed = proto.received_into(0, 0.0)[-1]
    assert isinstance(closed, core.Closed) and closed.reason == "eof"


def test_one_whole_reply_per_read_matches_the_general_path() -> None:
    """A read holding exactly one successful REPLY takes receive_data's short
    path; it must give what the splitter and dispatch give, and leave the
    state as they would (the next split packet is still put together)."""
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    proto.set_keepalive(5.0, 5, 0.0)
    first, _ = proto.start_call(157, b"", "first")
    second, _ = proto.start_call(157, b"", "second")
    evs = proto.receive_data(reply(first, payload=b"\0\0\0\7"), 3.0)
    assert len(evs) == 1 and isinstance(evs[0], core.Reply)
    got = evs[0]
    assert (got.serial, got.procedure, got.status, got.payload, got.waiter, got.fds) == (
        first,
        157,
        wire.OK,
        b"\0\0\0\7",
        "first",
        [],
    )
    assert proto.keepalive is not None and proto.keepalive.last_rx == 3.0
    # A reply nobody waits for any more (cancelled): dropped.
    assert proto.receive_data(reply(999), 4.0) == []
    # The second reply split in two reads: not the short path, same result.
    data = reply(second, payload=b"\0\0\0\x08")
    assert proto.receive_data(data[:10], 5.0) == []
    tail = proto.receive_data(data[10:], 6.0)
    assert [(e.waiter, e.payload) for e in tail if isinstance(e, core.Reply)] == [("second", b"\0\0\0\x08")]
    assert proto.pending.waiters == {}


def test_a_reply_that_passes_no_descriptors_shares_no_list_with_its_taker() -> None:
    """A plain reply's `fds` is a shared empty list: take_fds must hand out a list of its own."""
    proto: core.ClientProtocol[str] = core.ClientProtocol()
    serial, _ = proto.start_call(157, b"", "w")
    (got,) = proto.receive_data(reply(serial), 0.0)
    assert isinstance(got, core.Reply)
    taken = core.take_fds(got)
    taken.append(99)
    assert got.fds == [] and core.Reply(1, 2, 0, b"").fds == []
