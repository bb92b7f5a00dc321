"""The Driver interface: what a hypervisor backend implements for the server.

Dispatch is table-driven: for a remote procedure ``DOMAIN_SUSPEND`` the server
calls the driver's ``domain_suspend(args, ctx)`` method, where ``args`` is the
generated ``remote_domain_suspend_args`` (None for a void procedure) and ``ctx``
the calling connection's ``ConnectionContext``; it returns the generated
``..._ret`` struct (None for void) or raises ``libvirtError``.  A procedure with
no such method answers VIR_ERR_NO_SUPPORT with the spec's ``@api`` name.

The procedure methods and their types are generated from the spec
(``interface.DriverInterface``); each answers NO_SUPPORT until a subclass
overrides it, so a custom backend implements only what it has.  This base adds
what the server asks a driver besides procedures.  Connection-level procedures
(auth, features, open/close, event and close-callback registration) are the
server's and never reach a driver.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from ..access import wire_objects
from ..access_policy import AccessObject
from ..events import DomainEvents, EventBus, NetworkEvents, NodeDeviceEvents, SecretEvents, StoragePoolEvents
from ..identity import Identity
from .interface import DriverInterface


class JobObserver(Protocol):
    """Who wants to know about migration jobs (``virtwire serve --metrics``)."""

    def migration_started(self, job: object, direction: str) -> None:
        """``direction``: "in" (destination) or "out" (source)."""

    def migration_finished(
        self, job: object, direction: str, result: str, data_bytes: int, seconds: float
    ) -> None:
        """``result``: "completed", "failed" or "cancelled"; ``data_bytes``: guest memory moved."""


@dataclass(slots=True, eq=False)
class ConnectionContext:
    """What a driver may know about the connection a call came in on."""

    conn_id: int
    peer: str
    transport: str  # "tcp", "tls" or "unix"
    readonly: bool = False
    uri: str | None = None  # the name given to CONNECT_OPEN
    # Who the client is (unix peer, TLS DN, SASL user): set by the connection.
    identity: Identity = field(default_factory=lambda: Identity("", False))
    # Per-connection data a driver wants to keep (freed with the connection).
    data: dict[str, Any] = field(default_factory=dict)


_NONBLOCKING = "__virtwire_nonblocking__"
C_T = TypeVar("C_T", bound=type)


def nonblocking(cls: C_T) -> C_T:
    """Class decorator: every coroutine method defined in ``cls`` never waits.

    The server then runs those calls in the connection's reader instead of a task
    of their own (cheaper per call).  Only for methods that do not await anything
    that can block; a method that does wait must live in an undecorated class,
    or it would hold up its connection's other calls.
    """
    for value in vars(cls).values():
        if inspect.iscoroutinefunction(value):
            setattr(value, _NONBLOCKING, True)
    return cls


def is_nonblocking(handler: Callable[..., Any]) -> bool:
    return bool(getattr(getattr(handler, "__func__", handler), _NONBLOCKING, False))


@nonblocking
class Driver(DriverInterface):
    """Base of every backend. Subclasses override the API methods they support."""

    # Work that outlives the call starting it (an incoming migration outlives its
    # PREPARE) runs here: the server sets a nursery that lives as long as it serves
    # and is cancelled after the last connection has closed.
    nursery: trio.Nursery | None = None
    # Told when a migration job starts and ends (the server's metrics); None: nobody.
    job_observer: JobObserver | None = None

    def __init__(self) -> None:
        # A standalone driver emits into the void; the server binds its own bus.
        self.bind_events(EventBus())

    def bind_events(self, bus: EventBus) -> None:
        """Emit every family's events through ``bus`` (the server calls this once)."""
        self.events = DomainEvents(bus)
        self.network_events = NetworkEvents(bus)
        self.pool_events = StoragePoolEvents(bus)
        self.node_device_events = NodeDeviceEvents(bus)
        self.secret_events = SecretEvents(bus)

    # --- what the server asks the driver -----------------------------------------------

    def features(self) -> frozenset[int]:
        """VIR_DRV_FEATURE_* numbers the hypervisor itself supports (SUPPORTS_FEATURE).

        The server answers 10 (keepalive), 14 (event callbacks) and 15 (close
        callback) itself; migration features (4, 6, 13) belong here.
        """
        return frozenset()

    # The driver name libvirt's access-denied error gives (conn->driver->name).
    access_name = "virtwire"

    def access_objects(self, kind: str, ref: Any) -> list[AccessObject]:
        """Every object a call's reference may designate, for the access checks.

        ``ref`` is a wire reference (remote_nonnull_domain...), a name, or a domain
        ID.  This default takes the reference at its word; a driver that looks
        objects up should answer from its own objects (by name and by UUID, as its
        calls resolve references), so that a client cannot borrow an allowed name.
        An empty list means "no such object".
        """
        return wire_objects(kind, ref)

    def check_uri(self, name: str | None) -> None:
        """Accept the name given to CONNECT_OPEN, or raise libvirt's error for it."""
        raise NotImplementedError

    async def connection_opened(self, ctx: ConnectionContext) -> None:
        """A connection completed CONNECT_OPEN."""

    async def connection_closed(self, ctx: ConnectionContext) -> None:
        """A connection that was open went away (closed, dropped or re-opened)."""

    def inhibits_idle_exit(self) -> bool:
        """True while the driver runs work no client call holds (an incoming migration).

        ``--timeout`` does not end the server then (libvirtd's shutdown inhibition).
        """
        return self.nursery is not None and bool(self.nursery.child_tasks)
