"""Runtime for the generated XDR codecs (virtwire.protocol.generated.*).  No I/O.

The generated modules carry straight-line fast encoders and decoders.  Those
fast paths do only the checks that cannot be left to `struct` (bounds, lengths,
remaining bytes).  When one fails for any reason, the helpers here re-walk the
value or the bytes with the type descriptors below, which check everything and
name the field path, so every failure surfaces as one `XdrError` such as
`remote_connect_list_all_domains_ret.domains[3].name: string length 9999 needs
10000 bytes, only 20 left`.

What generated code and its users get from here:
- `XdrError`, `Procedure`, `ReadOnlyPolicy` (design.md sections 2-3);
- `XdrStruct`, the base of every generated struct/union class: `to_bytes()`,
  `from_bytes(data, exact=True)`, `pack(packer)`, `unpack(unpacker)`;
- the descriptors (`StructType`, `UnionType`, `ArrayType`, ...): a generated
  module's `TYPES` maps each type name to one, for introspection and tests;
- `check_value` / `decode_value`: the slow, checking reference walkers.

Strings: C sees a wire string up to its first NUL, so decoding stops there
(`wire_text`).  Padding: like glibc's xdr_opaque/xdr_string (which libvirt uses), the decoder
requires the padding bytes to be present but ignores their content, so a
packet with non-zero padding decodes; it then re-encodes with zero padding.

Decoding takes what glibc's (and libtirpc's) XDR routines take, since that is
what libvirtd accepts and what other clients send (go-libvirt writes the
optional-data flag of a present string as 0x01000000): a bool or an
optional-data flag is TRUE when non-zero (xdr_bool), and an enum word is any
32-bit int (xdr_enum); a value its enum does not name decodes to an unnamed
member (`unnamed_member`), for the handler to refuse as libvirt would.  Every
length bound and the "check the bytes left before allocating" rule stay.
Encoding stays canonical: bools as 0/1, enums only as their named members.
Recursive types (`struct node { node *next; }`, none in
libvirt's protocol) decode through Python recursion; nesting deeper than the
interpreter allows is an XdrError ("nested too deeply"), not a crash.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, cast

import xdrlib3

# --- errors ----------------------------------------------------------------------------


class XdrError(ValueError):
    """Bad XDR data or a value that cannot be encoded; `path` names the field."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


# --- procedures --------------------------------------------------------------------------


class ReadOnlyPolicy(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    DENY_FLAGS = "deny-flags"


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """One of libvirt's @acl rules: a permission an API needs on an object.

    With ``flag`` it applies only when the call's flags hold that VIR_* flag;
    with ``param``/``value`` only when that argument equals the named constant.
    """

    object: str
    permission: str
    flag: str | None = None
    param: str | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Access:
    """A procedure's access control: its checks, and the filter of the objects it lists."""

    checks: tuple[AccessCheck, ...]
    filters: tuple[tuple[str, str], ...]


class Codec(Protocol):
    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Procedure:
    program: int
    version: int
    number: int
    name: str
    api: str | None
    readonly: ReadOnlyPolicy
    deny_flags: int
    event: str | None
    modelled: bool
    args: type[XdrStruct] | None
    ret: type[XdrStruct] | None
    msg: type[XdrStruct] | None
    secure_wording: bool = False  # refused as "<api> with secure flag" (libvirt's XML getters)

    @property
    def denial_detail(self) -> str:
        """The detail of libvirt's read-only refusal ("operation forbidden: %s")."""
        api = self.api or self.name
        return f"{api} with secure flag" if self.secure_wording else f"read only access prevents {api}"

    def denies(self, flags: int = 0) -> bool:
        """True if a read-only connection must refuse this call (with these flags)."""
        match self.readonly:
            case ReadOnlyPolicy.ALLOW:
                return False
            case ReadOnlyPolicy.DENY:
                return True
            case ReadOnlyPolicy.DENY_FLAGS:
                return bool(flags & self.deny_flags)


# --- fast-path helpers the generated code uses ----------------------------------------------

U32 = struct.Struct(">I")
_unpack_u32 = U32.unpack_from  # a name lookup, not an attribute lookup, per string read
I32 = struct.Struct(">i")
# zero padding after n bytes, indexed by n & 3
PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
ZERO_WORD = b"\0\0\0\0"
ONE_WORD = b"\0\0\0\1"
# encode a bool: anything that is not False/True/0/1 is a KeyError
BOOL_WORDS: Mapping[object, int] = {False: 0, True: 1}

# failures the fast paths may raise; all are turned into a precise XdrError
FAST_FAILURES = (
    XdrError,
    struct.error,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    UnicodeError,
    RecursionError,
    ValueError,
)


E = TypeVar("E", bound=enum.IntEnum)


def unnamed_member(cls: type[E], value: int) -> E:
    """A member of ``cls`` for a value it does not name (glibc's xdr_enum takes any int).

    It compares, hashes and packs as the int; encoders still refuse it."""
    member = int.__new__(cls, value)
    member._name_ = f"{cls.__name__}({value})"
    member._value_ = value
    return member


class EnumDecoding(dict[int, E]):
    """Word -> member for decoders: a word the enum does not name gives an unnamed member."""

    def __init__(self, cls: type[E]) -> None:
        super().__init__({int(m): m for m in cls})
        self.cls = cls

    def __missing__(self, value: int) -> E:
        return unnamed_member(self.cls, value)


def take_string(buf: bytes, start: int, n: int, bound: int) -> tuple[str, int]:
    """The string of `n` bytes at `start` (its length word already read) and the
    position after its padding."""
    end = start + ((n + 3) & -4)
    if end > len(buf) or n > bound:
        raise XdrError("string longer than its bound or the data left")
    raw = buf[start : start + n]
    try:  # wire_text written out: one frame less per string
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
    return (text.partition("\0")[0] if "\0" in text else text), end


def wire_text(raw: bytes) -> str:
    """A wire string as libvirt's C code sees it: up to its first NUL (xdr_string
    NUL-terminates what it read, so C stops there).  Bytes that are not UTF-8 are
    kept as surrogate escapes, so they re-encode unchanged."""
    try:
        text = raw.decode()  # strict UTF-8 is the common case and the cheaper call
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
    return text.partition("\0")[0] if "\0" in text else text


def read_string(buf: bytes, pos: int, bound: int) -> tuple[str, int]:
    """The string at `pos` (length word, bytes, padding) and the position after it.

    take_string and wire_text written out: the generated decoders call this
    for every string outside array loops, and two frames less per string is
    a measurable share of a small reply's decoding."""
    (n,) = _unpack_u32(buf, pos)
    start = pos + 4
    end = start + ((n + 3) & -4)
    if end > len(buf) or n > bound:
        raise XdrError("string longer than its bound or the data left")
    raw = buf[start : start + n]
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
    return (text.partition("\0")[0] if "\0" in text else text), end


def take_opaque(buf: bytes, start: int, n: int, bound: int) -> tuple[bytes, int]:
    end = start + ((n + 3) & -4)
    if end > len(buf) or n > bound:
        raise XdrError("opaque data longer than its bound or the data left")
    return buf[start : start + n], end


def read_opaque(buf: bytes, pos: int, bound: int) -> tuple[bytes, int]:
    (n,) = _unpack_u32(buf, pos)
    start = pos + 4  # take_opaque written out, as in read_string
    end = start + ((n + 3) & -4)
    if end > len(buf) or n > bound:
        raise XdrError("opaque data longer than its bound or the data left")
    return buf[start : start + n], end


def encode_string(s: str, bound: int) -> bytes:
    try:
        data = s.encode()
    except UnicodeEncodeError:
        data = s.encode("utf-8", "surrogateescape")
    if len(data) > bound:
        raise XdrError("string longer than its bound")
    return data


Encoder = Callable[[bytearray, Any], None]
Decoder = Callable[[bytes, int], tuple[Any, int]]

# --- type descriptors -------------------------------------------------------------------------


class XdrType:
    """Describes one XDR type; used to diagnose failures and by tests to build values."""

    __slots__ = ("_min",)

    def __init__(self) -> None:
        self._min = -1

    def describe(self) -> str:
        raise NotImplementedError

    def min_size(self) -> int:
        """Fewest bytes any encoding of this type takes."""
        if self._min < 0:
            self._min = self._compute_min()
        return self._min

    def _compute_min(self) -> int:
        raise NotImplementedError


class IntType(XdrType):
    __slots__ = ("fmt", "hi", "lo", "name", "size")

    def __init__(self, name: str, fmt: str, lo: int, hi: int) -> None:
        super().__init__()
        self.name, self.fmt, self.lo, self.hi = name, struct.Struct(fmt), lo, hi
        self.size = self.fmt.size

    def describe(self) -> str:
        return self.name

    def _compute_min(self) -> int:
        return self.size


class FloatType(XdrType):
    __slots__ = ("fmt", "name", "size")

    def __init__(self, name: str, fmt: str) -> None:
        super().__init__()
        self.name, self.fmt = name, struct.Struct(fmt)
        self.size = self.fmt.size

    def describe(self) -> str:
        return self.name

    def _compute_min(self) -> int:
        return self.size


class BoolType(XdrType):
    __slots__ = ()

    def describe(self) -> str:
        return "bool"

    def _compute_min(self) -> int:
        return 4


INT = IntType("int", ">i", -(2**31), 2**31 - 1)
UINT = IntType("unsigned int", ">I", 0, 2**32 - 1)
HYPER = IntType("hyper", ">q", -(2**63), 2**63 - 1)
UHYPER = IntType("unsigned hyper", ">Q", 0, 2**64 - 1)
FLOAT = FloatType("float", ">f")
DOUBLE = FloatType("double", ">d")
BOOL = BoolType()


class EnumType(XdrType):
    __slots__ = ("cls", "members")

    def __init__(self, cls: type[enum.IntEnum]) -> None:
        super().__init__()
        self.cls = cls
        self.members: dict[int, enum.IntEnum] = {int(m): m for m in cls}

    def describe(self) -> str:
        return f"enum {self.cls.__name__}"

    def _compute_min(self) -> int:
        return 4


class StringType(XdrType):
    __slots__ = ("bound",)

    def __init__(self, bound: int) -> None:
        super().__init__()
        self.bound = bound

    def describe(self) -> str:
        return f"string<{self.bound}>"

    def _compute_min(self) -> int:
        return 4


class OpaqueType(XdrType):
    __slots__ = ("fixed", "size")

    def __init__(self, size: int, fixed: bool) -> None:
        super().__init__()
        self.size, self.fixed = size, fixed

    def describe(self) -> str:
        return f"opaque[{self.size}]" if self.fixed else f"opaque<{self.size}>"

    def _compute_min(self) -> int:
        return (self.size + 3) & ~3 if self.fixed else 4


class ArrayType(XdrType):
    __slots__ = ("bound_name", "elem", "fixed", "size")

    def __init__(self, elem: XdrType, size: int, fixed: bool, bound_name: str = "") -> None:
        super().__init__()
        self.elem, self.size, self.fixed = elem, size, fixed
        self.bound_name = bound_name  # the spec's constant for a variable array's bound, if named

    def describe(self) -> str:
        return (
            f"{self.elem.describe()}[{self.size}]" if self.fixed else f"{self.elem.describe()}<{self.size}>"
        )

    def _compute_min(self) -> int:
        return self.size * self.elem.min_size() if self.fixed else 4


class OptionalType(XdrType):
    __slots__ = ("elem",)

    def __init__(self, elem: XdrType) -> None:
        super().__init__()
        self.elem = elem

    def describe(self) -> str:
        return f"{self.elem.describe()} *"

    def _compute_min(self) -> int:
        return 4


class StructType(XdrType):
    """Fields are filled in after every descriptor of the module exists (types may recurse)."""

    __slots__ = ("cls", "decode", "encode", "fields", "name")

    def __init__(self, name: str, cls: type[XdrStruct]) -> None:
        super().__init__()
        self.name, self.cls = name, cls
        self.fields: tuple[tuple[str, XdrType], ...] = ()
        self.encode: Encoder = _unset_encoder
        self.decode: Decoder = _unset_decoder

    def describe(self) -> str:
        return f"struct {self.name}"

    def _compute_min(self) -> int:
        return sum(t.min_size() for _, t in self.fields)


class UnionType(XdrType):
    __slots__ = ("arms", "cls", "decode", "default", "disc", "disc_name", "encode", "name")

    def __init__(self, name: str, cls: type[XdrStruct]) -> None:
        super().__init__()
        self.name, self.cls = name, cls
        self.disc_name = ""
        self.disc: XdrType = INT
        # discriminant value -> the arm's type (None for a void arm)
        self.arms: dict[int, XdrType | None] = {}
        # (type,) of the default arm, or None if there is no default
        self.default: tuple[XdrType | None] | None = None
        self.encode: Encoder = _unset_encoder
        self.decode: Decoder = _unset_decoder

    def describe(self) -> str:
        return f"union {self.name}"

    def arm(self, d: int) -> tuple[bool, XdrType | None]:
        if d in self.arms:
            return True, self.arms[d]
        if self.default is not None:
            return True, self.default[0]
        return False, None

    def _compute_min(self) -> int:
        sizes = [0 if t is None else t.min_size() for t in self.arms.values()]
        if self.default is not None:
            sizes.append(0 if self.default[0] is None else self.default[0].min_size())
        return 4 + min(sizes, default=0)


def _unset_encoder(out: bytearray, value: Any) -> None:
    raise XdrError("codec not initialised")


def _unset_decoder(buf: bytes, pos: int) -> tuple[Any, int]:
    raise XdrError("codec not initialised")


# --- the base class of generated structs and unions -------------------------------------------


class XdrStruct:
    """Gives every generated struct/union class its byte-level API."""

    __slots__ = ()
    xdr_type: ClassVar[StructType | UnionType]
    # The fields in wire order (a union's: its discriminant, then `value`), written
    # out in each generated class with its __slots__ and __init__.
    __match_args__: ClassVar[tuple[str, ...]]

    # The generated classes leave __eq__ and __repr__ to these two, which behave as
    # dataclass's own would: one compiled pair for the codec's ~700 classes instead
    # of one each (megabytes of every process that imports the codec).
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = self.__match_args__
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__match_args__)
        return f"{type(self).__qualname__}({inner})"

    # to_bytes and from_bytes are encode_with/decode_with written out: they run
    # once per RPC on both ends, and a call frame less is measurable there.
    def to_bytes(self) -> bytes:
        t = type(self).xdr_type
        out = bytearray()
        try:
            t.encode(out, self)
        except FAST_FAILURES as exc:
            raise encode_failure(t, self, t.name, exc) from None
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, exact: bool = True) -> Self:
        t = cls.xdr_type
        buf = data if type(data) is bytes else bytes(data)
        value: Self  # declared, not cast(): this is a hot path and cast() is a call
        try:
            value, pos = t.decode(buf, 0)
        except FAST_FAILURES as exc:
            raise decode_failure(t, buf, 0, t.name, exc) from None
        if exact and pos != len(buf):
            raise XdrError(f"{len(buf) - pos} unexpected bytes after the value", t.name)
        return value

    def pack(self, p: xdrlib3.Packer) -> None:
        data = self.to_bytes()
        p.pack_fopaque(len(data), data)  # whole words already, so no padding is added

    @classmethod
    def unpack(cls, u: xdrlib3.Unpacker) -> Self:
        t = cls.xdr_type
        start = u.get_position()
        value: Self
        value, end = decode_with(t.decode, t, u.get_buffer(), exact=False, name=t.name, start=start)
        u.set_position(end)
        return value


S = TypeVar("S", bound=XdrStruct)


def replace(value: S, /, **changes: Any) -> S:
    """A copy of struct or union `value` with the fields named in `changes` set anew.

    What dataclasses.replace does for a dataclass (a name that is not a field is a
    TypeError); the copy is made as the decoders make values, without __init__.
    """
    cls = type(value)
    names = cls.__match_args__
    unknown = changes.keys() - set(names)
    if unknown:
        raise TypeError(f"{cls.__qualname__} has no field {', '.join(sorted(unknown))}")
    copy = object.__new__(cls)
    for name in names:
        setattr(copy, name, changes[name] if name in changes else getattr(value, name))
    return copy


# --- entry points ---------------------------------------------------------------------------------

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Decode(Protocol[T_co]):
    def __call__(self, data: bytes | bytearray | memoryview, exact: bool = True) -> T_co: ...


class _Encode(Generic[T]):
    """A module-level ``encode_<name>(value) -> bytes`` of a generated type: the
    XDR encoding of a value; XdrError names the field that cannot be encoded.

    An instance with three slots rather than a closure: the codec makes one per
    type, and a function with its cells, name and docstring costs every process
    that imports the codec several hundred bytes more, about 0.7 MiB in all.
    """

    __slots__ = ("_enc", "_name", "_t")

    def __init__(self, enc: Callable[[bytearray, T], None], t: XdrType, name: str) -> None:
        self._enc, self._t, self._name = enc, t, name

    def __call__(self, value: T) -> bytes:
        return encode_with(self._enc, self._t, value, self._name)

    @property
    def __name__(self) -> str:
        return f"encode_{self._name}"

    def __repr__(self) -> str:
        return f"<xdr encoder {self.__name__}>"


class _Decode(Generic[T]):
    """A module-level ``decode_<name>(data, exact=True) -> value`` of a generated
    type; exact=False allows trailing bytes.  Bad data raises XdrError (see ``_Encode``)."""

    __slots__ = ("_dec", "_name", "_t")

    def __init__(self, dec: Callable[[bytes, int], tuple[T, int]], t: XdrType, name: str) -> None:
        self._dec, self._t, self._name = dec, t, name

    def __call__(self, data: bytes | bytearray | memoryview, exact: bool = True) -> T:
        value: T
        value, _ = decode_with(self._dec, self._t, data, exact=exact, name=self._name)
        return value

    @property
    def __name__(self) -> str:
        return f"decode_{self._name}"

    def __repr__(self) -> str:
        return f"<xdr decoder {self.__name__}>"


def encoder(enc: Callable[[bytearray, T], None], t: XdrType, name: str) -> Callable[[T], bytes]:
    """The module-level encode_<name>(value) -> bytes of a generated type."""
    return _Encode(enc, t, name)


def decoder(dec: Callable[[bytes, int], tuple[T, int]], t: XdrType, name: str) -> Decode[T]:
    """The module-level decode_<name>(data, exact=True) -> value of a generated type."""
    return _Decode(dec, t, name)


def encode_with(enc: Encoder, t: XdrType, value: Any, name: str) -> bytes:
    out = bytearray()
    try:
        enc(out, value)
    except FAST_FAILURES as exc:
        raise encode_failure(t, value, name, exc) from None
    return bytes(out)


def decode_with(
    dec: Decoder, t: XdrType, data: bytes | bytearray | memoryview, *, exact: bool, name: str, start: int = 0
) -> tuple[Any, int]:
    buf = data if type(data) is bytes else bytes(data)
    try:
        value, pos = dec(buf, start)
    except FAST_FAILURES as exc:
        raise decode_failure(t, buf, start, name, exc) from None
    if exact and pos != len(buf):
        raise XdrError(f"{len(buf) - pos} unexpected bytes after the value", name)
    return value, pos


def encode_failure(t: XdrType, value: Any, name: str, exc: BaseException) -> XdrError:
    """Find the exact field the fast encoder tripped over."""
    try:
        check_value(t, value, name)
    except XdrError as err:
        return err
    except RecursionError:
        return XdrError("value nested too deeply", name)
    return XdrError(f"cannot encode: {exc}", name)


def decode_failure(t: XdrType, buf: bytes, start: int, name: str, exc: BaseException) -> XdrError:
    """Find the exact field the fast decoder tripped over."""
    try:
        decode_value(t, buf, start, name)
    except XdrError as err:
        return err
    except RecursionError:
        return XdrError("data nested too deeply", name)
    return XdrError(f"cannot decode: {exc}", name)


# --- the checking walkers (slow path and reference) -------------------------------------------------


def check_value(t: XdrType, v: Any, path: str) -> None:
    """Raise XdrError naming the path if `v` cannot be encoded as `t`."""
    match t:
        case IntType(lo=lo, hi=hi):
            if not isinstance(v, int):  # bool included: it is an int, struct packs it as 0/1
                raise XdrError(f"expected int for {t.describe()}, got {type(v).__name__}", path)
            if not lo <= v <= hi:
                raise XdrError(f"{v} out of range for {t.describe()} ({lo} .. {hi})", path)
        case FloatType(fmt=fmt):
            if not isinstance(v, int | float):
                raise XdrError(f"expected float for {t.describe()}, got {type(v).__name__}", path)
            try:
                fmt.pack(v)
            except (struct.error, OverflowError) as exc:
                raise XdrError(f"{v!r} cannot be a {t.describe()}: {exc}", path) from None
        case BoolType():
            if v is not True and v is not False and v not in (0, 1):
                raise XdrError(f"expected bool, got {v!r}", path)
        case EnumType(members=members):
            if isinstance(v, bool) or not isinstance(v, int) or v not in members:
                raise XdrError(f"{v!r} is not a member of {t.describe()}", path)
        case StringType(bound=bound):
            if not isinstance(v, str):
                raise XdrError(f"expected str, got {type(v).__name__}", path)
            try:
                n = len(v.encode("utf-8", "surrogateescape"))
            except UnicodeError as exc:
                raise XdrError(f"string cannot be encoded as UTF-8: {exc}", path) from None
            if n > bound:
                raise XdrError(f"string of {n} bytes exceeds the bound {bound}", path)
        case OpaqueType(size=size, fixed=fixed):
            # struct's "Ns" (fixed opaque) takes bytes/bytearray; appending also takes a memoryview
            if not isinstance(v, bytes | bytearray) and (fixed or not isinstance(v, memoryview)):
                raise XdrError(f"expected bytes, got {type(v).__name__}", path)
            n = len(v)
            if fixed and n != size:
                raise XdrError(f"expected exactly {size} bytes, got {n}", path)
            if not fixed and n > size:
                raise XdrError(f"{n} bytes exceed the bound {size}", path)
        case ArrayType(elem=elem, size=size, fixed=fixed):
            if not isinstance(v, list | tuple):
                raise XdrError(f"expected list, got {type(v).__name__}", path)
            n = len(v)
            if fixed and n != size:
                raise XdrError(f"expected exactly {size} elements, got {n}", path)
            if not fixed and n > size:
                raise XdrError(f"{n} elements exceed the bound {size}", path)
            for i, x in enumerate(v):
                check_value(elem, x, f"{path}[{i}]")
        case OptionalType(elem=elem):
            if v is not None:
                check_value(elem, v, path)
        case StructType(fields=fields):
            if v is None:
                raise XdrError(f"expected {t.describe()}, got None", path)
            for fname, ftype in fields:
                try:
                    fv = getattr(v, fname)
                except AttributeError:
                    raise XdrError(f"expected {t.describe()}, got {type(v).__name__}", path) from None
                check_value(ftype, fv, f"{path}.{fname}")
        case UnionType():
            if v is None:
                raise XdrError(f"expected {t.describe()}, got None", path)
            try:
                d, arm_value = getattr(v, t.disc_name), v.value
            except AttributeError:
                raise XdrError(f"expected {t.describe()}, got {type(v).__name__}", path) from None
            check_value(t.disc, d, f"{path}.{t.disc_name}")
            known, arm = t.arm(int(d))
            if not known:
                raise XdrError(f"discriminant {int(d)} has no arm in {t.describe()}", f"{path}.{t.disc_name}")
            if arm is None:
                if arm_value is not None:
                    raise XdrError(
                        f"void arm must hold None, got {type(arm_value).__name__}", f"{path}.value"
                    )
            else:
                check_value(arm, arm_value, f"{path}.value")
        case _:
            raise XdrError(f"unknown descriptor {t!r}", path)


def _word(buf: bytes, pos: int, path: str, what: str) -> int:
    if pos + 4 > len(buf):
        raise XdrError(f"data ends before the {what} ({len(buf) - pos} of 4 bytes left)", path)
    return cast(int, U32.unpack_from(buf, pos)[0])


def _counted(buf: bytes, pos: int, bound: int, path: str, what: str, unit: int) -> int:
    """Read and check a length word: within the bound and within the data left."""
    n = _word(buf, pos, path, f"{what} length")
    if n > bound:
        raise XdrError(f"{what} length {n} exceeds the bound {bound}", path)
    left = len(buf) - pos - 4
    need = (n + 3) & ~3 if unit == 1 else n * unit
    if need > left:
        raise XdrError(f"{what} length {n} needs {need} bytes, only {left} left", path)
    return n


def decode_value(t: XdrType, buf: bytes, pos: int, path: str) -> tuple[Any, int]:
    """Decode `t` at `pos` checking everything; errors name the path."""
    match t:
        case IntType(fmt=fmt, size=size) | FloatType(fmt=fmt, size=size):
            if pos + size > len(buf):
                raise XdrError(
                    f"data ends inside a {t.describe()} ({len(buf) - pos} of {size} bytes left)", path
                )
            return fmt.unpack_from(buf, pos)[0], pos + size
        case BoolType():
            return _word(buf, pos, path, "bool") != 0, pos + 4  # xdr_bool: non-zero is TRUE
        case EnumType(members=members, cls=cls):
            w = _word(buf, pos, path, t.describe())
            w = w - (1 << 32) if w >= 1 << 31 else w
            return (members[w] if w in members else unnamed_member(cls, w)), pos + 4
        case StringType(bound=bound):
            n = _counted(buf, pos, bound, path, "string", 1)
            start = pos + 4
            return wire_text(buf[start : start + n]), start + ((n + 3) & ~3)
        case OpaqueType(size=size, fixed=True):
            padded = (size + 3) & ~3
            if pos + padded > len(buf):
                raise XdrError(
                    f"data ends inside opaque[{size}] ({len(buf) - pos} of {padded} bytes left)", path
                )
            return buf[pos : pos + size], pos + padded
        case OpaqueType(size=size):
            n = _counted(buf, pos, size, path, "opaque", 1)
            start = pos + 4
            return buf[start : start + n], start + ((n + 3) & ~3)
        case ArrayType(elem=elem, size=size, fixed=fixed):
            if fixed:
                n = size
                need = n * elem.min_size()
                if need > len(buf) - pos:
                    raise XdrError(
                        f"array of {n} needs at least {need} bytes, only {len(buf) - pos} left", path
                    )
            else:
                n = _counted(buf, pos, size, path, "array", elem.min_size())
                pos += 4
            items = []
            for i in range(n):
                x, pos = decode_value(elem, buf, pos, f"{path}[{i}]")
                items.append(x)
            return items, pos
        case OptionalType(elem=elem):
            flag = _word(buf, pos, path, "optional-data flag")
            if flag == 0:
                return None, pos + 4
            return decode_value(elem, buf, pos + 4, path)  # xdr_pointer: non-zero is "present"
        case StructType(fields=fields, cls=cls):
            values = []
            for fname, ftype in fields:
                x, pos = decode_value(ftype, buf, pos, f"{path}.{fname}")
                values.append(x)
            return cast(Any, cls)(*values), pos
        case UnionType(cls=cls):
            d, pos = decode_value(t.disc, buf, pos, f"{path}.{t.disc_name}")
            known, arm = t.arm(int(d))
            if not known:
                raise XdrError(f"discriminant {int(d)} has no arm in {t.describe()}", f"{path}.{t.disc_name}")
            x = None
            if arm is not None:
                x, pos = decode_value(arm, buf, pos, f"{path}.value")
            return cast(Any, cls)(d, x), pos
    raise XdrError(f"unknown descriptor {t!r}", path)
