"""Property tests over EVERY type of every generated module.

Values are built from the type descriptors the generator emits (module.TYPES),
so a new struct in spec/ is covered without touching this file:

- encode -> decode gives the value back, and encoding again gives the same bytes;
- the fast codec and the descriptor-driven reference decoder agree;
- hostile input (random bytes, every truncation, flipped bytes) only ever
  raises XdrError.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtwire.protocol import xdr
from virtwire.protocol.xdr import XdrError
from virtwire.protocol.xdrc import compile_file

CASES_DIR = Path(__file__).parent / "xdrc_cases"


def _compiled_case(spec: Path) -> ModuleType:
    """The compiler's own construct specs, compiled and imported for the same checks."""
    name = f"xdrc_roundtrip_{spec.stem}"
    mod = ModuleType(name)
    sys.modules[name] = mod  # dataclasses look their module up while building
    exec(compile(compile_file(spec), str(spec), "exec"), mod.__dict__)
    return mod


GENERATED = [
    importlib.import_module(f"virtwire.protocol.generated.{n}") for n in ("virnet", "keepalive", "remote")
]
MODULES = [*GENERATED, *(_compiled_case(p) for p in sorted(CASES_DIR.glob("*.x")))]

# keep values small: bounds are tested separately, here we want breadth
_MAX_LIST = 3
_MAX_BYTES = 24


def _string(bound: int) -> st.SearchStrategy[str]:
    # No NUL: C (and so our decoder, xdr.wire_text) ends a wire string at its first NUL.
    raw = st.binary(max_size=min(bound, _MAX_BYTES)).map(
        lambda b: b.replace(b"\0", b"\1").decode("utf-8", "surrogateescape")
    )
    # <= 4 UTF-8 bytes a character: within bound
    text = st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
        max_size=min(bound // 4, _MAX_BYTES),
    )
    return st.one_of(text, raw)


class Strategies:
    """Hypothesis strategies for descriptors; recursive types go through st.deferred."""

    def __init__(self) -> None:
        self.cache: dict[int, st.SearchStrategy[Any]] = {}

    def of(self, t: xdr.XdrType) -> st.SearchStrategy[Any]:
        key = id(t)
        if key not in self.cache:
            self.cache[key] = st.deferred(lambda: self._build(t))
        return self.cache[key]

    def _build(self, t: xdr.XdrType) -> st.SearchStrategy[Any]:
        match t:
            case xdr.IntType(lo=lo, hi=hi):
                return st.integers(lo, hi)
            case xdr.FloatType(size=4):
                return st.floats(width=32, allow_nan=False)
            case xdr.FloatType():
                return st.floats(allow_nan=False)
            case xdr.BoolType():
                return st.booleans()
            case xdr.EnumType(cls=cls):
                return st.sampled_from(list(cls))
            case xdr.StringType(bound=bound):
                return _string(bound)
            case xdr.OpaqueType(size=size, fixed=True):
                return st.binary(min_size=size, max_size=size)
            case xdr.OpaqueType(size=size):
                return st.binary(max_size=min(size, _MAX_BYTES))
            case xdr.ArrayType(elem=elem, size=size, fixed=True):
                return st.lists(self.of(elem), min_size=size, max_size=size)
            case xdr.ArrayType(elem=elem, size=size):
                return st.lists(self.of(elem), max_size=min(size, _MAX_LIST))
            case xdr.OptionalType(elem=elem):
                return st.one_of(st.none(), self.of(elem))
            case xdr.StructType(cls=cls, fields=fields):
                return st.builds(cls, *[self.of(ft) for _, ft in fields])
            case xdr.UnionType():
                return self._union(t)
        raise AssertionError(f"no strategy for {t!r}")

    def _union(self, t: xdr.UnionType) -> st.SearchStrategy[Any]:
        def disc(d: int) -> Any:
            if isinstance(t.disc, xdr.EnumType):
                return t.disc.members[d]
            return bool(d) if isinstance(t.disc, xdr.BoolType) else d

        def arm(d: Any, at: xdr.XdrType | None) -> st.SearchStrategy[Any]:
            value = st.none() if at is None else self.of(at)
            return value.map(lambda v: t.cls(d, v))  # type: ignore[call-arg]

        options = [arm(disc(d), at) for d, at in t.arms.items()]
        if t.default is not None:
            default_type = t.default[0]
            others = self.of(t.disc).filter(lambda d: int(d) not in t.arms)
            options.append(others.flatmap(lambda d: arm(d, default_type)))
        return st.one_of(options)


STRATEGIES = Strategies()


def reference_encode(t: xdr.XdrType, v: Any) -> bytes:
    """A plain, obviously-correct XDR encoder (RFC 4506) to check the generated one against."""

    def pad(data: bytes) -> bytes:
        return data + b"\0" * (-len(data) & 3)

    match t:
        case xdr.IntType(fmt=fmt) | xdr.FloatType(fmt=fmt):
            return fmt.pack(v)
        case xdr.BoolType():
            return xdr.U32.pack(1 if v else 0)
        case xdr.EnumType():
            return xdr.I32.pack(int(v))
        case xdr.StringType():
            raw = v.encode("utf-8", "surrogateescape")
            return xdr.U32.pack(len(raw)) + pad(raw)
        case xdr.OpaqueType(fixed=True):
            return pad(bytes(v))
        case xdr.OpaqueType():
            return xdr.U32.pack(len(v)) + pad(bytes(v))
        case xdr.ArrayType(elem=elem, fixed=fixed):
            head = b"" if fixed else xdr.U32.pack(len(v))
            return head + b"".join(reference_encode(elem, x) for x in v)
        case xdr.OptionalType(elem=elem):
            return xdr.U32.pack(0) if v is None else xdr.U32.pack(1) + reference_encode(elem, v)
        case xdr.StructType(fields=fields):
            return b"".join(reference_encode(ft, getattr(v, fn)) for fn, ft in fields)
        case xdr.UnionType():
            d = getattr(v, t.disc_name)
            _, arm = t.arm(int(d))
            return reference_encode(t.disc, d) + (b"" if arm is None else reference_encode(arm, v.value))
    raise AssertionError(t)


def _codecs(mod: ModuleType) -> list[tuple[str, xdr.XdrType]]:
    return [(name, t) for name, t in mod.TYPES.items() if hasattr(mod, f"encode_{name}")]


CASES = [(mod, name, t) for mod in MODULES for name, t in _codecs(mod)]
IDS = [f"{mod.__name__.rsplit('.', 1)[-1]}.{name}" for mod, name, _ in CASES]
STRUCTS = [(mod, name, t) for mod, name, t in CASES if isinstance(t, xdr.StructType | xdr.UnionType)]
STRUCT_IDS = [f"{mod.__name__.rsplit('.', 1)[-1]}.{name}" for mod, name, _ in STRUCTS]

_FAST = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def test_every_module_has_types_and_procedures() -> None:
    assert len(CASES) > 10
    for mod in MODULES:
        assert isinstance(mod.TYPES, dict)
    kinds = {type(t) for mod in MODULES for t in mod.TYPES.values()}
    assert kinds >= {xdr.StructType, xdr.UnionType, xdr.EnumType, xdr.StringType, xdr.OptionalType}
    assert len(GENERATED[2].PROCEDURES) >= 443


@pytest.mark.parametrize(("mod", "name", "t"), CASES, ids=IDS)
def test_round_trip(mod: ModuleType, name: str, t: xdr.XdrType) -> None:
    encode: Callable[[Any], bytes] = getattr(mod, f"encode_{name}")
    decode: Callable[..., Any] = getattr(mod, f"decode_{name}")

    @_FAST
    @given(STRATEGIES.of(t))
    def check(value: Any) -> None:
        data = encode(value)
        assert data == reference_encode(t, value)
        back = decode(data)
        assert back == value
        assert encode(back) == data
        # the reference walker agrees with the fast decoder, field for field
        ref, end = xdr.decode_value(t, data, 0, name)
        assert ref == back and end == len(data)
        xdr.check_value(t, value, name)
        if isinstance(t, xdr.StructType | xdr.UnionType):
            assert type(value).from_bytes(data) == value and value.to_bytes() == data

    check()


@pytest.mark.parametrize(("mod", "name", "t"), STRUCTS, ids=STRUCT_IDS)
def test_hostile_input_raises_only_xdr_error(mod: ModuleType, name: str, t: xdr.XdrType) -> None:
    cls = mod.TYPES[name].cls

    def must_fail_cleanly(data: bytes, exact: bool = True) -> None:
        """Any outcome but a non-XdrError exception; and the fast decoder must agree
        with the descriptor-driven reference on accept/reject and on the value."""
        fast: Any
        try:
            fast = cls.from_bytes(data, exact=exact)
        except XdrError as err:
            assert err.path.startswith(name), err
            assert "cannot decode" not in str(err), (
                f"the fast decoder rejected what the reference accepts: {err}"
            )
            fast = None
        # any other exception propagates and fails the test
        try:
            ref, end = xdr.decode_value(t, data, 0, name)
            if exact and end != len(data):
                ref = None
        except XdrError:
            ref = None
        assert repr(fast) == repr(ref), "fast and reference decoders disagree"

    @_FAST
    @given(st.binary(max_size=96), STRATEGIES.of(t), st.data())
    def check(noise: bytes, value: Any, data: st.DataObject) -> None:
        must_fail_cleanly(noise)
        must_fail_cleanly(noise, exact=False)
        good = value.to_bytes()
        cuts: set[int] = set(range(len(good)))
        if len(good) > 256:  # every cut near the ends, a sample in the middle
            cuts = {c for c in cuts if c < 64 or c >= len(good) - 64}
            cuts |= set(data.draw(st.lists(st.integers(64, len(good) - 65), max_size=16)))
        for cut in sorted(cuts):
            with pytest.raises(XdrError):
                cls.from_bytes(good[:cut])
        if good:
            at = data.draw(st.integers(0, len(good) - 1))
            flipped = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
            must_fail_cleanly(flipped)
        must_fail_cleanly(good + noise[:4])

    check()
