"""The connection core shared by the sync and the trio client: no I/O.

It owns what is the same whatever drives the socket: serial allocation,
building CALL packets, splitting the byte stream into packets and sorting them
into replies, events and keepalive messages, decoding a reply into its return
struct or its libvirtError, the read-only check, and the keepalive clock.
The transports feed it bytes and write what it hands back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from virtwire.client import errfactory
from virtwire.protocol.errors import from_remote_error, libvirtError, read_only_denial
from virtwire.protocol.framing import MAX_PACKET_SIZE, MIN_PACKET_SIZE, PacketDecoder
from virtwire.protocol.generated import keepalive, remote, virnet
from virtwire.protocol.xdr import Procedure

REMOTE_PROGRAM: Final = remote.REMOTE_PROGRAM
REMOTE_VERSION: Final = remote.REMOTE_PROTOCOL_VERSION
KEEPALIVE_PROGRAM: Final = keepalive.KEEPALIVE_PROGRAM
KEEPALIVE_VERSION: Final = keepalive.KEEPALIVE_PROTOCOL_VERSION

CALL: Final = int(virnet.virNetMessageType.VIR_NET_CALL)
REPLY: Final = int(virnet.virNetMessageType.VIR_NET_REPLY)
MESSAGE: Final = int(virnet.virNetMessageType.VIR_NET_MESSAGE)
STATUS_OK: Final = int(virnet.virNetMessageStatus.VIR_NET_OK)
STATUS_ERROR: Final = int(virnet.virNetMessageStatus.VIR_NET_ERROR)

# u32 length, then prog, vers, proc, type, serial, status.
_HEADER = struct.Struct(">IIIiiIi")
_LENGTH = struct.Struct(">I")
HEADER_SIZE: Final = _HEADER.size  # 28, length word included
_PING_PROC: Final = int(keepalive.keepalive_procedure.KEEPALIVE_PROC_PING)
_PONG_PROC: Final = int(keepalive.keepalive_procedure.KEEPALIVE_PROC_PONG)


def _keepalive_packet(proc: int) -> bytes:
    return _HEADER.pack(HEADER_SIZE, KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, proc, MESSAGE, 0, STATUS_OK)


PING_PACKET: Final = _keepalive_packet(_PING_PROC)
PONG_PACKET: Final = _keepalive_packet(_PONG_PROC)


@dataclass(slots=True)
class Reply:
    serial: int
    procedure: int
    status: int
    payload: bytes


@dataclass(slots=True)
class Event:
    """A MESSAGE packet of the remote program (a domain or connection event)."""

    procedure: int
    payload: bytes


class Ping:
    __slots__ = ()


class Pong:
    __slots__ = ()


class Ignored:
    """A packet the client has no use for (another program, a stray stream)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Incoming = Reply | Event | Ping | Pong | Ignored
PING: Final = Ping()
PONG: Final = Pong()


def classify(packet: bytes) -> Incoming:
    """Sort one whole packet (length word included) by what it means to a client."""
    _, prog, _vers, proc, mtype, serial, status = _HEADER.unpack_from(packet)
    if prog == REMOTE_PROGRAM:
        if mtype == REPLY:
            return Reply(serial, proc, status, packet[HEADER_SIZE:])
        if mtype == MESSAGE:
            # libvirtd sends events with serial 1; the serial means nothing here.
            return Event(proc, packet[HEADER_SIZE:])
        return Ignored(f"message type {mtype} for procedure {proc}")
    if prog == KEEPALIVE_PROGRAM and mtype == MESSAGE:
        if proc == _PING_PROC:
            return PING
        if proc == _PONG_PROC:
            return PONG
    return Ignored(f"program {prog:#x} procedure {proc} type {mtype}")


def call_packet(serial: int, procedure: int, payload: bytes) -> bytes:
    return (
        _HEADER.pack(
            HEADER_SIZE + len(payload), REMOTE_PROGRAM, REMOTE_VERSION, procedure, CALL, serial, STATUS_OK
        )
        + payload
    )


def decode_error(payload: bytes) -> libvirtError:
    """The libvirtError in a REPLY+ERROR, with libvirt's client-side rewrites
    ("unknown procedure" becomes NO_SUPPORT, virnetclientprogram.c)."""
    try:
        return from_remote_error(virnet.remote_error.from_bytes(payload, exact=False))
    except ValueError:
        return errfactory.rpc("Unable to decode message payload")


def decode_reply(proc: Procedure, reply: Reply) -> Any:
    """The return struct of a successful reply (None for void), or raise its error."""
    if reply.status != STATUS_OK:
        if reply.status == STATUS_ERROR:
            raise decode_error(reply.payload)
        raise errfactory.rpc(f"Unexpected message status {reply.status}")
    if proc.ret is None:
        return None
    try:
        return proc.ret.from_bytes(reply.payload)
    except ValueError:
        raise errfactory.rpc("Unable to decode message payload") from None


def check_read_only(proc: Procedure, flags: int, api: str | None = None) -> None:
    """Refuse locally, without sending anything, what libvirt refuses read-only.

    ``api`` names the public call when it is not the procedure's own (a call
    libvirt implements on top of another procedure).
    """
    if proc.denies(flags):
        if api is None or api == proc.api:
            raise read_only_denial(proc)
        raise errfactory.read_only(api)


class PacketSplitter:
    """Bytes in, whole packets out; the framing layer checks the length word."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = PacketDecoder()

    def feed(self, data: bytes) -> list[bytes]:
        decoder = self._decoder
        if not decoder.buffered and len(data) >= HEADER_SIZE:
            # The common case, one reply per read: hand the bytes over as they
            # are instead of copying them through the decoder's buffer.
            (length,) = _LENGTH.unpack_from(data)
            if length == len(data) and MIN_PACKET_SIZE <= length <= MAX_PACKET_SIZE:
                return [data]
        decoder.feed(data)
        out: list[bytes] = []
        nxt = self._decoder.next_packet
        while (packet := nxt()) is not None:
            out.append(packet)
        return out


W = TypeVar("W")


class Pending(Generic[W]):
    """Serial allocation and the calls awaiting a reply, whatever a waiter is."""

    __slots__ = ("_next", "waiters")

    def __init__(self) -> None:
        self._next = 0
        self.waiters: dict[int, W] = {}

    def add(self, waiter: W) -> int:
        serial = self._next
        self._next = (serial + 1) & 0xFFFFFFFF
        self.waiters[serial] = waiter
        return serial

    def pop(self, serial: int) -> W | None:
        return self.waiters.pop(serial, None)

    def drain(self) -> list[W]:
        out = list(self.waiters.values())
        self.waiters.clear()
        return out


class KeepAlive:
    """libvirt's client keepalive clock (virkeepalive.c), driven by `now`.

    After `interval` seconds without any incoming packet it asks for a PING,
    then one more every `interval`; once `count` PINGs went unanswered the
    connection is dead (interval * (count + 1) after the last packet).
    """

    __slots__ = ("count", "interval", "last_ping", "last_rx")

    def __init__(self, interval: float, count: int, now: float) -> None:
        self.interval = interval
        self.count = count
        self.last_rx = now
        self.last_ping = now

    def received(self, now: float) -> None:
        self.last_rx = now

    def deadline(self) -> float:
        """When `tick` next has something to do."""
        if self.interval <= 0:
            return float("inf")
        return max(self.last_rx, self.last_ping) + self.interval

    def tick(self, now: float) -> str | None:
        """ "ping", "dead", or None, for the time `now`."""
        if self.interval <= 0:
            return None
        idle = now - self.last_rx
        if idle >= self.interval * (self.count + 1):
            return "dead"
        if now >= self.deadline():
            self.last_ping = now
            return "ping"
        return None
