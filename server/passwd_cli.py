"""``virtwire passwd USER``: set (or --delete) a SASL user's keys in the users file.

The password is read from the terminal (asked twice) or, when standard input is
not a terminal, from its first line, so scripts can pipe it in.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from virtwire.protocol import sasl

from . import credentials


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("passwd", help="set a SASL user's password for `virtwire serve --auth-* sasl`")
    p.add_argument("user", metavar="USER")
    p.add_argument(
        "--file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the users file (default {credentials.default_path()}; serve: --sasl-users-file)",
    )
    p.add_argument("--delete", action="store_true", help="remove USER instead")
    p.add_argument(
        "--iterations",
        type=int,
        default=sasl.DEFAULT_ITERATIONS,
        metavar="N",
        help="PBKDF2 iterations of the salted keys (default %(default)s, as saslpasswd2)",
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again (for verification): "):
            raise SystemExit("virtwire passwd: the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    path: Path = args.file or credentials.default_path()
    if args.delete:
        if not credentials.delete_user(path, args.user):
            print(f"virtwire passwd: no user {args.user!r} in {path}", file=sys.stderr)
            return 1
        return 0
    if args.iterations < 1:
        print("virtwire passwd: --iterations must be at least 1", file=sys.stderr)
        return 2
    password = _read_password()
    if not password:
        print("virtwire passwd: empty password refused", file=sys.stderr)
        return 2
    try:
        credentials.set_password(path, args.user, password, args.iterations)
    except ValueError as exc:
        print(f"virtwire passwd: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"virtwire passwd: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    return 0
