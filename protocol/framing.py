"""Packets on the wire: the length word, the 24-byte header, limits.  No I/O.

A packet is ``u32 length`` (the whole packet, the length word included), the six
header words, then the payload.  ``PacketDecoder`` turns a byte stream fed in
arbitrary chunks into whole packets; it checks the length word as soon as its
four bytes are in, before it waits for (or keeps) the body, exactly where libvirt
checks it (virNetMessageDecodeLength).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .errors import ProtocolError, RawHeader
from .generated.virnet import (
    VIR_NET_MESSAGE_HEADER_MAX,
    VIR_NET_MESSAGE_LEN_MAX,
    VIR_NET_MESSAGE_MAX,
    virNetMessageStatus,
    virNetMessageType,
)

__all__ = [
    "HEADER_SIZE",
    "MAX_PACKET_SIZE",
    "MIN_PACKET_SIZE",
    "Header",
    "MessageStatus",
    "MessageType",
    "PacketDecoder",
    "decode_header",
    "encode_header",
    "encode_packet",
    "peek_raw_header",
]

MessageType = virNetMessageType
MessageStatus = virNetMessageStatus

LENGTH_SIZE = VIR_NET_MESSAGE_LEN_MAX
HEADER_SIZE = VIR_NET_MESSAGE_HEADER_MAX
# Smallest packet we accept: a packet without a whole header cannot be answered.
MIN_PACKET_SIZE = LENGTH_SIZE + HEADER_SIZE
# libvirt: length - 4 must not exceed VIR_NET_MESSAGE_MAX.
MAX_PACKET_SIZE = VIR_NET_MESSAGE_MAX + LENGTH_SIZE

_LENGTH = struct.Struct(">I")
# prog u32, vers u32, proc i32, type i32 (enum), serial u32, status i32 (enum)
_HEADER = struct.Struct(">IIiiIi")
_LENGTH_AND_HEADER = struct.Struct(">IIIiiIi")


@dataclass(frozen=True, slots=True)
class Header:
    """virNetMessageHeader: the six words after the length."""

    program: int
    version: int
    procedure: int
    type: MessageType
    serial: int
    status: MessageStatus

    def reply(self, status: MessageStatus = MessageStatus.VIR_NET_OK) -> Header:
        """The header of the reply to this call: same program/version/procedure/serial."""
        return replace(self, type=MessageType.VIR_NET_REPLY, status=status)


def check_length(length: int) -> None:
    """Refuse a length word outside libvirt's limits (ProtocolError, libvirt's wording)."""
    _check_length(length)


def _check_length(length: int, sender: str = "server") -> None:
    # libvirt's wording (virNetMessageDecodeLength), which says "from server" on
    # both sides; ``sender`` lets a server's log name the client instead.
    if length < MIN_PACKET_SIZE:
        raise ProtocolError(f"packet {length} bytes received from {sender} too small, want {MIN_PACKET_SIZE}")
    if length > MAX_PACKET_SIZE:
        raise ProtocolError(
            f"packet {length - LENGTH_SIZE} bytes received from {sender} too large,"
            f" want {VIR_NET_MESSAGE_MAX}"
        )


def peek_raw_header(packet: bytes | bytearray | memoryview) -> RawHeader:
    """The six header words of ``packet`` (length word included) without validating them."""
    if len(packet) < MIN_PACKET_SIZE:
        raise ProtocolError("Unable to decode message header")
    prog, vers, proc, mtype, serial, status = _HEADER.unpack_from(packet, LENGTH_SIZE)
    return (prog, vers, proc, mtype, serial, status)


# Enum members by wire value, for a lookup cheaper than calling the enum class.
_TYPES: tuple[MessageType, ...] = tuple(sorted(MessageType, key=int))
_STATUSES: tuple[MessageStatus, ...] = tuple(sorted(MessageStatus, key=int))
assert [int(t) for t in _TYPES] == list(range(len(_TYPES)))
assert [int(s) for s in _STATUSES] == list(range(len(_STATUSES)))


def decode_header(packet: bytes | bytearray | memoryview) -> Header:
    """The validated header of a whole packet (length word included).

    Checks the length word against the packet and the limits, and that type and
    status are values libvirt defines.  Errors are ``ProtocolError``; once the
    six words were read it carries them in ``raw_header`` so a server can reply.
    """
    if len(packet) < MIN_PACKET_SIZE:
        if len(packet) < LENGTH_SIZE:
            raise ProtocolError("Unable to decode message length")
        _check_length(_LENGTH.unpack_from(packet, 0)[0])
        raise ProtocolError("Unable to decode message header")
    length, prog, vers, proc, mtype, serial, status = _LENGTH_AND_HEADER.unpack_from(packet, 0)
    if length != len(packet):
        _check_length(length)
        raise ProtocolError(f"packet length word says {length} bytes but the packet has {len(packet)}")
    if length > MAX_PACKET_SIZE:
        _check_length(length)
    if not 0 <= mtype < len(_TYPES):
        raise ProtocolError(f"Unexpected message type {mtype}", (prog, vers, proc, mtype, serial, status))
    if not 0 <= status < len(_STATUSES):
        raise ProtocolError(f"Unexpected message status {status}", (prog, vers, proc, mtype, serial, status))
    return Header(prog, vers, proc, _TYPES[mtype], serial, _STATUSES[status])


def encode_header(header: Header, payload_size: int = 0) -> bytes:
    """Length word and header for a packet whose payload has ``payload_size`` bytes."""
    length = MIN_PACKET_SIZE + payload_size
    if length > MAX_PACKET_SIZE:
        raise ProtocolError("Unable to encode message payload")
    try:
        return _LENGTH_AND_HEADER.pack(
            length,
            header.program,
            header.version,
            header.procedure,
            header.type,
            header.serial,
            header.status,
        )
    except struct.error:
        raise ProtocolError("Unable to encode message header") from None


def encode_packet(header: Header, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """A whole packet: length word, header, payload."""
    return encode_header(header, len(payload)) + payload


class PacketDecoder:
    """Incremental packet splitter: ``feed`` bytes, take whole packets out.

    Cost is O(bytes consumed): packets are cut from the front of one bytearray,
    which CPython shrinks from the front without copying the rest (the same
    reasoning as h11's receive buffer), so a flood of small packets in one big
    chunk is never re-sliced quadratically.  A ``bytes`` chunk that is exactly
    one packet, the usual read, is handed back as is, without a copy.

    A bad length word raises ``ProtocolError`` as soon as it is at the front:
    from ``feed``, or from ``next_packet`` once the good packets before it were
    taken.  After that the decoder is dead and raises the same error on every
    use, because the stream has no resynchronisation point.
    """

    def __init__(self, max_packet_size: int = MAX_PACKET_SIZE, *, sender: str = "server") -> None:
        """``sender``: who sends the packets, as errors name it ("client" in a server)."""
        if not MIN_PACKET_SIZE <= max_packet_size <= MAX_PACKET_SIZE:
            raise ValueError(f"max_packet_size must be in [{MIN_PACKET_SIZE}, {MAX_PACKET_SIZE}]")
        self._max = max_packet_size
        self._sender = sender
        # whole-packet chunks kept as received; rarely more than one, and a list is
        # much smaller than a deque for an idle connection
        self._ready: list[bytes] = []
        self._ready_bytes = 0
        self._buffer = bytearray()  # bytes of later packets (empty while a chunk is ready)
        self._next_length: int | None = None  # length of the packet at the buffer's front, once read
        self._error: ProtocolError | None = None
        self._skip = 0  # bytes still to drop before the next packet (see ``skip``)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a packet."""
        return self._ready_bytes + len(self._buffer)

    @property
    def in_packet(self) -> bool:
        """True when a packet has started but is incomplete (EOF now would truncate it)."""
        return bool(self._buffer) or self._skip > 0

    def skip(self, count: int) -> None:
        """The ``count`` bytes after the packet just taken are not a packet.

        A ``*_WITH_FDS`` packet is followed by one byte per file descriptor, each
        byte the carrier of one descriptor (SCM_RIGHTS); libvirt reads them with
        the descriptors, never as the start of the next packet.
        """
        if count:
            self._skip += count
            self._drop_skipped()

    @property
    def skipping(self) -> int:
        """Bytes ``skip`` still waits for (0: the descriptors' bytes are all in)."""
        return self._skip

    def _drop_skipped(self) -> None:
        take = min(self._skip, len(self._buffer))
        if take:
            del self._buffer[:take]
            self._skip -= take

    def _check(self, length: int) -> None:
        _check_length(length, self._sender)
        if length > self._max:
            raise ProtocolError(
                f"packet {length - LENGTH_SIZE} bytes received from {self._sender} too large, "
                f"want {self._max - LENGTH_SIZE}"
            )

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes.  Raises ``ProtocolError`` if the next length word is bad."""
        if self._error is not None:
            raise self._error
        if not self._buffer and not self._skip and type(data) is bytes and len(data) >= LENGTH_SIZE:
            # The common case, one read holding exactly one packet: keep the chunk
            # itself (bytes are immutable) instead of copying it in and out.
            (length,) = _LENGTH.unpack_from(data, 0)
            if length == len(data):
                try:
                    self._check(length)
                except ProtocolError as exc:
                    raise self._fail(exc) from None
                self._ready.append(data)
                self._ready_bytes += length
                return
        self._buffer += data
        if not self._ready:  # else the check waits until the packets before it are taken
            self._read_length()

    def _fail(self, error: ProtocolError) -> ProtocolError:
        self._error = error
        self._ready.clear()
        self._ready_bytes = 0
        self._buffer = bytearray()
        self._next_length = None
        self._skip = 0
        return error

    def _read_length(self) -> int | None:
        if self._skip:
            self._drop_skipped()
            if self._skip:
                return None
        if self._next_length is None and len(self._buffer) >= LENGTH_SIZE:
            (length,) = _LENGTH.unpack_from(self._buffer, 0)
            try:
                self._check(length)
            except ProtocolError as exc:
                raise self._fail(exc) from None
            self._next_length = length
        return self._next_length

    def next_packet(self) -> bytes | None:
        """The next whole packet (length word included), or None until one is complete."""
        if self._error is not None:
            raise self._error
        if self._ready:
            packet = self._ready.pop(0)
            self._ready_bytes -= len(packet)
            return packet
        length = self._read_length()
        if length is None or len(self._buffer) < length:
            return None
        packet = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._next_length = None
        return packet

    def __iter__(self) -> Iterator[bytes]:
        """Every whole packet currently buffered."""
        while (packet := self.next_packet()) is not None:
            yield packet
