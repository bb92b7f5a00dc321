"""Procedure-enum annotations (design.md section 1) -> `model.ProcedureTable`.

The enum's own doc comment names the program, version and the prefixes; each
member's doc comment says its API name, read-only policy and whether it is an
event or a void procedure.  Lines of a doc comment that do not start with `@`
are free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import ast, model
from .ast import Location
from .errors import XdrcError

if TYPE_CHECKING:
    from .resolve import Resolver

ENUM_KEYS = frozenset({"program", "version", "structprefix", "procprefix"})
ENTRY_KEYS = frozenset({"api", "readonly", "event", "void", "acl", "aclfilter"})

_ANNOTATION = re.compile(r"@([A-Za-z_][A-Za-z0-9_-]*)\s*(?::\s*(.*?))?\s*$")
_API = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EVENT = re.compile(r"[A-Za-z0-9_-]+")
# libvirt's access rules: object:permission, object:permission:FLAG, object:permission::param:VALUE
# (FLAG may be negated and or-ed: "!A|B" = neither A nor B set; VALUE may be negated)
_ACL = re.compile(
    r"([a-z_]+):([a-z_]+)(?::(!?[A-Z][A-Z0-9_]*(?:\|[A-Z][A-Z0-9_]*)*)|::([a-z_]+):(!?[A-Z][A-Z0-9_]*))?"
)


@dataclass(frozen=True, slots=True)
class Annotation:
    key: str
    value: str | None  # None when written without ':'
    loc: Location


def has_annotations(doc: str) -> bool:
    """Whether a doc comment carries `@key` lines (which makes its enum a procedure enum)."""
    return any(line.strip().lstrip("*").lstrip().startswith("@") for line in doc.split("\n"))


def parse_doc(doc: str, loc: Location, allowed: frozenset[str], where: str) -> dict[str, Annotation]:
    """The `@key: value` lines of a doc comment, located for error messages."""
    found: dict[str, Annotation] = {}
    for i, raw in enumerate(doc.split("\n")):
        stripped = raw.lstrip(" \t")
        col = len(raw) - len(stripped)
        if stripped.startswith("*"):
            rest = stripped[1:]
            col += 1 + len(rest) - len(rest.lstrip(" \t"))
            stripped = rest.lstrip(" \t")
        if not stripped.startswith("@"):
            continue
        # column: the doc body starts after "/**" on its first line
        at = Location(loc.file, loc.line + i, (loc.col + 3 + col) if i == 0 else col + 1)
        m = _ANNOTATION.match(stripped.rstrip())
        if m is None:
            raise XdrcError(at, f"found {stripped.strip()!r}, expected an annotation '@key: value'")
        key, value = m.group(1), m.group(2)
        if key not in allowed:
            keys = ", ".join(f"@{k}" for k in sorted(allowed))
            raise XdrcError(at, f"found unknown annotation @{key} on {where}, expected one of {keys}")
        if key in found:
            raise XdrcError(at, f"found @{key} a second time on {where}, expected it once")
        found[key] = Annotation(key, value, at)
    return found


def _number_or_const(a: Annotation, resolver: Resolver) -> tuple[int, str | None]:
    text = (a.value or "").strip()
    if not text:
        raise XdrcError(a.loc, f"found @{a.key} without a value, expected a number or a constant name")
    try:
        return int(text, 0), None
    except ValueError:
        pass
    if not _API.fullmatch(text):
        raise XdrcError(a.loc, f"found @{a.key}: {text!r}, expected a number or a constant name")
    return resolver.const(text, a.loc), text


def build_table(enum: ast.EnumDef, resolver: Resolver, mod: model.Module) -> model.ProcedureTable:
    assert enum.doc is not None and enum.doc_loc is not None
    head = parse_doc(enum.doc, enum.doc_loc, ENUM_KEYS, f"enum {enum.name}")
    for key in ("program", "version", "procprefix"):
        if key not in head:
            raise XdrcError(enum.doc_loc, f"found a procedure enum without @{key}, expected @{key}: ...")
    program, program_name = _number_or_const(head["program"], resolver)
    version, version_name = _number_or_const(head["version"], resolver)
    structprefix = (head["structprefix"].value or "") if "structprefix" in head else ""
    procprefix = head["procprefix"].value or ""
    if not procprefix:
        raise XdrcError(
            head["procprefix"].loc, "found an empty @procprefix, expected a prefix like REMOTE_PROC_"
        )
    named = mod.named()
    procs = [_procedure(m, procprefix, structprefix, resolver, named) for m in enum.body.members]
    seen: dict[int, model.Procedure] = {}
    for p in procs:
        if p.number in seen:
            first = seen[p.number]
            also = f"also {first.member} at {first.loc}"
            raise XdrcError(
                p.loc, f"found {p.member} = {p.number} again ({also}), expected a new procedure number"
            )
        seen[p.number] = p
    return model.ProcedureTable(enum.name, program, program_name, version, version_name, tuple(procs))


def _procedure(
    m: ast.EnumMember,
    procprefix: str,
    structprefix: str,
    resolver: Resolver,
    named: dict[str, model.Enum | model.Struct | model.Union | model.Typedef],
) -> model.Procedure:
    where = f"procedure {m.name}"
    ann = {} if m.doc is None or m.doc_loc is None else parse_doc(m.doc, m.doc_loc, ENTRY_KEYS, where)
    if not m.name.startswith(procprefix):
        raise XdrcError(m.loc, f"found procedure {m.name}, expected a name starting with {procprefix}")
    name = m.name[len(procprefix) :]
    number = resolver.const(m.name, m.loc)
    readonly = ann.get("readonly")
    if readonly is None:
        raise XdrcError(
            m.loc, f"found {m.name} without @readonly, expected @readonly: allow|deny|deny-flags MASK"
        )
    policy, mask, secure_wording = _policy(readonly)
    event = ann.get("event")
    event_name: str | None = None
    if event is not None:
        event_name = (event.value or "").strip()
        if not _EVENT.fullmatch(event_name):
            raise XdrcError(event.loc, f"found @event: {event_name!r}, expected an event name")
    api = ann.get("api")
    api_name: str | None = None
    if api is not None:
        api_name = (api.value or "").strip()
        if not _API.fullmatch(api_name):
            raise XdrcError(api.loc, f"found @api: {api_name!r}, expected a C function name")
    elif event is None:
        raise XdrcError(m.loc, f"found {m.name} without @api, expected @api: virSomething (or @event: name)")
    void = ann.get("void")
    if void is not None and (void.value or "").strip():
        raise XdrcError(void.loc, f"found @void: {void.value!r}, expected @void without a value")

    def codec(suffix: str) -> str | None:
        type_name = f"{structprefix}{name.lower()}_{suffix}"
        d = named.get(type_name)
        if d is None:
            return None
        if not isinstance(d, model.Struct | model.Union):
            raise XdrcError(m.loc, f"found {type_name} as a {type(d).__name__.lower()},"
                            f" expected a struct or union for {m.name}")  # fmt: skip
        return type_name

    args, ret, msg = codec("args"), codec("ret"), codec("msg")
    acl = _acl_checks(ann["acl"]) if "acl" in ann else None
    aclfilter = _acl_filters(ann["aclfilter"]) if "aclfilter" in ann else ()
    if void is not None and any(x is not None for x in (args, ret, msg)):
        found = next(x for x in (args, ret, msg) if x is not None)
        raise XdrcError(void.loc, f"found @void on {m.name} which has {found}, expected no args/ret/msg type")
    return model.Procedure(
        number=number,
        name=name,
        member=m.name,
        api=api_name,
        readonly=policy,
        deny_flags=mask,
        secure_wording=secure_wording,
        event=event_name,
        void=void is not None,
        args=args,
        ret=ret,
        msg=msg,
        loc=m.loc,
        acl=acl,
        aclfilter=aclfilter,
    )


def _policy(a: Annotation) -> tuple[str, int, bool]:
    """(policy, deny-flags mask, refusal worded "<api> with secure flag")."""
    words = (a.value or "").split()
    match words:
        case ["allow"]:
            return "ALLOW", 0, False
        case ["deny"]:
            return "DENY", 0, False
        case ["deny-flags", mask] | ["deny-flags", mask, "secure-flag"]:
            try:
                value = int(mask, 0)
            except ValueError:
                value = -1
            if not 0 < value <= 0xFFFFFFFF:
                raise XdrcError(a.loc, f"found deny-flags mask {mask!r}, expected a number like 0x9")
            return "DENY_FLAGS", value, len(words) == 3
    raise XdrcError(
        a.loc, f"found @readonly: {a.value!r}, expected allow, deny or deny-flags MASK [secure-flag]"
    )


def _acl_checks(a: Annotation) -> tuple[model.AccessCheck, ...]:
    """`@acl: none` or comma-separated rules as libvirt writes them."""
    text = (a.value or "").strip()
    if text == "none":
        return ()
    checks = []
    for rule in text.split(","):
        m = _ACL.fullmatch(rule.strip())
        if m is None:
            raise XdrcError(
                a.loc,
                f"found @acl rule {rule.strip()!r}, expected none, object:perm, object:perm:FLAG"
                " or object:perm::param:VALUE",
            )
        obj, perm, flag, param, value = m.groups()
        checks.append(model.AccessCheck(obj, perm, flag, param, value))
    return tuple(checks)


def _acl_filters(a: Annotation) -> tuple[tuple[str, str], ...]:
    """`@aclfilter: object:perm[, ...]`: which objects a listing may return."""
    filters = []
    for rule in (a.value or "").split(","):
        obj, sep, perm = rule.strip().partition(":")
        if not sep or not re.fullmatch(r"[a-z_]+", obj) or not re.fullmatch(r"[a-z_]+", perm):
            raise XdrcError(a.loc, f"found @aclfilter {rule.strip()!r}, expected object:permission")
        filters.append((obj, perm))
    return tuple(filters)
