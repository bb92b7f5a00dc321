"""The XDR compiler: rpcgen-language specs (spec/*.x) -> Python codec modules.

python -m virtwire.protocol.xdrc SPEC.x -o OUT.py
python -m virtwire.protocol.xdrc --all [--check]
"""

from __future__ import annotations

from pathlib import Path

from .errors import XdrcError
from .model import Module
from .parser import parse
from .pygen import generate
from .resolve import resolve

__all__ = ["XdrcError", "compile_file", "compile_source", "load"]


def load(source: str, file: str) -> Module:
    """Parse and resolve one specification."""
    return resolve(parse(source, file))


def compile_source(source: str, file: str, label: str | None = None) -> str:
    """The generated module for `source`; `label` is the spec path named in its header."""
    return generate(load(source, file), label or file)


def compile_file(path: Path, label: str | None = None) -> str:
    return compile_source(path.read_text(encoding="utf-8"), str(path), label)
