"""Compression of the migration stream, QEMU's methods, no I/O.

libvirt names four methods (``compression`` parameters, ``virsh migrate
--compressed --comp-methods``); each really shrinks what crosses the link:

* ``xbzrle`` -- a page sent before goes as a delta against the version the
  destination already holds (the XBZRLE record: runs of unchanged bytes are
  skipped, changed runs carried). The source remembers what it sent in a
  direct-mapped cache of ``compression.xbzrle.cache`` bytes (64 MiB by default,
  as QEMU); a page not in it is a cache miss and goes whole, and a delta that
  would not be smaller than the page is an overflow and goes whole too. Not in
  post-copy (QEMU sends faulted pages plain). Filled from pass 1 on: a delta
  needs the previous version, and pass 1 is where every page is first sent.
* ``mt`` -- each page deflated with zlib at ``compression.mt.level`` (QEMU's
  compress capability; default level 1): the ZPAGE record.
* ``zlib`` / ``zstd`` -- multifd compression: each batch a parallel data link
  carries is compressed as one BLOCK (level 1, QEMU's multifd defaults). As in
  libvirt, only with VIR_MIGRATE_PARALLEL, and xbzrle / mt only without it.

The checks and their wording are libvirt's (qemuMigrationParamsSetCompression);
the numeric limits are QEMU's (migrate_params_check), worded as libvirt relays
a QEMU error.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zstandard
from virtwire.protocol.generated import constants as C

from ...errors import report
from .core import FROM
from .guest import PAGE_SIZE, page_content
from .jobs import CompressionCounters
from .migration_stream import VAR_LIMIT, Kind, Record, RecordReader, StreamError, encode

METHODS = ("xbzrle", "mt", "zlib", "zstd")
MULTIFD_METHODS = ("zlib", "zstd")
DEFAULT_MT_LEVEL = 1  # QEMU's compress-level default
_MULTIFD_LEVEL = 1  # QEMU's multifd-zlib-level and multifd-zstd-level defaults
_CHANGED = re.compile(rb"[^\x00]+")


def _invalid(detail: str) -> Exception:
    return report(C.VIR_ERR_INVALID_ARG, FROM, detail)


def _qemu_refused(command: str, detail: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"unable to execute QEMU command '{command}': {detail}")


@dataclass(frozen=True, slots=True)
class CompressionSpec:
    """The compression a migration uses (None of it: no compression)."""

    methods: tuple[str, ...]
    mt_level: int = DEFAULT_MT_LEVEL
    xbzrle_cache: int | None = None  # compression.xbzrle.cache, when given

    @property
    def xbzrle(self) -> bool:
        return "xbzrle" in self.methods

    @property
    def mt(self) -> bool:
        return "mt" in self.methods

    @property
    def multifd(self) -> str | None:
        return next((m for m in self.methods if m in MULTIFD_METHODS), None)


def compression_spec(methods: list[str], params: dict[str, Any], flags: int) -> CompressionSpec | None:
    """The migration's compression from its flags and parameters, refused as libvirt refuses."""
    parallel = bool(flags & C.VIR_MIGRATE_PARALLEL)
    chosen: list[str] = []
    for method in methods:
        if method not in METHODS:
            raise _invalid(f"Unsupported compression method '{method}'")
        if method in chosen:
            raise _invalid(f"Compression method '{method}' is specified twice")
        if method not in MULTIFD_METHODS and parallel:
            raise _invalid(f"Compression method '{method}' isn't supported with parallel migration")
        if method in MULTIFD_METHODS and not parallel:
            raise _invalid(f"Compression method '{method}' is only supported with parallel migration")
        if method in MULTIFD_METHODS and any(m in MULTIFD_METHODS for m in chosen):
            raise _invalid("Only one compression method could be specified with parallel compression")
        chosen.append(method)
    mt_params = (
        C.VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL,
        C.VIR_MIGRATE_PARAM_COMPRESSION_MT_THREADS,
        C.VIR_MIGRATE_PARAM_COMPRESSION_MT_DTHREADS,
    )
    if any(name in params for name in mt_params) and "mt" not in chosen:
        raise _invalid("Turn multithread compression on to tune it")
    cache = params.get(C.VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE)
    if cache is not None and "xbzrle" not in chosen:
        raise _invalid("Turn xbzrle compression on to tune it")
    if not chosen and flags & C.VIR_MIGRATE_COMPRESSED:
        if parallel:
            raise _invalid("No compression algorithm selected for parallel migration")
        chosen.append("xbzrle")
    if not chosen:
        return None
    level = params.get(C.VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL, DEFAULT_MT_LEVEL)
    _check_range("compress_level", level, 0, 9)
    for name, qemu_name in (
        (C.VIR_MIGRATE_PARAM_COMPRESSION_MT_THREADS, "compress_threads"),
        (C.VIR_MIGRATE_PARAM_COMPRESSION_MT_DTHREADS, "decompress_threads"),
    ):
        if name in params:
            _check_range(qemu_name, params[name], 1, 255)
    if isinstance(cache, int) and cache < PAGE_SIZE:
        raise _qemu_refused(
            "migrate-set-parameters",
            f"Parameter 'xbzrle_cache_size' expects a value between {PAGE_SIZE} and {2**64 - 1}",
        )
    return CompressionSpec(tuple(chosen), int(level), cache if isinstance(cache, int) else None)


def _check_range(qemu_name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise _qemu_refused(
            "migrate-set-parameters", f"Parameter '{qemu_name}' expects a value between {low} and {high}"
        )


# --- xbzrle ---------------------------------------------------------------------------


def _uleb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def xbzrle_encode(old: bytes, new: bytes) -> bytes:
    """The delta from ``old`` to ``new``: (unchanged run, changed run, changed bytes)*.

    Stops early (returning what it has, already a page or more) once the delta
    is no smaller than the page: the caller sends such a page whole.
    """
    diff = (int.from_bytes(old, "little") ^ int.from_bytes(new, "little")).to_bytes(len(new), "little")
    out = bytearray()
    cursor = 0
    for match in _CHANGED.finditer(diff):
        start, end = match.span()
        skip, length = start - cursor, end - start
        if skip < 0x80 and length < 0x80:  # the usual case: both lengths fit one byte
            out.append(skip)
            out.append(length)
        else:
            out += _uleb128(skip)
            out += _uleb128(length)
        out += new[start:end]
        cursor = end
        if len(out) >= len(new):
            break
    return bytes(out)


def _read_uleb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise StreamError("truncated xbzrle delta")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def xbzrle_decode(old: bytes, delta: bytes) -> bytes:
    page = bytearray(old)
    pos = cursor = 0
    while pos < len(delta):
        skip, pos = _read_uleb128(delta, pos)
        length, pos = _read_uleb128(delta, pos)
        cursor += skip
        if cursor + length > len(page) or pos + length > len(delta):
            raise StreamError("xbzrle delta runs past the page")
        page[cursor : cursor + length] = delta[pos : pos + length]
        cursor += length
        pos += length
    return bytes(page)


@dataclass(slots=True)
class XbzrleCache:
    """Direct-mapped, as QEMU's page cache: slot = page % slots; a resize empties it.

    Page contents are a pure function of (page, version), so a slot keeps the
    version it last sent; the content is rebuilt on use.
    """

    size: Callable[[], int]  # bytes; read at each use (migrateSetCompressionCache may change it)
    counters: CompressionCounters = field(default_factory=CompressionCounters)
    _slots: dict[int, tuple[int, int]] = field(default_factory=dict)
    _capacity: int = 0

    def _sync_size(self) -> int:
        size = self.size()
        if size != self.counters.cache_bytes or not self._capacity:
            self.counters.cache_bytes = size
            self._capacity = max(size // PAGE_SIZE, 1)
            self._slots.clear()
        return self._capacity

    def remember(self, number: int, version: int) -> None:
        self._slots[number % self._sync_size()] = (number, version)

    def page_record(self, number: int, version: int, content: bytes) -> bytes | None:
        """An XBZRLE record for the page, or None (send it whole) on a miss or overflow."""
        slot = number % self._sync_size()
        cached = self._slots.get(slot)
        self._slots[slot] = (number, version)
        if cached is None or cached[0] != number:
            self.counters.cache_misses += 1
            return None
        delta = xbzrle_encode(page_content(number, cached[1]), content)
        if len(delta) >= PAGE_SIZE:
            self.counters.overflow += 1
            return None
        self.counters.pages += 1
        self.counters.bytes += len(delta)
        return encode(Kind.XBZRLE, number, version, delta)


# --- page encoding on the source, decoding on the destination ------------------------------


class PageEncoder:
    """Turns pre-copy pages into records as the migration's compression says."""

    def __init__(self, spec: CompressionSpec | None, cache_size: Callable[[], int]) -> None:
        self.spec = spec
        self.xbzrle = XbzrleCache(cache_size) if spec is not None and spec.xbzrle else None
        self._level = spec.mt_level if spec is not None and spec.mt else None

    def record(self, number: int, version: int, content: bytes, *, first_pass: bool) -> tuple[bytes, bool]:
        """(record, whole): ``whole`` False when the page went as an xbzrle delta."""
        if self.xbzrle is not None:
            if first_pass:
                self.xbzrle.remember(number, version)
            else:
                delta = self.xbzrle.page_record(number, version, content)
                if delta is not None:
                    return delta, False
        if self._level is not None:
            return encode(Kind.ZPAGE, number, version, zlib.compress(content, self._level)), True
        return encode(Kind.PAGE, number, version, content), True


def decode_page(record: Record, current: Callable[[int], bytes]) -> Record:
    """An XBZRLE or ZPAGE record as the PAGE record it stands for."""
    if record.kind is Kind.ZPAGE:
        try:
            inflater = zlib.decompressobj()
            data = inflater.decompress(record.data, PAGE_SIZE + 1)
        except zlib.error as exc:
            raise StreamError(f"page {record.a}: bad compressed data: {exc}") from None
    else:
        data = xbzrle_decode(current(record.a), record.data)
    if len(data) != PAGE_SIZE:
        raise StreamError(f"page {record.a}: decompressed to {len(data)} bytes")
    return Record(Kind.PAGE, record.a, record.b, data)


# --- multifd block compression (parallel links) ----------------------------------------------


class BlockCodec:
    """One method's batch compression: ``pack`` on the source, ``unpack`` on the destination."""

    def __init__(self, method: str) -> None:
        if method not in MULTIFD_METHODS:
            raise ValueError(f"not a multifd compression method: {method}")
        self.method = method
        self.code = MULTIFD_METHODS.index(method) + 1
        self._zstd_out = zstandard.ZstdCompressor(level=_MULTIFD_LEVEL) if method == "zstd" else None
        self._zstd_in = zstandard.ZstdDecompressor() if method == "zstd" else None
        self.raw_bytes = 0
        self.packed_bytes = 0

    def pack(self, records: bytes) -> bytes:
        if self._zstd_out is not None:
            body = self._zstd_out.compress(records)
        else:
            body = zlib.compress(records, _MULTIFD_LEVEL)
        self.raw_bytes += len(records)
        self.packed_bytes += len(body)
        return encode(Kind.BLOCK, self.code, len(records), body)

    def unpack(self, block: Record) -> Iterator[Record]:
        """The PAGE and ZERO_RUN records a BLOCK holds."""
        if block.a != self.code:
            raise StreamError(f"compressed block of method {block.a}, expected {self.method}")
        if block.b > VAR_LIMIT:
            raise StreamError(f"compressed block of {block.b} bytes exceeds {VAR_LIMIT}")
        try:
            if self._zstd_in is not None:
                raw = self._zstd_in.decompress(block.data, max_output_size=block.b)
            else:
                raw = zlib.decompressobj().decompress(block.data, block.b + 1)
        except (zlib.error, zstandard.ZstdError) as exc:
            raise StreamError(f"bad {self.method} block: {exc}") from None
        if len(raw) != block.b:
            raise StreamError(f"{self.method} block decompressed to {len(raw)} bytes, expected {block.b}")
        reader = RecordReader()
        reader.feed(raw)
        while (record := reader.next()) is not None:
            if record.kind not in (Kind.PAGE, Kind.ZERO_RUN):
                raise StreamError(f"unexpected record {record.kind.name} in a compressed block")
            yield record
        if reader.pending:
            raise StreamError("compressed block ends inside a record")
