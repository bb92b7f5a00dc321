"""Encoder writer: straight-line `(out: bytearray, value) -> None` functions (see pycodec)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import model
from .model import UNBOUNDED, strip
from .pycodec import INLINE_BUDGET, PRIM_CODE, CodecBase, Scope, branch
from .pytypes import all_arms, expanded_pytype, is_var_bytes, union_value_type


@dataclass(slots=True)
class _EncRun:
    """A pending fused pack: its format, arguments and the checks that must precede it."""

    fmt: str = ""
    args: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


class Encoders(CodecBase):
    """Writes `_enc_<type>` functions and the inline encoding of array elements."""

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
                run.checks += self._enc_bytes_prep(expr, st, data, n, ind, inline=budget > 0)
                run.fmt += "I"
                run.args.append(n)
                flush()
                lines.append(f"{ind}out += {data}")
                pad = n
                continue
            if not run.fmt and not run.checks and self.inlined(st, budget):
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
        self, expr: str, t: model.String | model.Opaque, data: str, n: str, ind: str, inline: bool = True
    ) -> list[str]:
        bound = t.bound if isinstance(t, model.String) else t.size
        if isinstance(t, model.String) and not inline:
            # outside array loops a helper call keeps the module small; it checks the bound
            return [f"{ind}{data} = _encode_str({expr}, {bound})", f"{ind}{n} = len({data})"]
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
                if self.inlined(t, budget):
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
            code = "i" if isinstance(e, model.EnumRef) else PRIM_CODE[e.kind]
            if isinstance(e, model.EnumRef):
                items = f"*[_M_{e.name}[x] for x in {a}]"
            elif e.kind == "bool":
                items = f"*[xdr.BOOL_WORDS[x] for x in {a}]"
            else:
                items = f"*{a}"
            lines.append(f'{ind}out += struct.pack(f">{{{n}}}{code}", {items})')
            return lines
        if self.reads_ahead(e):
            return lines + self._enc_array_writing_behind(e, a, n, ind, sc)
        item = sc.temp("x")
        lines.append(f"{ind}for {item} in {a}:")
        lines += self.enc_one(item, elem, ind + "    ", sc, INLINE_BUDGET)
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
            *self.enc_seq(rest, body, sc, INLINE_BUDGET - 1, length, next_length),
            f"{body}out += {next_data}",
            f"{body}{length}, {item} = {next_length}, {following}",
            f"{ind}if {count}:",
            *self.enc_seq(rest, body, sc, INLINE_BUDGET - 1, length),
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
        sc = Scope()
        # the fields of small struct fields join this function's runs (flat_struct)
        held, items = self.flat_fields(s, sc, lambda obj, field, _inner: f"    {obj} = v.{field}")
        body = self.enc_seq(items, "    ", sc, 0)
        return [f"def _enc_{s.name}(out: bytearray, v: {s.name}) -> None:", *held, *body]

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
            lines.append(branch(ind, i, arm, d))
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
