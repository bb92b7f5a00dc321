"""Straight-line Python encoders and decoders for resolved XDR types.

Decoders are functions `(buf: bytes, pos: int) -> (value, pos)`; encoders are
`(out: bytearray, value) -> None`.  What makes them fast:

- runs of fixed-size fields share one precompiled `struct.Struct`, and a run
  also carries the length word of a string/opaque that follows it and the
  zero padding of one that precedes it;
- strings and opaque data are slices of the input;
- objects are made with `object.__new__` and slot stores (a dataclass
  `__init__` call costs about as much as decoding three fields);
- inside array loops small structs and unions are decoded and encoded inline.

The fast paths check only what `struct` cannot (bounds, lengths against the
bytes left, fixed opaque lengths); anything else that goes wrong raises some
exception that the runtime turns into a precise XdrError by re-walking the
value with its type descriptor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import model
from .model import strip
from .pytypes import all_arms, is_var_bytes

PRIM_CODE = {"int": "i", "uint": "I", "hyper": "q", "uhyper": "Q", "float": "f", "double": "d", "bool": "I"}
PRIM_SIZE = {"int": 4, "uint": 4, "hyper": 8, "uhyper": 8, "float": 4, "double": 8, "bool": 4}
# fixed arrays longer than this are not spread into a fused struct format
_FUSE_ARRAY_MAX = 256
# structs/unions with at most this many fields/arms are coded inline inside array loops
_INLINE_MAX = 8
# how many levels of inlining an array loop may do
INLINE_BUDGET = 2


@dataclass(slots=True)
class Formats:
    """Precompiled struct formats shared by the whole module, named after their format."""

    used: dict[str, str] = field(default_factory=dict)  # format (without '>') -> base name
    padded: set[str] = field(default_factory=set)

    def name(self, fmt: str) -> str:
        base = self.used.get(fmt)
        if base is None:
            base = "".join(c for c in fmt if c.isalnum())
            self.used[fmt] = base
        return base

    def unpack(self, fmt: str) -> str:
        return f"_unpack_{self.name(fmt)}"

    def pack(self, fmt: str) -> str:
        return f"_pack_{self.name(fmt)}"

    def padded_pack(self, fmt: str) -> str:
        """A 4-tuple of packers indexed by `n & 3` of the string before: each first
        writes that string's zero padding, then the run."""
        self.padded.add(self.name(fmt))
        return f"_padpack_{self.name(fmt)}"

    def lines(self) -> list[str]:
        out: list[str] = []
        for fmt in sorted(self.used, key=lambda f: (len(f), f)):
            base = self.used[fmt]
            out.append(f'_S_{base} = struct.Struct(">{fmt}")')
            out.append(f"_pack_{base} = _S_{base}.pack")
            out.append(f"_unpack_{base} = _S_{base}.unpack_from")
            if base in self.padded:
                pads = ", ".join(f'struct.Struct(">{p}x{fmt}").pack' for p in (3, 2, 1))
                out.append(f"_padpack_{base} = (_pack_{base}, {pads})")
        return out


@dataclass(slots=True)
class Scope:
    """Per-function state: fresh temporary names, whether `end` is needed."""

    counter: int = 0
    needs_end: bool = False

    def temp(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"


class CodecBase:
    """What the decoder and encoder writers share: the module, its struct formats,
    and the decisions about fusing and inlining."""

    def __init__(self, mod: model.Module) -> None:
        self.named = mod.named()
        self.formats = Formats()
        self._inline_ok: dict[str, bool] = {}

    # --- classification ---------------------------------------------------------------------

    def fused_code(self, t: model.Type) -> tuple[str, int] | None:
        """(struct format piece, number of values) if `t` can join a fused run."""
        t = strip(t)
        match t:
            case model.Prim(kind=kind):
                return PRIM_CODE[kind], 1
            case model.EnumRef():
                return "i", 1
            case model.Opaque(size=size, fixed=True) if size > 0:
                pad = -size & 3
                return f"{size}s" + (f"{pad}x" if pad else ""), 1
            case model.Array(elem=elem, size=size, fixed=True) if 0 < size <= _FUSE_ARRAY_MAX:
                e = strip(elem)
                if isinstance(e, model.Prim):
                    return f"{size}{PRIM_CODE[e.kind]}", size
                if isinstance(e, model.EnumRef):
                    return f"{size}i", size
        return None

    def min_size(self, t: model.Type) -> int:
        t = strip(t)
        match t:
            case model.Prim(kind=kind):
                return PRIM_SIZE[kind]
            case model.EnumRef() | model.String() | model.Optional():
                return 4
            case model.Opaque(size=size, fixed=fixed):
                return (size + 3) & ~3 if fixed else 4
            case model.Array(elem=elem, size=size, fixed=fixed):
                return size * self.min_size(elem) if fixed else 4
            case model.StructRef(name=name):
                s = self.named[name]
                assert isinstance(s, model.Struct)
                return sum(self.min_size(f.type) for f in s.fields)
            case model.UnionRef(name=name):
                u = self.named[name]
                assert isinstance(u, model.Union)
                return 4 + min(
                    (0 if a.field is None else self.min_size(a.field.type) for a in all_arms(u)), default=0
                )
        raise AssertionError(t)

    def flat_struct(self, t: model.Type) -> model.Struct | None:
        """The struct a `_dec_`/`_enc_` function codes field by field in its own
        body (its fields join the outer runs) instead of calling that struct's
        function: a small non-recursive struct held directly, as the
        remote_nonnull_domain of ~200 procedures' args and rets.  One level
        deep, so each function stays about as long as its struct."""
        t = strip(t)
        if isinstance(t, model.StructRef) and self.inline_ok(t.name):
            s = self.named[t.name]
            if isinstance(s, model.Struct) and s.fields:
                return s
        return None

    def flat_fields(
        self, s: model.Struct, sc: Scope, hold: Callable[[str, str, model.Struct], str]
    ) -> tuple[list[str], list[tuple[str, model.Type]]]:
        """Struct `s`'s fields as (expression, type) items for its `_dec_`/`_enc_`
        function, a small struct field's own fields in its place (flat_struct).
        Each such field lives in a temporary; hold(temp, field name, its struct)
        gives the line that binds it, and those lines come first."""
        held: list[str] = []
        items: list[tuple[str, model.Type]] = []
        for f in s.fields:
            inner = self.flat_struct(f.type)
            if inner is None:
                items.append((f"v.{f.pyname}", f.type))
                continue
            obj = sc.temp("f")
            held.append(hold(obj, f.pyname, inner))
            items += [(f"{obj}.{g.pyname}", g.type) for g in inner.fields]
        return held, items

    def inline_ok(self, name: str) -> bool:
        """Small structs and unions that cannot reach themselves are coded inline in loops."""
        if name not in self._inline_ok:
            d = self.named[name]
            size = (
                len(d.fields)
                if isinstance(d, model.Struct)
                else len(all_arms(d))
                if isinstance(d, model.Union)
                else 99
            )
            self._inline_ok[name] = size <= _INLINE_MAX and not self._reaches(name, name, set())
        return self._inline_ok[name]

    def _reaches(self, target: str, name: str, seen: set[str]) -> bool:
        d = self.named[name]
        types: list[model.Type] = []
        if isinstance(d, model.Struct):
            types = [f.type for f in d.fields]
        elif isinstance(d, model.Union):
            types = [a.field.type for a in all_arms(d) if a.field]
        for t in types:
            for ref in refs(t):
                if ref == target:
                    return True
                if ref not in seen:
                    seen.add(ref)
                    if self._reaches(target, ref, seen):
                        return True
        return False

    def inlined(self, t: model.Type, budget: int) -> bool:
        return isinstance(t, model.StructRef | model.UnionRef) and budget > 0 and self.inline_ok(t.name)

    def reads_ahead(self, e: model.Type) -> bool:
        """Elements like remote_nonnull_domain {string; fixed...} are decoded with the
        fixed tail of one element and the length word of the next in one unpack."""
        if not (isinstance(e, model.StructRef) and self.inline_ok(e.name)):
            return False
        s = self.named[e.name]
        if not (isinstance(s, model.Struct) and len(s.fields) >= 2 and is_var_bytes(s.fields[0].type)):
            return False
        last = strip(s.fields[-1].type)
        return self.fused_code(last) is not None or self.inlined(last, INLINE_BUDGET - 1)


def branch(ind: str, i: int, arm: model.Arm, d: str) -> str:
    if not arm.cases:
        return f"{ind}else:"
    keyword = "if" if i == 0 else "elif"
    test = f"{d} == {arm.cases[0]}" if len(arm.cases) == 1 else f"{d} in {tuple(arm.cases)!r}"
    return f"{ind}{keyword} {test}:"


def refs(t: model.Type) -> list[str]:
    t = strip(t)
    match t:
        case model.StructRef(name=n) | model.UnionRef(name=n):
            return [n]
        case model.Array(elem=e) | model.Optional(elem=e):
            return refs(e)
    return []
