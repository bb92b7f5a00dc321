"""Generate ``protocol/generated/constants.py``: every VIR_* constant of libvirt.

Two inputs, both shipped by the libvirt packages of the machine that regenerates:

* the API description XML (``libvirt-api.xml``, ``libvirt-qemu-api.xml``, ``libvirt-admin-api.xml``,
  ``libvirt-lxc-api.xml``): every ``<enum>`` and every integer or string
  ``<macro>`` whose name starts with ``VIR_``;
* ``libvirt.so``: its ``virErrorMsg(code, info)`` gives, for every error code, the
  message template without and with detail.  Those templates are what every
  libvirt error message is built from, so the wording comes from libvirt itself
  instead of a hand-copied table.

Run ``python -m virtwire.protocol.constants_gen`` to rewrite the module, or with
``--check`` to fail when the committed module differs from a fresh render.
The output is deterministic: sorted names, no timestamps.
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import ctypes.util
import operator
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

DEFAULT_API_DIR = Path("/usr/share/libvirt/api")
API_FILES = ("libvirt-api.xml", "libvirt-qemu-api.xml", "libvirt-lxc-api.xml", "libvirt-admin-api.xml")
OUTPUT = Path(__file__).resolve().parent / "generated" / "constants.py"

# A macro body we can evaluate: integers (C suffixes allowed), names of constants
# already known, parentheses, + - * and shifts.  Anything else (function-like
# macros, casts) is not a constant and is skipped.
_C_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_INT_LITERAL = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU]?[lL]{0,2}|[lL]{1,2}[uU]?)\b")
_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_BINARY_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}


class GenerationError(Exception):
    """The inputs are missing or do not look like libvirt's."""


def _eval_node(node: ast.expr) -> int | None:
    match node:
        case ast.Constant(value=int() as value) if not isinstance(value, bool):
            return value
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            inner = _eval_node(operand)
            return None if inner is None else -inner
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY_OPS:
            lhs, rhs = _eval_node(left), _eval_node(right)
            if lhs is None or rhs is None:
                return None
            return _BINARY_OPS[type(op)](lhs, rhs)
    return None


def _eval_c_expr(raw: str, known: dict[str, int]) -> int | None:
    """Value of a constant C macro body, or None when it is not a plain integer expression."""
    text = _C_COMMENT.sub(" ", raw).strip()
    if not text:
        return None
    text = _INT_LITERAL.sub(lambda m: str(int(m.group(1), 0)), text)
    text = _NAME.sub(lambda m: str(known.get(m.group(0), m.group(0))), text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    return _eval_node(tree.body)


def read_api_constants(api_dir: Path) -> dict[str, int | str]:
    """All VIR_* enum values and integer/string macros from the API XML files."""
    enums: list[tuple[str, str]] = []
    macros: list[ET.Element] = []
    found_any = False
    for filename in API_FILES:
        path = api_dir / filename
        if not path.exists():
            continue
        found_any = True
        root = ET.parse(path).getroot()
        enums.extend((e.attrib["name"], e.attrib["value"]) for e in root.iter("enum"))
        macros.extend(root.iter("macro"))
    if not found_any:
        raise GenerationError(f"no libvirt API XML in {api_dir} (install libvirt-dev)")

    values: dict[str, int | str] = {}
    ints: dict[str, int] = {}
    # Enum values may name another enum (aliases such as VIR_DOMAIN_MEM_LIVE);
    # resolve in passes until nothing changes.
    pending = list(enums)
    while pending:
        unresolved: list[tuple[str, str]] = []
        for name, raw in pending:
            value = _eval_c_expr(raw, ints)
            if value is None:
                unresolved.append((name, raw))
            else:
                ints[name] = value
        if len(unresolved) == len(pending):
            names = ", ".join(n for n, _ in unresolved)
            raise GenerationError(f"cannot resolve enum values: {names}")
        pending = unresolved

    pending_macros = [m for m in macros if m.get("params") is None]
    progress = True
    while progress:
        progress = False
        for macro in list(pending_macros):
            name = macro.attrib["name"]
            string = macro.get("string")
            if string is not None:
                values[name] = string
                pending_macros.remove(macro)
                progress = True
                continue
            value = _eval_c_expr(macro.get("raw", ""), ints)
            if value is not None:
                ints[name] = value
                pending_macros.remove(macro)
                progress = True
    values.update(ints)
    return {name: value for name, value in values.items() if name.startswith("VIR_")}


def _find_libvirt_so() -> str:
    name = ctypes.util.find_library("virt")
    if name is None:
        raise GenerationError("libvirt.so not found (install libvirt0)")
    return name


def read_error_templates(number_last: int, library: str | None = None) -> dict[int, tuple[str, str]]:
    """``code -> (message without detail, message template with one %s for the detail)``."""
    lib = ctypes.CDLL(library or _find_libvirt_so())
    error_msg = lib.virErrorMsg
    error_msg.restype = ctypes.c_char_p
    error_msg.argtypes = [ctypes.c_int, ctypes.c_char_p]
    templates: dict[int, tuple[str, str]] = {}
    for code in range(1, number_last):
        plain = error_msg(code, None)
        with_info = error_msg(code, b"x")
        if plain is None or with_info is None:
            raise GenerationError(f"libvirt has no message for error code {code}")
        plain_text = plain.decode()
        info_text = with_info.decode()
        if info_text.count("%") != 1 or "%s" not in info_text or "%" in plain_text:
            raise GenerationError(f"unexpected template for error code {code}: {info_text!r}")
        templates[code] = (plain_text, info_text)
    return templates


# The VIR_FROM_THIS of each src/libvirt-*.c file (the `file` attribute of a function in
# the API XML): errors a public entry point raises itself (read-only refusal, "not
# supported") carry it. libvirt-host.c reports as VIR_FROM_DOMAIN, measured on 9.0.
FILE_ERROR_DOMAINS: dict[str, str] = {
    "libvirt-domain": "VIR_FROM_DOMAIN",
    "libvirt-host": "VIR_FROM_DOMAIN",
    "libvirt-network": "VIR_FROM_NETWORK",
    "libvirt-storage": "VIR_FROM_STORAGE",
    "libvirt-nodedev": "VIR_FROM_NODEDEV",
    "libvirt-interface": "VIR_FROM_INTERFACE",
    "libvirt-secret": "VIR_FROM_SECRET",
    "libvirt-nwfilter": "VIR_FROM_NWFILTER",
    "libvirt-domain-snapshot": "VIR_FROM_DOMAIN_SNAPSHOT",
    "libvirt-domain-checkpoint": "VIR_FROM_DOMAIN_CHECKPOINT",
    "libvirt-stream": "VIR_FROM_STREAMS",
}


def read_api_error_domains(api_dir: Path) -> dict[str, str]:
    """Public function name -> the VIR_FROM_* name its own checks report under."""
    path = api_dir / "libvirt-api.xml"
    if not path.exists():
        raise GenerationError(f"no {path} (install libvirt-dev)")
    out: dict[str, str] = {}
    for function in ET.parse(path).getroot().iter("function"):
        domain = FILE_ERROR_DOMAINS.get(function.get("file", ""))
        if domain is not None:
            out[function.attrib["name"]] = domain
    return out


def render(
    constants: dict[str, int | str],
    templates: dict[int, tuple[str, str]],
    api_domains: dict[str, str],
) -> str:
    out: list[str] = [
        '"""Every VIR_* constant of libvirt 9.0, and its error message templates.',
        "",
        "Generated by ``python -m virtwire.protocol.constants_gen`` from libvirt's API XML",
        "and libvirt.so's virErrorMsg; do not edit by hand.",
        '"""',
        "",
        "from typing import Final",
        "",
        "# Only the VIR_* names: `from ... import *` must not pick up ERROR_MESSAGES.",
        "__all__ = [  # noqa: RUF022 - code-point order, like the definitions below",
        *[f"    {name!r}," for name in sorted(constants)],
        "]",
        "",
    ]
    for name in sorted(constants):
        out.append(f"{name}: Final = {constants[name]!r}")
    out += [
        "",
        "# virErrorMsg(code, NULL) and virErrorMsg(code, info): the text of an error without",
        "# detail, and the template (exactly one %s) that the detail is formatted into.",
        "ERROR_MESSAGES: Final[dict[int, tuple[str, str]]] = {",
    ]
    for code in sorted(templates):
        plain, with_info = templates[code]
        out += [f"    {code}: (", f"        {plain!r},", f"        {with_info!r},", "    ),"]
    out += [
        "}",
        "",
        "# The VIR_FROM_* under which each public API reports its own checks (read-only",
        "# refusal, not supported): the VIR_FROM_THIS of the libvirt-*.c file defining it.",
        "API_ERROR_DOMAINS: Final[dict[str, int]] = {",
    ]
    out += [f"    {name!r}: {api_domains[name]}," for name in sorted(api_domains)]
    out += ["}", ""]
    return "\n".join(out)


def generate(api_dir: Path = DEFAULT_API_DIR, library: str | None = None) -> str:
    constants = read_api_constants(api_dir)
    number_last = constants.get("VIR_ERR_NUMBER_LAST")
    if not isinstance(number_last, int):
        raise GenerationError("VIR_ERR_NUMBER_LAST missing from the API XML")
    return render(constants, read_error_templates(number_last, library), read_api_error_domains(api_dir))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--api-dir", type=Path, default=DEFAULT_API_DIR)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the output is out of date")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        text = generate(args.api_dir)
    except GenerationError as exc:
        print(f"constants_gen: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"constants_gen: {args.output} is out of date; regenerate it", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
