"""Event subscriptions of every object family and their fan-out to connections.

One ``EventBus`` per server.  A connection registers callbacks for a family
(domain, network, storage pool, node device, secret: the CONNECT_*_EVENT_
REGISTER_ANY procedures, and for domains the legacy REGISTER/REGISTER_ANY);
the driver emits events through the family's typed emitter (``DomainEvents``,
``NetworkEvents``, ...); the bus encodes one MESSAGE packet per matching
subscription (callback IDs differ) and hands it to the owning connection's
``deliver``, which never blocks: a subscriber that cannot keep up is
disconnected by its connection, the others are not slowed.

A subscription may be limited to one object, named by its key: the raw UUID
for domains, networks, pools and secrets, the name for node devices (what
libvirt's event filters compare).  Callback IDs come from one server-wide
counter, as in libvirtd.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from virtwire.protocol.framing import Header, encode_packet
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import virNetMessageStatus, virNetMessageType

log = logging.getLogger(__name__)

# libvirtd sends every event with serial 1 (remoteDispatchObjectEventSend).
EVENT_SERIAL = 1


class EventFamily(Enum):
    """An object family with its own event IDs; the value is its VIR_*_EVENT_ID_LAST."""

    DOMAIN = ("domain", C.VIR_DOMAIN_EVENT_ID_LAST, "domain")
    NETWORK = ("network", C.VIR_NETWORK_EVENT_ID_LAST, "network")
    STORAGE_POOL = ("storage pool", C.VIR_STORAGE_POOL_EVENT_ID_LAST, "storage_pool")
    NODE_DEVICE = ("node device", C.VIR_NODE_DEVICE_EVENT_ID_LAST, "node_device")
    SECRET = ("secret", C.VIR_SECRET_EVENT_ID_LAST, "secret")

    @property
    def label(self) -> str:
        """How libvirtd names the family in its errors ("unsupported network event ID 7")."""
        return self.value[0]

    @property
    def access_kind(self) -> str:
        """The object kind of the access policy (libvirt's @acl object name)."""
        return self.value[2]

    def valid_event_id(self, event_id: int) -> bool:
        return 0 <= event_id < self.value[1]


ObjectKey = bytes | str  # raw UUID, or a node device's name


class EventSubscriber(Protocol):
    """The connection side of a subscription."""

    __slots__ = ()

    def deliver(self, packet: bytes) -> None:
        """Queue ``packet`` for sending without blocking (overflow: drop the connection)."""

    def may_receive(self, family: EventFamily, msg: Any) -> bool:
        """Whether the subscriber may learn of this event (the access policy's getattr)."""


@dataclass(slots=True, eq=False)
class Subscription:
    callback_id: int
    family: EventFamily
    event_id: int
    owner: EventSubscriber
    object_key: ObjectKey | None  # None: every object of the family
    legacy: bool  # registered with the pre-callback REGISTER_ANY (no callbackID on the wire)


# Builds an event body for one subscription: the callback ID (or None for a legacy
# subscription) → (procedure number, msg struct), or None when it has no legacy form.
BodyBuilder = Callable[[int | None], "tuple[int, Any] | None"]


def _message_header(procedure: int) -> Header:
    return Header(
        program=R.REMOTE_PROGRAM,
        version=R.REMOTE_PROTOCOL_VERSION,
        procedure=procedure,
        type=virNetMessageType.VIR_NET_MESSAGE,
        serial=EVENT_SERIAL,
        status=virNetMessageStatus.VIR_NET_OK,
    )


class EventBus:
    """The server's registry of event callbacks."""

    def __init__(self) -> None:
        self._next_callback_id = 0
        self._by_id: dict[int, Subscription] = {}
        self._by_event: dict[tuple[EventFamily, int], dict[int, Subscription]] = {}

    def register(
        self,
        owner: EventSubscriber,
        family: EventFamily,
        event_id: int,
        object_key: ObjectKey | None,
        *,
        legacy: bool = False,
    ) -> int:
        """Add a subscription and return its callback ID (caller validated ``event_id``)."""
        callback_id = self._next_callback_id
        self._next_callback_id += 1
        sub = Subscription(callback_id, family, event_id, owner, object_key, legacy)
        self._by_id[callback_id] = sub
        self._by_event.setdefault((family, event_id), {})[callback_id] = sub
        return callback_id

    def find(self, owner: EventSubscriber, family: EventFamily, callback_id: int) -> Subscription | None:
        sub = self._by_id.get(callback_id)
        return sub if sub is not None and sub.owner is owner and sub.family is family else None

    def find_legacy(self, owner: EventSubscriber, event_id: int) -> Subscription | None:
        for sub in self._by_event.get((EventFamily.DOMAIN, event_id), {}).values():
            if sub.owner is owner and sub.legacy:
                return sub
        return None

    def first_of(self, owner: EventSubscriber, family: EventFamily, event_id: int) -> Subscription | None:
        """The owner's oldest subscription to ``event_id``, whatever its kind."""
        mine = [s for s in self._by_event.get((family, event_id), {}).values() if s.owner is owner]
        return min(mine, key=lambda s: s.callback_id) if mine else None

    def deregister(self, sub: Subscription) -> None:
        self._by_id.pop(sub.callback_id, None)
        self._by_event.get((sub.family, sub.event_id), {}).pop(sub.callback_id, None)

    def drop_owner(self, owner: EventSubscriber) -> int:
        """Remove every subscription of a departing connection; return how many."""
        mine = [sub for sub in self._by_id.values() if sub.owner is owner]
        for sub in mine:
            self.deregister(sub)
        return len(mine)

    def subscriber_count(self) -> int:
        return len(self._by_id)

    def emit(self, family: EventFamily, event_id: int, object_key: ObjectKey, build: BodyBuilder) -> int:
        """Send one event to every matching subscription; return how many got it."""
        subs = self._by_event.get((family, event_id))
        if not subs:
            return 0
        sent = 0
        # Copy: a delivery may disconnect its owner, which deregisters during the loop.
        for sub in list(subs.values()):
            if sub.object_key is not None and sub.object_key != object_key:
                continue
            body = build(None if sub.legacy else sub.callback_id)
            if body is None:
                continue
            procedure, msg = body
            if not sub.owner.may_receive(family, msg):
                continue
            sub.owner.deliver(encode_packet(_message_header(procedure), msg.to_bytes()))
            sent += 1
        return sent


class DomainEvents:
    """Typed emitters the drivers call: one method per event kind they produce."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def lifecycle(self, dom: R.remote_nonnull_domain, event: int, detail: int) -> int:
        def build(callback_id: int | None) -> tuple[int, Any]:
            msg = R.remote_domain_event_lifecycle_msg(dom=dom, event=event, detail=detail)
            if callback_id is None:
                return R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE, msg
            return (
                R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE,
                R.remote_domain_event_callback_lifecycle_msg(callbackID=callback_id, msg=msg),
            )

        return self.bus.emit(EventFamily.DOMAIN, C.VIR_DOMAIN_EVENT_ID_LIFECYCLE, dom.uuid, build)

    def callback_only(
        self, event_id: int, dom: R.remote_nonnull_domain, procedure: int, make: Callable[[int], Any]
    ) -> int:
        """Emit a domain event that has only the callback form: ``make(callbackID)`` builds its msg."""
        return self.bus.emit(EventFamily.DOMAIN, event_id, dom.uuid, _callback_only(procedure, make))

    def reboot(self, dom: R.remote_nonnull_domain) -> int:
        def build(callback_id: int | None) -> tuple[int, Any]:
            msg = R.remote_domain_event_reboot_msg(dom=dom)
            if callback_id is None:
                return R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_REBOOT, msg
            return (
                R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_REBOOT,
                R.remote_domain_event_callback_reboot_msg(callbackID=callback_id, msg=msg),
            )

        return self.bus.emit(EventFamily.DOMAIN, C.VIR_DOMAIN_EVENT_ID_REBOOT, dom.uuid, build)

    def migration_iteration(self, dom: R.remote_nonnull_domain, iteration: int) -> int:
        def build(callback_id: int | None) -> tuple[int, Any] | None:
            if callback_id is None:
                return None  # added after the legacy API; libvirtd never sends it that way
            return (
                R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
                R.remote_domain_event_callback_migration_iteration_msg(
                    callbackID=callback_id, dom=dom, iteration=iteration
                ),
            )

        return self.bus.emit(EventFamily.DOMAIN, C.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, dom.uuid, build)

    def job_completed(self, dom: R.remote_nonnull_domain, params: list[R.remote_typed_param]) -> int:
        def build(callback_id: int | None) -> tuple[int, Any] | None:
            if callback_id is None:
                return None
            return (
                R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_JOB_COMPLETED,
                R.remote_domain_event_callback_job_completed_msg(
                    callbackID=callback_id, dom=dom, params=params
                ),
            )

        return self.bus.emit(EventFamily.DOMAIN, C.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, dom.uuid, build)


def _callback_only(procedure: int, make: Callable[[int], Any]) -> BodyBuilder:
    """A body for families that only have the callback form (no legacy registration)."""

    def build(callback_id: int | None) -> tuple[int, Any] | None:
        return None if callback_id is None else (procedure, make(callback_id))

    return build


class NetworkEvents:
    """Network events (VIR_NETWORK_EVENT_ID_*), filtered by the network's UUID."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def lifecycle(self, net: R.remote_nonnull_network, event: int, detail: int) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_NETWORK_EVENT_LIFECYCLE,
            lambda cb: R.remote_network_event_lifecycle_msg(
                callbackID=cb, net=net, event=event, detail=detail
            ),
        )
        return self.bus.emit(EventFamily.NETWORK, C.VIR_NETWORK_EVENT_ID_LIFECYCLE, bytes(net.uuid), build)


class StoragePoolEvents:
    """Storage pool events (VIR_STORAGE_POOL_EVENT_ID_*), filtered by the pool's UUID."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def lifecycle(self, pool: R.remote_nonnull_storage_pool, event: int, detail: int) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_STORAGE_POOL_EVENT_LIFECYCLE,
            lambda cb: R.remote_storage_pool_event_lifecycle_msg(
                callbackID=cb, pool=pool, event=event, detail=detail
            ),
        )
        return self.bus.emit(
            EventFamily.STORAGE_POOL, C.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, bytes(pool.uuid), build
        )

    def refresh(self, pool: R.remote_nonnull_storage_pool) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_STORAGE_POOL_EVENT_REFRESH,
            lambda cb: R.remote_storage_pool_event_refresh_msg(callbackID=cb, pool=pool),
        )
        return self.bus.emit(
            EventFamily.STORAGE_POOL, C.VIR_STORAGE_POOL_EVENT_ID_REFRESH, bytes(pool.uuid), build
        )


class NodeDeviceEvents:
    """Node device events (VIR_NODE_DEVICE_EVENT_ID_*), filtered by the device's name."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def lifecycle(self, dev: R.remote_nonnull_node_device, event: int, detail: int) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_NODE_DEVICE_EVENT_LIFECYCLE,
            lambda cb: R.remote_node_device_event_lifecycle_msg(
                callbackID=cb, dev=dev, event=event, detail=detail
            ),
        )
        return self.bus.emit(EventFamily.NODE_DEVICE, C.VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, dev.name, build)

    def update(self, dev: R.remote_nonnull_node_device) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_NODE_DEVICE_EVENT_UPDATE,
            lambda cb: R.remote_node_device_event_update_msg(callbackID=cb, dev=dev),
        )
        return self.bus.emit(EventFamily.NODE_DEVICE, C.VIR_NODE_DEVICE_EVENT_ID_UPDATE, dev.name, build)


class SecretEvents:
    """Secret events (VIR_SECRET_EVENT_ID_*), filtered by the secret's UUID."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def lifecycle(self, secret: R.remote_nonnull_secret, event: int, detail: int) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_SECRET_EVENT_LIFECYCLE,
            lambda cb: R.remote_secret_event_lifecycle_msg(
                callbackID=cb, secret=secret, event=event, detail=detail
            ),
        )
        return self.bus.emit(EventFamily.SECRET, C.VIR_SECRET_EVENT_ID_LIFECYCLE, bytes(secret.uuid), build)

    def value_changed(self, secret: R.remote_nonnull_secret) -> int:
        build = _callback_only(
            R.remote_procedure.REMOTE_PROC_SECRET_EVENT_VALUE_CHANGED,
            lambda cb: R.remote_secret_event_value_changed_msg(callbackID=cb, secret=secret),
        )
        return self.bus.emit(
            EventFamily.SECRET, C.VIR_SECRET_EVENT_ID_VALUE_CHANGED, bytes(secret.uuid), build
        )
