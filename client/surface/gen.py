"""Generate client/surface/generated.py: libvirt-python's plain methods over RPC.

    python -m virtwire.client.surface.gen [--check] [--api-xml PATH]

It writes client/aio_generated.py too (the async API: client/surface/agen.py).

Inputs: libvirt's API description (libvirt-api.xml: which C argument is the
object, the others' names and types, the return type) and our procedure table
(protocol/generated/remote.py: the procedure of each `@api` name, its args and
ret structs).  A C function becomes a generated method when its call is one
procedure whose args struct is the object plus the C arguments in order and
whose reply is at most one scalar, string or object; libvirt-python's own
generated code has the same shape for these.  Everything else (lists, typed
parameters as dicts, info tuples, events, streams) is in the override layer
(client/surface/overrides*.py); the generated file lists those C names so a
test can check that none is forgotten.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from virtwire.client.surface import apixml, naming
from virtwire.protocol.generated import remote
from virtwire.protocol.xdr import Procedure, XdrStruct

OUT: Final = Path(__file__).with_name("generated.py")

# C scalar types -> Python annotation.
_INT_TYPES: Final = frozenset(
    {"int", "unsigned int", "long", "unsigned long", "long long", "unsigned long long", "size_t"}
)
_STR_TYPES: Final = frozenset({"const char *", "char *"})
_STR_FIELDS: Final = frozenset({"remote_nonnull_string", "remote_string"})
_OBJ_FIELDS: Final = {
    "remote_nonnull_domain": "virDomain",
    "remote_nonnull_network": "virNetwork",
    "remote_nonnull_network_port": "virNetworkPort",
    "remote_nonnull_nwfilter": "virNWFilter",
    "remote_nonnull_nwfilter_binding": "virNWFilterBinding",
    "remote_nonnull_interface": "virInterface",
    "remote_nonnull_storage_pool": "virStoragePool",
    "remote_nonnull_storage_vol": "virStorageVol",
    "remote_nonnull_node_device": "virNodeDevice",
    "remote_nonnull_secret": "virSecret",
    "remote_nonnull_domain_checkpoint": "virDomainCheckpoint",
    "remote_nonnull_domain_snapshot": "virDomainSnapshot",
    "remote_domain": "virDomain",
}
# The class a new object hangs off (libvirt-python's classes_type parents).
PARENT_CLASS: Final = {
    "virDomain": "virConnect",
    "virNetwork": "virConnect",
    "virNetworkPort": "virNetwork",
    "virInterface": "virConnect",
    "virStoragePool": "virConnect",
    "virStorageVol": "virConnect",
    "virNodeDevice": "virConnect",
    "virSecret": "virConnect",
    "virNWFilter": "virConnect",
    "virNWFilterBinding": "virConnect",
    "virStream": "virConnect",
    "virDomainCheckpoint": "virDomain",
    "virDomainSnapshot": "virDomain",
}
_PARENT_ATTR: Final = {"virConnect": "self._conn", "virDomain": "self._dom", "virNetwork": "self._net"}


# Procedures whose call or reply carries file descriptors beside the payload
# (CALL_WITH_FDS / REPLY_WITH_FDS): their Python shape is the descriptor, not the
# reply struct, so they are never generated (libvirt's remote_protocol.x).
FD_PROCEDURES: Final = frozenset(
    {
        "DOMAIN_CREATE_XML_WITH_FILES",
        "DOMAIN_CREATE_WITH_FILES",
        "DOMAIN_OPEN_GRAPHICS",
        "DOMAIN_OPEN_GRAPHICS_FD",
        "DOMAIN_FD_ASSOCIATE",
    }
)


def _class_of_ptr(ctype: str) -> str | None:
    base = ctype.removeprefix("const ").removesuffix("Ptr").removesuffix(" *")
    return base if base in naming.CLASSES else None


@dataclasses.dataclass(frozen=True, slots=True)
class Method:
    binding: naming.Binding
    proc: Procedure
    params: list[tuple[str, str, str | None]]  # python name, annotation, default
    call_args: list[str]  # expressions in args-struct order
    flags_expr: str
    body: list[str]  # statements after the call, the call's result is `ret`


def _fields(struct: type[XdrStruct] | None) -> list[tuple[str, str]]:
    """The fields of an args/ret struct in wire order, each with its annotation's text."""
    if struct is None:
        return []
    annotations = inspect.get_annotations(struct)
    return [(name, str(annotations[name])) for name in struct.__match_args__]


def _param(arg: apixml.Arg, optional: frozenset[str] = frozenset()) -> tuple[str, str, str | None] | None:
    if arg.name == "from":  # a Python keyword: libvirt-python's parser renames it
        arg = apixml.Arg("frm", arg.type, arg.info)
    if arg.name in optional:
        arg = apixml.Arg(arg.name, arg.type, "optional " + arg.info)
    t = arg.type.removeprefix("const ") if arg.type not in _STR_TYPES else arg.type
    default_wanted = arg.name == "flags" or arg.optional
    if t in _INT_TYPES:
        return (arg.name, "int", "0" if default_wanted else None)
    if arg.type in _STR_TYPES:
        return (arg.name, "str | None" if arg.optional else "str", "None" if default_wanted else None)
    if t == "double":
        return (arg.name, "float", None)
    if _class_of_ptr(arg.type) is not None:
        return (arg.name, "Any", "None" if default_wanted else None)
    return None


def plan(fn: apixml.Function, binding: naming.Binding, procs: dict[str, Procedure]) -> Method | str:
    """The generated method of `fn`, or why it needs a hand-written override."""
    proc = procs.get(fn.name)
    if proc is None:
        return "no procedure"
    if proc.name in FD_PROCEDURES:
        return "passes file descriptors"
    if binding.self_index != 0 and binding.klass != naming.MODULE:
        return "object is not the first argument"
    c_args = list(fn.args[1:]) if binding.klass != naming.MODULE else list(fn.args)
    if binding.klass == naming.MODULE:
        return "module function"
    fields = _fields(proc.args)
    self_is_conn = binding.klass == "virConnect"
    self_expr = "self._ref"
    if not self_is_conn:
        if binding.klass == "virNodeDevice" and fields[:1] == [("name", "remote_nonnull_string")]:
            self_expr = "self._ref.name"  # node device calls send the device's name alone
        elif not fields or _OBJ_FIELDS.get(fields[0][1]) != binding.klass:
            return "args struct does not start with the object"
        fields = fields[1:]
    if len(fields) != len(c_args):
        return f"{len(c_args)} C arguments, {len(fields)} fields"
    params: list[tuple[str, str, str | None]] = []
    call_args = [self_expr] if not self_is_conn else []
    flags_expr = "0"
    for arg, (fname, ftype) in zip(c_args, fields, strict=True):
        p = _param(arg, naming.OPTIONAL_ARGS.get(fn.name, frozenset()))
        if p is None:
            return f"argument {arg.name} of type {arg.type}"
        cls = _class_of_ptr(arg.type)
        name = p[0]
        if cls is not None:
            if _OBJ_FIELDS.get(ftype) != cls:
                return f"argument {arg.name}: {ftype} for {cls}"
            call_args.append(f"None if {name} is None else {name}._ref" if p[2] else f"{name}._ref")
        elif p[1].startswith("str"):
            if ftype not in _STR_FIELDS:
                return f"argument {arg.name}: {ftype} for a string"
            call_args.append(name)
        elif p[1] == "int":
            if ftype != "int":
                return f"argument {arg.name}: {ftype} for an integer"
            call_args.append(name)
        else:
            if ftype != "float":
                return f"argument {arg.name}: {ftype} for a double"
            call_args.append(name)
        if fname == "flags":
            flags_expr = name
        params.append(p)
    body = _returns(fn, binding, proc)
    if isinstance(body, str):
        return body
    return Method(binding, proc, params, call_args, flags_expr, body)


def _returns(fn: apixml.Function, binding: naming.Binding, proc: Procedure) -> list[str] | str:
    ret_fields = _fields(proc.ret)
    rtype = fn.ret_type
    if not ret_fields:
        if rtype == "void":
            return ["return None"]
        if rtype in _INT_TYPES:
            return ["return 0"]
        return f"returns {rtype} without a reply"
    if len(ret_fields) != 1:
        return f"reply has {len(ret_fields)} fields"
    name, ftype = ret_fields[0]
    cls = _class_of_ptr(rtype)
    if cls is not None:
        if _OBJ_FIELDS.get(ftype) != cls:
            return f"returns {rtype} from {ftype}"
        parent = PARENT_CLASS[cls]
        holder = "self" if parent == binding.klass else _PARENT_ATTR[parent]
        return [f"return self._wrap({cls!r}, {holder}, ret.{name})"]
    if rtype in _INT_TYPES and ftype == "int":
        return [f"return int(ret.{name})"]
    if rtype in _STR_TYPES and ftype in _STR_FIELDS:
        if ftype == "remote_nonnull_string":
            return [f"return str(ret.{name})"]
        return [f"return None if ret.{name} is None else str(ret.{name})"]
    return f"returns {rtype} from {ftype}"


def _annotation(fn: apixml.Function, body: list[str]) -> str:
    if body == ["return None"]:
        return "None"
    if body[0].startswith("return self._wrap"):
        return "Any"
    if body[0].startswith("return None if"):
        return "str | None"
    if body[0].startswith("return str"):
        return "str"
    return "int"


def _emit_method(m: Method, fn: apixml.Function, awaited: bool = False) -> Iterator[str]:
    """The method's source; `awaited`: as a coroutine of the async API (client/aio_handle.py)."""
    sig = ", ".join(["self"] + [f"{n}: {a}" + (f" = {d}" if d is not None else "") for n, a, d in m.params])
    yield f"    {'async ' if awaited else ''}def {m.binding.method}({sig}) -> {_annotation(fn, m.body)}:"
    yield f'        """{fn.name} ({m.proc.name})."""'
    args = ", ".join(m.call_args)
    call = f"self._rpc({m.proc.name!r}, ({args}{',' if len(m.call_args) == 1 else ''}), {m.flags_expr})"
    if awaited:
        call = "await " + call
    if any("ret." in line for line in m.body):
        yield f"        ret = {call}"
    else:
        yield f"        {call}"
    for line in m.body:
        yield f"        {line}"


Planned = dict[str, list[tuple[Method, apixml.Function]]]


def plan_all(
    functions: dict[str, apixml.Function],
) -> tuple[Planned, dict[str, list[tuple[str, str, str]]]]:
    """Per class: the generated methods, and (method, C name, why) of the hand-written ones."""
    procs = {p.api: p for p in remote.PROCEDURES.values() if p.api is not None}
    methods: Planned = {k: [] for k in naming.CLASSES}
    hand: dict[str, list[tuple[str, str, str]]] = {}
    for name in sorted(functions):
        fn = functions[name]
        if naming.skipped(name, fn.arg_types, fn.ret_type):
            continue
        binding = naming.bind(name, fn.arg_types)
        planned = plan(fn, binding, procs)
        if isinstance(planned, str):
            hand.setdefault(binding.klass, []).append((binding.method, name, planned))
        else:
            methods[binding.klass].append((planned, fn))
    return methods, hand


def render(api_xml: Path = apixml.DEFAULT_PATH) -> str:
    functions = apixml.load(api_xml)
    methods, hand = plan_all(functions)
    lines = [
        '"""Generated by virtwire.client.surface.gen from libvirt-api.xml and spec/remote.x; do not edit.',
        "",
        "The methods of libvirt-python's classes whose call is one procedure with plain",
        "arguments and at most one plain result.  HAND_WRITTEN lists the C functions whose",
        "Python shape is written by hand (client/surface/overrides*.py, client/facade.py).",
        '"""',
        "",
        "# ruff: noqa: E501",
        "from __future__ import annotations",
        "",
        "from typing import Any, Final",
        "",
        "from virtwire.client.surface.base import Handle",
        "",
    ]
    for klass in naming.CLASSES:
        lines += ["", f"class {klass}Generated(Handle):", f'    """{klass}: the generated methods."""', ""]
        entries = sorted(methods[klass], key=lambda e: e[0].binding.method)
        if not entries:
            lines.append("    __slots__ = ()")
        for i, (m, fn) in enumerate(entries):
            if i:
                lines.append("")
            lines.extend(_emit_method(m, fn))
        lines.append("")
    lines += [
        "",
        "# Every C function of the API -> (class, method) by libvirt-python's naming rules",
        "# (class 'libvirt' = module function); the libvirtmod table is built from it.",
        "BINDINGS: Final[dict[str, tuple[str, str]]] = {",
    ]
    for name in sorted(functions):
        b = naming.bind(name, functions[name].arg_types)
        lines.append(f"    {name!r}: ({b.klass!r}, {b.method!r}),")
    lines += [
        "}",
        "",
        "# C name -> (class, method, why it is not generated) of the hand-written ones.",
        "HAND_WRITTEN: Final[dict[str, tuple[str, str, str]]] = {",
    ]
    for klass in sorted(hand):
        for method, name, why in sorted(hand[klass], key=lambda e: e[1]):
            lines.append(f"    {name!r}: ({klass!r}, {method!r}, {why!r}),")
    lines += ["}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m virtwire.client.surface.gen", description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if generated.py is out of date")
    ap.add_argument("--api-xml", type=Path, default=apixml.DEFAULT_PATH)
    ns = ap.parse_args(argv)
    from virtwire.client.surface import agen  # it imports the facade, which imports OUT

    stale = 0
    for out, text in ((OUT, render(ns.api_xml)), (agen.OUT, agen.render(ns.api_xml))):
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if ns.check:
            if current != text:
                print(f"{out} is out of date: run python -m virtwire.client.surface.gen", file=sys.stderr)
                stale = 1
            continue
        if current != text:
            out.write_text(text, encoding="utf-8")
            print(f"wrote {out}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
