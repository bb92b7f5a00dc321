"""The client half of authentication, as libvirt's remote driver runs it.

src/remote/remote_driver.c, remoteAuthenticate and remoteAuthSASL: after
AUTH_LIST the URI's ``?auth=`` (``sasl``, ``sasl.MECH``, ``polkit``) may pick
a type, else the server's first one is used.  SASL then goes INIT (the
server's mechanism list), START with the chosen mechanism's first message,
STEP until both sides are complete; the client always checks the server's
last message (SCRAM's mutual authentication).

Credentials are gathered as libvirt does with Cyrus SASL: the mechanism asks
for an authorization name (only if the caller's credential types include
VIR_CRED_USERNAME), an authentication name (VIR_CRED_AUTHNAME; without it,
$USER) and a password (VIR_CRED_PASSPHRASE; without it no mechanism is usable).
auth.conf answers first (authconf.py); what it leaves open goes to the
caller's callback in one list, in libvirt-python's form
``[type, prompt, challenge, defresult, result]``.

On a channel that is not secure (plain TCP) a mechanism must bring a security
layer of SSF >= 56; none of ours does, so there SASL fails before START, with
Cyrus's words.  Errors carry libvirt's codes, domains and messages.
"""

from __future__ import annotations

import array
import os
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from virtwire.client import ops
from virtwire.client.uri import Target, query_params
from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as c

# The SASL mechanisms (virtwire.protocol.sasl: hashlib, hmac, base64) and auth.conf
# (authconf: configparser) are imported by the functions that need them: most
# connections never authenticate, and every client program imports this module.

AUTH_NONE: Final = 0
AUTH_SASL: Final = 1
AUTH_POLKIT: Final = 2
MIN_SSF: Final = 56  # "Equiv to DES supported by all Kerberos"

# What Cyrus's plugins ask, in their order: credential type, prompt, challenge, auth.conf key.
_PROMPTS: Final = (
    (c.VIR_CRED_USERNAME, "Please enter your authorization name", "Authorization Name", "username"),
    (c.VIR_CRED_AUTHNAME, "Please enter your authentication name", "Authentication Name", "authname"),
    (c.VIR_CRED_PASSPHRASE, "Please enter your password", "Password", "password"),
)

# The flows here yield the Ops to run on the connection being opened; flows.py
# turns them into its Steps.
OpFlow = Generator[ops.Op, Any, Any]


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What authentication needs to know about the connection being opened."""

    uri: str  # as the caller gave it: ?auth= and ?authfile= are read from it
    server: str | None  # the host, for auth.conf (None: "localhost")
    secure: bool  # TLS, unix, ssh: no SASL security layer needed
    auth: Sequence[Any] | None = None  # libvirt-python's [credtypes, callback, cbdata]


def request_for(target: Target, auth: Sequence[Any] | None = None) -> AuthRequest:
    """The AuthRequest of a parsed URI (libvirt's priv->is_secure: tls, unix, ssh)."""
    return AuthRequest(target.uri, target.host or None, target.secure_transport, auth)


def _remote(detail: str) -> E.libvirtError:
    return E.make_error(c.VIR_ERR_AUTH_FAILED, c.VIR_FROM_REMOTE, detail)


def _no_worthy_mechs() -> E.libvirtError:
    # Cyrus's sasl_client_start, as virNetSASLSessionClientStart reports it.
    return E.make_error(
        c.VIR_ERR_AUTH_FAILED,
        c.VIR_FROM_RPC,
        "Failed to start SASL negotiation: -4 (SASL(-4): no mechanism available: No worthy mechs found)",
    )


def _step_failed(why: str) -> E.libvirtError:
    return E.make_error(
        c.VIR_ERR_AUTH_FAILED,
        c.VIR_FROM_RPC,
        f"Failed to step SASL negotiation: -1 (SASL(-1): generic failure: {why})",
    )


def authenticate(types: list[int], request: AuthRequest) -> OpFlow:
    """remoteAuthenticate after AUTH_LIST; returns True when a SASL session was set up."""
    if not types:
        return False
    params = query_params(request.uri)
    authtype = params.get("auth")
    if authtype:
        lowered = authtype.lower()
        if lowered == "sasl" or lowered.startswith("sasl."):
            want = AUTH_SASL
        elif lowered == "polkit":
            want = AUTH_POLKIT
        else:
            raise _remote(f"unknown authentication type {authtype}")
        if want not in types:
            raise _remote(f"requested authentication type {authtype} rejected")
        kind = want
    else:
        kind = types[0]
    if kind == AUTH_SASL:
        mech = authtype[5:] if authtype and authtype.lower().startswith("sasl.") else None
        yield from sasl_exchange(request, mech, params)
        return True
    if kind == AUTH_POLKIT:
        yield ops.Op("AUTH_POLKIT")
        return False
    if kind != AUTH_NONE:
        raise _remote(f"unsupported authentication type {kind}")
    return False


def _usable(request: AuthRequest) -> list[str]:
    """Mechanisms this client could run with the credentials the caller can give."""
    auth = request.auth
    credtypes = list(auth[0]) if auth else []
    if c.VIR_CRED_PASSPHRASE not in credtypes:
        return []  # every mechanism here needs a password: Cyrus finds none "worthy"
    from virtwire.protocol import sasl

    usable = []
    # Our preference when the server offers several (Cyrus picks SCRAM-SHA-256 first too).
    for mech in (sasl.SCRAM_SHA_256, sasl.SCRAM_SHA_1, sasl.PLAIN):
        if not request.secure and sasl.MECHANISMS[mech] < MIN_SSF:
            continue
        usable.append(mech)
    return usable


def _credentials(request: AuthRequest, params: dict[str, str]) -> tuple[str, str, str]:
    """(authzid, authcid, password): auth.conf first, then the caller's callback."""
    auth = request.auth
    assert auth is not None
    credtypes = list(auth[0])
    wanted = [p for p in _PROMPTS if p[0] in credtypes]
    from virtwire.client import authconf

    answers: dict[int, str] = {}
    path = authconf.config_path(params)
    if path is not None:
        config = authconf.load(path)
        for credtype, _, _, key in wanted:
            value = config.lookup("libvirt", request.server, key)
            if value is not None:
                answers[credtype] = value
    missing = [p for p in wanted if p[0] not in answers]
    if missing:
        callback: Callable[..., Any] | None = auth[1] if len(auth) > 1 else None
        if callback is None:
            raise _remote("No authentication callback available")
        creds = [[credtype, prompt, challenge, None, None] for credtype, prompt, challenge, _ in missing]
        try:
            status = callback(creds, auth[2] if len(auth) > 2 else None)
        except Exception:
            traceback.print_exc()  # as libvirt-python (PyErr_Print), then a failed callback
            status = -1
        if status != 0:
            raise _remote("Failed to collect auth credentials")
        for (credtype, *_), cred in zip(missing, creds, strict=True):
            answers[credtype] = "" if cred[4] is None else str(cred[4])
    authcid = answers.get(c.VIR_CRED_AUTHNAME)
    if authcid is None:
        authcid = os.environ.get("USER") or os.environ.get("USERNAME") or ""
    return answers.get(c.VIR_CRED_USERNAME, ""), authcid, answers.get(c.VIR_CRED_PASSPHRASE, "")


def _reply(ret: Any) -> tuple[bool, bytes | None]:
    if ret.nil:
        return bool(ret.complete), None
    chars = ret.data
    try:
        # XDR chars are signed: array("b") takes them as they come, in C.
        data = array.array("b", chars).tobytes()
    except OverflowError:  # a server sending ints outside a char: keep their low byte
        data = bytes(ch & 0xFF for ch in chars)
    return bool(ret.complete), data


def _chars(data: bytes | None) -> list[int]:
    """Bytes as XDR's signed chars (libvirt's `char data<>`), converted in C."""
    return memoryview(data).cast("b").tolist() if data else []


class _ClientMechanism:
    """A mechanism's client side as Cyrus's start/step: each returns (data, complete)."""

    def __init__(self, mech: str, authzid: str, authcid: str, password: str) -> None:
        from virtwire.protocol import sasl

        self.mech = mech
        self._scram = (
            sasl.ScramClient(mech, authcid, password, authzid) if mech in sasl.SCRAM_HASHES else None
        )
        self._plain = sasl.plain_message(authcid, password, authzid)
        self._steps = 0

    def start(self) -> tuple[bytes | None, bool]:
        if self._scram is None:
            return self._plain, True
        return self._scram.first(), False

    def step(self, data: bytes | None) -> tuple[bytes | None, bool]:
        from virtwire.protocol import sasl

        self._steps += 1
        scram = self._scram
        try:
            if scram is None:
                raise sasl.SaslError("PLAIN expects no server data")
            if self._steps == 1:
                return scram.step(data or b""), False
            if self._steps == 2:
                scram.finish(data or b"")
                return None, True
            raise sasl.SaslError("unexpected server data")
        except sasl.SaslError as exc:
            raise _step_failed(str(exc)) from None


def sasl_exchange(request: AuthRequest, wantmech: str | None, params: dict[str, str]) -> OpFlow:
    """remoteAuthSASL: INIT, START, STEP... until both ends are complete."""
    mechlist: str = yield ops.Op("AUTH_SASL_INIT", None, ops.field("mechlist"))
    if wantmech:
        if wantmech not in mechlist:  # libvirt's strstr
            raise _remote(f"SASL mechanism {wantmech} not supported by server")
        mechlist = wantmech
    offered = mechlist.replace(",", " ").split()
    usable = _usable(request)
    chosen = next((m for m in usable if m in offered), None)
    if chosen is None:
        raise _no_worthy_mechs()
    authzid, authcid, password = _credentials(request, params)
    mech = _ClientMechanism(chosen, authzid, authcid, password)
    clientout, client_done = mech.start()
    complete, serverin = yield ops.call(
        "AUTH_SASL_START", _reply, mech=chosen, nil=int(clientout is None), data=_chars(clientout)
    )
    if complete and client_done:
        return
    while True:
        clientout, client_done = mech.step(serverin)
        if complete and client_done:
            return
        complete, serverin = yield ops.call(
            "AUTH_SASL_STEP", _reply, nil=int(clientout is None), data=_chars(clientout)
        )
        if complete and client_done:
            return
