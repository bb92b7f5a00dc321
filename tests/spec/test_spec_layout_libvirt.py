"""Every type of spec/*.x has the same wire layout as libvirt's own XDR code.

libvirt.so exports the rpcgen routines it was built with (xdr_remote_*,
xdr_virNetMessage*). For each struct, union and typedef of our spec this test
builds random values, encodes them from the spec text alone (a small reader
kept here, independent of our compiler), lets libvirt decode and re-encode
them, and requires the same bytes back. A wrong field type, order, bound or
optional marker makes libvirt fail or produce other bytes. Every counted field
is also tried at its bound (libvirt must accept it) and one past it (libvirt
must refuse it), so a wrong bound shows too. The generated Python codec must
agree on the same bytes and refuse the same overruns.

Needs the real libvirt 9.0 library: skipped without it, a failure with CI=true.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import unavailable

SPEC_DIR = Path(__file__).resolve().parents[2] / "spec"
SAMPLES_PER_TYPE = 6
# Counts drawn for variable arrays: enough to exercise the count word, small
# enough to keep the test fast.
MAX_ITEMS = 3

# ----------------------------------------------------------------- spec reader


@dataclass(frozen=True)
class Decl:
    """One declaration: `type name`, `type *name`, `type name[N]`, `type name<N>`."""

    type: str  # int uint hyper uhyper char uchar short ushort double float bool string opaque or a name
    name: str
    kind: str  # scalar | optional | fixed | var
    bound: int | None


@dataclass(frozen=True)
class Union:
    disc: Decl
    arms: dict[int, Decl | None]
    default: Decl | None


@dataclass
class Spec:
    consts: dict[str, int]
    enums: dict[str, list[int]]
    structs: dict[str, list[Decl]]
    unions: dict[str, Union]
    typedefs: dict[str, Decl]


_TOKEN = re.compile(r"\s*(0x[0-9a-fA-F]+|-?\d+|\w+|[{}()\[\]<>;:,=*])")


def _tokens(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        assert m, f"unexpected text near {text[pos : pos + 40]!r}"
        out.append(m.group(1))
        pos = m.end()
    return out


_UNSIGNED = {"int": "uint", "long": "uint", "hyper": "uhyper", "char": "uchar", "short": "ushort"}


class _Reader:
    def __init__(self, toks: list[str]) -> None:
        self.toks = toks
        self.i = 0
        self.spec = Spec({}, {}, {}, {}, {})

    def peek(self) -> str:
        return self.toks[self.i]

    def take(self, want: str | None = None) -> str:
        tok = self.toks[self.i]
        self.i += 1
        assert want is None or tok == want, f"expected {want!r}, got {tok!r}"
        return tok

    def value(self) -> int:
        tok = self.take()
        if tok in self.spec.consts:
            return self.spec.consts[tok]
        return int(tok, 0)

    def type_name(self) -> str:
        tok = self.take()
        if tok == "unsigned":
            nxt = self.peek()
            if nxt in ("int", "hyper", "char", "short", "long"):
                self.take()
                return _UNSIGNED[nxt]
            return "uint"
        if tok == "struct":
            return self.take()
        return {"long": "int"}.get(tok, tok)

    def decl(self) -> Decl:
        typ = self.type_name()
        if self.peek() == "*":
            self.take()
            return Decl(typ, self.take(), "optional", None)
        name = self.take()
        if self.peek() == "[":
            self.take()
            size = self.value()
            self.take("]")
            return Decl(typ, name, "fixed", size)
        if self.peek() == "<":
            self.take()
            bound = None if self.peek() == ">" else self.value()
            self.take(">")
            return Decl(typ, name, "var", bound)
        return Decl(typ, name, "scalar", None)

    def parse(self) -> Spec:
        while self.i < len(self.toks):
            kw = self.take()
            if kw == "const":
                name = self.take()
                self.take("=")
                self.spec.consts[name] = self.value()
            elif kw == "typedef":
                d = self.decl()
                self.spec.typedefs[d.name] = d
            elif kw == "enum":
                name = self.take()
                self.take("{")
                values: list[int] = []
                while self.peek() != "}":
                    member = self.take()
                    self.take("=")
                    values.append(self.value())
                    self.spec.consts[member] = values[-1]
                    if self.peek() == ",":
                        self.take()
                self.take("}")
                self.spec.enums[name] = values
            elif kw == "struct":
                name = self.take()
                self.take("{")
                fields: list[Decl] = []
                while self.peek() != "}":
                    fields.append(self.decl())
                    self.take(";")
                self.take("}")
                self.spec.structs[name] = fields
            elif kw == "union":
                name = self.take()
                self.take("switch")
                self.take("(")
                disc = self.decl()
                self.take(")")
                self.take("{")
                arms: dict[int, Decl | None] = {}
                default: Decl | None = None
                while self.peek() != "}":
                    label = self.take()
                    if label == "case":
                        key = self.value()
                        self.take(":")
                        arms[key] = None if self.peek() == "void" else self.decl()
                    else:
                        self.take(":")
                        default = None if self.peek() == "void" else self.decl()
                    if self.peek() == "void":
                        self.take()
                    self.take(";")
                self.take("}")
                self.spec.unions[name] = Union(disc, arms, default)
            else:
                raise AssertionError(f"unexpected keyword {kw!r}")
            self.take(";")
        return self.spec


@functools.cache
def read_spec(name: str) -> Spec:
    return _Reader(_tokens((SPEC_DIR / name).read_text())).parse()


# ----------------------------------------------------------------- random XDR encoder

_INT_RANGES = {
    "int": (-(2**31), 2**31 - 1),
    "uint": (0, 2**32 - 1),
    "char": (-128, 127),
    "uchar": (0, 255),
    "short": (-(2**15), 2**15 - 1),
    "ushort": (0, 2**16 - 1),
    "bool": (0, 1),
}


class Encoder:
    """Writes random but valid XDR for a named type, straight from the spec."""

    def __init__(self, spec: Spec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng

    def _count(self, bound: int | None) -> int:
        return self.rng.randint(0, min(MAX_ITEMS, bound if bound is not None else MAX_ITEMS))

    def _bytes(self, n: int) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(n))

    @staticmethod
    def _padded(raw: bytes) -> bytes:
        return raw + b"\0" * (-len(raw) % 4)

    def base(self, typ: str) -> bytes:
        if typ in _INT_RANGES:
            lo, hi = _INT_RANGES[typ]
            return struct.pack(">i" if lo < 0 else ">I", self.rng.randint(lo, hi))
        if typ == "hyper":
            return struct.pack(">q", self.rng.randint(-(2**63), 2**63 - 1))
        if typ == "uhyper":
            return struct.pack(">Q", self.rng.randint(0, 2**64 - 1))
        if typ == "double":
            return struct.pack(">d", self.rng.uniform(-1e9, 1e9))
        if typ == "float":
            return struct.pack(">f", self.rng.uniform(-1e3, 1e3))
        if typ in self.spec.enums:
            return struct.pack(">i", self.rng.choice(self.spec.enums[typ]))
        if typ in self.spec.typedefs:
            return self.decl(self.spec.typedefs[typ])
        if typ in self.spec.structs:
            return b"".join(self.decl(f) for f in self.spec.structs[typ])
        if typ in self.spec.unions:
            union = self.spec.unions[typ]
            key = self.rng.choice(sorted(union.arms))
            arm = union.arms[key]
            return struct.pack(">i", key) + (b"" if arm is None else self.decl(arm))
        raise AssertionError(f"unknown type {typ}")

    def decl(self, d: Decl) -> bytes:
        if d.type == "string":
            # rpcgen strings are C strings: no NUL inside.
            text = bytes(self.rng.randrange(1, 128) for _ in range(self._count(d.bound) * 3))
            return struct.pack(">I", len(text)) + self._padded(text)
        if d.type == "opaque":
            if d.kind == "fixed":
                assert d.bound is not None
                return self._padded(self._bytes(d.bound))
            raw = self._bytes(self._count(d.bound) * 3)
            return struct.pack(">I", len(raw)) + self._padded(raw)
        if d.kind == "optional":
            present = self.rng.random() < 0.6
            return struct.pack(">I", int(present)) + (self.base(d.type) if present else b"")
        if d.kind == "fixed":
            assert d.bound is not None
            return b"".join(self.base(d.type) for _ in range(d.bound))
        if d.kind == "var":
            n = self._count(d.bound)
            return struct.pack(">I", n) + b"".join(self.base(d.type) for _ in range(n))
        return self.base(d.type)


# ----------------------------------------------------------------- libvirt's own XDR


def _libvirt(soname: str = "libvirt.so.0", short: str = "virt") -> ctypes.CDLL | None:
    for name in (soname, ctypes.util.find_library(short)):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _libtirpc() -> ctypes.CDLL | None:
    for name in ("libtirpc.so.3", ctypes.util.find_library("tirpc")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


LIBVIRT = _libvirt()
# The admin program's routines (xdr_admin_*) live in libvirt-admin.so.
LIBVIRT_ADMIN = _libvirt("libvirt-admin.so.0", "virt-admin")
TIRPC = _libtirpc()
XDR_ENCODE, XDR_DECODE = 0, 1
# struct XDR is six machine words at most; x_handy (bytes left) is the u_int
# after x_op, x_ops, x_public, x_private and x_base on LP64.
_XDR_SIZE = 128
_X_HANDY_OFFSET = 40
_OBJ_SIZE = 1 << 16


def _need_libvirt(file: str = "remote.x") -> tuple[ctypes.CDLL, ctypes.CDLL]:
    lib = LIBVIRT_ADMIN if file == "admin.x" else LIBVIRT
    if lib is None or TIRPC is None:
        unavailable("libvirt.so.0 / libvirt-admin.so.0 / libtirpc.so.3 not found")
    return lib, TIRPC


def libvirt_roundtrip(func: str, data: bytes, file: str = "remote.x") -> bytes | None:
    """Decode data with libvirt's xdr_<func> (of libvirt-admin.so for admin.x), encode the result again."""
    lib, tirpc = _need_libvirt(file)
    xdr_func = getattr(lib, func)
    xdr_func.restype = ctypes.c_int
    xdr_func.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    tirpc.xdrmem_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    tirpc.xdrmem_create.restype = None

    src = ctypes.create_string_buffer(data, len(data) + 4)
    xdrs = ctypes.create_string_buffer(_XDR_SIZE)
    obj = ctypes.create_string_buffer(_OBJ_SIZE)  # zeroed, as rpcgen decoders expect
    tirpc.xdrmem_create(xdrs, src, len(data), XDR_DECODE)
    if not xdr_func(xdrs, obj):
        return None
    left = ctypes.c_uint.from_buffer(xdrs, _X_HANDY_OFFSET).value
    if left != 0:
        return None  # libvirt consumed fewer bytes than we wrote

    size = len(data) * 2 + 64
    dst = ctypes.create_string_buffer(size)
    tirpc.xdrmem_create(xdrs, dst, size, XDR_ENCODE)
    if not xdr_func(xdrs, obj):
        return None
    used = size - ctypes.c_uint.from_buffer(xdrs, _X_HANDY_OFFSET).value
    return dst.raw[:used]


# ----------------------------------------------------------------- the checks

# Types whose C routine has another name in libvirt (virnet.x keeps libvirt's
# virNetMessage* helper names; the error struct is remote_error in our spec).
_C_NAMES = {"remote_error": "xdr_virNetMessageError"}


def _types(spec: Spec) -> list[str]:
    return sorted([*spec.structs, *spec.unions, *spec.typedefs])


def _generated(module: str) -> Any:
    return importlib.import_module(f"virtwire.protocol.generated.{module}")


# Types of admin.x whose xdr_ routine libvirt-admin.so keeps private (reached
# only through the structs that contain them; the daemon-timeout payload is
# missing from its export list in 9.0).
ADMIN_UNEXPORTED = frozenset(
    {
        "admin_nonnull_string",
        "admin_string",
        "admin_typed_param_value",
        "admin_typed_param",
        "admin_nonnull_server",
        "admin_nonnull_client",
        "admin_connect_set_daemon_timeout_args",
    }
)

CASES = [
    (file, module, typ)
    for file, module in (
        ("virnet.x", "virnet"),
        ("keepalive.x", "keepalive"),
        ("remote.x", "remote"),
        ("admin.x", "admin"),
    )
    for typ in _types(read_spec(file))
    if typ not in ADMIN_UNEXPORTED
]


def test_spec_reader_sees_every_type() -> None:
    remote = read_spec("remote.x")
    # 688 structs + the typed-param union + string/uuid/optional typedefs.
    assert len(remote.structs) >= 600
    assert "remote_typed_param_value" in remote.unions
    assert remote.consts["REMOTE_PROGRAM"] == 0x20008086


@pytest.mark.parametrize(("file", "module", "typ"), CASES, ids=[c[2] for c in CASES])
def test_layout_matches_libvirt(file: str, module: str, typ: str) -> None:
    spec = read_spec(file)
    func = _C_NAMES.get(typ, f"xdr_{typ}")
    lib, _ = _need_libvirt(file)
    assert hasattr(lib, func), f"libvirt 9.0 has no {func}: {typ} is not a libvirt type name"
    rng = random.Random(f"{file}:{typ}")
    enc = Encoder(spec, rng)
    gen = _generated(module)
    for _ in range(SAMPLES_PER_TYPE):
        data = enc.base(typ)
        assert libvirt_roundtrip(func, data, file) == data, f"libvirt reads {typ} differently: {data.hex()}"
        if typ in spec.typedefs:
            decode = getattr(gen, f"decode_{typ}")
            encode = getattr(gen, f"encode_{typ}")
            assert encode(decode(data)) == data
        else:
            cls = getattr(gen, typ)
            assert cls.from_bytes(data).to_bytes() == data


def test_checker_rejects_a_wrong_layout() -> None:
    """The comparison can fail: a get_info reply with nrVirtCpu as a hyper is not libvirt's."""
    good = struct.pack(">IQQIQ", 1, 8388608, 2097152, 2, 10**9)
    assert libvirt_roundtrip("xdr_remote_domain_get_info_ret", good) == good
    wrong = struct.pack(">IQQQQ", 1, 8388608, 2097152, 2, 10**9)
    assert libvirt_roundtrip("xdr_remote_domain_get_info_ret", wrong) != wrong
    # a present-flag of 2 is not an XDR optional
    assert libvirt_roundtrip("xdr_remote_string", struct.pack(">I", 2)) is None


def _exported_symbols(path: str) -> set[str]:
    """Names in an ELF64 little-endian shared object's dynamic symbol table."""
    data = Path(path).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not an ELF64 LE object"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names: set[str] = set()
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type != 11:  # SHT_DYNSYM
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            (st_name,) = struct.unpack_from("<I", data, pos)
            end = data.index(b"\0", strtab_offset + st_name)
            names.add(data[strtab_offset + st_name : end].decode())
    return names


def test_spec_has_every_remote_type_of_libvirt() -> None:
    """Completeness: each xdr_remote_* routine of libvirt.so has a type in remote.x."""
    _need_libvirt()
    # the file the dynamic loader actually mapped for libvirt.so.0
    maps = Path("/proc/self/maps").read_text().split("\n")
    mapped = sorted({line.split()[-1] for line in maps if "/libvirt.so" in line})
    assert mapped, "libvirt.so is loaded but not found in /proc/self/maps"
    symbols = _exported_symbols(mapped[0])
    libvirt_types = {s.split("@")[0][len("xdr_") :] for s in symbols if s.startswith("xdr_remote_")}
    assert len(libvirt_types) > 600
    ours = set(_types(read_spec("remote.x"))) | set(read_spec("remote.x").enums)
    # remote_error is virnet.x's by design (design.md section 1).
    assert libvirt_types - ours == {"remote_error"}
    assert set(read_spec("virnet.x").structs) >= {"remote_error", "virNetMessageHeader", "virNetStreamHole"}


def test_spec_has_every_admin_type_of_libvirt() -> None:
    """Completeness: each xdr_admin_* routine of libvirt-admin.so has a type in admin.x."""
    _need_libvirt("admin.x")
    maps = Path("/proc/self/maps").read_text().split("\n")
    mapped = sorted({line.split()[-1] for line in maps if "/libvirt-admin.so" in line})
    assert mapped, "libvirt-admin.so is loaded but not found in /proc/self/maps"
    symbols = _exported_symbols(mapped[0])
    libvirt_types = {s.split("@")[0][len("xdr_") :] for s in symbols if s.startswith("xdr_admin_")}
    assert len(libvirt_types) >= 26
    assert libvirt_types == set(_types(read_spec("admin.x"))) - ADMIN_UNEXPORTED


# ----------------------------------------------------------------- bounds


def _minimal(spec: Spec, typ: str) -> bytes:
    """The shortest valid encoding of a named type."""
    if typ in ("hyper", "uhyper", "double"):
        return b"\0" * 8
    if typ in _INT_RANGES or typ == "float":
        return b"\0" * 4
    if typ in spec.enums:
        return struct.pack(">i", spec.enums[typ][0])
    if typ in spec.typedefs:
        return _minimal_decl(spec, spec.typedefs[typ])
    if typ in spec.structs:
        return b"".join(_minimal_decl(spec, f) for f in spec.structs[typ])
    union = spec.unions[typ]
    key = min(union.arms)
    arm = union.arms[key]
    return struct.pack(">i", key) + (b"" if arm is None else _minimal_decl(spec, arm))


def _minimal_decl(spec: Spec, d: Decl) -> bytes:
    if d.kind in ("optional", "var"):
        return b"\0" * 4  # absent / empty
    if d.type == "opaque":
        assert d.bound is not None
        return b"\0" * (d.bound + -d.bound % 4)
    if d.kind == "fixed":
        assert d.bound is not None
        return _minimal(spec, d.type) * d.bound
    return _minimal(spec, d.type)


def _with_count(spec: Spec, d: Decl, n: int) -> bytes:
    """Field d holding n items (bytes for string/opaque), each as short as possible."""
    if d.type == "string":
        body = b"a" * n
    elif d.type == "opaque":
        body = b"\0" * n
    else:
        return struct.pack(">I", n) + _minimal(spec, d.type) * n
    return struct.pack(">I", n) + body + b"\0" * (-n % 4)


def _bounded_fields(file: str) -> list[tuple[str, str, int]]:
    """(type, field, index) of every counted field; index -1 for a typedef itself."""
    spec = read_spec(file)
    out = [(name, name, -1) for name, d in spec.typedefs.items() if d.kind == "var" and d.bound is not None]
    for name, fields in spec.structs.items():
        out += [(name, f.name, i) for i, f in enumerate(fields) if f.kind == "var" and f.bound is not None]
    return sorted(out)


BOUND_CASES = [(file, *case) for file in ("virnet.x", "remote.x") for case in _bounded_fields(file)]
# Our decoder builds Python objects item by item: check acceptance at the bound
# only where that stays cheap (bytes and strings are always cheap).
_PY_ACCEPT_MAX_ITEMS = 20000


@pytest.mark.parametrize(
    ("file", "typ", "field", "index"), BOUND_CASES, ids=[f"{c[1]}.{c[2]}" for c in BOUND_CASES]
)
def test_bounds_match_libvirt(file: str, typ: str, field: str, index: int) -> None:
    """libvirt accepts exactly the bound and refuses one more; so does our codec."""
    spec = read_spec(file)
    module = {"virnet.x": "virnet", "remote.x": "remote"}[file]
    gen = _generated(module)
    if index < 0:
        decl = spec.typedefs[typ]
        before = after = b""
    else:
        fields = spec.structs[typ]
        decl = fields[index]
        before = b"".join(_minimal_decl(spec, f) for f in fields[:index])
        after = b"".join(_minimal_decl(spec, f) for f in fields[index + 1 :])
    assert decl.bound is not None
    at_bound = before + _with_count(spec, decl, decl.bound) + after
    over = before + _with_count(spec, decl, decl.bound + 1) + after
    func = _C_NAMES.get(typ, f"xdr_{typ}")
    assert libvirt_roundtrip(func, at_bound) == at_bound, f"libvirt refuses {decl.bound} items"
    assert libvirt_roundtrip(func, over) is None, f"libvirt accepts {decl.bound + 1} items"

    if index < 0:
        decode = getattr(gen, f"decode_{typ}")
        with pytest.raises(ValueError):
            decode(over)
        assert getattr(gen, f"encode_{typ}")(decode(at_bound)) == at_bound
        return
    cls = getattr(gen, typ)
    with pytest.raises(ValueError):
        cls.from_bytes(over)
    if decl.type in ("string", "opaque") or decl.bound <= _PY_ACCEPT_MAX_ITEMS:
        assert cls.from_bytes(at_bound).to_bytes() == at_bound
