"""PLAIN's verifier (protocol/sasl.py PlainVerifier): a repeat login with the same
right password against the same keys skips the key derivation; anything else
derives as before."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from virtwire.protocol import sasl

KeyTable = dict[tuple[str, str], sasl.ScramKeys]
# Taken before any test counts calls: making keys is not logging in.
_derive_uncounted = sasl.derive_keys


def _keys(user: str, password: str) -> KeyTable:
    """A users file's keys for one user: a fresh salt per hash."""
    return {
        (user, m): _derive_uncounted(h, password, os.urandom(16), 64) for m, h in sasl.SCRAM_HASHES.items()
    }


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The passwords derive_keys is called with, in order."""
    seen: list[str] = []
    real = sasl.derive_keys

    def counting(hash_name: str, password: str, salt: bytes, iterations: int) -> sasl.ScramKeys:
        seen.append(password)
        return real(hash_name, password, salt, iterations)

    monkeypatch.setattr(sasl, "derive_keys", counting)
    yield seen


def _login(table: KeyTable, verifier: sasl.PlainVerifier, message: bytes) -> sasl.ServerStep:
    """What the server does: the verifier's answer, or else the full check."""
    server = sasl.PlainServer(lambda u, m: table.get((u, m)), verifier)
    known = server.start_known(message)
    step = known if known is not None else server.start(message)
    assert server.username is not None
    return step


def test_repeat_login_skips_the_derivation(derivations: list[str]) -> None:
    table, verifier = _keys("bob", "pässwörd"), sasl.PlainVerifier()
    done = sasl.ServerStep(None, True)
    assert _login(table, verifier, sasl.plain_message("bob", "pässwörd")) == done
    assert derivations == ["pässwörd"]
    assert _login(table, verifier, sasl.plain_message("bob", "pässwörd")) == done
    assert _login(table, verifier, sasl.plain_message("bob", "pässwörd", authzid="bob")) == done
    assert derivations == ["pässwörd"]
    assert len(verifier) == 1


def test_wrong_password_after_a_right_one_is_refused(derivations: list[str]) -> None:
    table, verifier = _keys("bob", "right"), sasl.PlainVerifier()
    _login(table, verifier, sasl.plain_message("bob", "right"))
    for message in (sasl.plain_message("bob", "wrong"), sasl.plain_message("bob", "right ")):
        server = sasl.PlainServer(lambda u, m: table.get((u, m)), verifier)
        assert server.start_known(message) is None
        with pytest.raises(sasl.SaslError, match="wrong password"):
            server.start(message)
    # Each wrong guess took the full derivation, and the right password still works.
    assert derivations == ["right", "wrong", "right "]
    _login(table, verifier, sasl.plain_message("bob", "right"))
    assert derivations == ["right", "wrong", "right "]


def test_known_password_keeps_the_other_checks(derivations: list[str]) -> None:
    table, verifier = _keys("bob", "pw"), sasl.PlainVerifier()
    _login(table, verifier, sasl.plain_message("bob", "pw"))
    server = sasl.PlainServer(lambda u, m: table.get((u, m)), verifier)
    with pytest.raises(sasl.SaslError, match="proxy authorization"):
        server.start_known(sasl.plain_message("bob", "pw", authzid="root"))
    with pytest.raises(sasl.SaslError, match="bad PLAIN message"):
        server.start_known(b"bob\0pw")
    assert server.start_known(sasl.plain_message("eve", "pw")) is None
    assert server.username is None


def test_changed_keys_miss(derivations: list[str]) -> None:
    """New keys (a new salt: the users file changed) are checked afresh, old password refused."""
    table, verifier = _keys("bob", "old"), sasl.PlainVerifier()
    _login(table, verifier, sasl.plain_message("bob", "old"))
    table.update(_keys("bob", "new"))
    server = sasl.PlainServer(lambda u, m: table.get((u, m)), verifier)
    assert server.start_known(sasl.plain_message("bob", "old")) is None
    with pytest.raises(sasl.SaslError, match="wrong password"):
        server.start(sasl.plain_message("bob", "old"))
    _login(table, verifier, sasl.plain_message("bob", "new"))
    _login(table, verifier, sasl.plain_message("bob", "new"))
    assert derivations == ["old", "old", "new"]
    # The same password with a new salt is a miss too.
    table.update(_keys("bob", "new"))
    _login(table, verifier, sasl.plain_message("bob", "new"))
    assert derivations == ["old", "old", "new", "new"]


def test_the_bound_holds_and_the_oldest_goes(derivations: list[str]) -> None:
    verifier = sasl.PlainVerifier(capacity=3)
    table: KeyTable = {}
    users = [f"user{n}" for n in range(5)]
    for user in users:
        table.update(_keys(user, f"pw-{user}"))
        _login(table, verifier, sasl.plain_message(user, f"pw-{user}"))
    assert len(verifier) == 3
    derivations.clear()
    for user in reversed(users):  # the newest three first: known; then the evicted two
        _login(table, verifier, sasl.plain_message(user, f"pw-{user}"))
    assert derivations == ["pw-user1", "pw-user0"]
    assert len(verifier) == 3
    with pytest.raises(ValueError):
        sasl.PlainVerifier(capacity=0)


def test_the_verifier_keeps_no_password() -> None:
    table, verifier = _keys("bob", "hunter2"), sasl.PlainVerifier()
    _login(table, verifier, sasl.plain_message("bob", "hunter2"))
    held = repr(vars(verifier))
    assert "hunter2" not in held and b"hunter2".hex() not in held
    # Another process (another secret) does not recognise this one's entries.
    keys = table[("bob", sasl.SCRAM_SHA_256)]
    assert verifier.known("bob", sasl.SCRAM_SHA_256, keys, b"hunter2")
    assert not sasl.PlainVerifier().known("bob", sasl.SCRAM_SHA_256, keys, b"hunter2")


def test_without_a_verifier_every_login_derives(derivations: list[str]) -> None:
    table = _keys("bob", "pw")
    server = sasl.PlainServer(lambda u, m: table.get((u, m)))
    assert server.start_known(sasl.plain_message("bob", "pw")) is None
    server.start(sasl.plain_message("bob", "pw"))
    server.start(sasl.plain_message("bob", "pw"))
    assert derivations == ["pw", "pw"]
