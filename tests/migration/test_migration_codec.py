"""Migration compression without I/O: xbzrle deltas, the cache, blocks, hostile bodies, libvirt's checks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.server.driver.memory.guest import PAGE_SIZE, page_content
from virtwire.server.driver.memory.migration_codec import (
    BlockCodec,
    CompressionSpec,
    PageEncoder,
    XbzrleCache,
    compression_spec,
    decode_page,
    xbzrle_decode,
    xbzrle_encode,
)
from virtwire.server.driver.memory.migration_stream import (
    VAR_LIMIT,
    Kind,
    RecordReader,
    StreamError,
    encode,
    page,
)


@given(st.binary(min_size=64, max_size=64), st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255))))
def test_xbzrle_delta_rebuilds_the_new_page(old: bytes, writes: list[tuple[int, int]]) -> None:
    new = bytearray(old)
    for offset, value in writes:
        new[offset] = value
    assert xbzrle_decode(old, xbzrle_encode(old, bytes(new))) == bytes(new)


def test_xbzrle_delta_of_one_write_is_small() -> None:
    old, new = page_content(7, 1), page_content(7, 2)
    delta = xbzrle_encode(old, new)
    assert len(delta) < PAGE_SIZE // 4
    assert xbzrle_decode(old, delta) == new


@pytest.mark.parametrize("delta", [b"\x80", b"\x00\x05ab", b"\xff\x7f\x01x"])
def test_xbzrle_hostile_delta_is_a_stream_error(delta: bytes) -> None:
    with pytest.raises(StreamError):
        xbzrle_decode(bytes(PAGE_SIZE), delta)


def test_cache_is_direct_mapped_bounded_and_counts_misses_and_resizes() -> None:
    size = [4 * PAGE_SIZE]
    cache = XbzrleCache(lambda: size[0])
    cache.remember(1, 1)
    assert cache.page_record(1, 2, page_content(1, 2)) is not None  # hit: a delta
    assert cache.page_record(5, 1, page_content(5, 1)) is None  # slot 1 held page 1: a miss
    assert cache.page_record(1, 3, page_content(1, 3)) is None  # page 5 took the slot
    assert (cache.counters.pages, cache.counters.cache_misses) == (1, 2)
    size[0] = 8 * PAGE_SIZE  # a resize (migrateSetCompressionCache) empties the cache
    assert cache.page_record(1, 4, page_content(1, 4)) is None
    assert cache.counters.cache_bytes == 8 * PAGE_SIZE


def test_cache_counts_an_overflow_and_sends_the_page_whole() -> None:
    cache = XbzrleCache(lambda: 64 * PAGE_SIZE)
    cache.remember(3, 1)
    noise = bytes((i * 7 + 1) % 251 + 1 for i in range(PAGE_SIZE))  # every byte differs, no runs
    assert cache.page_record(3, 2, noise) is None
    assert cache.counters.overflow == 1


def test_encoder_and_decoder_agree_for_mt_and_xbzrle() -> None:
    versions = {9: 4}
    for spec in (CompressionSpec(("mt",), mt_level=9), CompressionSpec(("xbzrle",))):
        encoder = PageEncoder(spec, lambda: 1 << 20)
        encoder.record(9, 4, page_content(9, 4), first_pass=True)
        record, whole = encoder.record(9, 5, page_content(9, 5), first_pass=False)
        reader = RecordReader()
        reader.feed(record)
        parsed = reader.next()
        assert parsed is not None and parsed.kind in (Kind.ZPAGE, Kind.XBZRLE)
        assert whole == (parsed.kind is Kind.ZPAGE)
        rebuilt = decode_page(parsed, lambda number: page_content(number, versions[number]))
        assert (rebuilt.kind, rebuilt.a, rebuilt.b, rebuilt.data) == (Kind.PAGE, 9, 5, page_content(9, 5))


@pytest.mark.parametrize("method", ["zlib", "zstd"])
def test_block_round_trip_and_refusals(method: str) -> None:
    codec = BlockCodec(method)
    raw = page(1, 2, page_content(1, 2)) + encode(Kind.ZERO_RUN, 2, 10) + page(12, 1, page_content(12, 1))
    block = codec.pack(raw)
    assert len(block) * 10 < len(raw)
    reader = RecordReader()
    reader.feed(block)
    record = reader.next()
    assert record is not None
    assert [r.kind for r in codec.unpack(record)] == [Kind.PAGE, Kind.ZERO_RUN, Kind.PAGE]
    wrong = record._replace(b=record.b + 1)
    with pytest.raises(StreamError):
        list(codec.unpack(wrong))
    other = BlockCodec("zstd" if method == "zlib" else "zlib")
    with pytest.raises(StreamError):
        list(other.unpack(record))
    inner = codec.pack(encode(Kind.COMPLETE, 0))
    reader.feed(inner)
    nested = reader.next()
    assert nested is not None
    with pytest.raises(StreamError):
        list(codec.unpack(nested))


def test_variable_record_larger_than_the_limit_is_refused_before_it_is_buffered() -> None:
    reader = RecordReader()
    head = encode(Kind.ZPAGE, 1, 1, b"x")[:-1]
    reader.feed(head[:-4] + (VAR_LIMIT + 1).to_bytes(4, "big"))
    with pytest.raises(StreamError):
        reader.next()


def test_corrupted_mt_page_is_a_stream_error() -> None:
    reader = RecordReader()
    reader.feed(encode(Kind.ZPAGE, 1, 1, b"not zlib at all"))
    record = reader.next()
    assert record is not None
    with pytest.raises(StreamError):
        decode_page(record, lambda _: bytes(PAGE_SIZE))


P = C.VIR_MIGRATE_PARALLEL
Z = C.VIR_MIGRATE_COMPRESSED


@pytest.mark.parametrize(
    ("methods", "params", "flags", "message"),
    [
        (["lz4"], {}, Z, "Unsupported compression method 'lz4'"),
        (["mt", "mt"], {}, Z, "Compression method 'mt' is specified twice"),
        (["xbzrle"], {}, Z | P, "Compression method 'xbzrle' isn't supported with parallel migration"),
        (["zstd"], {}, Z, "Compression method 'zstd' is only supported with parallel migration"),
        (
            ["zlib", "zstd"],
            {},
            Z | P,
            "Only one compression method could be specified with parallel compression",
        ),
        ([], {C.VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL: 1}, Z, "Turn multithread compression on to tune it"),
        (
            ["mt"],
            {C.VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE: 1 << 20},
            Z,
            "Turn xbzrle compression on to tune it",
        ),
        ([], {}, Z | P, "No compression algorithm selected for parallel migration"),
    ],
)
def test_libvirts_compression_refusals(
    methods: list[str], params: dict[str, Any], flags: int, message: str
) -> None:
    with pytest.raises(libvirtError) as refused:
        compression_spec(methods, params, flags)
    assert refused.value.get_error_code() == C.VIR_ERR_INVALID_ARG
    assert refused.value.get_error_message() == f"invalid argument: {message}"


def test_compressed_flag_alone_means_xbzrle_and_levels_are_qemus() -> None:
    assert compression_spec([], {}, Z) == CompressionSpec(("xbzrle",))
    assert compression_spec([], {}, 0) is None
    spec = compression_spec(["mt", "xbzrle"], {C.VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL: 9}, 0)
    assert spec is not None and spec.mt and spec.xbzrle and spec.mt_level == 9
    with pytest.raises(libvirtError) as refused:
        compression_spec(["mt"], {C.VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL: 10}, 0)
    assert refused.value.get_error_message() == (
        "internal error: unable to execute QEMU command 'migrate-set-parameters': "
        "Parameter 'compress_level' expects a value between 0 and 9"
    )
