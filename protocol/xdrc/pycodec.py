"""Straight-line Python encoders and decoders for resolved XDR types.

Decoders are functions `(buf: bytes, pos: int) -> (value, pos)`; encoders are
`(out: bytearray, value) -> None`.  Runs of fixed-size fields share one
precompiled `struct.Struct`; strings and opaque data are sliced; arrays of
small structs decode their elements inline.  The fast paths check only what
`struct` does not (bounds, lengths against the bytes left); anything else that
goes wrong surfaces as an exception the runtime turns into a precise XdrError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import model
from .model import UNBOUNDED, strip

_PRIM_CODE = {"int": "i", "uint": "I", "hyper": "q", "uhyper": "Q", "float": "f", "double": "d", "bool": "I"}
_PRIM_SIZE = {"int": 4, "uint": 4, "hyper": 8, "uhyper": 8, "float": 4, "double": 8, "bool": 4}
# arrays longer than this are not spread into a fused struct format
_FUSE_ARRAY_MAX = 256
# structs with at most this many fields are decoded/encoded inline inside array loops
_INLINE_FIELDS_MAX = 8


def pytype(t: model.Type) -> str:
    """The Python annotation for a wire type."""
    match t:
        case model.Alias(name=name):
            return name
        case model.Prim(kind=kind):
            return {"bool": "bool", "float": "float", "double": "float"}.get(kind, "int")
        case model.EnumRef(name=name) | model.StructRef(name=name) | model.UnionRef(name=name):
            return name
        case model.String():
            return "str"
        case model.Opaque():
            return "bytes"
        case model.Array(elem=elem):
            return f"list[{pytype(elem)}]"
        case model.Optional(elem=elem):
            return f"{pytype(elem)} | None"
    raise AssertionError(t)


@dataclass(slots=True)
class Formats:
    """Precompiled struct formats shared by the whole module, named after their format."""

    used: dict[str, str] = field(default_factory=dict)  # format (without '>') -> base name

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

    def lines(self) -> list[str]:
        out: list[str] = []
        for fmt in sorted(self.used, key=lambda f: (len(f), f)):
            base = self.used[fmt]
            out.append(f'_S_{base} = struct.Struct(">{fmt}")')
            out.append(f"_pack_{base} = _S_{base}.pack")
            out.append(f"_unpack_{base} = _S_{base}.unpack_from")
        return out


@dataclass(slots=True)
class Scope:
    """Per-function state: fresh temporary names."""

    counter: int = 0
    needs_end: bool = False

    def temp(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"


class CodecWriter:
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
                return _PRIM_CODE[kind], 1
            case model.EnumRef():
                return "i", 1
            case model.Opaque(size=size, fixed=True) if size > 0:
                pad = -size & 3
                return f"{size}s" + (f"{pad}x" if pad else ""), 1
            case model.Array(elem=elem, size=size, fixed=True) if 0 < size <= _FUSE_ARRAY_MAX:
                e = strip(elem)
                if isinstance(e, model.Prim):
                    return f"{size}{_PRIM_CODE[e.kind]}", size
                if isinstance(e, model.EnumRef):
                    return f"{size}i", size
        return None

    def min_size(self, t: model.Type, seen: frozenset[str] = frozenset()) -> int:
        t = strip(t)
        match t:
            case model.Prim(kind=kind):
                return _PRIM_SIZE[kind]
            case model.EnumRef():
                return 4
            case model.String() | model.Optional():
                return 4
            case model.Opaque(size=size, fixed=fixed):
                return (size + 3) & ~3 if fixed else 4
            case model.Array(elem=elem, size=size, fixed=fixed):
                return size * self.min_size(elem, seen) if fixed else 4
            case model.StructRef(name=name):
                s = self.named[name]
                assert isinstance(s, model.Struct)
                return sum(self.min_size(f.type, seen | {name}) for f in s.fields)
            case model.UnionRef(name=name):
                u = self.named[name]
                assert isinstance(u, model.Union)
                arms = [*u.arms, *([u.default] if u.default else [])]
                sizes = [0 if a.field is None else self.min_size(a.field.type, seen | {name}) for a in arms]
                return 4 + min(sizes, default=0)
        raise AssertionError(t)

    def inline_ok(self, name: str) -> bool:
        """A struct is decoded inline if it is small and cannot reach itself."""
        if name not in self._inline_ok:
            s = self.named[name]
            ok = isinstance(s, model.Struct) and len(s.fields) <= _INLINE_FIELDS_MAX
            if ok and self._reaches(name, name, set()):
                ok = False
            self._inline_ok[name] = ok
        return self._inline_ok[name]

    def _reaches(self, target: str, name: str, seen: set[str]) -> bool:
        d = self.named[name]
        types: list[model.Type] = []
        if isinstance(d, model.Struct):
            types = [f.type for f in d.fields]
        elif isinstance(d, model.Union):
            types = [a.field.type for a in [*d.arms, *([d.default] if d.default else [])] if a.field]
        for t in types:
            for ref in _refs(t):
                if ref == target:
                    return True
                if ref not in seen:
                    seen.add(ref)
                    if self._reaches(target, ref, seen):
                        return True
        return False

    # --- decoding ---------------------------------------------------------------------------------

    def dec_seq(self, items: list[tuple[str, model.Type]], ind: str, sc: Scope, depth: int) -> list[str]:
        """Decode `items` (target variable, type) in order, fusing fixed-size runs."""
        lines: list[str] = []
        run: list[tuple[str, model.Type]] = []
        for target, t in items:
            if self.fused_code(t) is not None:
                run.append((target, t))
                continue
            lines += self.dec_run(run, ind, sc)
            run = []
            lines += self.dec_one(target, t, ind, sc, depth)
        lines += self.dec_run(run, ind, sc)
        return lines

    def dec_run(self, run: list[tuple[str, model.Type]], ind: str, sc: Scope) -> list[str]:
        if not run:
            return []
        pieces = [self.fused_code(t) for _, t in run]
        fmt = "".join(p[0] for p in pieces if p is not None)
        size = struct.calcsize(">" + fmt)
        unpack = self.formats.unpack(fmt)
        lines: list[str] = []
        counts = [p[1] for p in pieces if p is not None]
        if all(c == 1 for c in counts):
            targets = [target for (target, _), c in zip(run, counts, strict=True) if c]
            lhs = f"({targets[0]},)" if len(targets) == 1 else ", ".join(targets)
            lines.append(f"{ind}{lhs} = {unpack}(buf, pos)")
        else:
            tup = sc.temp("r")
            lines.append(f"{ind}{tup} = {unpack}(buf, pos)")
            i = 0
            for (target, _), c in zip(run, counts, strict=True):
                if c == 1:
                    lines.append(f"{ind}{target} = {tup}[{i}]")
                elif c > 1:
                    lines.append(f"{ind}{target} = list({tup}[{i}:{i + c}])")
                i += c
        for target, t in run:
            lines += self._convert_after_unpack(target, strip(t), ind)
        lines.append(f"{ind}pos += {size}")
        return lines

    def _convert_after_unpack(self, target: str, t: model.Type, ind: str) -> list[str]:
        match t:
            case model.Prim(kind="bool"):
                return [f"{ind}{target} = xdr.BOOLS[{target}]"]
            case model.EnumRef(name=name):
                return [f"{ind}{target} = _M_{name}[{target}]"]
            case model.Array(elem=elem):
                e = strip(elem)
                if isinstance(e, model.Prim) and e.kind == "bool":
                    return [f"{ind}{target} = [xdr.BOOLS[x] for x in {target}]"]
                if isinstance(e, model.EnumRef):
                    return [f"{ind}{target} = [_M_{e.name}[x] for x in {target}]"]
        return []

    def _length(self, n: str, bound: int, what: str, ind: str) -> list[str]:
        lines = [f"{ind}({n},) = _unpack_u32(buf, pos)"]
        if bound != UNBOUNDED:
            lines.append(f"{ind}if {n} > {bound}:")
            lines.append(f'{ind}    raise XdrError("{what} length exceeds its bound")')
        return lines

    def dec_one(self, target: str, t: model.Type, ind: str, sc: Scope, depth: int) -> list[str]:
        """Decode one value of type `t` into the local `target`."""
        t = strip(t)
        match t:
            case model.String(bound=bound) | model.Opaque(size=bound, fixed=False):
                sc.needs_end = True
                n, start = sc.temp("n"), sc.temp("s")
                lines = self._length(n, bound, "string" if isinstance(t, model.String) else "opaque", ind)
                lines += [
                    f"{ind}{start} = pos + 4",
                    f"{ind}pos = {start} + {n} + (-{n} & 3)",
                    f"{ind}if pos > end:",
                    f'{ind}    raise XdrError("data ends inside a string or opaque")',
                ]
                value = f"buf[{start}:{start} + {n}]"
                if isinstance(t, model.String):
                    value += '.decode("utf-8", "surrogateescape")'
                lines.append(f"{ind}{target} = {value}")
                return lines
            case model.Array(elem=elem, size=size, fixed=fixed):
                return self._dec_array(target, elem, size, fixed, ind, sc, depth)
            case model.Optional(elem=elem):
                flag, inner = sc.temp("w"), sc.temp("p")
                return [
                    f"{ind}{target}: {pytype(elem)} | None = None",
                    f"{ind}({flag},) = _unpack_u32(buf, pos)",
                    f"{ind}pos += 4",
                    f"{ind}if {flag} == 1:",
                    *self.dec_one(inner, elem, ind + "    ", sc, depth),
                    f"{ind}    {target} = {inner}",
                    f"{ind}elif {flag}:",
                    f'{ind}    raise XdrError("optional-data flag is not 0 or 1")',
                ]
            case model.StructRef(name=name) | model.UnionRef(name=name):
                return [f"{ind}{target}, pos = _dec_{name}(buf, pos)"]
            case model.Opaque(size=0, fixed=True):
                return [f'{ind}{target} = b""']
        # a fixed-size type outside a run
        return self.dec_run([(target, t)], ind, sc)

    def _dec_array(
        self, target: str, elem: model.Type, size: int, fixed: bool, ind: str, sc: Scope, depth: int
    ) -> list[str]:
        sc.needs_end = True
        e = strip(elem)
        lines: list[str] = []
        if fixed:
            count = str(size)
        else:
            count = sc.temp("n")
            lines += self._length(count, size, "array", ind)
            lines.append(f"{ind}pos += 4")
        unit = self.min_size(e)
        if not fixed:
            lines += [
                f"{ind}if {count} * {unit} > end - pos:",
                f'{ind}    raise XdrError("array length exceeds the data left")',
            ]
        if isinstance(e, model.Prim):
            code = _PRIM_CODE[e.kind]
            lines.append(f'{ind}{target} = list(struct.unpack_from(f">{{{count}}}{code}", buf, pos))')
            if e.kind == "bool":
                lines.append(f"{ind}{target} = [xdr.BOOLS[x] for x in {target}]")
            lines.append(f"{ind}pos += {count} * {unit}")
            return lines
        if isinstance(e, model.EnumRef):
            lines.append(
                f'{ind}{target} = [_M_{e.name}[x] for x in struct.unpack_from(f">{{{count}}}i", buf, pos)]'
            )
            lines.append(f"{ind}pos += {count} * 4")
            return lines
        item = sc.temp("x")
        append = sc.temp("append")
        lines += [
            f"{ind}{target}: list[{pytype(elem)}] = []",
            f"{ind}{append} = {target}.append",
            f"{ind}for _ in range({count}):",
        ]
        body = ind + "    "
        if isinstance(e, model.StructRef) and depth < 2 and self.inline_ok(e.name):
            lines += self.dec_struct_inline(item, e.name, body, sc, depth + 1)
        else:
            lines += self.dec_one(item, elem, body, sc, depth)
        lines.append(f"{body}{append}({item})")
        return lines

    def dec_struct_inline(self, target: str, name: str, ind: str, sc: Scope, depth: int) -> list[str]:
        s = self.named[name]
        assert isinstance(s, model.Struct)
        temps = [sc.temp("f") for _ in s.fields]
        lines = self.dec_seq([(tmp, f.type) for tmp, f in zip(temps, s.fields, strict=True)], ind, sc, depth)
        lines.append(f"{ind}{target} = {name}({', '.join(temps)})")
        return lines

    # --- encoding -------------------------------------------------------------------------------------

    def enc_seq(self, items: list[tuple[str, model.Type]], ind: str, sc: Scope, depth: int) -> list[str]:
        """Encode `items` (expression, type) in order, fusing fixed-size runs into one pack."""
        lines: list[str] = []
        run: list[tuple[str, model.Type]] = []
        for expr, t in items:
            if self.fused_code(t) is not None:
                run.append((expr, t))
                continue
            lines += self.enc_run(run, ind)
            run = []
            lines += self.enc_one(expr, t, ind, sc, depth)
        lines += self.enc_run(run, ind)
        return lines

    def enc_run(self, run: list[tuple[str, model.Type]], ind: str) -> list[str]:
        if not run:
            return []
        lines: list[str] = []
        args: list[str] = []
        fmt = ""
        for expr, t in run:
            piece = self.fused_code(t)
            assert piece is not None
            fmt += piece[0]
            st = strip(t)
            match st:
                case model.Prim(kind="bool"):
                    args.append(f"xdr.BOOL_WORDS[{expr}]")
                case model.EnumRef(name=name):
                    args.append(f"_M_{name}[{expr}]")
                case model.Opaque(size=size):
                    # struct's "Ns" would silently pad or cut: check the length ourselves
                    lines.append(f"{ind}if len({expr}) != {size}:")
                    lines.append(f'{ind}    raise XdrError("fixed-length opaque has the wrong length")')
                    if size:
                        args.append(expr)
                case model.Array(elem=elem):
                    e = strip(elem)
                    if isinstance(e, model.Prim) and e.kind == "bool":
                        args.append(f"*[xdr.BOOL_WORDS[x] for x in {expr}]")
                    elif isinstance(e, model.EnumRef):
                        args.append(f"*[_M_{e.name}[x] for x in {expr}]")
                    else:
                        args.append(f"*{expr}")  # a wrong length makes pack() fail
                case _:
                    args.append(expr)
        lines.append(f"{ind}out += {self.formats.pack(fmt)}({', '.join(args)})")
        return lines

    def enc_one(self, expr: str, t: model.Type, ind: str, sc: Scope, depth: int) -> list[str]:
        t = strip(t)
        match t:
            case model.String(bound=bound) | model.Opaque(size=bound, fixed=False):
                b, n = sc.temp("b"), sc.temp("n")
                if isinstance(t, model.String):
                    lines = [f'{ind}{b} = {expr}.encode("utf-8", "surrogateescape")']
                else:
                    lines = [f"{ind}{b} = {expr}"]
                lines.append(f"{ind}{n} = len({b})")
                if bound != UNBOUNDED:
                    lines.append(f"{ind}if {n} > {bound}:")
                    lines.append(f'{ind}    raise XdrError("length exceeds its bound")')
                lines += [f"{ind}out += _pack_u32({n})", f"{ind}out += {b}", f"{ind}out += xdr.PAD[{n} & 3]"]
                return lines
            case model.Array(elem=elem, size=size, fixed=fixed):
                return self._enc_array(expr, elem, size, fixed, ind, sc, depth)
            case model.Optional(elem=elem):
                x = sc.temp("o")
                return [
                    f"{ind}{x} = {expr}",
                    f"{ind}if {x} is None:",
                    f"{ind}    out += xdr.ZERO_WORD",
                    f"{ind}else:",
                    f"{ind}    out += xdr.ONE_WORD",
                    *self.enc_one(x, elem, ind + "    ", sc, depth),
                ]
            case model.StructRef(name=name) | model.UnionRef(name=name):
                return [f"{ind}_enc_{name}(out, {expr})"]
            case model.Opaque(size=0, fixed=True):
                return [f"{ind}if len({expr}) != 0:", f'{ind}    raise XdrError("opaque[0] must be empty")']
        return self.enc_run([(expr, t)], ind)

    def _enc_array(
        self, expr: str, elem: model.Type, size: int, fixed: bool, ind: str, sc: Scope, depth: int
    ) -> list[str]:
        a, n = sc.temp("a"), sc.temp("n")
        lines = [f"{ind}{a} = {expr}", f"{ind}{n} = len({a})"]
        if fixed:
            lines += [
                f"{ind}if {n} != {size}:",
                f'{ind}    raise XdrError("fixed-length array has the wrong length")',
            ]
        else:
            if size != UNBOUNDED:
                lines += [
                    f"{ind}if {n} > {size}:",
                    f'{ind}    raise XdrError("array length exceeds its bound")',
                ]
            lines.append(f"{ind}out += _pack_u32({n})")
        e = strip(elem)
        if isinstance(e, model.Prim):
            code = _PRIM_CODE[e.kind]
            items = f"*[xdr.BOOL_WORDS[x] for x in {a}]" if e.kind == "bool" else f"*{a}"
            lines.append(f'{ind}out += struct.pack(f">{{{n}}}{code}", {items})')
            return lines
        if isinstance(e, model.EnumRef):
            lines.append(f'{ind}out += struct.pack(f">{{{n}}}i", *[_M_{e.name}[x] for x in {a}])')
            return lines
        item = sc.temp("x")
        lines.append(f"{ind}for {item} in {a}:")
        body = ind + "    "
        if isinstance(e, model.StructRef) and depth < 2 and self.inline_ok(e.name):
            s = self.named[e.name]
            assert isinstance(s, model.Struct)
            lines += self.enc_seq([(f"{item}.{f.pyname}", f.type) for f in s.fields], body, sc, depth + 1)
        else:
            lines += self.enc_one(item, elem, body, sc, depth)
        return lines


def _refs(t: model.Type) -> list[str]:
    t = strip(t)
    match t:
        case model.StructRef(name=n) | model.UnionRef(name=n):
            return [n]
        case model.Array(elem=e) | model.Optional(elem=e):
            return _refs(e)
    return []
