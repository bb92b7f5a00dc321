"""The migration stream between two virtwire hosts: record encoding, no I/O.

One TCP connection carries the whole migration. The source sends memory records;
the destination sends control records back on the same connection (post-copy page
requests and acknowledgements). Every record is a one-byte kind followed by a
fixed-size big-endian body; a page record also carries the 4 KiB page.

    source -> destination                      destination -> source
    HELLO      total_pages, page_size          PAGE_REQUEST  page
    ITERATION  number, pending pages           POSTCOPY_DONE (all pages present)
    ZERO_RUN   start, count  (zero pages)      LOADED        (pre-copy state loaded)
    PAGE       page, version, data
    DISCARD    start, count  (pages the destination must fetch in post-copy)
    POSTCOPY   cpu_state  (switch: the destination runs from now on)
    COMPLETE   cpu_state  (everything sent; the guest's CPU state rides along)
    ABORT      (migration cancelled by the source)
    RESUME     (post-copy recovery on a new link)  MISSING       start, count  (pages still lacked)
                                               RESUME_READY  (end of the MISSING list)
    XBZRLE     page, version, delta  (against the page's previous version)
    ZPAGE      page, version, deflated page  (compression method "mt")
    BLOCK      method, raw length, compressed records  (multifd zlib / zstd)
    CHANNEL    index, channels  (first record of a parallel data link)
    FLUSH      epoch  (parallel: the data links' records of the epoch precede what follows)
    EPOCH      epoch  (parallel: data of the epoch may be applied from here on)

Post-copy recovery: after a broken link the source connects again and sends
HELLO and RESUME; the destination answers with the runs of pages it still lacks
and RESUME_READY, then post-copy goes on as before over the new link.

XBZRLE, ZPAGE and BLOCK carry a length-prefixed body (``VAR_LIMIT`` at most),
which ``migration_codec`` produces and undoes.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from .guest import PAGE_SIZE

MAGIC = 0x56574D31  # "VWM1"


class Kind(enum.IntEnum):
    HELLO = 1
    ITERATION = 2
    ZERO_RUN = 3
    PAGE = 4
    DISCARD = 5
    POSTCOPY = 6
    COMPLETE = 7
    ABORT = 8
    XBZRLE = 9
    ZPAGE = 10
    BLOCK = 11
    CHANNEL = 12
    FLUSH = 13
    EPOCH = 14
    RESUME = 16
    PAGE_REQUEST = 32
    POSTCOPY_DONE = 33
    LOADED = 34
    MISSING = 48
    RESUME_READY = 49


class StreamError(Exception):
    """The peer sent something that is not a valid migration stream."""


_TWO = struct.Struct(">BQQ")
_ONE = struct.Struct(">BQ")
_NONE = struct.Struct(">B")
_VAR = struct.Struct(">BQQI")  # two numbers and the length of the body that follows
VAR_LIMIT = 1 << 24  # a body larger than this is a broken (or hostile) stream

# Body layout of each kind: which struct, and whether a page follows.
_LAYOUT: dict[int, tuple[struct.Struct, bool]] = {
    Kind.HELLO: (_TWO, False),
    Kind.ITERATION: (_TWO, False),
    Kind.ZERO_RUN: (_TWO, False),
    Kind.PAGE: (_TWO, True),
    Kind.DISCARD: (_TWO, False),
    Kind.POSTCOPY: (_ONE, False),
    Kind.COMPLETE: (_ONE, False),
    Kind.ABORT: (_NONE, False),
    Kind.XBZRLE: (_VAR, False),
    Kind.ZPAGE: (_VAR, False),
    Kind.BLOCK: (_VAR, False),
    Kind.CHANNEL: (_TWO, False),
    Kind.FLUSH: (_ONE, False),
    Kind.EPOCH: (_ONE, False),
    Kind.PAGE_REQUEST: (_ONE, False),
    Kind.POSTCOPY_DONE: (_NONE, False),
    Kind.LOADED: (_NONE, False),
    Kind.RESUME: (_NONE, False),
    Kind.MISSING: (_TWO, False),
    Kind.RESUME_READY: (_NONE, False),
}

PAGE_RECORD_SIZE = _TWO.size + PAGE_SIZE
ZERO_RUN_RECORD_SIZE = _TWO.size


class Record(NamedTuple):
    kind: Kind
    a: int = 0
    b: int = 0
    data: bytes = b""


def encode(kind: Kind, a: int = 0, b: int = 0, data: bytes = b"") -> bytes:
    layout, has_page = _LAYOUT[kind]
    if layout is _VAR:
        return layout.pack(kind, a, b, len(data)) + data
    if layout is _TWO:
        head = layout.pack(kind, a, b)
    elif layout is _ONE:
        head = layout.pack(kind, a)
    else:
        head = layout.pack(kind)
    if has_page:
        if len(data) != PAGE_SIZE:
            raise ValueError("a page record carries exactly one page")
        return head + data
    return head


def hello(total_pages: int) -> bytes:
    return encode(Kind.HELLO, MAGIC << 32 | PAGE_SIZE, total_pages)


def page(number: int, version: int, data: bytes) -> bytes:
    return _TWO.pack(Kind.PAGE, number, version) + data


class RecordReader:
    """Incremental parser: ``feed`` bytes, then take whole records with ``next``.

    Consumed bytes are dropped in bulk once they pass half the buffer, so pulling
    many small records out of one large receive stays linear.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def pending(self) -> int:
        return len(self._buf) - self._pos

    def next(self) -> Record | None:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return None
        tag = buf[pos]
        try:
            kind = Kind(tag)
        except ValueError:
            raise StreamError(f"unknown migration record kind {tag}") from None
        layout, has_page = _LAYOUT[kind]
        if layout is _VAR:
            return self._next_var(kind, buf, pos)
        size = layout.size + (PAGE_SIZE if has_page else 0)
        if len(buf) - pos < size:
            return None
        if layout is _TWO:
            _, a, b = _TWO.unpack_from(buf, pos)
        elif layout is _ONE:
            _, a = _ONE.unpack_from(buf, pos)
            b = 0
        else:
            a = b = 0
        data = bytes(buf[pos + layout.size : pos + size]) if has_page else b""
        self._pos = pos + size
        if kind is Kind.HELLO and a >> 32 != MAGIC:
            raise StreamError("not a virtwire migration stream (bad magic)")
        return Record(kind, a, b, data)

    def _next_var(self, kind: Kind, buf: bytearray, pos: int) -> Record | None:
        if len(buf) - pos < _VAR.size:
            return None
        _, a, b, length = _VAR.unpack_from(buf, pos)
        if length > VAR_LIMIT:
            raise StreamError(f"{kind.name} record of {length} bytes exceeds {VAR_LIMIT}")
        end = pos + _VAR.size + length
        if len(buf) < end:
            return None
        self._pos = end
        return Record(kind, a, b, bytes(buf[pos + _VAR.size : end]))
