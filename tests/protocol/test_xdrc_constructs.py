"""One test per XDR construct: compile a small .x, compare encodings with bytes
computed by hand from RFC 4506, and decode them back."""

from __future__ import annotations

import enum
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import xdrlib3
from virtwire.protocol import xdr
from virtwire.protocol.xdr import ReadOnlyPolicy, XdrError
from virtwire.protocol.xdrc import compile_source

CASES = Path(__file__).parent / "xdrc_cases"
_counter = itertools.count()


def build(source: str) -> Any:
    """Compile `source` and import the result as a fresh module."""
    name = f"xdrc_case_{next(_counter)}"
    text = compile_source(source, f"{name}.x")
    mod = ModuleType(name)
    sys.modules[name] = mod  # dataclasses look their module up while building
    exec(compile(text, f"<{name}>", "exec"), mod.__dict__)
    return mod


def words(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big", signed=v < 0) for v in values)


# --- base types -----------------------------------------------------------------------------


def test_integers_and_rpcgen_small_types_take_one_word_each() -> None:
    m = build("""
        struct s {
            int i; unsigned u; unsigned int ui; hyper h; unsigned hyper uh;
            char c; unsigned char uc; u_char uc2; short sh; unsigned short us; u_short us2;
        };
    """)
    v = m.s(-1, 0x01020304, 0xFFFFFFFF, -2, 2**64 - 1, -3, 255, 7, -4, 65535, 9)
    expected = (
        words(-1, 0x01020304, -1)
        + bytes.fromhex("fffffffffffffffe")
        + bytes.fromhex("ffffffffffffffff")
        + words(-3, 255, 7, -4, 65535, 9)
    )
    assert v.to_bytes() == expected
    assert m.s.from_bytes(expected) == v


def test_float_double_bool() -> None:
    m = build("struct s { float f; double d; bool b; bool c; };")
    v = m.s(1.0, -2.5, True, False)
    assert v.to_bytes() == bytes.fromhex("3f800000c0040000000000000000000100000000")
    back = m.s.from_bytes(v.to_bytes())
    assert back == v and back.b is True and back.c is False


def test_enum_fields_hold_members() -> None:
    m = build("enum color { RED = 0, GREEN = 1, BLUE = 2 }; struct s { color c; };")
    assert issubclass(m.color, enum.IntEnum)
    assert m.s(m.color.BLUE).to_bytes() == words(2)
    back = m.s.from_bytes(words(1))
    assert back.c is m.color.GREEN


def test_constants_decimal_hex_octal_negative_as_values_and_bounds() -> None:
    m = build("""
        const A = 10; const B = 0x1F; const C = 017; const D = -5; const Z = 0;
        enum e { E1 = A, E2 = B, E3 = D };
        struct s { int x[C]; opaque y<B>; };
    """)
    assert (m.A, m.B, m.C, m.D, m.Z) == (10, 31, 15, -5, 0)
    text = compile_source("const P = 0x20008086; const Q = -0x10; const R = 010;", "c.x")
    assert "P: Final = 0x20008086\nQ: Final = -0x10\nR: Final = 8\n" in text
    assert [int(x) for x in m.e] == [10, 31, -5]
    assert len(m.s([0] * 15, b"").to_bytes()) == 15 * 4 + 4


def test_enum_values_implicit_and_by_member_name() -> None:
    m = build("enum e { A, B, C = 10, D }; const X = C; struct s { int v[X]; };")
    assert [int(x) for x in m.e] == [0, 1, 10, 11]
    assert m.X == 10


# --- opaque and strings ------------------------------------------------------------------------


def test_fixed_opaque_is_padded_with_zeros() -> None:
    m = build("struct s { opaque o[5]; int after; };")
    assert m.s(b"abcde", 1).to_bytes() == b"abcde\0\0\0" + words(1)
    assert m.s.from_bytes(b"abcde\0\0\0" + words(1)) == m.s(b"abcde", 1)


def test_variable_opaque_and_string() -> None:
    m = build("struct s { opaque o<>; string t<10>; };")
    v = m.s(b"ab", "xyz!")
    assert v.to_bytes() == words(2) + b"ab\0\0" + words(4) + b"xyz!"
    assert m.s.from_bytes(v.to_bytes()) == v


def test_strings_are_utf8_and_any_bytes_round_trip() -> None:
    m = build("struct s { string t<>; };")
    assert m.s("é").to_bytes() == words(2) + "é".encode() + b"\0\0"
    raw = words(3) + b"\xff\xfe\x80\0"  # not UTF-8: decodes with surrogateescape
    v = m.s.from_bytes(raw)
    assert v.t.encode("utf-8", "surrogateescape") == b"\xff\xfe\x80"
    assert v.to_bytes() == raw


def test_nonzero_padding_is_accepted_like_glibc_and_reencoded_as_zero() -> None:
    m = build("struct s { string t<>; opaque f[1]; };")
    data = words(1) + b"a\x01\x02\x03" + b"z\x09\x09\x09"
    v = m.s.from_bytes(data)
    assert v == m.s("a", b"z")
    assert v.to_bytes() == words(1) + b"a\0\0\0" + b"z\0\0\0"


# --- arrays ----------------------------------------------------------------------------------------


def test_fixed_and_variable_arrays() -> None:
    m = build("struct s { int f[2]; unsigned v<3>; hyper u<>; };")
    v = m.s([1, -1], [7, 8], [])
    assert v.to_bytes() == words(1, -1) + words(2, 7, 8) + words(0)
    assert m.s.from_bytes(v.to_bytes()) == v


def test_char_array_is_a_list_of_ints_one_word_each() -> None:
    """rpcgen quirk libvirt relies on: remote_node_get_info_ret.model is char[32] = 128 bytes."""
    m = build("struct s { char model[32]; };")
    model = [ord(c) for c in "x86_64"] + [0] * 26
    data = m.s(model).to_bytes()
    assert len(data) == 128 and data[:8] == words(ord("x"), ord("8"))
    assert m.s.from_bytes(data).model == model


def test_arrays_of_strings_structs_bools_and_enums() -> None:
    m = build("""
        enum e { A = 1, B = 2 };
        typedef string str_t<>;
        struct p { string n<>; int v; };
        struct s { str_t names<>; p ps<4>; bool flags<>; e es[2]; p fixed[1]; };
    """)
    v = m.s(["a", "bc"], [m.p("x", 1)], [True, False], [m.e.B, m.e.A], [m.p("", -1)])
    expected = (
        words(2, 1) + b"a\0\0\0" + words(2) + b"bc\0\0"
        + words(1, 1) + b"x\0\0\0" + words(1)
        + words(2, 1, 0)
        + words(2, 1)
        + words(0, -1)
    )  # fmt: skip
    assert v.to_bytes() == expected
    back = m.s.from_bytes(expected)
    assert back == v and back.es[0] is m.e.B


# --- optional data, unions -----------------------------------------------------------------------------


def test_optional_data_linked_list_rfc4506_4_19() -> None:
    m = build("""
        struct stringentry { string item<>; stringentry *next; };
        typedef stringentry *stringlist;
    """)
    lst = m.stringentry("a", m.stringentry("b", None))
    data = m.encode_stringlist(lst)
    assert data == words(1) + words(1) + b"a\0\0\0" + words(1) + words(1) + b"b\0\0\0" + words(0)
    assert m.decode_stringlist(data) == lst
    assert m.encode_stringlist(None) == words(0)
    assert m.decode_stringlist(words(0)) is None


def test_rfc4506_section7_file_example() -> None:
    """The complete example of RFC 4506 section 7, byte for byte."""
    m = build((CASES / "rfc4506_file.x").read_text())
    v = m.file("sillyprog", m.filetype(m.filekind.EXEC, "lisp"), "john", b"(quit)")
    expected = bytes.fromhex(
        "00000009 7369 6c6c 7970 726f 6700 0000"
        "00000002"
        "00000004 6c69 7370"
        "00000004 6a6f 686e"
        "00000006 2871 7569 7429 0000"
    )
    assert len(expected) == 48
    assert v.to_bytes() == expected
    assert m.file.from_bytes(expected) == v
    text = m.file("notes", m.filetype(m.filekind.TEXT, None), "j", b"")
    assert m.file.from_bytes(text.to_bytes()) == text


def test_union_shared_case_labels_default_and_void_arms() -> None:
    m = build("""
        union u switch (int kind) {
        case 1:
        case 2:
            int small;
        case 3:
            void;
        default:
            string other<>;
        };
    """)
    assert m.u(1, 5).to_bytes() == words(1, 5)
    assert m.u(2, 6).to_bytes() == words(2, 6)
    assert m.u(3, None).to_bytes() == words(3)
    assert m.u(99, "z").to_bytes() == words(99, 1) + b"z\0\0\0"
    for v in (m.u(1, 5), m.u(2, 6), m.u(3, None), m.u(-7, "q")):
        assert m.u.from_bytes(v.to_bytes()) == v


def test_union_on_enum_and_bool_discriminants() -> None:
    m = build("""
        enum k { ON = 1, OFF = 0 };
        union a switch (k which) { case ON: int level; case OFF: void; };
        union b switch (bool set) { case TRUE: hyper value; case FALSE: void; };
    """)
    assert m.a(m.k.ON, 3).to_bytes() == words(1, 3)
    assert m.a.from_bytes(words(0)) == m.a(m.k.OFF, None)
    assert m.b(True, -1).to_bytes() == words(1) + bytes.fromhex("ffffffffffffffff")
    assert m.b.from_bytes(words(0)).set is False


def test_union_without_default_rejects_unknown_discriminant() -> None:
    m = build("union u switch (unsigned d) { case 0: void; };")
    with pytest.raises(XdrError, match=r"u\.d: discriminant 5 has no arm"):
        m.u.from_bytes(words(5))
    with pytest.raises(XdrError, match=r"u\.d: discriminant 5 has no arm"):
        m.u(5, None).to_bytes()


# --- declarations and definitions ---------------------------------------------------------------------------


def test_typedefs_get_aliases_and_module_codecs() -> None:
    m = build("""
        typedef string name_t<8>;
        typedef name_t *maybe_name;
        typedef opaque uuid_t[16];
        typedef int counts<2>;
        struct s { maybe_name n; uuid_t u; };
    """)
    assert m.encode_name_t("ab") == words(2) + b"ab\0\0"
    assert m.decode_maybe_name(words(1, 1) + b"q\0\0\0") == "q"
    assert m.encode_counts([1, 2]) == words(2, 1, 2)
    assert m.decode_uuid_t(bytes(16)) == bytes(16)
    assert m.encode_s(m.s(None, bytes(16))) == words(0) + bytes(16)
    assert m.maybe_name == (str | None)


def test_inline_struct_union_enum_definitions_are_hoisted() -> None:
    m = build("""
        struct outer {
            struct { int a; string b<>; } inner;
            enum { X = 1, Y = 2 } which;
            union switch (int d) { case 0: void; default: int n; } choice;
        };
        typedef struct { hyper h; } direct;
    """)
    v = m.outer(m.outer_inner(1, "b"), m.outer_which.Y, m.outer_choice(4, 9))
    assert v.to_bytes() == words(1, 1) + b"b\0\0\0" + words(2) + words(4, 9)
    assert m.outer.from_bytes(v.to_bytes()) == v
    assert m.direct(5).to_bytes() == bytes(7) + b"\x05"


def test_comments_passthrough_and_program_definitions() -> None:
    source = """
        // line comment
        /* block
           comment */
        %#include <rpc/rpc.h>
        const N = 1; /* trailing */
        struct args { int x; };
        program DEMO_PROG {
            version DEMO_V1 {
                void NULLPROC(void) = 0;
                int DOUBLE(args) = 1;
                args PAIR(int, unsigned int) = 2;
            } = 1;
        } = 0x20000001;
    """
    text = compile_source(source, "demo.x")
    assert "# %#include <rpc/rpc.h>" in text
    assert text.startswith('"""Generated by virtwire.protocol.xdrc from demo.x; do not edit."""')
    m = build(source)
    assert m.args(3).to_bytes() == words(3)


def test_python_keyword_member_names_get_a_trailing_underscore() -> None:
    m = build("struct s { int from; int class; };")
    v = m.s(from_=1, class_=2)
    assert v.to_bytes() == words(1, 2)


def test_field_names_do_not_follow_the_running_pythons_soft_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.12 made "type" a soft keyword: a compiler asking the running Python
    # renamed libvirt's `type` fields to `type_` there, and its output drifted.
    import keyword

    monkeypatch.setattr(keyword, "softkwlist", [*keyword.softkwlist, "type"])
    monkeypatch.setattr(keyword, "issoftkeyword", frozenset(keyword.softkwlist).__contains__)
    m = build("struct s { int type; int match; };")
    v = m.s(type=1, match_=2)
    assert (v.type, v.to_bytes()) == (1, words(1, 2))


def test_output_is_deterministic() -> None:
    source = (CASES / "libvirt_subset.x").read_text()
    assert compile_source(source, "a.x") == compile_source(source, "a.x")


# --- the byte-level API ---


def test_from_bytes_exact_and_trailing_bytes() -> None:
    m = build("struct s { int a; };")
    with pytest.raises(XdrError, match="s: 4 unexpected bytes after the value"):
        m.s.from_bytes(words(1, 2))
    assert m.s.from_bytes(words(1, 2), exact=False) == m.s(1)
    assert m.s.from_bytes(bytearray(words(1))) == m.s(1)
    assert m.s.from_bytes(memoryview(words(1))) == m.s(1)


def test_pack_and_unpack_with_xdrlib3() -> None:
    m = build("struct s { string a<>; hyper b; };")
    p = xdrlib3.Packer()
    p.pack_int(7)
    m.s("hi", -1).pack(p)
    p.pack_int(8)
    u = xdrlib3.Unpacker(p.get_buffer())
    assert u.unpack_int() == 7
    assert m.s.unpack(u) == m.s("hi", -1)
    assert u.unpack_int() == 8
    u.done()


def test_procedure_table_from_annotations() -> None:
    m = build((CASES / "libvirt_subset.x").read_text())
    table = m.PROCEDURES
    assert sorted(table) == [1, 2, 6, 14, 16, 34, 273, 298, 318, 364]
    suspend = m.PROCEDURES_BY_NAME["DOMAIN_SUSPEND"]
    assert (suspend.program, suspend.version, suspend.number) == (0x20008086, 1, 34)
    assert suspend.api == "virDomainSuspend" and suspend.args is m.remote_domain_suspend_args
    assert suspend.ret is None and suspend.readonly is ReadOnlyPolicy.DENY and suspend.denies()
    xml = table[14]
    assert (xml.readonly, xml.deny_flags) == (ReadOnlyPolicy.DENY_FLAGS, 0x9)
    assert not xml.denies(0) and xml.denies(1) and xml.denies(8) and not xml.denies(2)
    assert xml.args is m.remote_domain_get_xml_desc_args and xml.ret is m.remote_domain_get_xml_desc_ret
    close = table[2]
    assert close.modelled and close.args is None and close.ret is None
    event = table[318]
    assert event.event == "lifecycle" and event.api is None and not event.denies()
    assert event.msg is m.remote_domain_event_callback_lifecycle_msg
    unmodelled = table[364]
    assert not unmodelled.modelled and unmodelled.api == "virDomainMigrateStartPostCopy"
    assert table[1].args is m.remote_connect_open_args and table[1].ret is None and table[1].modelled


def test_arrays_decoded_reading_ahead_agree_with_the_reference_decoder() -> None:
    """Elements that start with a string are decoded with the next element's length
    word read together with the previous element's fixed tail; check 0..5 elements
    and every kind of union arm (fixed, string, void) at the end of an element."""

    m = build((CASES / "all_constructs.x").read_text())
    arms = [
        m.small_union(1, -1),
        m.small_union(2, 2**40),
        m.small_union(3, "s\udcff"),
        m.small_union(4, None),
    ]
    for count in range(6):
        value = m.read_ahead_lists(
            [m.named_int(f"n{i}" * i, i) for i in range(count)],
            [m.named_union("u" * i, arms[i % 4]) for i in range(count)],
            [m.named_struct(bytes(i), m.named_int("x", i)) for i in range(min(count, 4))],
            [m.named_int("a", 1), m.named_int("bcde", 2)],
        )
        data = value.to_bytes()
        assert m.read_ahead_lists.from_bytes(data) == value
        assert xdr.decode_value(m.TYPES["read_ahead_lists"], data, 0, "r")[0] == value
        for cut in range(0, len(data), 3):
            with pytest.raises(XdrError):
                m.read_ahead_lists.from_bytes(data[:cut])
