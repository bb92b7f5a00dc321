"""Decoder writer: straight-line `(buf, pos) -> (value, pos)` functions (see pycodec)."""

from __future__ import annotations

import struct

from . import model
from .model import UNBOUNDED, strip
from .pycodec import INLINE_BUDGET, PRIM_CODE, CodecBase, Scope, branch
from .pytypes import all_arms, is_var_bytes, pytype


class Decoders(CodecBase):
    """Writes `_dec_<type>` functions and the inline decoding of array elements."""

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
            if next_length is not None and i == len(items) - 1 and self.inlined(st, budget):
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
                return [f"{ind}{target} = {target} != 0"]  # xdr_bool: non-zero is TRUE
            case model.EnumRef(name=name):
                return [f"{ind}{target} = _D_{name}[{target}]"]
            case model.Array(elem=elem):
                e = strip(elem)
                if isinstance(e, model.Prim) and e.kind == "bool":
                    return [f"{ind}{target} = [x != 0 for x in {target}]"]
                if isinstance(e, model.EnumRef):
                    return [f"{ind}{target} = [_D_{e.name}[x] for x in {target}]"]
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
            case model.String(bound=bound) | model.Opaque(size=bound, fixed=False) if budget == 0:
                # outside array loops a helper call keeps the module small; speed is the same
                kind = "str" if isinstance(t, model.String) else "opaque"
                if length is None:
                    return [f"{ind}{target}, pos = _read_{kind}(buf, pos, {bound})"]
                return [f"{ind}{target}, pos = _take_{kind}(buf, pos, {length}, {bound})"]
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
                    # C sees the string up to its first NUL (see xdr.wire_text)
                    f'{ind}if "\\0" in {target}:',
                    f'{ind}    {target} = {target}.partition("\\0")[0]',
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
                    f"{ind}if {flag}:  # xdr_pointer: non-zero is present",
                    *self.dec_one(inner, elem, ind + "    ", sc, budget),
                    f"{ind}    {opt} = {inner}",
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
            code = "i" if isinstance(e, model.EnumRef) else PRIM_CODE[e.kind]
            values = f'struct.unpack_from(f">{{{count}}}{code}", buf, pos)'
            if isinstance(e, model.EnumRef):
                lines.append(f"{ind}{target} = [_D_{e.name}[x] for x in {values}]")
            elif e.kind == "bool":
                lines.append(f"{ind}{target} = [x != 0 for x in {values}]")
            else:
                lines.append(f"{ind}{target} = list({values})")
            lines.append(f"{ind}pos += {count} * {unit}")
            return lines
        item = sc.temp("x")
        if self.inlined(e, INLINE_BUDGET):
            # make the elements up front (a comprehension is cheaper than appends),
            # then fill them in; count was checked against the bytes left
            assert isinstance(e, model.StructRef | model.UnionRef)
            lines.append(f"{ind}{target}: list[{e.name}] = [_new({e.name}) for _ in range({count})]")
            if self.reads_ahead(e):
                return lines + self._dec_array_reading_ahead(e, target, item, ind, sc)
            return [
                *lines,
                f"{ind}for {item} in {target}:",
                *self.dec_fill(item, e.name, ind + "    ", sc, INLINE_BUDGET - 1),
            ]
        append = sc.temp("append")
        return [
            *lines,
            f"{ind}{target}: list[{pytype(elem)}] = []",
            f"{ind}{append} = {target}.append",
            f"{ind}for _ in range({count}):",
            *self.dec_one(item, elem, ind + "    ", sc, INLINE_BUDGET),
            f"{ind}    {append}({item})",
        ]

    def _dec_array_reading_ahead(
        self, e: model.Type, items: str, item: str, ind: str, sc: Scope
    ) -> list[str]:
        assert isinstance(e, model.StructRef)
        s = self.named[e.name]
        assert isinstance(s, model.Struct)
        length = sc.temp("n")
        fields = [(f"{item}.{f.pyname}", f.type) for f in s.fields]
        body, inner = ind + "    ", ind + "        "

        # every element but the last also reads the next one's length word
        ahead = self.dec_seq(fields, inner, sc, INLINE_BUDGET - 1, first_length=length, next_length=length)
        return [
            f"{ind}if {items}:",
            f"{body}({length},) = _unpack_u32(buf, pos)",
            f"{body}pos += 4",
            f"{body}for {item} in {items}[:-1]:",
            *ahead,
            f"{body}{item} = {items}[-1]",
            *self.dec_seq(fields, body, sc, INLINE_BUDGET - 1, first_length=length),
        ]

    def dec_inline(
        self, target: str, name: str, ind: str, sc: Scope, budget: int, next_length: str | None = None
    ) -> list[str]:
        """Decode struct/union `name` into `target` without a function call."""
        obj = target if target.isidentifier() else sc.temp("v")
        lines = [f"{ind}{obj} = _new({name})", *self.dec_fill(obj, name, ind, sc, budget, next_length)]
        if obj != target:
            lines.append(f"{ind}{target} = {obj}")
        return lines

    def dec_fill(
        self, obj: str, name: str, ind: str, sc: Scope, budget: int, next_length: str | None = None
    ) -> list[str]:
        """Decode the fields (or discriminant and arm) of struct/union `name` into `obj`."""
        d = self.named[name]
        if isinstance(d, model.Struct):
            fields = [(f"{obj}.{f.pyname}", f.type) for f in d.fields]
            return self.dec_seq(fields, ind, sc, budget, next_length=next_length)
        assert isinstance(d, model.Union)
        return self.dec_union_body(obj, d, ind, sc, budget, next_length)

    def dec_struct_function(self, s: model.Struct) -> list[str]:
        sc = Scope()
        # fields that are small structs are made up front and filled in place (flat_struct)
        made, items = self.flat_fields(
            s, sc, lambda obj, field, inner: f"    v.{field} = {obj} = _new({inner.name})"
        )
        body = self.dec_seq(items, "    ", sc, 0)
        lines = [f"def _dec_{s.name}(buf: bytes, pos: int) -> tuple[{s.name}, int]:"]
        if sc.needs_end:
            lines.append("    end = len(buf)")
        return [*lines, f"    v = _new({s.name})", *made, *body, "    return v, pos"]

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
            lines.append(branch(ind, i, arm, d))
            if arm.field is None:
                lines.append(f"{ind}    {obj}.value = None")
                lines += self.dec_seq([], ind + "    ", sc, budget, next_length=next_length)
            else:
                item = [(f"{obj}.value", arm.field.type)]
                lines += self.dec_seq(item, ind + "    ", sc, budget, next_length=next_length)
        if u.default is None:
            lines += [f"{ind}else:", f'{ind}    raise XdrError("union discriminant has no arm")']
        return lines
