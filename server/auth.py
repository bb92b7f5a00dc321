"""Authentication of one connection: AUTH_LIST and SASL (AUTH_SASL_INIT/START/STEP).

Behaves as libvirtd 9.0 (remote_daemon_dispatch.c, remoteDispatchAuth*):

* the listener's auth method (``auth_tcp``, ``auth_tls``, ``auth_unix_rw``,
  ``auth_unix_ro``) decides whether a client must authenticate; until it has,
  only the AUTH_* procedures are served (dispatch.py: "authentication required");
* AUTH_SASL_INIT lists the mechanisms, comma-separated.  On a channel that is
  not secure (plain TCP: not TLS, not a unix socket) a mechanism must bring a
  security layer of SSF >= 56 (``TCP_MIN_SSF``, libvirtd's tcp_min_ssf default).
  None of ours does (sasl.MECHANISMS), so there, as with libvirtd and Cyrus'
  SCRAM, none is offered and INIT fails: SASL needs TLS or a unix socket;
* every failure, whatever its cause, answers VIR_ERR_AUTH_FAILED
  "authentication failed" and forgets the exchange (the client may start over
  with INIT on the same connection); the cause goes to the log only;
* on success the connection counts as authenticated (AUTH_LIST then answers
  "none"), and the SASL user name joins its identity.  ``sasl_allowed_username_list``
  patterns (fnmatch), when set, must match that name.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import TYPE_CHECKING, Final

import trio
from virtwire.protocol import errors as E
from virtwire.protocol import sasl
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

if TYPE_CHECKING:
    from .config import ServerConfig
    from .connection import Connection

log = logging.getLogger(__name__)

AUTH_NONE: Final = "none"
AUTH_SASL: Final = "sasl"
AUTH_METHODS: Final = (AUTH_NONE, AUTH_SASL)
TCP_MIN_SSF: Final = 56  # libvirtd.conf tcp_min_ssf's default ("good for Kerberos")

_DATA_MAX = R.REMOTE_AUTH_SASL_DATA_MAX


def auth_warnings(config: ServerConfig) -> list[str]:
    """What in a configuration keeps SASL clients out, said once at startup."""
    out = []
    if config.tcp and config.auth_tcp == AUTH_SASL and not offered_mechanisms(config.sasl_mech_list, False):
        out.append(
            "--auth-tcp sasl: no SASL mechanism here has a security layer, and libvirt requires "
            f"SSF >= {TCP_MIN_SSF} on plain TCP, so TCP clients cannot authenticate "
            "(as with libvirtd and SCRAM); use --tls with --auth-tls sasl, or a unix socket"
        )
    uses_sasl = AUTH_SASL in (config.auth_tcp, config.auth_tls, config.auth_unix_rw, config.auth_unix_ro)
    users = config.sasl_users_file
    if uses_sasl and (users is None or not users.exists()):
        out.append(f"SASL users file {users} does not exist yet: create users with `virtwire passwd USER`")
    return out


def auth_method(connection: Connection) -> str:
    """The auth method of the listener a connection came in on."""
    cfg = connection.service.config
    transport = connection.ctx.transport
    if transport == "tcp":
        return cfg.auth_tcp
    if transport == "tls":
        return cfg.auth_tls
    if transport == "unix":
        return cfg.auth_unix_ro if connection.readonly_socket else cfg.auth_unix_rw
    return AUTH_NONE


def is_secure(transport: str) -> bool:
    """virNetServerClientIsSecure: TLS and unix sockets protect what SASL sends."""
    return transport in ("tls", "unix")


def offered_mechanisms(configured: list[str], secure: bool) -> list[str]:
    """What INIT lists: configured mechanisms strong enough for the channel."""
    out = []
    for mech in configured:
        ssf = sasl.MECHANISMS.get(mech)
        if ssf is None:
            continue
        if not secure and (ssf < TCP_MIN_SSF or mech in sasl.NEEDS_SECURE_CHANNEL):
            continue
        out.append(mech)
    return out


def _to_chars(data: bytes) -> list[int]:
    """Bytes as rpcgen's ``char`` array: one signed value per byte, as x86's C char."""
    return [b - 256 if b > 127 else b for b in data]


def _from_chars(chars: list[int]) -> bytes:
    return bytes(c & 0xFF for c in chars)


def _failed() -> E.libvirtError:
    return E.make_error(C.VIR_ERR_AUTH_FAILED, C.VIR_FROM_RPC, "authentication failed")


class ConnectionAuth:
    """One connection's authentication state."""

    # One per connection, idle ones too: no instance dict.
    __slots__ = (
        "_awaiting_start", "_counted_anonymous", "_mechanisms", "_session", "authenticated", "connection",
        "method",
    )

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.method = auth_method(connection)
        self.authenticated = self.method == AUTH_NONE
        # Until it authenticates, a client counts against max_anonymous_clients, as
        # in libvirtd (nclients_unauth), alongside clients in the TLS handshake.
        self._counted_anonymous = not self.authenticated
        if self._counted_anonymous:
            connection.service.handshake_started()
        self._mechanisms: list[str] | None = None  # offered by INIT; None: no exchange going on
        self._session: sasl.ServerMechanism | None = None
        self._awaiting_start = False  # START came without data: the first STEP starts

    def release(self) -> None:
        """No longer anonymous: authenticated, or gone."""
        if self._counted_anonymous:
            self._counted_anonymous = False
            self.connection.service.handshake_done()

    def auth_types(self) -> list[R.remote_auth_type]:
        if self.authenticated or self.method == AUTH_NONE:
            return [R.remote_auth_type.REMOTE_AUTH_NONE]
        return [R.remote_auth_type.REMOTE_AUTH_SASL]

    def _fail(self, why: str, *, forget: bool = True) -> E.libvirtError:
        ctx = self.connection.ctx
        log.warning("client %s (%s): SASL authentication failed: %s", ctx.conn_id, ctx.peer, why)
        if forget:
            self._mechanisms = None
            self._session = None
            self._awaiting_start = False
        return _failed()

    def sasl_init(self) -> R.remote_auth_sasl_init_ret:
        if self.method != AUTH_SASL or self.authenticated or self._mechanisms is not None:
            # libvirtd keeps an exchange already under way when a second INIT fails.
            raise self._fail("invalid SASL init request", forget=False)
        cfg = self.connection.service.config
        offered = offered_mechanisms(cfg.sasl_mech_list, is_secure(self.connection.ctx.transport))
        if not offered:
            raise self._fail(
                "no SASL mechanism is available: plain TCP needs a security layer of SSF >= "
                f"{TCP_MIN_SSF}, which SCRAM and PLAIN do not have (use TLS or a unix socket)"
            )
        self._mechanisms = offered
        return R.remote_auth_sasl_init_ret(mechlist=",".join(offered))

    async def sasl_start(self, args: R.remote_auth_sasl_start_args) -> R.remote_auth_sasl_start_ret:
        if self.method != AUTH_SASL or self._mechanisms is None or self._session is not None:
            raise self._fail("invalid SASL start request")
        if args.mech not in self._mechanisms:
            raise self._fail(f"mechanism {args.mech!r} was not offered")
        credentials = self.connection.service.credentials
        session = sasl.server_mechanism(args.mech, credentials.lookup, credentials.plain_verifier)
        self._session = session
        if args.nil:
            # No initial response: as Cyrus, ask for it (PLAIN with an empty challenge,
            # SCRAM with none); the next STEP carries what START would have.
            self._awaiting_start = True
            challenge = session.empty_challenge
            return R.remote_auth_sasl_start_ret(
                complete=0, nil=int(challenge is None), data=_to_chars(challenge or b"")
            )
        step = await self._run(True, _from_chars(args.data))
        return R.remote_auth_sasl_start_ret(
            complete=int(step.complete), nil=int(step.data is None), data=_to_chars(step.data or b"")
        )

    async def sasl_step(self, args: R.remote_auth_sasl_step_args) -> R.remote_auth_sasl_step_ret:
        session = self._session
        if self.method != AUTH_SASL or session is None:
            raise self._fail("invalid SASL step request")
        data = None if args.nil else _from_chars(args.data)
        first, self._awaiting_start = self._awaiting_start, False
        step = await self._run(first, data)
        return R.remote_auth_sasl_step_ret(
            complete=int(step.complete), nil=int(step.data is None), data=_to_chars(step.data or b"")
        )

    async def _run(self, first: bool, data: bytes | None) -> sasl.ServerStep:
        """The session's start (first message) or step, failures as libvirtd answers them."""
        session = self._session
        assert session is not None
        fn = session.start if first else session.step
        try:
            if isinstance(session, sasl.PlainServer):
                # A password this server already checked against the same keys is
                # confirmed at once; anything else derives keys (PBKDF2, milliseconds)
                # off the event loop, so a password-guessing client does not hold up
                # everyone else.
                known = session.start_known(data) if first else None
                step = known if known is not None else await trio.to_thread.run_sync(fn, data)
            else:
                step = fn(data)
        except sasl.SaslError as exc:
            raise self._fail(str(exc)) from None
        if step.data is not None and len(step.data) > _DATA_MAX:
            raise self._fail("reply data too long")
        if step.complete:
            self._finish(session)
        return step

    def _finish(self, session: sasl.ServerMechanism) -> None:
        user = session.username
        allowed = self.connection.service.config.sasl_allowed_username_list
        if user is None:
            raise self._fail("no client username was found")
        if allowed and not any(fnmatch.fnmatchcase(user, pattern) for pattern in allowed):
            raise self._fail(f"SASL client identity {user!r} not allowed by sasl_allowed_username_list")
        self.authenticated = True
        self.release()
        self._mechanisms = None
        self._session = None
        self._awaiting_start = False
        conn = self.connection
        conn.ctx.identity.sasl_user_name = user
        conn.identity_changed()
        log.info("client %s (%s): authenticated as %r", conn.ctx.conn_id, conn.ctx.peer, user)
