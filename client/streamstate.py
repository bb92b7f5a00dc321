"""One data stream's client-side state, without I/O (virnetclientstream.c).

A stream rides on the serial and procedure of the call that opened it
(STORAGE_VOL_DOWNLOAD, DOMAIN_SCREENSHOT, ...). The daemon sends STREAM packets
with data (CONTINUE), an empty CONTINUE at end of data, STREAM_HOLE packets for
the holes of a sparse stream, STREAM+ERROR when its side failed, and STREAM+OK
to confirm our finish or abort. Incoming packets queue here in order; `recv`
takes data out the way libvirt's client does (a hole reads as zeroes unless the
caller asked to stop at holes).
"""

from __future__ import annotations

import collections
from typing import Final

from virtwire.client import errfactory
from virtwire.protocol import wire
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import virnet

# What `recv` returns instead of data.
WOULD_BLOCK: Final = -2  # a non-blocking stream has nothing yet
AT_HOLE: Final = -3  # VIR_STREAM_RECV_STOP_AT_HOLE and a hole is next

_HEADER = wire.PACKET_HEADER
HEADER_SIZE: Final = wire.HEADER_SIZE
REMOTE_PROGRAM: Final = wire.REMOTE_PROGRAM
REMOTE_VERSION: Final = wire.REMOTE_VERSION
STREAM: Final = wire.STREAM
CONTINUE: Final = wire.CONTINUE

FINISHED: Final = "finished"
ABORTED: Final = "aborted"


def _error(code: int, detail: str) -> libvirtError:
    # virnetclientstream.c reports from VIR_FROM_RPC.
    return errfactory.templated(code, c.VIR_FROM_RPC, detail)


class StreamState:
    """The receive queue and status of one stream."""

    __slots__ = (
        "allow_skip",
        "closed",
        "eof",
        "error",
        "hole",
        "procedure",
        "rx",
        "rx_bytes",
        "serial",
    )

    def __init__(self, procedure: int, serial: int, allow_skip: bool) -> None:
        self.procedure = procedure
        self.serial = serial
        self.allow_skip = allow_skip
        # Data chunks (bytes) and hole lengths (int), in arrival order.
        self.rx: collections.deque[bytes | int] = collections.deque()
        self.rx_bytes = 0  # bytes of data queued (holes not counted)
        self.hole = 0  # the part of a hole taken off the queue and not yet read
        self.eof = False
        self.error: libvirtError | None = None
        self.closed: str | None = None

    # -- incoming (called by the protocol core) ---------------------------

    def queue_data(self, payload: bytes) -> None:
        if not payload:
            self.eof = True  # an empty CONTINUE: the end of the data
            return
        self.rx.append(payload)
        self.rx_bytes += len(payload)

    def queue_hole(self, payload: bytes) -> None:
        try:
            hole = virnet.virNetStreamHole.from_bytes(payload)
        except ValueError:
            self.set_error(_error(c.VIR_ERR_INTERNAL_ERROR, "Malformed stream hole packet"))
            return
        if not self.allow_skip:
            self.set_error(errfactory.rpc("Unexpected stream hole"))
            return
        self.rx.append(int(hole.length))

    def set_error(self, err: libvirtError) -> None:
        self.error = err

    # -- state checks (virNetClientStreamCheckState) ----------------------

    def check(self) -> None:
        if self.error is not None:
            raise self.error
        if self.closed is not None:
            raise _error(c.VIR_ERR_OPERATION_FAILED, "stream is closed")

    @property
    def readable(self) -> bool:
        """`recv` would not block: data, a hole, the end, or an error is waiting."""
        return bool(self.rx) or self.hole > 0 or self.eof or self.error is not None

    # -- reading ------------------------------------------------------------

    def recv(self, nbytes: int, stop_at_hole: bool) -> bytes | int | None:
        """Up to `nbytes` of data; b"" at the end; AT_HOLE; None if nothing is queued yet."""
        self.check()
        rx = self.rx
        if not self.hole and rx and type(rx[0]) is int:
            self.hole = rx.popleft()  # type: ignore[assignment]
        if not rx and not self.hole:
            return b"" if self.eof else None
        parts: list[bytes] = []
        want = nbytes
        if self.hole:
            if stop_at_hole:
                return AT_HOLE
            n = min(want, self.hole)
            parts.append(bytes(n))
            self.hole -= n
            want -= n
        while want and rx and type(rx[0]) is bytes:
            chunk: bytes = rx[0]
            if len(chunk) <= want:
                rx.popleft()
                parts.append(chunk)
                want -= len(chunk)
                self.rx_bytes -= len(chunk)
            else:
                parts.append(chunk[:want])
                rx[0] = chunk[want:]
                self.rx_bytes -= want
                want = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def recv_hole(self) -> int:
        """The hole at the front (virStreamRecvHole): its length, then 0 until the next."""
        if not self.allow_skip:
            raise _error(c.VIR_ERR_OPERATION_INVALID, "Holes are not supported with this stream")
        self.check()
        rx = self.rx
        if not self.hole and rx and type(rx[0]) is int:
            self.hole = rx.popleft()  # type: ignore[assignment]
        length, self.hole = self.hole, 0
        return length

    # -- outgoing packets -----------------------------------------------------

    def data_packet(self, data: bytes) -> bytes:
        return self.data_header(len(data)) + data

    def data_header(self, size: int) -> bytes:
        """The header of a data packet carrying `size` bytes (the data follows it
        on the wire: a shell that can write both in one call saves joining them)."""
        self.check()
        if size > wire.PAYLOAD_MAX:
            raise errfactory.rpc(
                f"Stream data too long to send ({size} bytes needed, {wire.PAYLOAD_MAX} bytes available)"
            )
        return _HEADER.pack(
            HEADER_SIZE + size, REMOTE_PROGRAM, REMOTE_VERSION, self.procedure, STREAM, self.serial, CONTINUE
        )

    def hole_packet(self, length: int, flags: int) -> bytes:
        if not self.allow_skip:
            raise _error(c.VIR_ERR_OPERATION_INVALID, "Skipping is not supported with this stream")
        self.check()
        payload = virnet.virNetStreamHole(length=length, flags=flags).to_bytes()
        return wire.remote_packet(self.procedure, wire.STREAM_HOLE, self.serial, wire.CONTINUE, payload)

    def close_packet(self, abort: bool) -> bytes:
        """The finish (OK) or abort (ERROR) packet; the daemon confirms with STREAM+OK."""
        if not abort:
            self.check()
        status = wire.ERROR if abort else wire.OK
        return wire.remote_packet(self.procedure, wire.STREAM, self.serial, status)
