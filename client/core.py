"""The client's protocol state machine, without I/O (h11-style).

`ClientProtocol` is the whole protocol state of one connection: serials and the
calls awaiting a reply, the byte stream cut into packets and sorted into
replies, events (MESSAGE packets), stream data and keepalive traffic, the
streams riding on calls, and the keepalive clock. A shell (sync.py for threads,
aio.py for trio, asyncio_client.py for asyncio) does the I/O: it writes the
bytes `start_call` and friends return, feeds what it reads to `receive_data`,
acts on the events that come back, and calls `tick` at `deadline()`.

The helpers below it (classify, decode_reply, check_read_only, KeepAlive, ...)
are the pieces it is built from; the shells use some of them directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from virtwire.client import errfactory
from virtwire.client.streamstate import StreamState
from virtwire.protocol import errors, wire
from virtwire.protocol.errors import from_remote_error, libvirtError, read_only_denial
from virtwire.protocol.framing import MAX_PACKET_SIZE, MIN_PACKET_SIZE, check_length
from virtwire.protocol.generated import virnet
from virtwire.protocol.xdr import FAST_FAILURES, Procedure

REMOTE_PROGRAM: Final = wire.REMOTE_PROGRAM
REMOTE_VERSION: Final = wire.REMOTE_VERSION
KEEPALIVE_PROGRAM: Final = wire.KEEPALIVE_PROGRAM
KEEPALIVE_VERSION: Final = wire.KEEPALIVE_VERSION

CALL: Final = wire.CALL
CALL_WITH_FDS: Final = wire.CALL_WITH_FDS
_NFDS = struct.Struct(">I")  # a *_WITH_FDS payload starts with the descriptor count
REPLY: Final = wire.REPLY
REPLY_WITH_FDS: Final = wire.REPLY_WITH_FDS
MESSAGE: Final = wire.MESSAGE
STATUS_OK: Final = wire.OK
STATUS_ERROR: Final = wire.ERROR

_HEADER = wire.PACKET_HEADER
_LENGTH = struct.Struct(">I")
HEADER_SIZE: Final = wire.HEADER_SIZE
_PING_PROC: Final = wire.PING_PROC
_PONG_PROC: Final = wire.PONG_PROC
_STREAM: Final = wire.STREAM
_STREAM_HOLE: Final = wire.STREAM_HOLE
_CONTINUE: Final = wire.CONTINUE

# What a generated decoder raises on a malformed payload (from_bytes turns these
# into an XdrError, a ValueError; decode_reply into libvirt's decode error).
_DECODE_FAILURES: Final = FAST_FAILURES

PING_PACKET: Final = wire.PING_PACKET
PONG_PACKET: Final = wire.PONG_PACKET


_new_object = object.__new__

# The `fds` of a reply that passed none: shared, never added to (a reply that
# passes descriptors gets a list of its own), so a plain reply allocates no list.
_NO_FDS: Final[list[int]] = []


class Reply:
    """A REPLY packet, and what the shell registered with its call (`waiter`).

    Written out rather than a dataclass: one is made per call, and positional
    arguments into a plain __init__ are the cheapest way to make it. A shell
    that hands `waiter` the reply should drop the link back (``reply.waiter =
    None``): waiter -> reply -> waiter is a reference cycle, which only the
    cyclic garbage collector would free, once per call.
    """

    __slots__ = ("fds", "payload", "procedure", "serial", "status", "waiter")

    def __init__(
        self,
        serial: int,
        procedure: int,
        status: int,
        payload: bytes,
        waiter: Any = None,
        fds: list[int] = _NO_FDS,
    ) -> None:
        self.serial = serial
        self.procedure = procedure
        self.status = status
        self.payload = payload
        self.waiter = waiter
        # Descriptors a REPLY_WITH_FDS passed: the caller owns them (close_fds).
        self.fds = fds

    def __repr__(self) -> str:
        return (
            f"Reply(serial={self.serial}, procedure={self.procedure}, status={self.status}, "
            f"payload={self.payload!r}, waiter={self.waiter!r}, fds={self.fds!r})"
        )


def close_fds(fds: list[int]) -> None:
    """Close descriptors nobody will take (libvirt frees its message's)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def take_fds(reply: Reply) -> list[int]:
    """The descriptors a reply passed, now the caller's to close."""
    fds = reply.fds
    reply.fds = _NO_FDS
    return fds if fds is not _NO_FDS else []


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
    return wire.remote_packet(procedure, CALL, serial, STATUS_OK, payload)


def decode_error(payload: bytes) -> libvirtError:
    """The libvirtError in a REPLY+ERROR, with libvirt's client-side rewrites
    ("unknown procedure" becomes NO_SUPPORT, virnetclientprogram.c)."""
    try:
        return from_remote_error(virnet.remote_error.from_bytes(payload, exact=False))
    except ValueError:
        return errors.payload_decode_failed()


def end_of_file(errout: str | None = None) -> libvirtError:
    """The peer closed the connection (virNetSocketReadWire's EOF, errno EIO).

    `errout`: what a tunnel program (ssh) wrote on stderr, which libvirt puts
    in the message (even when empty)."""
    detail = "" if errout is None else f": {errout}"
    return errfactory.system(f"End of file while reading data{detail}: Input/output error", 5)


def recv_failed(exc: OSError, errout: str | None = None) -> libvirtError:
    """A failed read (virNetSocketReadWire: "Cannot recv data[: stderr]: strerror")."""
    prefix = "Cannot recv data" if errout is None else f"Cannot recv data: {errout}"
    return errfactory.system_errno(prefix, exc)


def write_failed() -> libvirtError:
    """A write to a connection the peer has closed (EPIPE)."""
    return errfactory.system("Cannot write data: Broken pipe", 32)


def check_status(reply: Reply) -> None:
    """Raise the error a reply carries, if any."""
    if reply.status != STATUS_OK:
        if reply.status == STATUS_ERROR:
            raise decode_error(reply.payload)
        raise errors.unexpected_status(reply.status)


def decode_reply(proc: Procedure, reply: Reply) -> Any:
    """The return struct of a successful reply (None for void), or raise its error.

    Descriptors the reply passed and the caller did not take are closed."""
    if reply.fds:
        close_fds(reply.fds)
        reply.fds = _NO_FDS
    if reply.status != STATUS_OK:
        if reply.status == STATUS_ERROR:
            raise decode_error(reply.payload)
        raise errors.unexpected_status(reply.status)
    ret = proc.ret
    if ret is None:
        return None
    # ret.from_bytes(payload), written out (a frame less per call): the
    # generated decoder, and the whole payload must be the value.
    payload = reply.payload
    try:
        value, end = ret.xdr_type.decode(payload, 0)
    except _DECODE_FAILURES:
        raise errors.payload_decode_failed() from None
    if end != len(payload):
        raise errors.payload_decode_failed()
    return value


def check_read_only(proc: Procedure, flags: int, api: str | None = None) -> None:
    """Refuse locally, without sending anything, what libvirt refuses read-only.

    ``api`` names the public call when it is not the procedure's own (a call
    libvirt implements on top of another procedure).
    """
    if proc.denies(flags):
        if api is None or api == proc.api:
            raise read_only_denial(proc)
        raise errfactory.read_only(api)


Span = tuple[bytes | bytearray, int, int]  # a packet: buffer, start, end
# A split packet missing at least this much is read straight into its own
# buffer (recv_into) instead of through a read buffer and a copy.
DIRECT_READ_MIN: Final = 65536
# The span that says "the descriptors of the REPLY_WITH_FDS before are all in":
# (FDS_IN, count, 0) follows the last of the bytes that carried them.
FDS_IN: Final = bytearray()
_REPLY_WITH_FDS_WORD: Final = wire.REPLY_WITH_FDS.to_bytes(4, "big")


def fds_owed(buf: bytes | bytearray, start: int, stop: int) -> int:
    """How many descriptors follow the packet at buf[start:stop]: its count
    word when it is a REPLY_WITH_FDS, else -1.  Over libvirt's maximum, or a
    packet too short to hold the count, raises libvirt's error."""
    if buf[start + 16 : start + 20] != _REPLY_WITH_FDS_WORD:
        return -1
    if stop - start < HEADER_SIZE + 4:
        raise errfactory.rpc("Unable to decode number of FDs")
    (count,) = _NFDS.unpack_from(buf, start + HEADER_SIZE)
    if count > wire.NUM_FDS_MAX:
        raise errfactory.rpc(f"Received too many FDs {count}, expected {wire.NUM_FDS_MAX} maximum")
    return int(count)


class PacketSplitter:
    """Bytes in, whole packets out, with as few copies as possible.

    A packet that lies wholly inside one read is not copied at all: it is
    handed on as a span (buffer, start, end) of that read. A packet split
    across reads gets a buffer of its full length as soon as its length word
    is in; the rest of it is copied in, or read straight into it (`direct`
    and `filled`). The framing layer's limits apply to every length word.

    A REPLY_WITH_FDS packet is followed by one byte per descriptor it passes
    (each byte carries one, SCM_RIGHTS): those bytes are skipped, and once the
    last is in an (FDS_IN, count, 0) span follows the packet's.
    """

    __slots__ = ("_fds", "_filled", "_head", "_partial", "_skip")

    def __init__(self) -> None:
        self._head = b""  # the first bytes of a split packet, before its length word is whole
        self._partial: bytearray | None = None  # a split packet's buffer, its full length
        self._filled = 0  # bytes of it received
        self._skip = 0  # descriptor bytes still to come
        self._fds = 0  # how many descriptors the packet being skipped passes

    def direct(self) -> memoryview | None:
        """Where to read the rest of a large split packet into, if there is one."""
        partial = self._partial
        if partial is None or len(partial) - self._filled < DIRECT_READ_MIN:
            return None
        return memoryview(partial)[self._filled :]

    def filled(self, n: int) -> list[Span]:
        """`n` bytes were read into `direct()`'s buffer."""
        self._filled += n
        return self._complete()

    def _complete(self) -> list[Span]:
        partial = self._partial
        if partial is None or self._filled < len(partial):
            return []
        self._partial = None
        self._filled = 0
        out: list[Span] = [(partial, 0, len(partial))]
        self._owe(partial, 0, len(partial), out)
        return out

    def _owe(self, buf: bytes | bytearray, start: int, stop: int, out: list[Span]) -> None:
        count = fds_owed(buf, start, stop)
        if count == 0:
            out.append((FDS_IN, 0, 0))
        elif count > 0:
            self._skip = self._fds = count

    def _start(self, head: bytes) -> None:
        """A packet split across reads begins with `head` (4 bytes or more: its length word is in)."""
        (length,) = _LENGTH.unpack_from(head)
        check_length(length)
        partial = self._partial = bytearray(length)
        partial[: len(head)] = head
        self._filled = len(head)

    def feed_spans(self, data: bytes) -> list[Span]:
        out: list[Span] = []
        pos = 0
        end = len(data)
        if self._skip:
            take = min(self._skip, end)
            self._skip -= take
            pos = take
            if self._skip:
                return out
            out.append((FDS_IN, self._fds, 0))
        if self._head:
            take = min(4 - len(self._head), end - pos)
            head = self._head + data[pos : pos + take]
            pos += take
            if len(head) < 4:
                self._head = head
                return out
            self._head = b""
            self._start(head)
        partial = self._partial
        if partial is not None:
            take = min(len(partial) - self._filled, end - pos)
            partial[self._filled : self._filled + take] = memoryview(data)[pos : pos + take]
            self._filled += take
            pos += take
            out += self._complete()
            if self._partial is not None:
                return out
            if self._skip:
                return out + self.feed_spans(data[pos:]) if pos < end else out
        unpack = _LENGTH.unpack_from
        while end - pos >= 4:
            (length,) = unpack(data, pos)
            if not MIN_PACKET_SIZE <= length <= MAX_PACKET_SIZE:
                check_length(length)
            if end - pos < length:
                break
            out.append((data, pos, pos + length))
            if data[pos + 19] == wire.REPLY_WITH_FDS:
                self._owe(data, pos, pos + length, out)
                pos += length
                if self._skip:
                    if pos < end:
                        out += self.feed_spans(data[pos:])
                    return out
                continue
            pos += length
        if pos < end:
            if end - pos >= 4:
                self._start(data[pos:])
            else:
                self._head = data[pos:]
        return out

    def feed(self, data: bytes) -> list[bytes]:
        """Whole packets (length word included)."""
        return [
            buf if type(buf) is bytes and start == 0 and stop == len(buf) else bytes(buf[start:stop])
            for buf, start, stop in self.feed_spans(data)
            if buf is not FDS_IN
        ]


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


# -- the state machine --------------------------------------------------------


@dataclass(slots=True)
class SendPacket:
    """Bytes the shell must write (a PONG, a keepalive PING)."""

    data: bytes


@dataclass(slots=True)
class StreamReady:
    """A stream got data, a hole, its end or an error: wake whoever reads it."""

    stream: StreamState


@dataclass(slots=True)
class Closed:
    """The connection is dead: `waiters` will never get a reply, fail them with `error`."""

    error: libvirtError
    reason: str  # "eof", "error" or "keepalive" (VIR_CONNECT_CLOSE_REASON_*)
    waiters: list[Any]


ProtocolEvent = Reply | Event | SendPacket | StreamReady | Closed


class FdPacket(bytes):
    """A CALL_WITH_FDS packet and the descriptors to send right after it."""

    fds: list[int]

    def __new__(cls, data: bytes, fds: list[int]) -> FdPacket:
        packet = super().__new__(cls, data)
        packet.fds = list(fds)
        return packet


class ClientProtocol(Generic[W]):
    """The protocol state of one client connection; no I/O, no clock of its own.

    A waiter (`W`) is whatever the shell wants handed back with a call's reply:
    a thread's condition, a trio or asyncio event. Failed waiters come back
    from `fail_all`; replies as `Reply` events carrying their waiter.
    """

    __slots__ = (
        "_fds",
        "_held",
        "_splitter",
        "dead",
        "errout",
        "keepalive",
        "passes_fds",
        "pending",
        "streams",
    )

    def __init__(self) -> None:
        self._splitter = PacketSplitter()
        # Descriptors received (SCM_RIGHTS) and not yet given to their reply, and
        # the REPLY_WITH_FDS waiting for them (None: its call is gone).
        self._fds: list[int] = []
        self._held: Reply | None = None
        # Whether the socket can carry descriptors (unix); the shell says so.
        self.passes_fds = False
        self.pending: Pending[W] = Pending()
        self.streams: dict[int, StreamState] = {}
        self.keepalive: KeepAlive | None = None
        self.dead: libvirtError | None = None
        # A tunnel's stderr reader (cmdsocket.CommandSocket.stderr_text), for error texts.
        self.errout: Callable[[], str] | None = None

    # -- calls ------------------------------------------------------------------

    def start_call(self, procedure: int, payload: bytes, waiter: W) -> tuple[int, bytes]:
        """Register a call; returns its serial and the whole CALL packet to write."""
        if self.dead is not None:
            raise errfactory.socket_closed()
        # Pending.add and wire.remote_packet, written out: this runs once per call.
        pending = self.pending
        serial = pending._next
        pending._next = (serial + 1) & 0xFFFFFFFF
        pending.waiters[serial] = waiter
        header = _HEADER.pack(
            HEADER_SIZE + len(payload), REMOTE_PROGRAM, REMOTE_VERSION, procedure, CALL, serial, STATUS_OK
        )
        return serial, header + payload

    def start_call_with_fds(self, procedure: int, payload: bytes, nfds: int, waiter: W) -> tuple[int, bytes]:
        """A call whose descriptors follow its packet (CALL_WITH_FDS: the payload
        starts with their count); with none it is a plain CALL, as libvirt sends it."""
        if not nfds:
            return self.start_call(procedure, payload, waiter)
        if nfds > wire.NUM_FDS_MAX:
            raise errfactory.rpc(f"Too many FDs to send {nfds}, expected {wire.NUM_FDS_MAX} maximum")
        if self.dead is not None:
            raise errfactory.socket_closed()
        serial = self.pending.add(waiter)
        body = _NFDS.pack(nfds) + payload
        return serial, wire.remote_packet(procedure, CALL_WITH_FDS, serial, STATUS_OK, body)

    def start_call_passing_fds(
        self, procedure: int, payload: bytes, fds: list[int], waiter: W
    ) -> tuple[int, bytes]:
        """start_call_with_fds for the async shells: the packet is an FdPacket (its
        descriptors attached), which their writers send as libvirt does."""
        serial, packet = self.start_call_with_fds(procedure, payload, len(fds), waiter)
        return serial, FdPacket(packet, fds) if fds else packet

    def discard(self, serial: int) -> None:
        """Forget a call (cancelled): its reply, when it comes, is dropped."""
        self.pending.pop(serial)

    # -- streams ----------------------------------------------------------------

    def start_stream(
        self, procedure: int, payload: bytes, waiter: W, allow_skip: bool = False
    ) -> tuple[StreamState, bytes]:
        """A call that opens a data stream (its reply still goes to `waiter`)."""
        serial, packet = self.start_call(procedure, payload, waiter)
        stream = StreamState(procedure, serial, allow_skip)
        self.streams[serial] = stream
        return stream, packet

    def close_stream(self, stream: StreamState, abort: bool, waiter: W) -> bytes:
        """The finish or abort packet; `waiter` gets the daemon's confirmation as a Reply."""
        if self.dead is not None:
            raise errfactory.socket_closed()
        packet = stream.close_packet(abort)
        self.pending.waiters[stream.serial] = waiter
        return packet

    def forget_stream(self, stream: StreamState, closed: str) -> None:
        """The stream is over (virNetClientRemoveStream): later packets for it are dropped."""
        if stream.closed is None:
            stream.closed = closed
        self.streams.pop(stream.serial, None)

    # -- incoming -----------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, fds: list[int] | None = None) -> list[ProtocolEvent]:
        """Bytes read from the socket (b"" at end of file) in, events out.

        `fds`: descriptors that came with these bytes (SCM_RIGHTS); they belong
        to the REPLY_WITH_FDS before them, and are closed if nobody takes them."""
        splitter = self._splitter
        if (
            not fds
            and type(data) is bytes
            and splitter._partial is None
            and not splitter._head
            and not splitter._skip
            and self.dead is None
        ):
            # The common case, one read holding exactly one successful REPLY (a
            # call's answer), skips the splitter and the generic dispatch.
            size = len(data)
            if size >= HEADER_SIZE:
                length, prog, _vers, proc, mtype, serial, status = _HEADER.unpack_from(data)
                if (
                    length == size
                    and mtype == REPLY
                    and status == STATUS_OK
                    and prog == REMOTE_PROGRAM
                    and length <= MAX_PACKET_SIZE  # past it: the general path fails the connection
                ):
                    ka = self.keepalive
                    if ka is not None:
                        ka.last_rx = now
                    waiter = self.pending.waiters.pop(serial, None)
                    if waiter is None:
                        return []  # a cancelled call's
                    # Reply(serial, proc, STATUS_OK, payload, waiter), written out:
                    # object.__new__ and slot stores run no __init__ frame.
                    reply = _new_object(Reply)
                    reply.serial = serial
                    reply.procedure = proc
                    reply.status = STATUS_OK
                    reply.payload = data[HEADER_SIZE:]
                    reply.waiter = waiter
                    reply.fds = _NO_FDS
                    return [reply]
        if fds:
            self._fds += fds
        if self.dead is not None:
            close_fds(self._fds)
            return []
        if not data:
            return self.fail_all(end_of_file(self.errout() if self.errout else None), "eof")
        try:
            spans = self._splitter.feed_spans(data)
        except libvirtError as exc:  # a length word outside the limits
            return self.fail_all(exc, "error")
        out = self._dispatch(spans, now)
        if self._fds and self._held is None:
            # Descriptors no REPLY_WITH_FDS waits for: libvirt's plain read drops them.
            close_fds(self._fds)
        return out

    def packet_boundary(self) -> bool:
        """The next byte read starts a packet (nothing split or owed): a shell may
        then read one packet as its header and its payload (`receive_packet`)."""
        splitter = self._splitter
        return splitter._partial is None and not splitter._head and not splitter._skip and self.dead is None

    def receive_packet(self, header: bytes, payload: bytes, now: float) -> list[ProtocolEvent]:
        """One whole packet, read at a `packet_boundary` as its HEADER_SIZE-byte
        header and the rest: stream data is queued as the `payload` object itself,
        never copied; any other packet goes through `receive_data`."""
        length, prog, _vers, proc, mtype, serial, status = _HEADER.unpack_from(header)
        if (
            mtype == _STREAM
            and status == _CONTINUE
            and prog == REMOTE_PROGRAM
            and length == HEADER_SIZE + len(payload)
            and self.dead is None
        ):
            ka = self.keepalive
            if ka is not None:
                ka.received(now)
            out: list[ProtocolEvent] = []
            self._stream_packet(payload, proc, mtype, serial, status, out)
            return out
        return self.receive_data(header + payload, now)

    def receive_failed(self, exc: OSError) -> list[ProtocolEvent]:
        """Reading the socket failed with `exc`."""
        if self.dead is not None:
            return []
        return self.fail_all(recv_failed(exc, self.errout() if self.errout else None), "error")

    def read_buffer(self) -> memoryview | None:
        """Where the shell may `recv_into` the rest of a large packet (then call
        `received_into`); None: read bytes as usual."""
        splitter = self._splitter
        if splitter._partial is None or self.dead is not None:
            return None  # no split packet (direct() would say so, a call later)
        return splitter.direct()

    def received_into(self, n: int, now: float) -> list[ProtocolEvent]:
        """`n` bytes were read into `read_buffer()` (0: end of file)."""
        if self.dead is not None:
            return []
        if n == 0:
            return self.fail_all(end_of_file(self.errout() if self.errout else None), "eof")
        return self._dispatch(self._splitter.filled(n), now)

    def _dispatch(self, spans: list[Span], now: float) -> list[ProtocolEvent]:
        ka = self.keepalive
        if ka is not None:
            ka.received(now)
        out: list[ProtocolEvent] = []
        waiters = self.pending.waiters
        unpack = _HEADER.unpack_from
        for buf, start, stop in spans:
            if buf is FDS_IN:
                failed = self._fds_in(start, out)
                if failed:
                    return out + failed
                continue
            _, prog, _vers, proc, mtype, serial, status = unpack(buf, start)
            body = start + HEADER_SIZE
            payload = buf[body:stop] if type(buf) is bytes else bytes(memoryview(buf)[body:stop])
            if prog == REMOTE_PROGRAM:
                if mtype == REPLY:
                    waiter = waiters.pop(serial, None)
                    if waiter is not None:
                        out.append(Reply(serial, proc, status, payload, waiter))
                        if status != STATUS_OK and serial in self.streams:
                            # The opening call failed, or the finish did: the stream is over.
                            self.forget_stream(self.streams[serial], "aborted")
                elif mtype == MESSAGE:
                    # libvirtd sends events with serial 1; the serial means nothing here.
                    out.append(Event(proc, payload))
                elif mtype in (_STREAM, _STREAM_HOLE):
                    self._stream_packet(payload, proc, mtype, serial, status, out)
                elif mtype == REPLY_WITH_FDS:
                    if not self.passes_fds:
                        # virNetSocketRecvFD on a socket that cannot carry them.
                        return out + self.fail_all(
                            errfactory.templated(
                                errors.VIR_ERR_INTERNAL_ERROR,
                                errors.VIR_FROM_RPC,
                                "Receiving file descriptors is not supported on this socket",
                            ),
                            "error",
                        )
                    # Its descriptors follow: the reply goes out once they are in (FDS_IN).
                    self._held = Reply(serial, proc, status, payload[4:], waiters.pop(serial, None))
            elif prog == KEEPALIVE_PROGRAM and mtype == MESSAGE and proc == _PING_PROC:
                out.append(SendPacket(PONG_PACKET))
        return out

    def _fds_in(self, count: int, out: list[ProtocolEvent]) -> list[ProtocolEvent]:
        """The descriptors of the held REPLY_WITH_FDS are in: hand the reply on."""
        reply, self._held = self._held, None
        if len(self._fds) < count:
            # A carrier byte came without its descriptor (virSocketRecvFD: EBADMSG).
            close_fds(self._fds)
            if reply is not None and reply.waiter is not None:
                self.pending.waiters[reply.serial] = reply.waiter  # fail_all fails it
            return self.fail_all(
                errfactory.system_errno("Failed to recv file descriptor", OSError(errno.EBADMSG, "")), "error"
            )
        fds, self._fds = self._fds[:count], self._fds[count:]
        if reply is None or reply.waiter is None:
            close_fds(fds)  # a cancelled call: nobody takes them
            return []
        reply.fds = fds
        out.append(reply)
        return []

    def _stream_packet(
        self, payload: bytes, proc: int, mtype: int, serial: int, status: int, out: list[ProtocolEvent]
    ) -> None:
        stream = self.streams.get(serial)
        if stream is None or stream.procedure != proc:
            return  # a stream we closed already: its late packets are expected
        if status == _CONTINUE:
            if mtype == _STREAM:
                stream.queue_data(payload)
            else:
                stream.queue_hole(payload)
            out.append(StreamReady(stream))
            return
        waiter = self.pending.waiters.pop(serial, None)
        if status == STATUS_OK:
            # The confirmation of our finish or abort.
            if waiter is not None:
                self.forget_stream(stream, stream.closed or "finished")
                out.append(Reply(serial, proc, STATUS_OK, b"", waiter))
            return
        stream.set_error(decode_error(payload))
        if waiter is not None:
            # A finish that was waiting fails with the stream's error.
            self.forget_stream(stream, "aborted")
            out.append(Reply(serial, proc, STATUS_ERROR, payload, waiter))
        out.append(StreamReady(stream))

    # -- keepalive ----------------------------------------------------------------

    def set_keepalive(self, interval: float, count: int, now: float) -> None:
        self.keepalive = KeepAlive(interval, count, now) if interval > 0 else None

    def deadline(self) -> float:
        """When `tick` next has something to do (inf: never)."""
        ka = self.keepalive
        return float("inf") if ka is None or self.dead is not None else ka.deadline()

    def tick(self, now: float) -> list[ProtocolEvent]:
        """The keepalive clock at `now`: a PING to send, or the connection's death."""
        ka = self.keepalive
        if ka is None or self.dead is not None:
            return []
        action = ka.tick(now)
        if action == "ping":
            return [SendPacket(PING_PACKET)]
        if action == "dead":
            return self.fail_all(errfactory.keepalive_timeout(), "keepalive")
        return []

    # -- death ----------------------------------------------------------------------

    def fail_all(self, err: libvirtError, reason: str = "error") -> list[ProtocolEvent]:
        """The connection is gone: the Closed event lists the waiters to fail with
        `err`; every open stream fails with it too."""
        if self.dead is not None:
            return []
        self.dead = err
        close_fds(self._fds)
        self._held = None
        out: list[ProtocolEvent] = []
        for stream in self.streams.values():
            if stream.error is None:
                stream.set_error(err)
            out.append(StreamReady(stream))
        self.streams.clear()
        out.append(Closed(err, reason, self.pending.drain()))
        return out
