"""SASL mechanisms in pure Python, both ends, without I/O: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN.

libvirt passes the mechanism's messages through AUTH_SASL_START/STEP untouched,
so these speak what Cyrus SASL 2.1.28 (Debian 12) speaks, byte for byte:

* SCRAM (RFC 5802/7677): the client sends the gs2 header ``n,,`` (``n,a=AUTHZ,``
  with an authorization id), a 24-byte nonce in base64 (32 characters), proves
  ``c=biws`` (no channel binding); the server answers its own 32 nonce characters,
  a salt as long as the hash and its iteration count (4096 from saslpasswd2), and
  at the end ``v=SIGNATURE``.  Passwords are taken as their UTF-8 bytes (Cyrus
  does no SASLprep).
* PLAIN (RFC 4616): ``authzid NUL authcid NUL password`` in the first message;
  the server is done at once and answers no data.

No mechanism here offers a security layer: every one has an SSF of 0 (see
``MECHANISMS``), which is what libvirt's plain-TCP rule (SSF >= 56) is checked
against.  The server side keeps no password: it checks against the salted keys
``ScramKeys`` (StoredKey, ServerKey), PLAIN included (derive and compare).  A
``PlainVerifier`` remembers, as a keyed hash, which PLAIN passwords already
matched which keys, so that a repeat login skips the derivation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

SCRAM_SHA_256: Final = "SCRAM-SHA-256"
SCRAM_SHA_1: Final = "SCRAM-SHA-1"
PLAIN: Final = "PLAIN"

# name -> hash; in libvirt's (Cyrus's) order of preference.
SCRAM_HASHES: Final = {SCRAM_SHA_256: "sha256", SCRAM_SHA_1: "sha1"}
# name -> security strength factor of its layer (0: none).
MECHANISMS: Final = {SCRAM_SHA_256: 0, SCRAM_SHA_1: 0, PLAIN: 0}
# PLAIN sends the password itself: only where the channel already protects it.
NEEDS_SECURE_CHANNEL: Final = frozenset({PLAIN})

DEFAULT_ITERATIONS: Final = 4096  # saslpasswd2's
_NONCE_BYTES = 24  # 32 base64 characters, as Cyrus


class SaslError(Exception):
    """The exchange failed (bad message, wrong password, unknown user)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise SaslError("bad base64") from None


def _hmac(hash_name: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hash_name).digest()


def new_nonce() -> str:
    return _b64(os.urandom(_NONCE_BYTES))


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """What a server keeps of one password for one SCRAM hash."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def derive_keys(hash_name: str, password: str, salt: bytes, iterations: int) -> ScramKeys:
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8", "surrogateescape"), salt, iterations)
    client_key = _hmac(hash_name, salted, b"Client Key")
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = _hmac(hash_name, salted, b"Server Key")
    return ScramKeys(salt, iterations, stored_key, server_key)


def new_keys(hash_name: str, password: str, iterations: int = DEFAULT_ITERATIONS) -> ScramKeys:
    """Keys with a fresh salt as long as the hash (Cyrus's choice)."""
    salt = os.urandom(hashlib.new(hash_name).digest_size)
    return derive_keys(hash_name, password, salt, iterations)


def _escape_name(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _unescape_name(text: str) -> str:
    if "=" in text.replace("=3D", "").replace("=2C", ""):
        raise SaslError("bad saslname")
    return text.replace("=2C", ",").replace("=3D", "=")


def _attributes(message: str) -> list[tuple[str, str]]:
    out = []
    for part in message.split(","):
        key, eq, value = part.partition("=")
        if len(key) != 1 or not eq:
            raise SaslError(f"bad attribute {part!r}")
        out.append((key, value))
    return out


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("not UTF-8") from None


# --- client ----------------------------------------------------------------------------


class ScramClient:
    """One SCRAM exchange, client side: first() -> step(server_first) -> finish(server_final)."""

    def __init__(
        self, mech: str, authcid: str, password: str, authzid: str = "", nonce: str | None = None
    ) -> None:
        self.hash_name = SCRAM_HASHES[mech]
        self.password = password
        self.gs2_header = f"n,{'a=' + _escape_name(authzid) if authzid else ''},"
        self.nonce = nonce if nonce is not None else new_nonce()
        self.first_bare = f"n={_escape_name(authcid)},r={self.nonce}"
        self._server_signature: bytes | None = None

    def first(self) -> bytes:
        return (self.gs2_header + self.first_bare).encode("utf-8")

    def step(self, server_first: bytes) -> bytes:
        text = _text(server_first)
        attrs = dict(_attributes(text))
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        if "e" in attrs:
            raise SaslError(f"server error: {attrs['e']}")
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce) or salt is None:
            raise SaslError("bad server-first-message")
        if not iterations.isdigit() or int(iterations) < 1:
            raise SaslError("bad iteration count")
        keys_salt = _unb64(salt)
        without_proof = f"c={_b64(self.gs2_header.encode('utf-8'))},r={nonce}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        h = self.hash_name
        salted = hashlib.pbkdf2_hmac(
            h, self.password.encode("utf-8", "surrogateescape"), keys_salt, int(iterations)
        )
        client_key = _hmac(h, salted, b"Client Key")
        stored_key = hashlib.new(h, client_key).digest()
        signature = _hmac(h, stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(h, _hmac(h, salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode()

    def finish(self, server_final: bytes) -> None:
        """Mutual authentication: the server must prove it knows the keys too."""
        attrs = dict(_attributes(_text(server_final)))
        if "e" in attrs:
            raise SaslError(f"server error: {attrs['e']}")
        expected = self._server_signature
        if expected is None or not hmac.compare_digest(_unb64(attrs.get("v", "")), expected):
            raise SaslError("server signature mismatch")


def plain_message(authcid: str, password: str, authzid: str = "") -> bytes:
    return f"{authzid}\0{authcid}\0{password}".encode("utf-8", "surrogateescape")


# --- server ----------------------------------------------------------------------------

# (user, mechanism) -> the user's keys for that mechanism's hash, or None: unknown.
KeyLookup = Callable[[str, str], ScramKeys | None]


@dataclass(slots=True)
class ServerStep:
    """What the server answers: data (None: nothing) and whether it is done."""

    data: bytes | None
    complete: bool


class ScramServer:
    """One SCRAM exchange, server side: start(client_first) -> step(client_final)."""

    # Asked to start without the client's first message, Cyrus answers no data.
    empty_challenge: bytes | None = None

    def __init__(self, mech: str, lookup: KeyLookup) -> None:
        self.mech = mech
        self.hash_name = SCRAM_HASHES[mech]
        self.lookup = lookup
        self.username: str | None = None
        self._state: tuple[ScramKeys, str, str, str] | None = None  # keys, gs2, nonce, auth prefix

    def start(self, data: bytes | None) -> ServerStep:
        if not data:
            raise SaslError("SCRAM needs an initial client message")
        text = _text(data)
        flag, sep, rest = text.partition(",")
        authz, sep2, bare = rest.partition(",")
        if not sep or not sep2 or flag not in ("n", "y"):
            raise SaslError("channel binding is not supported")  # "p=..." or garbage
        if authz and not authz.startswith("a="):
            raise SaslError("bad gs2 header")
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise SaslError("bad client-first-message")
        user = _unescape_name(attrs[0][1])
        keys = self.lookup(user, self.mech)
        if keys is None:
            raise SaslError(f"unknown user {user!r}")  # Cyrus fails here too (at START)
        nonce = attrs[1][1] + new_nonce()
        server_first = f"r={nonce},s={_b64(keys.salt)},i={keys.iterations}"
        self.username = user
        self._state = (keys, f"{flag},{authz},", nonce, f"{bare},{server_first}")
        return ServerStep(server_first.encode(), False)

    def step(self, data: bytes | None) -> ServerStep:
        if self._state is None or not data:
            raise SaslError("unexpected step")
        keys, gs2, nonce, prefix = self._state
        self._state = None
        text = _text(data)
        without_proof, sep, proof_part = text.rpartition(",p=")
        attrs = dict(_attributes(without_proof)) if sep else {}
        if attrs.get("c") != _b64(gs2.encode("utf-8")) or attrs.get("r") != nonce:
            raise SaslError("bad client-final-message")
        proof = _unb64(proof_part)
        h = self.hash_name
        signature = _hmac(h, keys.stored_key, f"{prefix},{without_proof}".encode())
        if len(proof) != len(signature):
            raise SaslError("bad proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(h, client_key).digest(), keys.stored_key):
            raise SaslError("wrong password")
        server_signature = _hmac(h, keys.server_key, f"{prefix},{without_proof}".encode())
        return ServerStep(f"v={_b64(server_signature)}".encode(), True)


PLAIN_VERIFIER_CAPACITY: Final = 1024


class PlainVerifier:
    """Which PLAIN passwords already matched which stored keys, for one server process.

    Checking a PLAIN password means PBKDF2 with the stored salt (4096 rounds,
    milliseconds); Cyrus' sasldb keeps the password and just compares.  This
    remembers, per (user, mechanism), the keys a password matched and an
    HMAC-SHA256 of that password under a random per-process secret (never the
    password), so that the same right password against the same keys is
    confirmed at the cost of one HMAC.  Other keys (a changed users file), another
    password or an unknown user miss and take the full derivation, so guessing
    costs what it did.  At most ``capacity`` entries; the oldest goes first.
    Thread-safe: a miss is checked, and then remembered, off the event loop.
    """

    def __init__(self, capacity: int = PLAIN_VERIFIER_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._secret = os.urandom(32)
        self._matched: dict[tuple[str, str], tuple[ScramKeys, bytes]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._matched)

    def _tag(self, password: bytes) -> bytes:
        return hmac.new(self._secret, password, "sha256").digest()

    def known(self, user: str, mech: str, keys: ScramKeys, password: bytes) -> bool:
        """True when this password was seen to match exactly these keys."""
        entry = self._matched.get((user, mech))
        return entry is not None and entry[0] == keys and hmac.compare_digest(entry[1], self._tag(password))

    def remember(self, user: str, mech: str, keys: ScramKeys, password: bytes) -> None:
        """Note that the password matched these keys (replaces what was known of the user)."""
        tag = self._tag(password)
        with self._lock:
            matched = self._matched
            matched.pop((user, mech), None)
            while len(matched) >= self.capacity:
                del matched[next(iter(matched))]
            matched[(user, mech)] = (keys, tag)


class PlainServer:
    """PLAIN, checked against the stored SCRAM keys (derive with the stored salt, compare).

    With a ``verifier``, ``start_known`` confirms a password already checked
    without deriving, and ``start`` records the passwords it confirms.
    """

    # Asked to start without the client's message, Cyrus answers empty data.
    empty_challenge: bytes | None = b""

    def __init__(self, lookup: KeyLookup, verifier: PlainVerifier | None = None) -> None:
        self.lookup = lookup
        self.verifier = verifier
        self.username: str | None = None

    @staticmethod
    def _parse(data: bytes | None) -> tuple[str, str, bytes]:
        parts = (data or b"").split(b"\0")
        if len(parts) != 3:
            raise SaslError("bad PLAIN message")
        authzid, authcid = (p.decode("utf-8", "surrogateescape") for p in parts[:2])
        return authzid, authcid, parts[2]

    def _accept(self, authzid: str, authcid: str) -> ServerStep:
        if authzid and authzid != authcid:
            raise SaslError("proxy authorization is not allowed")
        self.username = authcid
        return ServerStep(None, True)

    def _user_keys(self, authcid: str) -> tuple[str, str, ScramKeys] | None:
        """The first mechanism (in preference order) the user has keys for."""
        for mech, hash_name in SCRAM_HASHES.items():
            keys = self.lookup(authcid, mech)
            if keys is not None:
                return mech, hash_name, keys
        return None

    def start_known(self, data: bytes | None) -> ServerStep | None:
        """``start``'s answer when the verifier already knows this password; else None.

        Cheap (no derivation): None for anything that ``start`` must decide, a
        wrong or new password and an unknown user included.
        """
        if self.verifier is None:
            return None
        authzid, authcid, password = self._parse(data)
        found = self._user_keys(authcid)
        if found is None or not self.verifier.known(authcid, found[0], found[2], password):
            return None
        return self._accept(authzid, authcid)

    def start(self, data: bytes | None) -> ServerStep:
        authzid, authcid, password = self._parse(data)
        found = self._user_keys(authcid)
        if found is None:
            raise SaslError(f"unknown user {authcid!r}")
        mech, hash_name, keys = found
        text = password.decode("utf-8", "surrogateescape")
        derived = derive_keys(hash_name, text, keys.salt, keys.iterations)
        if not hmac.compare_digest(derived.stored_key, keys.stored_key):
            raise SaslError("wrong password")
        if self.verifier is not None:
            self.verifier.remember(authcid, mech, keys, password)
        return self._accept(authzid, authcid)

    def step(self, data: bytes | None) -> ServerStep:
        raise SaslError("unexpected step")


ServerMechanism = ScramServer | PlainServer


def server_mechanism(
    mech: str, lookup: KeyLookup, plain_verifier: PlainVerifier | None = None
) -> ServerMechanism:
    if mech in SCRAM_HASHES:
        return ScramServer(mech, lookup)
    if mech == PLAIN:
        return PlainServer(lookup, plain_verifier)
    raise SaslError(f"mechanism {mech} is not available")
