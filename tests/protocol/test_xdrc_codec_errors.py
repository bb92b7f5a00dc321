"""Bad bytes and bad values: always one XdrError naming the field path, checked
before anything is allocated; never IndexError, struct.error, MemoryError,
UnicodeError or RecursionError."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol import xdr
from virtwire.protocol.generated import remote, virnet
from virtwire.protocol.xdr import XdrError
from virtwire.protocol.xdrc import compile_source

CASES = Path(__file__).parent / "xdrc_cases"
_counter = itertools.count()


def build(source: str) -> Any:
    name = f"xdrc_codec_errors_{next(_counter)}"
    mod = ModuleType(name)
    sys.modules[name] = mod
    exec(compile(compile_source(source, f"{name}.x"), name, "exec"), mod.__dict__)
    return mod


def words(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big", signed=v < 0) for v in values)


def domain_bytes(name: bytes, ident: int) -> bytes:
    padded = name + b"\0" * (-len(name) & 3)
    return words(len(name)) + padded + bytes(16) + words(ident)


def decode_error(cls: Any, data: bytes) -> str:
    with pytest.raises(XdrError) as info:
        cls.from_bytes(data)
    return str(info.value)


# --- decoding ---------------------------------------------------------------------------------


def test_error_path_names_array_index_and_field() -> None:
    ret = remote.remote_connect_list_all_domains_ret
    good = b"".join(domain_bytes(f"d{i}".encode(), i) for i in range(3))
    bad = words(4) + good + words(9999) + bytes(20)  # domains[3].name claims 9999 bytes
    assert decode_error(ret, bad) == (
        "remote_connect_list_all_domains_ret.domains[3].name:"
        " string length 9999 needs 10000 bytes, only 20 left"
    )


def test_array_count_is_checked_against_bound_and_remaining_bytes_before_allocating() -> None:
    ret = remote.remote_connect_list_all_domains_ret
    message = decode_error(ret, words(16385) + bytes(64))
    assert (
        message == "remote_connect_list_all_domains_ret.domains: array length 16385 exceeds the bound 16384"
    )
    # 16384 is within the bound but 16384 domains need at least 24 bytes each
    message = decode_error(ret, words(16384) + bytes(64))
    assert message.startswith(
        "remote_connect_list_all_domains_ret.domains: array length 16384 needs 393216 bytes"
    )


def test_huge_string_length_is_refused_before_slicing() -> None:
    args = remote.remote_domain_lookup_by_name_args
    assert decode_error(args, words(0xFFFFFFFF)) == (
        "remote_domain_lookup_by_name_args.name: string length 4294967295 exceeds the bound 4194304"
    )
    assert "needs 8 bytes, only 4 left" in decode_error(args, words(5) + b"abcd")


def test_truncated_fixed_fields() -> None:
    header = virnet.virNetMessageHeader
    assert decode_error(header, words(1, 2, 3)) == (
        "virNetMessageHeader.type: data ends before the enum virNetMessageType (0 of 4 bytes left)"
    )
    assert (
        decode_error(header, b"")
        == "virNetMessageHeader.prog: data ends inside a unsigned int (0 of 4 bytes left)"
    )


def test_union_values_are_checked_enum_bool_optional_taken_as_glibc_does() -> None:
    # glibc's xdr_enum takes any int, xdr_bool/xdr_pointer any non-zero word as TRUE
    header = virnet.virNetMessageHeader
    assert header.from_bytes(words(1, 1, 1, 7, 0, 0)).type == 7
    m = build("struct s { bool b; int *p; }; union u switch (int d) { case 1: int x; };")
    assert m.s.from_bytes(words(2, 0)).b is True
    assert m.s.from_bytes(words(0, 2, 5)).p == 5
    assert decode_error(m.u, words(2, 0)) == "u.d: discriminant 2 has no arm in union u"
    param = remote.remote_typed_param_value
    assert (
        decode_error(param, words(8, 0))
        == "remote_typed_param_value.type: discriminant 8 has no arm in union remote_typed_param_value"
    )


def test_missing_padding_is_truncation() -> None:
    m = build("struct s { string t<>; };")
    assert decode_error(m.s, words(1) + b"a") == "s.t: string length 1 needs 4 bytes, only 1 left"


def test_deep_optional_chains_fail_cleanly() -> None:
    m = build("struct node { int v; node *next; };")
    depth = 200_000  # deeper than any recursion limit
    data = words(0, 1) * depth + words(0, 0)
    with pytest.raises(XdrError, match="node: data nested too deeply"):
        m.node.from_bytes(data)


def test_deeply_nested_values_fail_cleanly_on_encode() -> None:
    m = build("struct node { int v; node *next; };")
    head = m.node(0, None)
    for i in range(1, 200_000):
        head = m.node(i, head)
    with pytest.raises(XdrError, match="node: value nested too deeply"):
        head.to_bytes()
    assert m.node(1, m.node(2, None)).to_bytes() == words(1, 1, 2, 0)


def test_every_truncation_of_a_libvirt_error_fails_cleanly() -> None:
    err = virnet.remote_error(1, 7, "Hello World", 2, None, "One", "Two", "Three", 1, 2, None)
    data = err.to_bytes()
    for cut in range(len(data)):
        with pytest.raises(XdrError) as info:
            virnet.remote_error.from_bytes(data[:cut])
        assert info.value.path.startswith("remote_error.")


# --- encoding ----------------------------------------------------------------------------------


def encode_error(value: Any) -> str:
    with pytest.raises(XdrError) as info:
        value.to_bytes()
    return str(info.value)


def test_encode_errors_name_the_path() -> None:
    ret = remote.remote_connect_list_all_domains_ret
    doms = [remote.remote_nonnull_domain(f"d{i}", bytes(16), i) for i in range(3)]
    doms[2] = remote.remote_nonnull_domain("d2", bytes(15), 2)
    assert encode_error(ret(doms, 3)) == (
        "remote_connect_list_all_domains_ret.domains[2].uuid: expected exactly 16 bytes, got 15"
    )
    doms[2] = remote.remote_nonnull_domain(None, bytes(16), 2)  # type: ignore[arg-type]
    assert (
        encode_error(ret(doms, 3))
        == "remote_connect_list_all_domains_ret.domains[2].name: expected str, got NoneType"
    )
    doms[2] = remote.remote_nonnull_domain("d2", bytes(16), 2**31)
    assert encode_error(ret(doms, 3)) == (
        "remote_connect_list_all_domains_ret.domains[2].id:"
        " 2147483648 out of range for int (-2147483648 .. 2147483647)"
    )
    assert encode_error(ret(doms[:2], -1)) == (
        "remote_connect_list_all_domains_ret.ret: -1 out of range for unsigned int (0 .. 4294967295)"
    )


def test_encode_bounds_enums_bools_unions() -> None:
    m = build("""
        enum e { A = 1 };
        struct s { string t<3>; int xs<2>; e which; bool flag; hyper h; };
        union u switch (int d) { case 1: int x; case 2: void; };
    """)
    assert encode_error(m.s("abcd", [], m.e.A, True, 0)) == "s.t: string of 4 bytes exceeds the bound 3"
    assert encode_error(m.s("", [1, 2, 3], m.e.A, True, 0)) == "s.xs: 3 elements exceed the bound 2"
    assert encode_error(m.s("", [], 5, True, 0)) == "s.which: 5 is not a member of enum e"
    assert encode_error(m.s("", [], m.e.A, "yes", 0)) == "s.flag: expected bool, got 'yes'"
    assert encode_error(m.s("", [], m.e.A, True, 2**63)) == (
        "s.h: 9223372036854775808 out of range for hyper (-9223372036854775808 .. 9223372036854775807)"
    )
    assert encode_error(m.s("", ["x"], m.e.A, True, 0)) == "s.xs[0]: expected int for int, got str"
    assert encode_error(m.u(3, 1)) == "u.d: discriminant 3 has no arm in union u"
    assert encode_error(m.u(2, 1)) == "u.value: void arm must hold None, got int"
    assert encode_error(m.u(1, None)) == "u.value: expected int for int, got NoneType"


def test_string_bound_counts_utf8_bytes() -> None:
    m = build("struct s { string t<3>; };")
    assert m.s("éa").to_bytes() == words(3) + "éa".encode() + b"\0"
    assert encode_error(m.s("éé")) == "s.t: string of 4 bytes exceeds the bound 3"


def test_surrogate_escaped_strings_encode_back_to_their_bytes() -> None:
    m = build("struct s { string t<>; };")
    assert m.s("\udcff").to_bytes() == words(1) + b"\xff\0\0\0"
    assert encode_error(m.s("\ud800")).startswith("s.t: string cannot be encoded as UTF-8")


def test_libvirt_virnetmessagetest_error_packet() -> None:
    """tests/virnetmessagetest.c (testMessagePayloadEncode): the 116-byte error packet."""
    header = virnet.virNetMessageHeader(
        0x11223344,
        1,
        0x666,
        virnet.virNetMessageType.VIR_NET_MESSAGE,
        0x99,
        virnet.virNetMessageStatus.VIR_NET_ERROR,
    )
    err = virnet.remote_error(1, 7, "Hello World", 2, None, "One", "Two", "Three", 1, 2, None)
    body = header.to_bytes() + err.to_bytes()
    packet = (len(body) + 4).to_bytes(4, "big") + body
    expected = bytes.fromhex(
        "00000074 11223344 00000001 00000666 00000002 00000099 00000001"
        "00000001 00000007"
        "00000001 0000000b 48656c6c 6f20576f 726c6400"
        "00000002"
        "00000000"
        "00000001 00000003 4f6e6500"
        "00000001 00000003 54776f00"
        "00000001 00000005 54687265 65000000"
        "00000001 00000002"
        "00000000"
    )
    assert packet == expected
    assert virnet.virNetMessageHeader.from_bytes(expected[4:28]) == header
    assert virnet.remote_error.from_bytes(expected[28:]) == err


def test_libvirt_virnetmessagetest_header_vectors() -> None:
    """testMessageHeaderEncode / testMessageHeaderDecode of tests/virnetmessagetest.c."""
    types, status = virnet.virNetMessageType, virnet.virNetMessageStatus
    call = virnet.virNetMessageHeader(0x11223344, 1, 0x666, types.VIR_NET_CALL, 0x99, status.VIR_NET_OK)
    assert call.to_bytes() == bytes.fromhex("11223344 00000001 00000666 00000000 00000099 00000000")
    reply = virnet.virNetMessageHeader.from_bytes(
        bytes.fromhex("11223344 00000001 00000666 00000001 00000099 00000001")
    )
    assert reply == virnet.virNetMessageHeader(
        0x11223344, 1, 0x666, types.VIR_NET_REPLY, 0x99, status.VIR_NET_ERROR
    )
    assert reply.type is types.VIR_NET_REPLY and reply.status is status.VIR_NET_ERROR


def test_fast_encoder_and_checker_agree_on_edge_values() -> None:
    """What the fast path accepts the checker accepts, and the other way round."""
    m = build("struct s { int i; double d; opaque f[2]; opaque v<>; int a<>; };")
    accepted = [
        m.s(True, 1, b"ab", b"", []),  # bool is an int
        m.s(1, True, bytearray(b"ab"), bytearray(b"x"), (1, 2)),  # bytearray, tuple
        m.s(1, 0.5, b"ab", memoryview(b"xy"), [True]),  # memoryview for variable opaque
    ]
    for value in accepted:
        data = value.to_bytes()
        xdr.check_value(m.TYPES["s"], value, "s")
        assert len(data) % 4 == 0
    assert encode_error(m.s(1, 1.0, memoryview(b"ab"), b"", [])) == "s.f: expected bytes, got memoryview"
    assert encode_error(m.s(1.5, 1.0, b"ab", b"", [])) == "s.i: expected int for int, got float"
    assert encode_error(m.s(1, "1", b"ab", b"", [])) == "s.d: expected float for double, got str"
    assert encode_error(m.s(1, 1.0, b"ab", "x", [])) == "s.v: expected bytes, got str"
    assert encode_error(m.s(1, 1.0, b"ab", b"", None)) == "s.a: expected list, got NoneType"


def test_small_struct_fields_coded_in_their_holders_function() -> None:
    """remote_nonnull_domain inside DOMAIN_GET_STATE's args is decoded and
    encoded in that struct's own function (pycodec.flat_struct), its fixed
    tail fused with `flags`: the same bytes, checks and error paths as the
    nested function it replaces."""
    args = remote.remote_domain_get_state_args
    dom = remote.remote_nonnull_domain("vm1", bytes(range(16)), 7)
    data = args(dom, 3).to_bytes()
    assert data == dom.to_bytes() + words(3)
    assert data == domain_bytes(b"vm1", 7)[:8] + bytes(range(16)) + words(7, 3)
    assert args.from_bytes(data) == args(dom, 3)
    for cut in range(len(data)):
        with pytest.raises(XdrError):
            args.from_bytes(data[:cut])
    assert decode_error(args, words(0xFFFFFFFF) + data[4:]) == (
        "remote_domain_get_state_args.dom.name: string length 4294967295 exceeds the bound 4194304"
    )
    assert decode_error(args, data[:-4]).startswith("remote_domain_get_state_args.flags: data ends")
    # glibc's xdr_opaque skips the padding without looking at it
    assert args.from_bytes(data[:7] + b"\xff" + data[8:]) == args(dom, 3)
    bad = remote.remote_nonnull_domain("vm1", bytes(15), 7)
    assert encode_error(args(bad, 0)) == (
        "remote_domain_get_state_args.dom.uuid: expected exactly 16 bytes, got 15"
    )
    ret = remote.remote_domain_lookup_by_name_ret
    assert ret.from_bytes(dom.to_bytes()) == ret(dom)
    assert decode_error(ret, dom.to_bytes()[:-1]).startswith("remote_domain_lookup_by_name_ret.dom.")
