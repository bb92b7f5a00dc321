"""The SASL users file: salted SCRAM keys per user, never a password.

One line per user and mechanism (``virtwire passwd USER`` writes them)::

    USER:MECHANISM:ITERATIONS:SALT:STOREDKEY:SERVERKEY      (the last three in base64)

``#`` starts a comment.  A user name may hold any character but ``:`` and line
breaks.  The server rereads the file when it changes, so ``virtwire passwd``
takes effect for the next login without a restart.  The store also owns the
server's ``sasl.PlainVerifier`` (PLAIN passwords already checked against the
keys read here), so that a changed file's new keys are checked afresh.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import tempfile
from pathlib import Path

from virtwire.protocol import sasl

log = logging.getLogger(__name__)

_FIELDS = 6


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def format_line(user: str, mech: str, keys: sasl.ScramKeys) -> str:
    return ":".join(
        (user, mech, str(keys.iterations), _b64(keys.salt), _b64(keys.stored_key), _b64(keys.server_key))
    )


def parse(text: str) -> dict[tuple[str, str], sasl.ScramKeys]:
    """(user, mechanism) -> keys; malformed lines are skipped with a warning."""
    out: dict[tuple[str, str], sasl.ScramKeys] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(":", _FIELDS - 1)
        try:
            if len(parts) != _FIELDS or parts[1] not in sasl.SCRAM_HASHES:
                raise ValueError("expected USER:MECHANISM:ITERATIONS:SALT:STOREDKEY:SERVERKEY")
            user, mech, iterations, salt, stored, server = parts
            keys = sasl.ScramKeys(
                base64.b64decode(salt, validate=True),
                int(iterations),
                base64.b64decode(stored, validate=True),
                base64.b64decode(server, validate=True),
            )
        except (ValueError, binascii.Error) as exc:
            log.warning("SASL users file, line %d: %s", number, exc)
            continue
        out[(user, mech)] = keys
    return out


class CredentialStore:
    """The users file of a server, reread when its modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.plain_verifier = sasl.PlainVerifier()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[tuple[str, str], sasl.ScramKeys] = {}

    def lookup(self, user: str, mech: str) -> sasl.ScramKeys | None:
        self._refresh()
        return self._keys.get((user, mech))

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except OSError:
            if self._stamp is not None or not self._keys:
                log.warning("SASL users file %s is missing: no user can log in", self.path)
            self._stamp, self._keys = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._keys = parse(self.path.read_text(encoding="utf-8", errors="surrogateescape"))
            self._stamp = stamp


def set_password(path: Path, user: str, password: str, iterations: int = sasl.DEFAULT_ITERATIONS) -> None:
    """Add or replace USER's keys (one line per SCRAM hash), atomically."""
    if not user or ":" in user or "\n" in user or "\r" in user:
        raise ValueError("a user name must be non-empty and hold no ':' or line break")
    kept = _lines_without(path, user)
    for mech, hash_name in sasl.SCRAM_HASHES.items():
        kept.append(format_line(user, mech, sasl.new_keys(hash_name, password, iterations)))
    _write(path, kept)


def delete_user(path: Path, user: str) -> bool:
    """Remove USER; False when it was not there."""
    before = _lines(path)
    kept = _lines_without(path, user)
    if len(kept) == len(before):
        return False
    _write(path, kept)
    return True


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        return []


def _lines_without(path: Path, user: str) -> list[str]:
    return [line for line in _lines(path) if line.rsplit(":", _FIELDS - 1)[0] != user]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)  # keys let an attacker test guesses offline: owner only
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("".join(line + "\n" for line in lines))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_path() -> Path:
    """Where `virtwire passwd` and `virtwire serve` look without --file/--sasl-users-file."""
    if os.geteuid() == 0:
        return Path("/etc/virtwire/sasl-users")
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config_home) / "virtwire" / "sasl-users"
