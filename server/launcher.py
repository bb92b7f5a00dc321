"""The `virtwire` command: `virtwire ssh-helper` starts without the daemon's imports.

ssh clients may run `virtwire ssh-helper URI` on every open, so that sub-command is
dispatched before `cli` (trio, the codec, the driver) is imported; everything else goes
to `cli.main`.
"""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["ssh-helper"]:
        from .sshhelper import main as ssh_helper_main

        return ssh_helper_main(argv[1:], prog="virtwire ssh-helper")
    from .cli import main as cli_main

    return cli_main(argv)
