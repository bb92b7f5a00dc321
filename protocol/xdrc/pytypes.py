"""Python annotations for resolved wire types, as written into generated modules."""

from __future__ import annotations

from . import model
from .model import strip


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
