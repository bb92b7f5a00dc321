"""`virtwire passwd` and the users file: salted keys only, rereading, deleting."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from virtwire.protocol import sasl
from virtwire.server import credentials


def _passwd(*args: str, password: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtwire.server", "passwd", *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_passwd_writes_salted_keys_never_the_password(tmp_path: Path) -> None:
    users = tmp_path / "users"
    assert _passwd("alice", "--file", str(users), password="s3cret-Passw0rd").returncode == 0
    text = users.read_text()
    assert "s3cret" not in text and base64.b64encode(b"s3cret-Passw0rd").decode() not in text
    assert users.stat().st_mode & 0o777 == 0o600
    lines = text.splitlines()
    assert [line.split(":")[:3] for line in lines] == [
        ["alice", "SCRAM-SHA-256", "4096"],
        ["alice", "SCRAM-SHA-1", "4096"],
    ]
    store = credentials.CredentialStore(users)
    for mech, hash_name in sasl.SCRAM_HASHES.items():
        keys = store.lookup("alice", mech)
        assert keys is not None
        assert len(keys.salt) == len(keys.stored_key)  # as long as the hash, as Cyrus
        assert sasl.derive_keys(hash_name, "s3cret-Passw0rd", keys.salt, keys.iterations) == keys
    # A new password replaces the old lines; the store sees it without a restart.
    assert _passwd("alice", "--file", str(users), "--iterations", "5000", password="other").returncode == 0
    keys = store.lookup("alice", sasl.SCRAM_SHA_256)
    assert keys is not None and keys.iterations == 5000
    assert len(users.read_text().splitlines()) == 2
    assert _passwd("alice", "--file", str(users), "--delete").returncode == 0
    assert store.lookup("alice", sasl.SCRAM_SHA_256) is None
    refused = _passwd("alice", "--file", str(users), "--delete")
    assert refused.returncode == 1 and "no user 'alice'" in refused.stderr


def test_bad_names_and_lines(tmp_path: Path) -> None:
    users = tmp_path / "users"
    assert "user name" in _passwd("a:b", "--file", str(users), password="x").stderr
    assert "empty password" in _passwd("bob", "--file", str(users), password="").stderr
    users.write_text("# comment\nbroken line\nbob:SCRAM-SHA-256:4096:!!:AA==:AA==\n")
    assert credentials.CredentialStore(users).lookup("bob", sasl.SCRAM_SHA_256) is None
    assert credentials.CredentialStore(tmp_path / "missing").lookup("bob", sasl.SCRAM_SHA_256) is None


def test_startup_warns_about_sasl_that_cannot_work(tmp_path: Path) -> None:
    from virtwire.server.auth import auth_warnings
    from virtwire.server.config import Endpoint, ServerConfig

    users = tmp_path / "users"
    tcp = ServerConfig(tcp=[Endpoint("127.0.0.1", 0)], auth_tcp="sasl", sasl_users_file=users)
    problems = auth_warnings(tcp)
    assert len(problems) == 2
    assert "SSF >= 56" in problems[0] and "virtwire passwd" in problems[1]
    credentials.set_password(users, "alice", "pw", iterations=16)
    unix = ServerConfig(unix=[tmp_path / "s"], auth_unix_rw="sasl", sasl_users_file=users)
    assert auth_warnings(unix) == []
