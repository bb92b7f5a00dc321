"""Where `virtwire serve` puts its default unix sockets, and where `virt-ssh-helper` looks.

One place for both, so a helper started by sshd finds the daemon that serves
by default. VIRTWIRE_RUNTIME_DIR overrides the choice (tests, several daemons).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

RUNTIME_DIR_ENV = "VIRTWIRE_RUNTIME_DIR"


def runtime_dir() -> Path:
    """$VIRTWIRE_RUNTIME_DIR, else /run/virtwire as root, else $XDG_RUNTIME_DIR/virtwire."""
    override = os.environ.get(RUNTIME_DIR_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/virtwire")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "virtwire"
    return Path(tempfile.gettempdir()) / f"virtwire-{os.geteuid()}"
