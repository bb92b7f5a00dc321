"""The package as users get it: a real, non-editable `pip install .`.

The wheel is built from a copy of the source tree (so the build leaves no
build/ or *.egg-info in the checkout) into a fresh venv. That venv sees the
project venv's site-packages through a .pth line, so setuptools, trio and
xdrlib3 come from there and nothing is downloaded. Lines in a .pth only extend
sys.path; the project venv's own .pth hooks (the editable install's finder)
do not run, so `import virtwire` can only find the freshly installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from vwtestkit import PROJECT_ROOT

SUBPACKAGE_DIRS = ("protocol", "client", "server")
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".hypothesis", "tests", "bench",
)  # fmt: skip


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of a fresh venv with virtwire pip-installed from source, its site-packages)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    shutil.copytree(PROJECT_ROOT, source, ignore=COPY_IGNORE, symlinks=True)
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=base).strip()
    )
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PIP_REQUIRE_VIRTUALENV"}}
    _run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
            "install", "--no-deps", "--no-build-isolation", "--no-index", str(source),
        ],
        cwd=base,
        env=env,
    )  # fmt: skip
    return python, site


def test_installs_as_one_package_virtwire(installed: tuple[Path, Path], tmp_path: Path) -> None:
    python, site = installed
    out = _run(
        [
            str(python), "-I", "-c",
            "import virtwire, virtwire.protocol, virtwire.client, virtwire.server; "
            "print(virtwire.__file__); print(virtwire.protocol.__file__)",
        ],
        cwd=tmp_path,
    )  # fmt: skip
    root_init, protocol_init = (Path(line) for line in out.split())
    assert root_init == site / "virtwire" / "__init__.py"
    assert protocol_init == site / "virtwire" / "protocol" / "__init__.py"


def test_no_bare_top_level_names_installed(installed: tuple[Path, Path]) -> None:
    _python, site = installed
    assert not [name for name in SUBPACKAGE_DIRS if (site / name).exists()]
    records = next(site.glob("virtwire-*.dist-info")) / "RECORD"
    paths = [line.split(",")[0] for line in records.read_text().splitlines()]
    # "../../../bin/virtwire" is the console script, outside site-packages.
    tops = {path.split("/", 1)[0] for path in paths if not path.startswith("..")}
    assert {top for top in tops if not top.startswith("virtwire")} == set(), sorted(tops)


def test_console_script_points_at_server_cli(installed: tuple[Path, Path]) -> None:
    python, _site = installed
    script = python.parent / "virtwire"
    assert script.is_file()
    assert "from virtwire.server.cli import main" in script.read_text()


def test_every_subpackage_is_listed_and_installed(installed: tuple[Path, Path]) -> None:
    """A directory with __init__.py that pyproject forgot would silently be missing from the wheel."""
    _python, site = installed
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {"virtwire"}
    for top in SUBPACKAGE_DIRS:
        for init in (PROJECT_ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(PROJECT_ROOT).parts
            on_disk.add(".".join(("virtwire", *relative)))
    assert listed == on_disk, f"pyproject packages != dirs with __init__.py: {sorted(listed ^ on_disk)}"
    for name in on_disk:
        assert (site.joinpath(*name.split(".")) / "__init__.py").is_file(), name


IMPORT_ALL = """
import importlib, pkgutil, sys
import virtwire
failed = []
for info in pkgutil.walk_packages(virtwire.__path__, "virtwire."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # runs the program when imported
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_from_the_wheel(installed: tuple[Path, Path], tmp_path: Path) -> None:
    """Catches modules that need files the wheel does not carry (data, unlisted subpackages)."""
    python, _site = installed
    _run([str(python), "-I", "-c", IMPORT_ALL], cwd=tmp_path)


def test_type_information_ships(installed: tuple[Path, Path]) -> None:
    """PEP 561: type checkers use virtwire's annotations only with py.typed installed."""
    _python, site = installed
    assert (site / "virtwire" / "py.typed").is_file()
