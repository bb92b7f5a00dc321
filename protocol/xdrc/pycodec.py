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

import struct
from dataclasses import dataclass, field

from . import model
from .model import UNBOUNDED, strip

_PRIM_CODE = {"int": "i", "uint": "I", "hyper": "q", "uhyper": "Q", "float": "f", "double": "d", "bool": "I"}
_PRIM_SIZE = {"int": 4, "uint": 4, "hyper": 8, "uhyper": 8, "float": 4, "double": 8, "bool": 4}
# fixed arrays longer than this are not spread into a fused struct format
_FUSE_ARRAY_MAX = 256
# structs/unions with at most this many fields/arms are coded inline inside array loops
_INLINE_MAX = 8
# how many levels of inlining an array loop may do
_INLINE_BUDGET = 2


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


def expanded_pytype(t: model.Type) -> str:
    """Like pytype() but with typedef names replaced by what they stand for."""
    t = strip(t)
    match t:
        case model.Array(elem=elem):
            return f"list[{expanded_pytype(elem)}]"
        case model.Optional(elem=elem):
            return f"{expanded_pytype(elem)} | None"
    return pytype(t)


def union_value_type(u: model.Union) -> str:
    """The annotation of a union's `value`: every arm's type, in spec order."""
    parts: list[str] = []
    for arm in all_arms(u):
        for p in ["None"] if arm.field is None else expanded_pytype(arm.field.type).split(" | "):
            if p not in parts:
                parts.append(p)
    if "None" in parts:  # by convention None comes last
        parts.remove("None")
        parts.append("None")
    return " | ".join(parts)


def all_arms(u: model.Union) -> list[model.Arm]:
    return [*u.arms, *([u.default] if u.default else [])]


def is_var_bytes(t: model.Type) -> bool:
    t = strip(t)
    return isinstance(t, model.String) or (isinstance(t, model.Opaque) and not t.fixed)


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


@dataclass(slots=True)
class _EncRun:
    """A pending fused pack: its format, arguments and the checks that must precede it."""

    fmt: str = ""
    args: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


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

    def min_size(self, t: model.Type) -> int:
        t = strip(t)
        match t:
            case model.Prim(kind=kind):
                return _PRIM_SIZE[kind]
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
            for ref in _refs(t):
                if ref == target:
                    return True
                if ref not in seen:
                    seen.add(ref)
                    if self._reaches(target, ref, seen):
                        return True
        return False

    # --- decoding ---------------------------------------------------------------------------------

    def dec_seq(
        self,
        items: list[tuple[str, model.Type]],
        ind: str,
        sc: Scope,
        budget: int,
        first_length: str | None = None,
        next_length: str | None = None,
    ) -> list[str]:
        """Decode `items` (assignment target, type) in order, fusing fixed-size runs.

        A run directly before a string/opaque also reads that one's length word.
        `first_length`: the first item is a string/opaque whose length word was
        already read into this variable.  `next_length`: also read the word after
        the items (the next array element's length) into this variable, with the
        final run when there is one."""
        lines: list[str] = []
        run: list[tuple[str, model.Type | None]] = []  # None = the length word of what follows
        for i, (target, t) in enumerate(items):
            if self.fused_code(t) is not None:
                run.append((target, t))
                continue
            length: str | None = first_length if i == 0 else None
            if run and is_var_bytes(t):
                length = sc.temp("n")
                run.append((length, None))
            lines += self.dec_run(run, ind, sc)
            run = []
            st = strip(t)
            if next_length is not None and i == len(items) - 1 and self._inlined(st, budget):
                # a last inline struct/union reads ahead itself, in each of its arms
                assert isinstance(st, model.StructRef | model.UnionRef)
                return lines + self.dec_inline(target, st.name, ind, sc, budget - 1, next_length)
            lines += self.dec_one(target, t, ind, sc, budget, length)
        if next_length is not None:
            if run:
                run.append((next_length, None))
            else:
                lines += [f"{ind}({next_length},) = _unpack_u32(buf, pos)", f"{ind}pos += 4"]
        lines += self.dec_run(run, ind, sc)
        return lines

    def dec_run(self, run: list[tuple[str, model.Type | None]], ind: str, sc: Scope) -> list[str]:
        if not run:
            return []
        pieces = [("I", 1) if t is None else self.fused_code(t) for _, t in run]
        fmt = "".join(p[0] for p in pieces if p is not None)
        size = struct.calcsize(">" + fmt)
        unpack = self.formats.unpack(fmt)
        counts = [p[1] for p in pieces if p is not None]
        lines: list[str] = []
        if all(c == 1 for c in counts):
            targets = [target for target, _ in run]
            lhs = f"({targets[0]},)" if len(targets) == 1 else ", ".join(targets)
            lines.append(f"{ind}{lhs} = {unpack}(buf, pos)")
        else:
            tup = sc.temp("r")
            lines.append(f"{ind}{tup} = {unpack}(buf, pos)")
            i = 0
            for (target, _), c in zip(run, counts, strict=True):
                lines.append(
                    f"{ind}{target} = {tup}[{i}]" if c == 1 else f"{ind}{target} = list({tup}[{i}:{i + c}])"
                )
                i += c
        for target, t in run:
            if t is not None:
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

    def dec_one(
        self, target: str, t: model.Type, ind: str, sc: Scope, budget: int, length: str | None = None
    ) -> list[str]:
        """Decode one value of type `t` into `target` (a local or an attribute).

        `length`: the variable already holding this string/opaque's length word."""
        t = strip(t)
        if self.fused_code(t) is not None:
            return self.dec_run([(target, t)], ind, sc)
        match t:
            case model.String(bound=bound) | model.Opaque(size=bound, fixed=False):
                sc.needs_end = True
                lines: list[str] = []
                n, start = length or sc.temp("n"), sc.temp("s")
                if length is None:
                    lines += [f"{ind}({n},) = _unpack_u32(buf, pos)", f"{ind}{start} = pos + 4"]
                else:
                    lines.append(f"{ind}{start} = pos")
                over = f"pos > end or {n} > {bound}" if bound != UNBOUNDED else "pos > end"
                lines += [
                    f"{ind}pos = {start} + (({n} + 3) & -4)",
                    f"{ind}if {over}:",
                    f'{ind}    raise XdrError("string or opaque longer than its bound or the data left")',
                ]
                value = f"buf[{start}:{start} + {n}]"
                if isinstance(t, model.Opaque):
                    return [*lines, f"{ind}{target} = {value}"]
                # strict UTF-8 is the common case and cheaper to ask for than surrogateescape
                return [
                    *lines,
                    f"{ind}try:",
                    f"{ind}    {target} = {value}.decode()",
                    f"{ind}except UnicodeDecodeError:",
                    f'{ind}    {target} = {value}.decode("utf-8", "surrogateescape")',
                ]
            case model.Array(elem=elem, size=size, fixed=fixed):
                tmp = sc.temp("a")
                lines = self._dec_array(tmp, elem, size, fixed, ind, sc, budget)
                return [*lines, f"{ind}{target} = {tmp}"]
            case model.Optional(elem=elem):
                flag, inner, opt = sc.temp("w"), sc.temp("p"), sc.temp("o")
                return [
                    f"{ind}{opt}: {pytype(elem)} | None = None",
                    f"{ind}({flag},) = _unpack_u32(buf, pos)",
                    f"{ind}pos += 4",
                    f"{ind}if {flag} == 1:",
                    *self.dec_one(inner, elem, ind + "    ", sc, budget),
                    f"{ind}    {opt} = {inner}",
                    f"{ind}elif {flag}:",
                    f'{ind}    raise XdrError("optional-data flag is not 0 or 1")',
                    f"{ind}{target} = {opt}",
                ]
            case model.StructRef(name=name) | model.UnionRef(name=name):
                if budget > 0 and self.inline_ok(name):
                    return self.dec_inline(target, name, ind, sc, budget - 1)
                return [f"{ind}{target}, pos = _dec_{name}(buf, pos)"]
            case model.Opaque(size=0, fixed=True):
                return [f'{ind}{target} = b""']
        return self.dec_run([(target, t)], ind, sc)

    def _dec_array(
        self, target: str, elem: model.Type, size: int, fixed: bool, ind: str, sc: Scope, budget: int
    ) -> list[str]:
        e = strip(elem)
        lines: list[str] = []
        if fixed:
            count = str(size)
        else:
            sc.needs_end = True
            count = sc.temp("n")
            lines += [f"{ind}({count},) = _unpack_u32(buf, pos)", f"{ind}pos += 4"]
            if size != UNBOUNDED:
                lines += [
                    f"{ind}if {count} > {size}:",
                    f'{ind}    raise XdrError("array length exceeds its bound")',
                ]
        unit = self.min_size(e)
        if not fixed:
            # refuse before allocating: N elements need at least N * unit bytes
            lines += [
                f"{ind}if {count} * {unit} > end - pos:",
                f'{ind}    raise XdrError("array length exceeds the data left")',
            ]
        if isinstance(e, model.Prim | model.EnumRef):
            code = "i" if isinstance(e, model.EnumRef) else _PRIM_CODE[e.kind]
            values = f'struct.unpack_from(f">{{{count}}}{code}", buf, pos)'
            if isinstance(e, model.EnumRef):
                lines.append(f"{ind}{target} = [_M_{e.name}[x] for x in {values}]")
            elif e.kind == "bool":
                lines.append(f"{ind}{target} = [xdr.BOOLS[x] for x in {values}]")
            else:
                lines.append(f"{ind}{target} = list({values})")
            lines.append(f"{ind}pos += {count} * {unit}")
            return lines
        item, append = sc.temp("x"), sc.temp("append")
        lines += [f"{ind}{target}: list[{pytype(elem)}] = []", f"{ind}{append} = {target}.append"]
        if self._reads_ahead(e):
            return lines + self._dec_array_reading_ahead(e, count, item, append, ind, sc)
        return [
            *lines,
            f"{ind}for _ in range({count}):",
            *self.dec_one(item, elem, ind + "    ", sc, _INLINE_BUDGET),
            f"{ind}    {append}({item})",
        ]

    def _reads_ahead(self, e: model.Type) -> bool:
        """Elements like remote_nonnull_domain {string; fixed...} are decoded with the
        fixed tail of one element and the length word of the next in one unpack."""
        if not (isinstance(e, model.StructRef) and self.inline_ok(e.name)):
            return False
        s = self.named[e.name]
        if not (isinstance(s, model.Struct) and len(s.fields) >= 2 and is_var_bytes(s.fields[0].type)):
            return False
        last = strip(s.fields[-1].type)
        return self.fused_code(last) is not None or self._inlined(last, _INLINE_BUDGET - 1)

    def _dec_array_reading_ahead(
        self, e: model.Type, count: str, item: str, append: str, ind: str, sc: Scope
    ) -> list[str]:
        assert isinstance(e, model.StructRef)
        s = self.named[e.name]
        assert isinstance(s, model.Struct)
        length = sc.temp("n")
        fields = [(f"{item}.{f.pyname}", f.type) for f in s.fields]
        body = ind + "    "

        def element(read_ahead: bool) -> list[str]:
            ahead = length if read_ahead else None
            return [
                f"{body}{item} = _new({e.name})",
                *self.dec_seq(fields, body, sc, _INLINE_BUDGET - 1, first_length=length, next_length=ahead),
                f"{body}{append}({item})",
            ]

        # every element but the last also reads the next one's length word
        return [
            f"{ind}if {count}:",
            f"{body}({length},) = _unpack_u32(buf, pos)",
            f"{body}pos += 4",
            f"{ind}for _ in range({count} - 1):",
            *element(read_ahead=True),
            f"{ind}if {count}:",
            *element(read_ahead=False),
        ]

    def dec_inline(
        self, target: str, name: str, ind: str, sc: Scope, budget: int, next_length: str | None = None
    ) -> list[str]:
        """Decode struct/union `name` into `target` without a function call."""
        d = self.named[name]
        obj = target if target.isidentifier() else sc.temp("v")
        lines = [f"{ind}{obj} = _new({name})"]
        if isinstance(d, model.Struct):
            fields = [(f"{obj}.{f.pyname}", f.type) for f in d.fields]
            lines += self.dec_seq(fields, ind, sc, budget, next_length=next_length)
        else:
            assert isinstance(d, model.Union)
            lines += self.dec_union_body(obj, d, ind, sc, budget, next_length)
        if obj != target:
            lines.append(f"{ind}{target} = {obj}")
        return lines

    def dec_struct_function(self, s: model.Struct) -> list[str]:
        sc = Scope()
        body = self.dec_seq([(f"v.{f.pyname}", f.type) for f in s.fields], "    ", sc, 0)
        lines = [f"def _dec_{s.name}(buf: bytes, pos: int) -> tuple[{s.name}, int]:"]
        if sc.needs_end:
            lines.append("    end = len(buf)")
        return [*lines, f"    v = _new({s.name})", *body, "    return v, pos"]

    def dec_union_function(self, u: model.Union) -> list[str]:
        sc = Scope()
        body = self.dec_union_body("v", u, "    ", sc, 0)
        lines = [f"def _dec_{u.name}(buf: bytes, pos: int) -> tuple[{u.name}, int]:"]
        if sc.needs_end:
            lines.append("    end = len(buf)")
        return [*lines, f"    v = _new({u.name})", *body, "    return v, pos"]

    def dec_union_body(
        self, obj: str, u: model.Union, ind: str, sc: Scope, budget: int, next_length: str | None = None
    ) -> list[str]:
        d = sc.temp("d")
        lines = self.dec_run([(d, u.discriminant.type)], ind, sc)
        lines.append(f"{ind}{obj}.{u.discriminant.pyname} = {d}")
        for i, arm in enumerate(all_arms(u)):
            lines.append(_branch(ind, i, arm, d))
            if arm.field is None:
                lines.append(f"{ind}    {obj}.value = None")
                lines += self.dec_seq([], ind + "    ", sc, budget, next_length=next_length)
            else:
                item = [(f"{obj}.value", arm.field.type)]
                lines += self.dec_seq(item, ind + "    ", sc, budget, next_length=next_length)
        if u.default is None:
            lines += [f"{ind}else:", f'{ind}    raise XdrError("union discriminant has no arm")']
        return lines

    # --- encoding -------------------------------------------------------------------------------------

    def enc_seq(
        self,
        items: list[tuple[str, model.Type]],
        ind: str,
        sc: Scope,
        budget: int,
        pad: str | None = None,
        next_length: str | None = None,
    ) -> list[str]:
        """Encode `items` (expression, type) in order.

        Fixed-size items are packed together; a string/opaque's length word joins
        the run before it and its padding the run after it.  `pad` names the length
        of a string written just before whose padding is still owed.  `next_length`:
        also write this length word (the next array element's) after the items,
        with the final run when there is one."""
        lines: list[str] = []
        run = _EncRun()

        def flush() -> None:
            nonlocal run, pad
            lines.extend(run.checks)
            if run.fmt:
                args = ", ".join(run.args)
                if pad is None:
                    lines.append(f"{ind}out += {self.formats.pack(run.fmt)}({args})")
                else:
                    lines.append(f"{ind}out += {self.formats.padded_pack(run.fmt)}[{pad} & 3]({args})")
            elif pad is not None:
                lines.append(f"{ind}out += xdr.PAD[{pad} & 3]")
            run, pad = _EncRun(), None

        for i, (expr, t) in enumerate(items):
            if self.fused_code(t) is not None:
                self._enc_fused(expr, t, run, ind)
                continue
            st = strip(t)
            if isinstance(st, model.String | model.Opaque) and is_var_bytes(st):
                data, n = sc.temp("b"), sc.temp("n")
                run.checks += self._enc_bytes_prep(expr, st, data, n, ind)
                run.fmt += "I"
                run.args.append(n)
                flush()
                lines.append(f"{ind}out += {data}")
                pad = n
                continue
            if not run.fmt and not run.checks and self._inlined(st, budget):
                # an inline struct/union starts with a fused run that can write the padding
                assert isinstance(st, model.StructRef | model.UnionRef)
                last = i == len(items) - 1
                ahead = next_length if last else None
                lines += self.enc_inline(expr, st.name, ind, sc, budget - 1, pad, ahead)
                pad = None
                if last:
                    return lines
                continue
            flush()
            lines += self.enc_one(expr, t, ind, sc, budget)
        if next_length is not None:
            run.fmt += "I"
            run.args.append(next_length)
        flush()
        return lines

    def _inlined(self, t: model.Type, budget: int) -> bool:
        return isinstance(t, model.StructRef | model.UnionRef) and budget > 0 and self.inline_ok(t.name)

    def _enc_fused(self, expr: str, t: model.Type, run: _EncRun, ind: str) -> None:
        piece = self.fused_code(t)
        assert piece is not None
        run.fmt += piece[0]
        match strip(t):
            case model.Prim(kind="bool"):
                run.args.append(f"xdr.BOOL_WORDS[{expr}]")
            case model.EnumRef(name=name):
                run.args.append(f"_M_{name}[{expr}]")
            case model.Opaque(size=size):
                # struct's "Ns" would silently pad or cut: check the length ourselves
                run.checks += [
                    f"{ind}if len({expr}) != {size}:",
                    f'{ind}    raise XdrError("fixed-length opaque has the wrong length")',
                ]
                run.args.append(expr)
            case model.Array(elem=elem):
                e = strip(elem)
                if isinstance(e, model.Prim) and e.kind == "bool":
                    run.args.append(f"*[xdr.BOOL_WORDS[x] for x in {expr}]")
                elif isinstance(e, model.EnumRef):
                    run.args.append(f"*[_M_{e.name}[x] for x in {expr}]")
                else:
                    run.args.append(f"*{expr}")  # a wrong length makes pack() fail
            case _:
                run.args.append(expr)

    def _enc_bytes_prep(
        self, expr: str, t: model.String | model.Opaque, data: str, n: str, ind: str
    ) -> list[str]:
        bound = t.bound if isinstance(t, model.String) else t.size
        if isinstance(t, model.String):
            lines = [
                f"{ind}try:",
                f"{ind}    {data} = {expr}.encode()",
                f"{ind}except UnicodeEncodeError:",
                f'{ind}    {data} = {expr}.encode("utf-8", "surrogateescape")',
            ]
        else:
            lines = [f"{ind}{data} = {expr}"]
        lines.append(f"{ind}{n} = len({data})")
        if bound != UNBOUNDED:
            lines += [f"{ind}if {n} > {bound}:", f'{ind}    raise XdrError("length exceeds its bound")']
        return lines

    def enc_one(self, expr: str, t: model.Type, ind: str, sc: Scope, budget: int) -> list[str]:
        t = strip(t)
        if self.fused_code(t) is not None:
            return self.enc_seq([(expr, t)], ind, sc, budget)
        match t:
            case model.String() | model.Opaque(fixed=False):
                return self.enc_seq([(expr, t)], ind, sc, budget)
            case model.Array(elem=elem, size=size, fixed=fixed):
                return self._enc_array(expr, elem, size, fixed, ind, sc)
            case model.Optional(elem=elem):
                x = sc.temp("o")
                return [
                    f"{ind}{x} = {expr}",
                    f"{ind}if {x} is None:",
                    f"{ind}    out += xdr.ZERO_WORD",
                    f"{ind}else:",
                    f"{ind}    out += xdr.ONE_WORD",
                    *self.enc_one(x, elem, ind + "    ", sc, budget),
                ]
            case model.StructRef(name=name) | model.UnionRef(name=name):
                if self._inlined(t, budget):
                    return self.enc_inline(expr, name, ind, sc, budget - 1)
                return [f"{ind}_enc_{name}(out, {expr})"]
            case model.Opaque(size=0, fixed=True):
                return [f"{ind}if len({expr}) != 0:", f'{ind}    raise XdrError("opaque[0] must be empty")']
        return self.enc_seq([(expr, t)], ind, sc, budget)

    def _enc_array(
        self, expr: str, elem: model.Type, size: int, fixed: bool, ind: str, sc: Scope
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
        if isinstance(e, model.Prim | model.EnumRef):
            code = "i" if isinstance(e, model.EnumRef) else _PRIM_CODE[e.kind]
            if isinstance(e, model.EnumRef):
                items = f"*[_M_{e.name}[x] for x in {a}]"
            elif e.kind == "bool":
                items = f"*[xdr.BOOL_WORDS[x] for x in {a}]"
            else:
                items = f"*{a}"
            lines.append(f'{ind}out += struct.pack(f">{{{n}}}{code}", {items})')
            return lines
        if self._reads_ahead(e):
            return lines + self._enc_array_writing_behind(e, a, n, ind, sc)
        item = sc.temp("x")
        lines.append(f"{ind}for {item} in {a}:")
        lines += self.enc_one(item, elem, ind + "    ", sc, _INLINE_BUDGET)
        return lines

    def _enc_array_writing_behind(self, e: model.Type, a: str, count: str, ind: str, sc: Scope) -> list[str]:
        """The mirror of reading ahead: each element's last pack also writes the
        length word of the next element's leading string, prepared beforehand."""
        assert isinstance(e, model.StructRef)
        s = self.named[e.name]
        assert isinstance(s, model.Struct)
        first = strip(s.fields[0].type)
        assert isinstance(first, model.String | model.Opaque)
        data, length = sc.temp("b"), sc.temp("n")
        next_data, next_length = sc.temp("b"), sc.temp("n")
        item, following = sc.temp("x"), sc.temp("x")
        body = ind + "    "
        rest = [(f"{item}.{f.pyname}", f.type) for f in s.fields[1:]]
        leading = s.fields[0].pyname
        return [
            f"{ind}if {count}:",
            f"{body}{item} = {a}[0]",
            *self._enc_bytes_prep(f"{item}.{leading}", first, data, length, body),
            f"{body}out += _pack_u32({length})",
            f"{body}out += {data}",
            f"{ind}for {following} in {a}[1:]:",
            *self._enc_bytes_prep(f"{following}.{leading}", first, next_data, next_length, body),
            *self.enc_seq(rest, body, sc, _INLINE_BUDGET - 1, length, next_length),
            f"{body}out += {next_data}",
            f"{body}{length}, {item} = {next_length}, {following}",
            f"{ind}if {count}:",
            *self.enc_seq(rest, body, sc, _INLINE_BUDGET - 1, length),
        ]

    def enc_inline(
        self,
        expr: str,
        name: str,
        ind: str,
        sc: Scope,
        budget: int,
        pad: str | None = None,
        next_length: str | None = None,
    ) -> list[str]:
        d = self.named[name]
        if isinstance(d, model.Struct):
            if "." in expr or "[" in expr:
                obj = sc.temp("v")
                fields = [(f"{obj}.{f.pyname}", f.type) for f in d.fields]
                return [f"{ind}{obj} = {expr}", *self.enc_seq(fields, ind, sc, budget, pad, next_length)]
            return self.enc_seq(
                [(f"{expr}.{f.pyname}", f.type) for f in d.fields], ind, sc, budget, pad, next_length
            )
        assert isinstance(d, model.Union)
        obj = sc.temp("u")
        return [f"{ind}{obj} = {expr}", *self.enc_union_body(obj, d, ind, sc, budget, pad, next_length)]

    def enc_struct_function(self, s: model.Struct) -> list[str]:
        body = self.enc_seq([(f"v.{f.pyname}", f.type) for f in s.fields], "    ", Scope(), 0)
        return [f"def _enc_{s.name}(out: bytearray, v: {s.name}) -> None:", *body]

    def enc_union_function(self, u: model.Union) -> list[str]:
        body = self.enc_union_body("v", u, "    ", Scope(), 0)
        return [f"def _enc_{u.name}(out: bytearray, v: {u.name}) -> None:", *body]

    def enc_union_body(
        self,
        obj: str,
        u: model.Union,
        ind: str,
        sc: Scope,
        budget: int,
        pad: str | None = None,
        next_length: str | None = None,
    ) -> list[str]:
        """Encode union `obj`; every arm starts with the discriminant, so each writes `pad` first."""
        disc = u.discriminant
        value_type = union_value_type(u)
        d = sc.temp("d")
        lines = [f"{ind}{d} = {obj}.{disc.pyname}"]
        for i, arm in enumerate(all_arms(u)):
            lines.append(_branch(ind, i, arm, d))
            body = ind + "    "
            if arm.field is None:
                lines += [
                    f"{body}if {obj}.value is not None:",
                    f'{body}    raise XdrError("void arm holds a value")',
                ]
                lines += self.enc_seq([(d, disc.type)], body, sc, budget, pad, next_length)
                continue
            arm_type = expanded_pytype(arm.field.type)
            if self.fused_code(arm.field.type) is not None:
                x = f"{obj}.value"  # struct.pack takes Any: no cast needed
            elif arm_type == value_type:
                x = sc.temp("x")
                lines.append(f"{body}{x} = {obj}.value")
            else:
                x = sc.temp("x")
                lines.append(f'{body}{x} = cast("{arm_type}", {obj}.value)')
            items = [(d, disc.type), (x, arm.field.type)]
            lines += self.enc_seq(items, body, sc, budget, pad, next_length)
        if u.default is None:
            lines += [f"{ind}else:", f'{ind}    raise XdrError("union discriminant has no arm")']
        return lines


def _branch(ind: str, i: int, arm: model.Arm, d: str) -> str:
    if not arm.cases:
        return f"{ind}else:"
    keyword = "if" if i == 0 else "elif"
    test = f"{d} == {arm.cases[0]}" if len(arm.cases) == 1 else f"{d} in {tuple(arm.cases)!r}"
    return f"{ind}{keyword} {test}:"


def _refs(t: model.Type) -> list[str]:
    t = strip(t)
    match t:
        case model.StructRef(name=n) | model.UnionRef(name=n):
            return [n]
        case model.Array(elem=e) | model.Optional(elem=e):
            return _refs(e)
    return []
