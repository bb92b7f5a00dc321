"""Static checks of the package: `ruff check` and `mypy --strict` must be clean.

mypy runs on the installed module names (virtwire.protocol, ...) through the
symlink tree .ci/typecheck/virtwire (see pyproject.toml); its messages are
mapped back to repository paths so they point at the files to fix.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from vwtestkit import PROJECT_ROOT, unavailable

PACKAGE_DIRS = ["protocol", "client", "server", "virtwire"]
TYPECHECK_TREE = PROJECT_ROOT / ".ci" / "typecheck" / "virtwire"


def _tool(name: str) -> str:
    # The venv's own tool (next to the running python), else whatever is on PATH.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (pip install -e '.[dev]'; scripts/test.sh does it)")
    return found


def _persistent_cache(tool: str) -> Path:
    # Survives between runs (mypy's warm cache takes seconds instead of a minute),
    # one per checkout so two clones never share it.
    digest = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"virtwire-{tool}-cache-{digest}"


def _repo_paths(output: str) -> str:
    """Rewrite .ci/typecheck/virtwire/<sub>/... to <sub>/... (and /X.py to virtwire/X.py)."""
    prefix = ".ci/typecheck/virtwire/"
    lines = []
    for line in output.splitlines():
        if line.startswith(prefix):
            rest = line[len(prefix) :]
            head = rest.split("/", 1)[0]
            line = rest if head in {"protocol", "client", "server"} else "virtwire/" + rest
        lines.append(line)
    return "\n".join(lines)


def test_ruff_check_clean() -> None:
    env = {**os.environ, "RUFF_CACHE_DIR": str(_persistent_cache("ruff"))}
    proc = subprocess.run(
        [_tool("ruff"), "check", "--output-format", "concise", *PACKAGE_DIRS],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"ruff check found problems:\n{proc.stdout}{proc.stderr}", pytrace=False)


def test_mypy_strict_clean() -> None:
    proc = subprocess.run(
        [
            _tool("mypy"),
            "--strict",
            "--config-file",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--cache-dir",
            str(_persistent_cache("mypy")),
            "--no-error-summary",
            "--hide-error-context",
            "-p",
            "virtwire",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"mypy --strict found problems:\n{_repo_paths(proc.stdout)}{proc.stderr}", pytrace=False)


def test_mypy_strict_clean_tests_and_bench() -> None:
    """The standard holds for test and benchmark code too."""
    proc = subprocess.run(
        [
            _tool("mypy"),
            "--strict",
            "--config-file",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--cache-dir",
            str(_persistent_cache("mypy-tests")),
            "--no-error-summary",
            "--hide-error-context",
            "tests",
            "bench",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"mypy --strict found problems:\n{_repo_paths(proc.stdout)}{proc.stderr}", pytrace=False)


def test_ruff_check_clean_tests_bench_scripts() -> None:
    env = {**os.environ, "RUFF_CACHE_DIR": str(_persistent_cache("ruff"))}
    proc = subprocess.run(
        [_tool("ruff"), "check", "--output-format", "concise", "tests", "bench", "scripts"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"ruff check found problems:\n{proc.stdout}{proc.stderr}", pytrace=False)


def _installed_subpackages() -> dict[str, str]:
    """Top-level subpackages from pyproject's package-dir: {"protocol": "protocol", ...}."""
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return {name.split(".", 1)[1]: src for name, src in package_dir.items() if name.count(".") == 1}


def test_typecheck_tree_mirrors_installed_layout() -> None:
    """Every file of virtwire/ and every mapped subpackage has its link, and no link dangles."""
    expected = {p.name: f"../../../virtwire/{p.name}" for p in (PROJECT_ROOT / "virtwire").iterdir()}
    expected = {name: target for name, target in expected.items() if name.endswith((".py", ".pyi", ".typed"))}
    expected |= {sub: f"../../../{src}" for sub, src in _installed_subpackages().items()}
    actual = {p.name: os.readlink(p) for p in TYPECHECK_TREE.iterdir() if p.is_symlink()}
    assert actual == expected, (
        "`.ci/typecheck/virtwire` is out of date; recreate its links, e.g.\n"
        "  cd .ci/typecheck/virtwire && ln -sfn ../../../virtwire/NEW.py ."
    )
    dangling = [name for name in actual if not (TYPECHECK_TREE / name).exists()]
    assert not dangling


@pytest.mark.parametrize("directory", PACKAGE_DIRS)
def test_package_dirs_exist(directory: str) -> None:
    assert (PROJECT_ROOT / directory / "__init__.py").is_file()
