"""The resolved model a generator works from.

The resolver turns the syntax tree into this: every name looked up, every
constant evaluated, inline definitions hoisted to named types, typedef chains
kept as `Alias` nodes (so generated annotations can say `remote_string`), and
the procedure annotations checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ast import Location

UNBOUNDED = 0xFFFFFFFF

# --- wire types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prim:
    kind: str  # int uint hyper uhyper float double bool


@dataclass(frozen=True, slots=True)
class EnumRef:
    name: str


@dataclass(frozen=True, slots=True)
class StructRef:
    name: str


@dataclass(frozen=True, slots=True)
class UnionRef:
    name: str


@dataclass(frozen=True, slots=True)
class String:
    bound: int  # UNBOUNDED for string<>


@dataclass(frozen=True, slots=True)
class Opaque:
    size: int  # the fixed length, or the bound of a variable one
    fixed: bool


@dataclass(frozen=True, slots=True)
class Array:
    elem: Type
    size: int  # the fixed length, or the bound of a variable one
    fixed: bool
    # the constant a variable array's bound was written as (REMOTE_DOMAIN_LIST_MAX):
    # libvirtd's argument-limit errors name it
    bound_name: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Optional:
    elem: Type


@dataclass(frozen=True, slots=True)
class Alias:
    """A reference to a typedef by name; `target` is what it stands for."""

    name: str
    target: Type


Type = Prim | EnumRef | StructRef | UnionRef | String | Opaque | Array | Optional | Alias


def strip(t: Type) -> Type:
    while isinstance(t, Alias):
        t = t.target
    return t


# --- definitions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # as in the spec
    pyname: str  # the attribute name (a Python keyword gets a trailing '_')
    type: Type
    spelling: str  # the declaration as written, for docstrings


@dataclass(frozen=True, slots=True)
class Const:
    name: str
    value: int
    hex: bool = False  # the spec wrote it in hex


@dataclass(frozen=True, slots=True)
class Enum:
    name: str
    members: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Struct:
    name: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Arm:
    cases: tuple[int, ...]  # empty for default
    field: Field | None  # None = void arm
    labels: tuple[str, ...] = ()  # the case labels as written (constant names or numbers)


@dataclass(frozen=True, slots=True)
class Union:
    name: str
    discriminant: Field
    arms: tuple[Arm, ...]
    default: Arm | None


@dataclass(frozen=True, slots=True)
class Typedef:
    name: str
    type: Type
    spelling: str


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


Definition = Const | Enum | Struct | Union | Typedef | Comment


# --- procedures ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """One @acl rule: a permission on an object, maybe only with a flag set or a parameter's value."""

    object: str
    permission: str
    flag: str | None = None
    param: str | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Procedure:
    number: int
    name: str  # procprefix stripped
    member: str  # the enum member
    api: str | None
    readonly: str  # ALLOW DENY DENY_FLAGS
    deny_flags: int
    secure_wording: bool  # refused as "<api> with secure flag" (the XML getters)
    event: str | None
    void: bool
    args: str | None  # struct/union name of the args, None = none
    ret: str | None
    msg: str | None
    loc: Location
    # None: no @acl annotation (the spec says nothing); (): `@acl: none`
    acl: tuple[AccessCheck, ...] | None = None
    aclfilter: tuple[tuple[str, str], ...] = ()

    @property
    def modelled(self) -> bool:
        return self.void or any(x is not None for x in (self.args, self.ret, self.msg))


@dataclass(frozen=True, slots=True)
class ProcedureTable:
    enum: str
    program: int
    program_name: str | None  # the constant it came from, if any
    version: int
    version_name: str | None
    procedures: tuple[Procedure, ...]


@dataclass(slots=True)
class Module:
    file: str
    definitions: list[Definition] = field(default_factory=list)
    tables: list[ProcedureTable] = field(default_factory=list)

    def named(self) -> dict[str, Enum | Struct | Union | Typedef]:
        return {d.name: d for d in self.definitions if isinstance(d, Enum | Struct | Union | Typedef)}
