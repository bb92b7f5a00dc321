"""The generated VIR_* constants: up to date with libvirt's API XML, and a superset
of what the real libvirt-python 9.0 exposes, value for value."""

from __future__ import annotations

import ctypes.util
import importlib
from pathlib import Path
from types import ModuleType

import pytest
from virtwire.protocol import constants_gen
from virtwire.protocol.generated import constants
from vwtestkit import unavailable


@pytest.fixture
def generator_inputs() -> None:
    """The generator reads libvirt's API XML and libvirt.so; both must be installed."""
    if not (constants_gen.DEFAULT_API_DIR / "libvirt-api.xml").exists():
        unavailable("libvirt's API XML is missing (install libvirt-dev)")
    if ctypes.util.find_library("virt") is None:
        unavailable("libvirt.so is missing (install libvirt0)")


@pytest.mark.usefixtures("generator_inputs")
def test_generated_module_is_up_to_date() -> None:
    fresh = constants_gen.generate()
    committed = Path(constants.__file__).read_text()
    assert fresh == committed, "run `python -m virtwire.protocol.constants_gen` and commit the result"


def test_every_libvirt_python_constant_matches(real_libvirt: ModuleType) -> None:
    missing: list[str] = []
    different: list[tuple[str, object, object]] = []
    for name in dir(real_libvirt):
        if not name.startswith("VIR_"):
            continue
        theirs = getattr(real_libvirt, name)
        if not isinstance(theirs, int | str):
            continue
        if not hasattr(constants, name):
            missing.append(name)
        elif getattr(constants, name) != theirs or type(getattr(constants, name)) is not type(theirs):
            different.append((name, getattr(constants, name), theirs))
    assert not missing
    assert not different


def test_libvirt_qemu_constants_match() -> None:
    try:
        libvirt_qemu = importlib.import_module("libvirt_qemu")
    except ImportError as exc:
        unavailable(f"libvirt_qemu is not importable ({exc})")
    names = [n for n in dir(libvirt_qemu) if n.startswith("VIR_")]
    assert names
    for name in names:
        assert getattr(constants, name) == getattr(libvirt_qemu, name), name


def test_error_templates_cover_every_code() -> None:
    codes = range(1, constants.VIR_ERR_NUMBER_LAST)
    assert sorted(constants.ERROR_MESSAGES) == list(codes)
    for plain, with_detail in constants.ERROR_MESSAGES.values():
        assert with_detail.count("%s") == 1
        assert "%" not in plain


@pytest.mark.parametrize(
    ("raw", "known", "expected"),
    [
        ("9007199254740991LL /* = INT64_MAX >> 10 */", {}, 9007199254740991),
        ("(256 + 1)", {}, 257),
        ("0x10U", {}, 16),
        ("1 << 3", {}, 8),
        ("-2", {}, -2),
        ("VIR_A", {"VIR_A": 5}, 5),
        ("VIR_UNKNOWN", {}, None),
        ("((cpumap)[(cpu) / 8] & 1)", {}, None),
        ("", {}, None),
        ("memcpy(a, b, c)", {}, None),
    ],
)
def test_macro_evaluator(raw: str, known: dict[str, int], expected: int | None) -> None:
    assert constants_gen._eval_c_expr(raw, known) == expected


def test_missing_api_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(constants_gen.GenerationError, match="no libvirt API XML"):
        constants_gen.read_api_constants(tmp_path)


@pytest.mark.usefixtures("generator_inputs")
def test_check_mode_detects_drift(tmp_path: Path) -> None:
    stale = tmp_path / "constants.py"
    stale.write_text("# stale\n")
    assert constants_gen.main(["--check", "--output", str(stale)]) == 1
    assert constants_gen.main(["--output", str(stale)]) == 0
    assert constants_gen.main(["--check", "--output", str(stale)]) == 0
