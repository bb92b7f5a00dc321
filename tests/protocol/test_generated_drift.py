"""The committed protocol/generated/*.py are exactly what the compiler makes of spec/*.x."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtwire.protocol.xdrc import compile_file

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "spec").glob("*.x"))


def test_there_are_specs() -> None:
    assert {p.stem for p in SPECS} >= {"virnet", "keepalive", "remote"}


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_generated_module_matches_its_spec(spec: Path) -> None:
    generated = ROOT / "protocol" / "generated" / f"{spec.stem}.py"
    fresh = compile_file(spec, f"spec/{spec.name}")
    assert generated.exists(), f"{generated} is missing: run `python -m virtwire.protocol.xdrc --all`"
    assert generated.read_text(encoding="utf-8") == fresh, (
        f"{generated.relative_to(ROOT)} differs from what spec/{spec.name} generates:"
        " run `python -m virtwire.protocol.xdrc --all` from the repository root and commit the result"
    )
