"""The package as users get it: the sdist and wheel `python -m build` makes, installed.

scripts/packaging.sh builds both once (in a copy of the source tree, so the
build leaves no build/ or *.egg-info in the checkout) and installs the wheel in
a fresh venv on Python 3.11, 3.12 and 3.13, running a few tests there against
the installed copy (here a smoke subset: the full subset is the script's
default).  The tests below then look into that wheel, installed into one more
venv that sees the project venv's site-packages through a .pth line (so trio
and xdrlib3 come from there and nothing is downloaded). Lines in a .pth only
extend sys.path; the project venv's own .pth hooks (the editable install's
finder) do not run, so `import virtwire` can only find the wheel's copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from vwtestkit import PROJECT_ROOT

SUBPACKAGE_DIRS = ("protocol", "client", "server")
PYTHONS = ("3.11", "3.12", "3.13")
# Per Python, kept small (each run pays pytest's and the server's start-up): the
# installed program end to end with our client, and the package data.
SMOKE_TESTS = (
    "tests/server/test_serve_smoke.py",
    "tests/server/test_systemd.py::test_package_ships_the_sample_config",
)
PACKAGE_DATA = (
    "virtwire/py.typed",
    "virtwire/server/data/libvirtd.conf",
    "virtwire/server/data/systemd/virtwire.service",
    "virtwire/server/data/systemd/virtwire.socket",
    "virtwire/server/data/systemd/virtwire-ro.socket",
    "virtwire/server/data/systemd/virtwire-admin.socket",
    "virtwire/server/data/systemd/virtwire-tcp.socket",
    "virtwire/server/data/systemd/virtwire-tls.socket",
    # libvirt's schemas, behind the VALIDATE flags (server/xmlschema.py).
    "virtwire/server/data/schemas/domain.rng",
    "virtwire/server/data/schemas/domaincommon.rng",
    "virtwire/server/data/schemas/README.md",
    "virtwire/protocol/generated/remote.py",
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc.stdout


@pytest.fixture(scope="module")
def packaging_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(directory with the built sdist and wheel, scripts/packaging.sh's output)."""
    dist = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PIP_REQUIRE_VIRTUALENV"}}
    env["VIRTWIRE_DIST_DIR"] = str(dist)
    env["VIRTWIRE_PACKAGING_TESTS"] = " ".join(SMOKE_TESTS)
    proc = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "packaging.sh"), *PYTHONS],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"scripts/packaging.sh exited {proc.returncode}:\n{output}", pytrace=False)
    return dist, output


@pytest.fixture(scope="module")
def installed(packaging_run: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of a fresh venv with the built wheel installed, its site-packages)."""
    dist, _output = packaging_run
    base = tmp_path_factory.mktemp("packaging")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=base).strip()
    )
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PIP_REQUIRE_VIRTUALENV"}}
    wheel = next(dist.glob("virtwire-*-py3-none-any.whl"))
    _run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
            "install", "--no-deps", "--no-index", str(wheel),
        ],
        cwd=base,
        env=env,
    )  # fmt: skip
    return python, site


def test_wheel_passes_on_every_python(packaging_run: tuple[Path, str]) -> None:
    _dist, output = packaging_run
    for version in PYTHONS:
        assert f"Python {version}: PASSED" in output, output
    assert f"PASSED on Python {' '.join(PYTHONS)}" in output


def test_wheel_and_sdist_carry_generated_code_and_package_data(packaging_run: tuple[Path, str]) -> None:
    dist, _output = packaging_run
    with zipfile.ZipFile(next(dist.glob("virtwire-*.whl"))) as wheel:
        in_wheel = set(wheel.namelist())
    assert not [name for name in PACKAGE_DATA if name not in in_wheel], sorted(in_wheel)
    with tarfile.open(next(dist.glob("virtwire-*.tar.gz"))) as sdist:
        in_sdist = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    # The sources the generated codec comes from travel with it.
    for name in (
        "pyproject.toml",
        "README.md",
        "server/data/systemd/virtwire.service",
        "server/data/schemas/domain.rng",
        "spec/remote.x",
    ):
        assert name in in_sdist, (name, sorted(in_sdist))


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


def test_console_script_points_at_server_launcher(installed: tuple[Path, Path]) -> None:
    python, _site = installed
    script = python.parent / "virtwire"
    assert script.is_file()
    assert "from virtwire.server.launcher import main" in script.read_text()
    helped = subprocess.run([str(script), "ssh-helper", "--help"], capture_output=True, text=True, check=True)
    assert helped.stdout.startswith("Usage:\n  virtwire ssh-helper")


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
