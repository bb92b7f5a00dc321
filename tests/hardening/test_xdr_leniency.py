"""Decoding takes exactly what glibc's XDR routines (libtirpc, as libvirt 9.0
links them) take: construct by construct, non-canonical words are fed both to
libvirt.so's / libtirpc's own xdr_* routines through ctypes and to our codec;
both must accept or refuse alike, decode to the same value, and re-encode to
the same canonical bytes.

Needs libvirt.so.0 and libtirpc.so.3: skipped without them, a failure with CI=true.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import sys
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated import virnet as V
from virtwire.protocol.xdr import XdrError
from virtwire.protocol.xdrc import compile_source
from vwtestkit import unavailable

XDR_ENCODE, XDR_DECODE = 0, 1
_XDR_SIZE = 128  # struct XDR fits in this on LP64
_X_HANDY_OFFSET = 40  # x_handy (bytes left) follows x_op, x_ops, x_public, x_private, x_base
_OBJ_SIZE = 1 << 12


def _load(*names: str | None) -> ctypes.CDLL | None:
    for name in names:
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


LIBVIRT = _load("libvirt.so.0", ctypes.util.find_library("virt"))
TIRPC = _load("libtirpc.so.3", ctypes.util.find_library("tirpc"))


def c_roundtrip(lib_name: str, func: str, data: bytes, *, extra: int = 0) -> bytes | None:
    """Decode ``data`` with the C routine, then encode what it decoded; None if it refuses.

    ``extra``: a third argument the routine takes (xdr_enum/xdr_bool take none)."""
    if LIBVIRT is None or TIRPC is None:
        unavailable("libvirt.so.0 / libtirpc.so.3 not found")
    lib = LIBVIRT if lib_name == "libvirt" else TIRPC
    routine = getattr(lib, func)
    routine.restype = ctypes.c_int
    routine.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    TIRPC.xdrmem_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    TIRPC.xdrmem_create.restype = None
    src = ctypes.create_string_buffer(data, len(data) + 4)
    xdrs = ctypes.create_string_buffer(_XDR_SIZE)
    obj = ctypes.create_string_buffer(_OBJ_SIZE)  # zeroed, as rpcgen decoders expect
    TIRPC.xdrmem_create(xdrs, src, len(data), XDR_DECODE)
    if not routine(xdrs, obj):
        return None
    if ctypes.c_uint.from_buffer(xdrs, _X_HANDY_OFFSET).value != 0:
        return None  # took fewer bytes than given
    size = len(data) + 64
    dst = ctypes.create_string_buffer(size)
    TIRPC.xdrmem_create(xdrs, dst, size, XDR_ENCODE)
    assert routine(xdrs, obj), f"{func} decoded but cannot encode again"
    return dst.raw[: size - ctypes.c_uint.from_buffer(xdrs, _X_HANDY_OFFSET).value]


def ours_roundtrip(cls: Any, data: bytes) -> bytes | None:
    try:
        value = cls.from_bytes(data)
    except XdrError:
        return None
    return bytes(cls.to_bytes(value))


def words(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v & 0xFFFFFFFF) for v in values)


def _construct_module() -> Any:
    source = "struct one_bool { bool b; }; enum colour { RED = 0, GREEN = 1 }; struct one_enum { colour c; };"
    name = "leniency_constructs"
    mod = ModuleType(name)
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(compile_source(source, f"{name}.x"), name, "exec"), mod.__dict__)
    return mod


CONSTRUCTS = _construct_module()
NON_CANONICAL = [0, 1, 2, 0x01000000, 0x80000000, 0xFFFFFFFF]


@pytest.mark.parametrize("word", NON_CANONICAL)
def test_bool_any_non_zero_word_is_true_as_xdr_bool(word: int) -> None:
    data = words(word)
    c = c_roundtrip("tirpc", "xdr_bool", data)
    assert c == words(1 if word else 0)
    assert CONSTRUCTS.one_bool.from_bytes(data).b is (word != 0)
    assert ours_roundtrip(CONSTRUCTS.one_bool, data) == c


@pytest.mark.parametrize("word", NON_CANONICAL)
def test_enum_any_int_word_is_taken_as_xdr_enum(word: int) -> None:
    data = words(word)
    c = c_roundtrip("tirpc", "xdr_enum", data)
    assert c == data  # glibc keeps the value, named or not
    value = CONSTRUCTS.one_enum.from_bytes(data).c
    assert isinstance(value, CONSTRUCTS.colour)
    assert int(value) == struct.unpack(">i", data)[0]


@pytest.mark.parametrize("flag", NON_CANONICAL)
def test_optional_flag_any_non_zero_word_is_present_as_xdr_pointer(flag: int) -> None:
    # remote_string is `remote_nonnull_string *`: CONNECT_OPEN's name, as go-libvirt sends it
    data = words(flag, 3) + b"abc\0" if flag else words(0)
    c = c_roundtrip("libvirt", "xdr_remote_connect_open_args", data + words(0))
    ours = ours_roundtrip(R.remote_connect_open_args, data + words(0))
    assert c is not None
    assert ours == c
    assert R.remote_connect_open_args.from_bytes(data + words(0)).name == ("abc" if flag else None)


def test_go_libvirt_connect_open_call_decodes() -> None:
    # the payload go-libvirt's ConnectOpen sends: name present with flag 0x01000000
    payload = words(0x01000000, 15) + b"test:///default\0" + words(0)
    assert c_roundtrip("libvirt", "xdr_remote_connect_open_args", payload) is not None
    args = R.remote_connect_open_args.from_bytes(payload)
    assert args.name == "test:///default"
    assert args.flags == 0


@pytest.mark.parametrize("mtype, status", [(7, 0), (0, 9), (-1, -1), (0x7FFFFFFF, 0)])
def test_message_header_enums_take_any_int(mtype: int, status: int) -> None:
    data = words(R.REMOTE_PROGRAM, 1, 1, mtype, 5, status)
    c = c_roundtrip("libvirt", "xdr_virNetMessageHeader", data)
    assert c == data
    header = V.virNetMessageHeader.from_bytes(data)
    assert (int(header.type), int(header.status)) == (mtype, status)


def test_enum_array_takes_unnamed_values() -> None:
    # CONNECT_AUTH_LIST's reply: remote_auth_type types<REMOTE_AUTH_TYPE_LIST_MAX>
    data = words(3, 0, 99, -5)
    c = c_roundtrip("libvirt", "xdr_remote_auth_list_ret", data)
    assert c == data
    assert [int(t) for t in R.remote_auth_list_ret.from_bytes(data).types] == [0, 99, -5]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(words(2) + b"ab\1\xff", id="non-zero-padding"),
        pytest.param(words(5) + b"ab\0cd\0\0\0", id="embedded-nul"),
        pytest.param(words(1) + b"\0\0\0\0", id="only-nul"),
        pytest.param(words(3) + b"\xff\xfe\0\x00", id="invalid-utf8"),
        pytest.param(words(0), id="empty"),
    ],
)
def test_strings_take_any_bytes_and_padding(data: bytes) -> None:
    c = c_roundtrip("libvirt", "xdr_remote_nonnull_string", data)
    assert c is not None
    assert ours_roundtrip_string(data) == c


def ours_roundtrip_string(data: bytes) -> bytes | None:
    # remote_nonnull_string has no struct of its own: use a struct holding just one
    return ours_roundtrip(R.remote_connect_get_type_ret, data)


@pytest.mark.parametrize(
    "func, cls, data",
    [
        pytest.param(
            "xdr_remote_nonnull_string",
            R.remote_connect_get_type_ret,
            words(R.REMOTE_STRING_MAX + 1),
            id="string-over-bound",
        ),
        pytest.param(
            "xdr_remote_connect_list_domains_ret",
            R.remote_connect_list_domains_ret,
            words(R.REMOTE_DOMAIN_LIST_MAX + 1),
            id="array-over-bound",
        ),
        pytest.param(
            "xdr_remote_connect_list_domains_ret", R.remote_connect_list_domains_ret, words(5, 1), id="short"
        ),
        pytest.param(
            "xdr_remote_typed_param_value", R.remote_typed_param_value, words(99, 0), id="union-no-arm"
        ),
    ],
)
def test_what_glibc_refuses_we_refuse(func: str, cls: Any, data: bytes) -> None:
    assert c_roundtrip("libvirt", func, data) is None
    assert ours_roundtrip(cls, data) is None
