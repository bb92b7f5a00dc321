"""SCRAM and PLAIN (protocol/sasl.py) against the RFCs' own exchanges."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from virtwire.protocol import sasl

# RFC 5802 section 5 (SHA-1) and RFC 7677 section 3 (SHA-256): user "user", password "pencil".
VECTORS = [
    (
        sasl.SCRAM_SHA_1,
        "fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "QSXCR+Q6sek8bf92",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    (
        sasl.SCRAM_SHA_256,
        "rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
]


@pytest.mark.parametrize(("mech", "cnonce", "snonce", "salt", "client_final", "server_final"), VECTORS)
def test_rfc_exchange_both_ends(
    monkeypatch: pytest.MonkeyPatch,
    mech: str,
    cnonce: str,
    snonce: str,
    salt: str,
    client_final: str,
    server_final: str,
) -> None:
    keys = sasl.derive_keys(sasl.SCRAM_HASHES[mech], "pencil", base64.b64decode(salt), 4096)
    client = sasl.ScramClient(mech, "user", "pencil", nonce=cnonce)
    first = client.first()
    assert first == f"n,,n=user,r={cnonce}".encode()
    monkeypatch.setattr(sasl, "new_nonce", lambda: snonce)
    server = sasl.ScramServer(mech, lambda user, m: keys if (user, m) == ("user", mech) else None)
    server_first = server.start(first)
    assert server_first == sasl.ServerStep(f"r={cnonce}{snonce},s={salt},i=4096".encode(), False)
    assert server_first.data is not None
    assert client.step(server_first.data) == client_final.encode()
    done = server.step(client_final.encode())
    assert done == sasl.ServerStep(server_final.encode(), True)
    client.finish(server_final.encode())  # the server proved itself
    assert server.username == "user"


def test_wrong_password_and_forged_server_are_refused() -> None:
    keys = sasl.new_keys("sha256", "right")
    lookup = {("alice", sasl.SCRAM_SHA_256): keys}.get

    def exchange(password: str) -> None:
        client = sasl.ScramClient(sasl.SCRAM_SHA_256, "alice", password)
        server = sasl.ScramServer(sasl.SCRAM_SHA_256, lambda u, m: lookup((u, m)))
        first = server.start(client.first()).data
        assert first is not None
        server.step(client.step(first))

    exchange("right")
    with pytest.raises(sasl.SaslError, match="wrong password"):
        exchange("wrong")
    client = sasl.ScramClient(sasl.SCRAM_SHA_256, "alice", "right")
    client.step(b"r=" + client.nonce.encode() + b"xyz,s=" + base64.b64encode(keys.salt) + b",i=4096")
    with pytest.raises(sasl.SaslError, match="signature"):
        client.finish(b"v=" + base64.b64encode(b"\0" * 32))


def test_server_rejects_bad_first_messages() -> None:
    server = sasl.ScramServer(sasl.SCRAM_SHA_1, lambda u, m: None)
    for bad in (b"", b"p=tls-unique,,n=a,r=x", b"n,,r=x", b"n,,n=a", b"\xff\xfe", b"n,,n=a,r=x"):
        with pytest.raises(sasl.SaslError):
            server.start(bad)


def test_names_with_comma_and_equals_are_escaped() -> None:
    client = sasl.ScramClient(sasl.SCRAM_SHA_256, "a,b=c", "pw", authzid="z=1")
    assert client.first().startswith(b"n,a=z=3D1,n=a=2Cb=3Dc,r=")
    keys = sasl.new_keys("sha256", "pw", iterations=16)
    seen: list[str] = []

    def lookup(user: str, mech: str) -> sasl.ScramKeys:
        seen.append(user)
        return keys

    server = sasl.ScramServer(sasl.SCRAM_SHA_256, lookup)
    server.start(client.first())
    assert seen == ["a,b=c"]


def test_plain_checks_against_stored_keys_only() -> None:
    keys = {("bob", m): sasl.new_keys(h, "pässwörd", iterations=64) for m, h in sasl.SCRAM_HASHES.items()}
    server = sasl.PlainServer(lambda u, m: keys.get((u, m)))
    assert server.start(sasl.plain_message("bob", "pässwörd")) == sasl.ServerStep(None, True)
    assert server.username == "bob"
    for message in (
        sasl.plain_message("bob", "password"),
        sasl.plain_message("eve", "pässwörd"),
        sasl.plain_message("bob", "pässwörd", authzid="root"),
        b"bob\0only-two-fields",
    ):
        with pytest.raises(sasl.SaslError):
            sasl.PlainServer(lambda u, m: keys.get((u, m))).start(message)


@given(first=st.binary(max_size=200), final=st.binary(max_size=200))
def test_server_side_fails_only_with_sasl_error(first: bytes, final: bytes) -> None:
    """Whatever a client sends, the server mechanisms answer or raise SaslError."""
    keys = sasl.derive_keys("sha1", "pw", b"salt", 2)
    for server in (
        sasl.ScramServer(sasl.SCRAM_SHA_1, lambda u, m: keys),
        sasl.PlainServer(lambda u, m: keys if m == sasl.SCRAM_SHA_1 else None),
    ):
        try:
            server.start(first)
            server.step(final)
        except sasl.SaslError:
            pass


@given(data=st.binary(max_size=200))
def test_client_side_fails_only_with_sasl_error(data: bytes) -> None:
    client = sasl.ScramClient(sasl.SCRAM_SHA_256, "u", "p")
    try:
        client.step(data.replace(b"i=", b"i=1"))
        client.finish(data)
    except sasl.SaslError:
        pass
