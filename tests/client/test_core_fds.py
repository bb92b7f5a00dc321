"""The sans-IO core and descriptors a REPLY_WITH_FDS passes: the carrier bytes
after the packet are never read as a packet, the reply waits for its
descriptors, and nothing received is leaked when nobody takes it."""

from __future__ import annotations

import os
import struct

import pytest
from virtwire.client import core
from virtwire.protocol import framing, wire


def _reply_with_fds(serial: int, nfds: int, payload: bytes = b"") -> bytes:
    body = struct.pack(">I", nfds) + payload
    return wire.remote_packet(343, wire.REPLY_WITH_FDS, serial, wire.OK, body)


def _reply(serial: int) -> bytes:
    return wire.remote_packet(1, wire.REPLY, serial, wire.OK, b"")


def _feed_bytewise(
    protocol: core.ClientProtocol[str], stream: bytes, fds_at: dict[int, list[int]]
) -> list[str]:
    """Feed one byte at a time; `fds_at`: descriptors arriving with the byte at that offset."""
    seen: list[str] = []
    for i in range(len(stream)):
        for ev in protocol.receive_data(stream[i : i + 1], 0.0, fds_at.get(i)):
            assert isinstance(ev, core.Reply)
            seen.append(f"{ev.waiter}:{len(ev.fds)}")
            core.close_fds(ev.fds)
    return seen


@pytest.mark.parametrize("bytewise", [True, False])
def test_reply_waits_for_its_descriptors(bytewise: bool) -> None:
    protocol: core.ClientProtocol[str] = core.ClientProtocol()
    protocol.passes_fds = True
    first = protocol.start_call(343, b"", "fd-call")[0]
    second = protocol.start_call(1, b"", "plain")[0]
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    head = _reply_with_fds(first, 2)
    stream = head + b"\0\0" + _reply(second)
    carriers = {len(head): [r1], len(head) + 1: [w1]}
    if bytewise:
        assert _feed_bytewise(protocol, stream, carriers) == ["fd-call:2", "plain:0"]
    else:
        # The kernel ends a read after the byte carrying descriptors.
        evs = protocol.receive_data(stream[: len(head) + 1], 0.0, [r2])
        assert evs == []
        evs = protocol.receive_data(stream[len(head) + 1 :], 0.0, [w2])
        assert [(e.waiter, len(e.fds)) for e in evs if isinstance(e, core.Reply)] == [
            ("fd-call", 2),
            ("plain", 0),
        ]
        for e in evs:
            assert isinstance(e, core.Reply)
            core.close_fds(e.fds)
    used, unused = ((r1, w1), (r2, w2)) if bytewise else ((r2, w2), (r1, w1))
    for fd in unused:
        os.close(fd)
    for fd in used:
        with pytest.raises(OSError):
            os.fstat(fd)  # every descriptor was handed on, then closed


def test_cancelled_call_descriptors_are_closed_and_missing_one_fails() -> None:
    protocol: core.ClientProtocol[str] = core.ClientProtocol()
    protocol.passes_fds = True
    serial = protocol.start_call(343, b"", "gone")[0]
    protocol.discard(serial)
    r, w = os.pipe()
    os.close(w)
    assert protocol.receive_data(_reply_with_fds(serial, 1) + b"\0", 0.0, [r]) == []
    with pytest.raises(OSError):
        os.fstat(r)
    # A carrier byte without its descriptor: libvirt's EBADMSG, the connection is over.
    serial = protocol.start_call(343, b"", "waiting")[0]
    evs = protocol.receive_data(_reply_with_fds(serial, 1) + b"\0", 0.0)
    closed = [e for e in evs if isinstance(e, core.Closed)]
    assert closed and closed[0].waiters == ["waiting"]
    assert closed[0].error.get_error_message() == "Failed to recv file descriptor: Bad message"


def test_limits_and_sockets_without_descriptors() -> None:
    protocol: core.ClientProtocol[str] = core.ClientProtocol()
    protocol.passes_fds = True
    protocol.start_call(343, b"", "w")
    evs = protocol.receive_data(_reply_with_fds(0, wire.NUM_FDS_MAX + 1), 0.0)
    assert isinstance(evs[-1], core.Closed)
    assert evs[-1].error.get_error_message() == "Received too many FDs 33, expected 32 maximum"
    tcp: core.ClientProtocol[str] = core.ClientProtocol()
    tcp.start_call(343, b"", "w")
    evs = tcp.receive_data(_reply_with_fds(0, 1) + b"\0", 0.0)
    assert isinstance(evs[-1], core.Closed)
    assert evs[-1].error.get_error_message() == (
        "internal error: Receiving file descriptors is not supported on this socket"
    )


def test_packet_decoder_skips_carrier_bytes_bytewise() -> None:
    call = wire.remote_packet(443, wire.CALL_WITH_FDS, 7, wire.OK, struct.pack(">I", 3))
    after = wire.remote_packet(1, wire.CALL, 8, wire.OK)
    decoder = framing.PacketDecoder(sender="client")
    out: list[bytes] = []
    stream = call + b"\0\0\0" + after
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        while (packet := decoder.next_packet()) is not None:
            out.append(packet)
            if packet == call:
                decoder.skip(3)
        if decoder.skipping:
            assert decoder.in_packet  # EOF now would cut the call's descriptors off
    assert out == [call, after] and decoder.skipping == 0 and not decoder.in_packet
