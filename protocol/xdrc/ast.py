"""Syntax tree of an XDR / rpcgen specification.

Nodes are frozen dataclasses so the generator can `match` on them and nothing
downstream mutates what the parser produced.  Every node that can be the subject
of an error message carries its `Location`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# --- values: a bound, an enum value or a const ---------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: int
    loc: Location
    hex: bool = False  # written in hex: generated code keeps it in hex


@dataclass(frozen=True, slots=True)
class ConstRef:
    name: str
    loc: Location


Value = Number | ConstRef


# --- type specifiers --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltinType:
    """int, unsigned int, hyper, unsigned hyper, float, double, bool, and the
    rpcgen small integers (char, short and their unsigned forms) which rpcgen
    widens to one 4-byte word each."""

    name: str  # canonical: int uint hyper uhyper float double bool
    spelling: str  # as written, for messages and docstrings
    loc: Location


@dataclass(frozen=True, slots=True)
class NamedType:
    name: str
    loc: Location


@dataclass(frozen=True, slots=True)
class StringType:
    """`string` is only legal with a variable-length declarator."""

    loc: Location


@dataclass(frozen=True, slots=True)
class OpaqueType:
    """`opaque` is only legal with a fixed or variable-length declarator."""

    loc: Location


@dataclass(frozen=True, slots=True)
class InlineEnum:
    body: EnumBody
    loc: Location


@dataclass(frozen=True, slots=True)
class InlineStruct:
    body: StructBody
    loc: Location


@dataclass(frozen=True, slots=True)
class InlineUnion:
    body: UnionBody
    loc: Location


TypeSpec = BuiltinType | NamedType | StringType | OpaqueType | InlineEnum | InlineStruct | InlineUnion


# --- declarations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scalar:
    """`T name`"""


@dataclass(frozen=True, slots=True)
class FixedArray:
    """`T name[N]`"""

    size: Value


@dataclass(frozen=True, slots=True)
class VarArray:
    """`T name<N>` or `T name<>` (bound None = 2**32 - 1)."""

    bound: Value | None


@dataclass(frozen=True, slots=True)
class OptionalData:
    """`T *name`"""


Shape = Scalar | FixedArray | VarArray | OptionalData


@dataclass(frozen=True, slots=True)
class Declaration:
    name: str
    type: TypeSpec
    shape: Shape
    loc: Location


@dataclass(frozen=True, slots=True)
class VoidDeclaration:
    loc: Location


# --- bodies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnumMember:
    name: str
    value: Value
    doc: str | None  # the `/** ... */` comment just before it, if any
    doc_loc: Location | None
    loc: Location


@dataclass(frozen=True, slots=True)
class EnumBody:
    members: tuple[EnumMember, ...]


@dataclass(frozen=True, slots=True)
class StructBody:
    fields: tuple[Declaration, ...]


@dataclass(frozen=True, slots=True)
class UnionArm:
    cases: tuple[Value, ...]  # empty for the `default` arm
    decl: Declaration | VoidDeclaration
    loc: Location


@dataclass(frozen=True, slots=True)
class UnionBody:
    discriminant: Declaration
    arms: tuple[UnionArm, ...]
    default: UnionArm | None


# --- top-level definitions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConstDef:
    name: str
    value: Value
    loc: Location


@dataclass(frozen=True, slots=True)
class TypedefDef:
    decl: Declaration
    loc: Location


@dataclass(frozen=True, slots=True)
class EnumDef:
    name: str
    body: EnumBody
    doc: str | None
    doc_loc: Location | None
    loc: Location


@dataclass(frozen=True, slots=True)
class StructDef:
    name: str
    body: StructBody
    loc: Location


@dataclass(frozen=True, slots=True)
class UnionDef:
    name: str
    body: UnionBody
    loc: Location


@dataclass(frozen=True, slots=True)
class PassThrough:
    """A `%...` line: C text rpcgen copies verbatim; we keep it as a comment."""

    text: str
    loc: Location


@dataclass(frozen=True, slots=True)
class ProcedureDef:
    name: str
    result: TypeSpec | None  # None = void
    args: tuple[TypeSpec, ...]  # empty = void
    number: Value
    loc: Location


@dataclass(frozen=True, slots=True)
class VersionDef:
    name: str
    procedures: tuple[ProcedureDef, ...]
    number: Value
    loc: Location


@dataclass(frozen=True, slots=True)
class ProgramDef:
    name: str
    versions: tuple[VersionDef, ...]
    number: Value
    loc: Location


Definition = ConstDef | TypedefDef | EnumDef | StructDef | UnionDef | PassThrough | ProgramDef


@dataclass(frozen=True, slots=True)
class Specification:
    file: str
    definitions: tuple[Definition, ...] = field(default_factory=tuple)
