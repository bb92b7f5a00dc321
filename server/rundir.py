"""Where `virtwire serve` puts its default unix sockets, and where `virt-ssh-helper` looks.

One place for both, so a helper started by sshd finds the daemon that serves
by default. VIRTWIRE_RUNTIME_DIR overrides the choice (tests, several daemons).
"""

from __future__ import annotations

import os

# Not typing's: virt-ssh-helper imports this module and typing alone would cost it
# more than the rest of its imports (mypy treats any TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

RUNTIME_DIR_ENV = "VIRTWIRE_RUNTIME_DIR"


def runtime_dir() -> Path:
    """$VIRTWIRE_RUNTIME_DIR, else /run/virtwire as root, else $XDG_RUNTIME_DIR/virtwire."""
    from pathlib import Path

    return Path(runtime_dir_name())


def runtime_dir_name() -> str:
    """runtime_dir() as a string, importing nothing: virt-ssh-helper starts on every ssh open."""
    override = os.environ.get(RUNTIME_DIR_ENV)
    if override:
        return override
    if os.geteuid() == 0:
        return "/run/virtwire"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "virtwire")
    import tempfile  # (only here: it costs more than the rest of the helper's imports)

    return os.path.join(tempfile.gettempdir(), f"virtwire-{os.geteuid()}")
