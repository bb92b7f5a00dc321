"""Table-driven dispatch: procedure number → route, and running one call.

Routes are built once from the generated procedure table.  A procedure is
served by the connection layer (auth, features, open/close, event and
close-callback registration), by the driver method named after it
(``DOMAIN_SUSPEND`` → ``driver.domain_suspend``), or by nobody: then it answers
VIR_ERR_NO_SUPPORT with its ``@api`` name.  Event procedures are not callable
(libvirtd: ``unknown procedure``).

The checks of one call run in libvirtd's order: payload decode and connection
open (before CONNECT_OPEN, a malformed payload is reported first), read-only
policy (from the spec's ``@readonly``, before any driver code and before the
not-supported answer), the argument limits of libvirtd's dispatch stubs
(server/arglimits.py), the access policy's checks when one is configured
(server/access.py), then the handler.  A denied procedure is refused without decoding its payload
unless its policy depends on the flags.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from virtwire.protocol import errors as E
from virtwire.protocol.generated import remote as R
from virtwire.protocol.xdr import Procedure, ReadOnlyPolicy

from .access import CallAccess
from .arglimits import check_argument_limits
from .driver.base import ConnectionContext, Driver, is_nonblocking
from .driver.interface import DriverInterface
from .errors import no_support

Handler = Callable[[Any, ConnectionContext], Awaitable[Any]]

# Served by the connection itself; True = allowed before CONNECT_OPEN.
CONNECTION_PROCEDURES: dict[str, bool] = {
    "AUTH_LIST": True,
    "CONNECT_SUPPORTS_FEATURE": True,
    "CONNECT_OPEN": True,
    "CONNECT_CLOSE": True,
    "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY": False,
    "CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY": False,
    "CONNECT_DOMAIN_EVENT_REGISTER_ANY": False,
    "CONNECT_DOMAIN_EVENT_DEREGISTER_ANY": False,
    "CONNECT_DOMAIN_EVENT_REGISTER": False,
    "CONNECT_DOMAIN_EVENT_DEREGISTER": False,
    "CONNECT_NETWORK_EVENT_REGISTER_ANY": False,
    "CONNECT_NETWORK_EVENT_DEREGISTER_ANY": False,
    "CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY": False,
    "CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY": False,
    "CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY": False,
    "CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY": False,
    "CONNECT_SECRET_EVENT_REGISTER_ANY": False,
    "CONNECT_SECRET_EVENT_DEREGISTER_ANY": False,
    "CONNECT_SET_IDENTITY": False,
    "CONNECT_REGISTER_CLOSE_CALLBACK": False,
    "CONNECT_UNREGISTER_CLOSE_CALLBACK": False,
    "AUTH_SASL_INIT": True,
    "AUTH_SASL_START": True,
    "AUTH_SASL_STEP": True,
}

# Callable before the client has authenticated (libvirtd: remote_daemon.c clears
# needAuth for exactly these); anything else then answers "authentication required".
NO_AUTH_PROCEDURES = frozenset(
    {"AUTH_LIST", "AUTH_SASL_INIT", "AUTH_SASL_START", "AUTH_SASL_STEP", "AUTH_POLKIT"}
)


class CallSession(Protocol):
    """What dispatch needs from a connection."""

    opened: bool
    ctx: ConnectionContext

    @property
    def authenticated(self) -> bool:
        """False while the listener's auth method still waits for the client."""

    @property
    def readonly(self) -> bool:
        """True when the connection may only read."""

    @property
    def access(self) -> CallAccess | None:
        """The connection's access checks; None when no access policy is configured."""

    def connection_handler(self, name: str) -> Handler:
        """The bound connection-level handler for procedure ``name``."""


@dataclass(frozen=True, slots=True)
class Route:
    proc: Procedure
    driver_handler: Handler | None  # bound driver method; None = not supported
    connection_level: bool
    pre_open: bool
    inline: bool  # the handler never waits: run it in the reader, no task of its own
    needs_auth: bool = True  # refused until the client has authenticated


@dataclass(frozen=True, slots=True)
class Program:
    """What one socket serves: libvirtd serves REMOTE on its main sockets, ADMIN on the admin one.

    A call for another program is refused (``unknown program``), as libvirtd's
    servers each know only their own; keepalive is answered on every socket.
    """

    number: int
    version: int
    routes: dict[int, Route]
    # The connection-level procedures' handlers for one connection (given the connection).
    connection_procedures: Callable[[Any], object]


def served_by(driver: Driver, method: str) -> Handler | None:
    """The driver's bound method for a procedure, or None when it keeps the generated default."""
    handler: Handler | None = getattr(driver, method, None)
    if handler is None or getattr(type(driver), method, None) is getattr(DriverInterface, method, None):
        return None
    return handler


def build_routes(driver: Driver) -> dict[int, Route]:
    """One route per callable procedure of the remote program."""
    routes: dict[int, Route] = {}
    for number, proc in R.PROCEDURES.items():
        if proc.event is not None:
            continue
        needs_auth = proc.name not in NO_AUTH_PROCEDURES
        pre_open = CONNECTION_PROCEDURES.get(proc.name)
        if pre_open is not None:
            routes[number] = Route(proc, None, True, pre_open, True, needs_auth)
            continue
        handler = served_by(driver, proc.name.lower()) if proc.modelled else None
        inline = handler is None or is_nonblocking(handler)
        routes[number] = Route(proc, handler, False, False, inline, needs_auth)
    return routes


def _decode(proc: Procedure, payload: memoryview) -> Any:
    if proc.args is None:
        return None  # void (trailing bytes are ignored, as libvirtd does)
    try:
        return proc.args.from_bytes(payload, exact=False)
    except Exception:  # any malformed payload: XdrError, short read, bad enum...
        raise E.payload_decode_failed() from None


async def run_call(session: CallSession, route: Route, payload: memoryview) -> bytes:
    """Run one call; return the encoded ret payload or raise libvirtError."""
    proc = route.proc
    if route.needs_auth and not session.authenticated:
        raise E.authentication_required()  # before decoding, as virNetServerProgramDispatch
    if not route.pre_open and not session.opened:
        if proc.modelled:
            _decode(proc, payload)  # libvirtd decodes before it looks at the connection
        raise E.connection_not_open()
    readonly = session.readonly
    if readonly and proc.readonly is ReadOnlyPolicy.DENY:
        raise E.read_only_denial(proc)
    if not proc.modelled and not route.connection_level:
        raise no_support(proc.api or proc.name)
    args = _decode(proc, payload)
    check_argument_limits(proc, args)  # libvirtd's dispatch stubs, before any API check
    if readonly and proc.readonly is ReadOnlyPolicy.DENY_FLAGS and proc.denies(getattr(args, "flags", 0)):
        raise E.read_only_denial(proc)
    if route.connection_level:
        handler = session.connection_handler(proc.name)
    elif route.driver_handler is not None:
        handler = route.driver_handler
    else:
        raise no_support(proc.api or proc.name)
    access = session.access
    if access is None:
        ret = await handler(args, session.ctx)
    else:
        later = await access.before(proc, args)  # libvirt: the driver's EnsureACL, before its work
        ret = await handler(access.widen(proc, args), session.ctx)
        if later:
            access.after(later, ret)
        ret = await access.filter(proc, args, ret)
    if ret is None:
        return b""
    data: bytes = ret.to_bytes()
    return data
