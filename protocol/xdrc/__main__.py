"""Command line: compile one spec, or regenerate/check every spec/*.x.

    python -m virtwire.protocol.xdrc SPEC.x [-o OUT.py]
    python -m virtwire.protocol.xdrc --all [--check]      (from the repository root)

The compiler imports nothing outside its own package, so when a broken generated
module keeps `virtwire.protocol` from importing, it still runs from the source
tree:  PYTHONPATH=protocol python -m xdrc --all
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import XdrcError, compile_file

SPEC_DIR = Path("spec")
OUT_DIR = Path("protocol/generated")


def _all(check: bool) -> int:
    specs = sorted(SPEC_DIR.glob("*.x"))
    if not specs:
        print(f"xdrc: no {SPEC_DIR}/*.x here; run --all from the repository root", file=sys.stderr)
        return 1
    stale: list[str] = []
    for spec in specs:
        out = OUT_DIR / f"{spec.stem}.py"
        text = compile_file(spec, spec.as_posix())
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current == text:
            continue
        if check:
            stale.append(out.as_posix())
        else:
            out.write_text(text, encoding="utf-8")
            print(f"xdrc: wrote {out}")
    if stale:
        print("xdrc: out of date (run `python -m virtwire.protocol.xdrc --all`):", file=sys.stderr)
        for name in stale:
            print(f"  {name}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m virtwire.protocol.xdrc", description=__doc__)
    ap.add_argument("spec", nargs="?", type=Path, help="an .x file to compile")
    ap.add_argument("-o", "--output", type=Path, help="where to write the module (default: stdout)")
    ap.add_argument("--all", action="store_true", help="regenerate protocol/generated/*.py from spec/*.x")
    ap.add_argument("--check", action="store_true", help="with --all: only report files that would change")
    args = ap.parse_args(argv)
    try:
        if args.all:
            return _all(args.check)
        if args.spec is None:
            ap.error("give a SPEC.x or --all")
        text = compile_file(args.spec)
    except XdrcError as err:
        print(err, file=sys.stderr)
        return 1
    except OSError as err:
        print(f"xdrc: {err}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
