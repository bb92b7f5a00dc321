"""Semantic analysis: `ast.Specification` -> `model.Module`.

Looks up every name, evaluates constants, hoists inline struct/union/enum
definitions to named types (`<outer>_<member>`), checks duplicates, ranges and
recursion, and turns procedure-enum annotations into procedure tables.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from . import ast, model
from .annotations import build_table, has_annotations
from .ast import Location
from .errors import XdrcError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1

# rpcgen lets case labels say TRUE / FALSE without defining them
_BUILTIN_CONSTS = {"TRUE": 1, "FALSE": 0}


@dataclass(slots=True)
class _Named:
    kind: str  # const, member, enum, struct, union, typedef
    loc: Location
    node: object  # the ast node that defines it


# names the generated module itself defines or imports
_MODULE_NAMES = frozenset(
    {"xdr", "struct", "enum", "dataclass", "Final", "TypeAlias", "cast", "XdrError", "annotations",
     "TYPES", "PROCEDURES", "PROCEDURES_BY_NAME"}
)  # fmt: skip
# locals of the generated codec functions, which refer to struct/union classes by name
_LOCAL_NAMES = frozenset({"buf", "pos", "end", "out", "v", "d", "value"})
_TEMP_NAME = re.compile(r"(?:a|append|b|d|f|n|o|p|r|s|u|v|w|x)\d+")
# Names that get a trailing '_': the keywords, and the soft keywords as Python 3.11
# has them. A fixed set, not keyword.softkwlist, which grows (3.12 added "type"):
# the generated module, and the attribute names programs use, must not depend on
# the Python that runs the compiler.
_RESERVED = frozenset(keyword.kwlist) | {"_", "case", "match"}


def unusable_name(name: str, kind: str) -> str | None:
    """Why `name` cannot be used in the generated module, or None if it can."""
    if name in _RESERVED:
        return "is not a Python keyword"
    if kind == "member":
        return None  # enum members live inside their class
    if name.startswith("_") or name.startswith(("encode_", "decode_")) or name in _MODULE_NAMES:
        return "does not start with '_', 'encode_' or 'decode_' and is not one the generated module uses"
    if kind in ("struct", "union") and (name in _LOCAL_NAMES or _TEMP_NAME.fullmatch(name)):
        return "is not a local variable name of the generated codec (like buf, pos, n1)"
    return None


def pyname(name: str) -> str:
    return name + "_" if name in _RESERVED else name


class Resolver:
    def __init__(self, spec: ast.Specification) -> None:
        self.spec = spec
        self.names: dict[str, _Named] = {}
        self.const_values: dict[str, int] = {}
        self.evaluating: set[str] = set()
        # hoisted and top-level type definitions in output order
        self.order: list[
            tuple[str, ast.EnumBody | ast.StructBody | ast.UnionBody | ast.Declaration, Location]
        ]
        self.order = []

    # --- pass 1: names ---------------------------------------------------------------

    def declare(self, name: str, kind: str, loc: Location, node: object) -> None:
        prior = self.names.get(name)
        if prior is not None:
            raise XdrcError(loc, f"found a second definition of {name!r}, expected a new name"
                            f" (first defined at {prior.loc})")  # fmt: skip
        problem = unusable_name(name, kind)
        if problem:
            raise XdrcError(loc, f"found {kind} name {name!r}, expected a name that {problem}")
        self.names[name] = _Named(kind, loc, node)

    def collect(self) -> None:
        for d in self.spec.definitions:
            match d:
                case ast.ConstDef(name=name, loc=loc):
                    self.declare(name, "const", loc, d)
                case ast.EnumDef(name=name, body=body, loc=loc):
                    self.declare(name, "enum", loc, d)
                    self.collect_enum(body)
                    self.order.append((name, body, loc))
                case ast.StructDef(name=name, body=sbody, loc=loc):
                    self.declare(name, "struct", loc, d)
                    self.hoist_struct(name, sbody)
                    self.order.append((name, sbody, loc))
                case ast.UnionDef(name=name, body=ubody, loc=loc):
                    self.declare(name, "union", loc, d)
                    self.hoist_union(name, ubody)
                    self.order.append((name, ubody, loc))
                case ast.TypedefDef(decl=decl, loc=loc):
                    self.collect_typedef(decl)
                case ast.PassThrough() | ast.ProgramDef():
                    pass

    def collect_enum(self, body: ast.EnumBody) -> None:
        for m in body.members:
            self.declare(m.name, "member", m.loc, m)

    def collect_typedef(self, decl: ast.Declaration) -> None:
        # `typedef struct {...} name;` defines the struct under that name directly
        if isinstance(decl.shape, ast.Scalar):
            match decl.type:
                case ast.InlineEnum(body=body):
                    self.declare(decl.name, "enum", decl.loc, decl)
                    self.collect_enum(body)
                    self.order.append((decl.name, body, decl.loc))
                    return
                case ast.InlineStruct(body=sbody):
                    self.declare(decl.name, "struct", decl.loc, decl)
                    self.hoist_struct(decl.name, sbody)
                    self.order.append((decl.name, sbody, decl.loc))
                    return
                case ast.InlineUnion(body=ubody):
                    self.declare(decl.name, "union", decl.loc, decl)
                    self.hoist_union(decl.name, ubody)
                    self.order.append((decl.name, ubody, decl.loc))
                    return
        self.declare(decl.name, "typedef", decl.loc, decl)
        self.hoist_decl(decl.name, decl)
        self.order.append((decl.name, decl, decl.loc))

    def hoist_struct(self, owner: str, body: ast.StructBody) -> None:
        for f in body.fields:
            self.hoist_decl(f"{owner}_{f.name}", f)

    def hoist_union(self, owner: str, body: ast.UnionBody) -> None:
        self.hoist_decl(f"{owner}_{body.discriminant.name}", body.discriminant)
        for arm in [*body.arms, *([body.default] if body.default else [])]:
            if isinstance(arm.decl, ast.Declaration):
                self.hoist_decl(f"{owner}_{arm.decl.name}", arm.decl)

    def hoist_decl(self, name: str, decl: ast.Declaration) -> None:
        """Give an inline type in a declaration its own name, defined before its user."""
        match decl.type:
            case ast.InlineEnum(body=body, loc=loc):
                self.declare(name, "enum", loc, decl)
                self.collect_enum(body)
                self.order.append((name, body, loc))
            case ast.InlineStruct(body=sbody, loc=loc):
                self.declare(name, "struct", loc, decl)
                self.hoist_struct(name, sbody)
                self.order.append((name, sbody, loc))
            case ast.InlineUnion(body=ubody, loc=loc):
                self.declare(name, "union", loc, decl)
                self.hoist_union(name, ubody)
                self.order.append((name, ubody, loc))

    # --- constants ---------------------------------------------------------------------

    def const(self, name: str, loc: Location) -> int:
        if name in self.const_values:
            return self.const_values[name]
        entry = self.names.get(name)
        if entry is None:
            if name in _BUILTIN_CONSTS:
                return _BUILTIN_CONSTS[name]
            raise XdrcError(loc, f"found unknown constant {name!r}, expected a const or enum member name")
        if entry.kind not in ("const", "member"):
            raise XdrcError(loc, f"found {entry.kind} {name!r}, expected a constant")
        if name in self.evaluating:
            raise XdrcError(loc, f"found a cycle through constant {name!r}, expected a value")
        self.evaluating.add(name)
        node = entry.node
        assert isinstance(node, ast.ConstDef | ast.EnumMember)
        value = self.value(node.value)
        self.evaluating.discard(name)
        self.const_values[name] = value
        return value

    def value(self, v: ast.Value) -> int:
        match v:
            case ast.Number(value=n):
                return n
            case ast.ConstRef(name=name, loc=loc):
                return self.const(name, loc)
        raise AssertionError(v)

    def size(self, v: ast.Value, what: str) -> int:
        n = self.value(v)
        if not 0 <= n <= UINT32_MAX:
            raise XdrcError(v.loc, f"found {what} {n}, expected 0 .. {UINT32_MAX}")
        return n

    # --- types ---------------------------------------------------------------------------

    def base_type(self, t: ast.TypeSpec, hoisted: str) -> model.Type:
        match t:
            case ast.BuiltinType(name=name):
                return model.Prim(name)
            case ast.NamedType(name=name, loc=loc):
                entry = self.names.get(name)
                if entry is None:
                    raise XdrcError(loc, f"found unknown type {name!r}, expected a type defined in this file")
                match entry.kind:
                    case "enum":
                        return model.EnumRef(name)
                    case "struct":
                        return model.StructRef(name)
                    case "union":
                        return model.UnionRef(name)
                    case "typedef":
                        node = entry.node
                        assert isinstance(node, ast.Declaration)
                        return model.Alias(name, self.decl_type(node, name))
                raise XdrcError(loc, f"found {entry.kind} {name!r}, expected a type")
            case ast.InlineEnum():
                return model.EnumRef(hoisted)
            case ast.InlineStruct():
                return model.StructRef(hoisted)
            case ast.InlineUnion():
                return model.UnionRef(hoisted)
        raise AssertionError(t)

    def decl_type(self, d: ast.Declaration, hoisted: str) -> model.Type:
        match d.type, d.shape:
            case ast.StringType(), ast.VarArray(bound=b):
                return model.String(model.UNBOUNDED if b is None else self.size(b, "a string bound"))
            case ast.OpaqueType(), ast.FixedArray(size=s):
                return model.Opaque(self.size(s, "an opaque size"), fixed=True)
            case ast.OpaqueType(), ast.VarArray(bound=b):
                return model.Opaque(model.UNBOUNDED if b is None else self.size(b, "an opaque bound"), False)
        base = self.base_type(d.type, hoisted)
        match d.shape:
            case ast.Scalar():
                return base
            case ast.FixedArray(size=s):
                return model.Array(base, self.size(s, "an array size"), fixed=True)
            case ast.VarArray(bound=b):
                bound = model.UNBOUNDED if b is None else self.size(b, "an array bound")
                name = b.name if isinstance(b, ast.ConstRef) else None
                return model.Array(base, bound, fixed=False, bound_name=name)
            case ast.OptionalData():
                return model.Optional(base)
        raise AssertionError(d)

    def field(self, d: ast.Declaration, owner: str) -> model.Field:
        return model.Field(d.name, pyname(d.name), self.decl_type(d, f"{owner}_{d.name}"), spelling(d))

    # --- pass 2: definitions ------------------------------------------------------------

    def build(self) -> model.Module:
        self.collect()
        mod = model.Module(self.spec.file)
        type_defs = {name: (body, loc) for name, body, loc in self.order}
        emitted: set[str] = set()

        def emit_types_up_to(limit: str) -> None:
            for name, body, loc in self.order:
                if name in emitted:
                    continue
                emitted.add(name)
                mod.definitions.append(self.type_def(name, body, loc))
                if name == limit:
                    return

        for d in self.spec.definitions:
            match d:
                case ast.ConstDef(name=name, loc=loc, value=value):
                    is_hex = isinstance(value, ast.Number) and value.hex
                    mod.definitions.append(model.Const(name, self.const(name, loc), is_hex))
                case ast.PassThrough(text=text):
                    mod.definitions.append(model.Comment(text))
                case ast.EnumDef(name=name) | ast.StructDef(name=name) | ast.UnionDef(name=name):
                    emit_types_up_to(name)
                case ast.TypedefDef(decl=decl):
                    emit_types_up_to(decl.name)
                case ast.ProgramDef(versions=versions):
                    for v in versions:
                        for p in v.procedures:
                            self.value(p.number)
                            for t in (p.result, *p.args):
                                if t is not None:
                                    self.base_type(t, p.name)
        assert emitted == set(type_defs)
        self.check_recursion(mod)
        for d in self.spec.definitions:
            if isinstance(d, ast.EnumDef) and d.doc is not None and has_annotations(d.doc):
                if mod.tables:
                    raise XdrcError(d.loc, f"found a second procedure enum {d.name}, expected one per file")
                mod.tables.append(build_table(d, self, mod))
        return mod

    def type_def(
        self, name: str, body: ast.EnumBody | ast.StructBody | ast.UnionBody | ast.Declaration, loc: Location
    ) -> model.Definition:
        match body:
            case ast.EnumBody(members=members):
                out: list[tuple[str, int]] = []
                for m in members:
                    v = self.const(m.name, m.loc)
                    if not INT32_MIN <= v <= INT32_MAX:
                        raise XdrcError(m.value.loc, f"found enum value {v}, expected a 32-bit signed int")
                    out.append((m.name, v))
                return model.Enum(name, tuple(out))
            case ast.StructBody(fields=fields):
                seen: dict[str, Location] = {}
                for f in fields:
                    if f.name in seen:
                        raise XdrcError(f.loc, f"found a second member {f.name!r} in struct {name},"
                                        " expected a new member name")  # fmt: skip
                    seen[f.name] = f.loc
                return model.Struct(name, tuple(self.field(f, name) for f in fields))
            case ast.UnionBody():
                return self.union(name, body)
            case ast.Declaration():
                return model.Typedef(name, self.decl_type(body, name), spelling(body))
        raise AssertionError(body)

    def union(self, name: str, body: ast.UnionBody) -> model.Union:
        disc = self.field(body.discriminant, name)
        dt = model.strip(disc.type)
        if not (
            isinstance(dt, model.EnumRef)
            or (isinstance(dt, model.Prim) and dt.kind in ("int", "uint", "bool"))
        ):
            raise XdrcError(body.discriminant.loc, f"found discriminant type {disc.spelling!r},"
                            " expected int, unsigned int, bool or an enum")  # fmt: skip
        if disc.pyname == "value":
            raise XdrcError(body.discriminant.loc, "found discriminant named 'value',"
                            " expected another name (the arm's value is stored as 'value')")  # fmt: skip
        allowed: set[int] | None = None
        if isinstance(dt, model.EnumRef):
            enum_def = self.names[dt.name].node
            enum_body = enum_def.body if isinstance(enum_def, ast.EnumDef) else None
            if enum_body is None and isinstance(enum_def, ast.Declaration):
                assert isinstance(enum_def.type, ast.InlineEnum)
                enum_body = enum_def.type.body
            assert enum_body is not None
            allowed = {self.const(m.name, m.loc) for m in enum_body.members}
        elif isinstance(dt, model.Prim) and dt.kind == "bool":
            allowed = {0, 1}
        lo, hi = (
            (0, UINT32_MAX) if isinstance(dt, model.Prim) and dt.kind == "uint" else (INT32_MIN, INT32_MAX)
        )
        seen: dict[int, Location] = {}
        arms: list[model.Arm] = []
        for arm in body.arms:
            cases: list[int] = []
            for c in arm.cases:
                v = self.value(c)
                if v in seen:
                    first = seen[v]
                    raise XdrcError(
                        c.loc,
                        f"found case {v} again in union {name} (first at {first}), expected a new value",
                    )
                if not lo <= v <= hi or (allowed is not None and v not in allowed):
                    raise XdrcError(c.loc, f"found case {v}, expected a value of the discriminant type")
                seen[v] = c.loc
                cases.append(v)
            labels = tuple(
                c.name if isinstance(c, ast.ConstRef) else str(v)
                for c, v in zip(arm.cases, cases, strict=True)
            )
            arms.append(model.Arm(tuple(cases), self.arm_field(arm, name), labels))
        default = None if body.default is None else model.Arm((), self.arm_field(body.default, name))
        return model.Union(name, disc, tuple(arms), default)

    def arm_field(self, arm: ast.UnionArm, owner: str) -> model.Field | None:
        if isinstance(arm.decl, ast.VoidDeclaration):
            return None
        return self.field(arm.decl, owner)

    def check_recursion(self, mod: model.Module) -> None:
        """A type that contains itself other than through `*` or `<>` has no finite encoding."""
        named = mod.named()
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done

        def walk(t: model.Type, via: str) -> None:
            t = model.strip(t)
            match t:
                case model.StructRef(name=n) | model.UnionRef(name=n):
                    visit(n, via)
                case model.Array(elem=e, fixed=True):
                    walk(e, via)

        def visit(name: str, via: str) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                entry = self.names[name]
                raise XdrcError(entry.loc, f"found {name!r} containing itself through {via!r},"
                                " expected the recursion to go through '*' or '<>'")  # fmt: skip
            state[name] = 1
            d = named[name]
            if isinstance(d, model.Struct):
                for f in d.fields:
                    walk(f.type, f"{name}.{f.name}")
            elif isinstance(d, model.Union):
                for arm in [*d.arms, *([d.default] if d.default else [])]:
                    if arm.field is not None:
                        walk(arm.field.type, f"{name}.{arm.field.name}")
            state[name] = 2

        for name, d in named.items():
            if isinstance(d, model.Struct | model.Union):
                visit(name, name)


def spelling(d: ast.Declaration) -> str:
    """A short rendering of a declaration for generated docstrings."""
    match d.type:
        case ast.BuiltinType(spelling=s):
            base = s
        case ast.NamedType(name=n):
            base = n
        case ast.StringType():
            base = "string"
        case ast.OpaqueType():
            base = "opaque"
        case ast.InlineEnum():
            base = "enum {...}"
        case ast.InlineStruct():
            base = "struct {...}"
        case ast.InlineUnion():
            base = "union {...}"

    def val(v: ast.Value | None) -> str:
        match v:
            case None:
                return ""
            case ast.Number(value=num):
                return str(num)
            case ast.ConstRef(name=ref):
                return ref
        raise AssertionError(v)

    match d.shape:
        case ast.Scalar():
            return base
        case ast.FixedArray(size=size):
            return f"{base}[{val(size)}]"
        case ast.VarArray(bound=b):
            return f"{base}<{val(b)}>"
        case ast.OptionalData():
            return f"{base} *"
    raise AssertionError(d)


def resolve(spec: ast.Specification) -> model.Module:
    return Resolver(spec).build()
