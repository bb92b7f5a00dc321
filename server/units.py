"""The sample systemd units and libvirtd.conf shipped in the package (server/data/).

``virtwire units DIR`` writes the unit files with ExecStart pointing at the
running installation (this interpreter, ``-m virtwire.server``), so a virtwire
installed in a virtualenv starts the same way as one in /usr/local.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

# What the shipped virtwire.service runs; replaced by the running installation.
SHIPPED_COMMAND = "/usr/local/bin/virtwire serve"


def data_dir() -> Traversable:
    from importlib import resources  # only when asked: it imports zipfile & co.

    return resources.files("virtwire.server") / "data"


def unit_files() -> dict[str, str]:
    """Unit name → text, as shipped."""
    units = data_dir() / "systemd"
    return {entry.name: entry.read_text() for entry in sorted(units.iterdir(), key=lambda e: e.name)}


def sample_config() -> str:
    """The sample libvirtd.conf for ``virtwire serve --config``."""
    return (data_dir() / "libvirtd.conf").read_text()


def this_installation() -> str:
    return shlex.join([sys.executable, "-m", "virtwire.server", "serve"])


def write_units(dest: Path, command: str | None = None) -> list[Path]:
    """Write every unit into ``dest`` (created), ExecStart running ``command``."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in unit_files().items():
        path = dest / name
        path.write_text(text.replace(SHIPPED_COMMAND, command or this_installation()))
        written.append(path)
    return written
