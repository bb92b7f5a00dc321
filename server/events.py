"""Domain event subscriptions and fan-out to connections.

One ``EventBus`` per server.  A connection registers callbacks (``register``:
CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, or the legacy REGISTER_ANY); the
driver emits events through ``emit``; the bus encodes one MESSAGE packet per
matching subscription (callback IDs differ) and hands it to the owning
connection's ``deliver``, which never blocks: a subscriber that cannot keep up
is disconnected by its connection, the others are not slowed.

Callback IDs come from one server-wide counter, as in libvirtd.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from virtwire.protocol.framing import Header, encode_packet
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import virNetMessageStatus, virNetMessageType

log = logging.getLogger(__name__)

# libvirtd sends every event with serial 1 (remoteDispatchObjectEventSend).
EVENT_SERIAL = 1


class EventSubscriber(Protocol):
    """The connection side of a subscription."""

    def deliver(self, packet: bytes) -> None:
        """Queue ``packet`` for sending without blocking (overflow: drop the connection)."""


@dataclass(slots=True, eq=False)
class Subscription:
    callback_id: int
    event_id: int
    owner: EventSubscriber
    domain_uuid: bytes | None  # None: every domain
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
        self._by_event: dict[int, dict[int, Subscription]] = {}

    @staticmethod
    def valid_event_id(event_id: int) -> bool:
        return 0 <= event_id < C.VIR_DOMAIN_EVENT_ID_LAST

    def register(
        self, owner: EventSubscriber, event_id: int, domain_uuid: bytes | None, *, legacy: bool = False
    ) -> int:
        """Add a subscription and return its callback ID (caller validated ``event_id``)."""
        callback_id = self._next_callback_id
        self._next_callback_id += 1
        sub = Subscription(callback_id, event_id, owner, domain_uuid, legacy)
        self._by_id[callback_id] = sub
        self._by_event.setdefault(event_id, {})[callback_id] = sub
        return callback_id

    def find(self, owner: EventSubscriber, callback_id: int) -> Subscription | None:
        sub = self._by_id.get(callback_id)
        return sub if sub is not None and sub.owner is owner else None

    def find_legacy(self, owner: EventSubscriber, event_id: int) -> Subscription | None:
        for sub in self._by_event.get(event_id, {}).values():
            if sub.owner is owner and sub.legacy:
                return sub
        return None

    def deregister(self, sub: Subscription) -> None:
        self._by_id.pop(sub.callback_id, None)
        self._by_event.get(sub.event_id, {}).pop(sub.callback_id, None)

    def drop_owner(self, owner: EventSubscriber) -> int:
        """Remove every subscription of a departing connection; return how many."""
        mine = [sub for sub in self._by_id.values() if sub.owner is owner]
        for sub in mine:
            self.deregister(sub)
        return len(mine)

    def subscriber_count(self) -> int:
        return len(self._by_id)

    def emit(self, event_id: int, domain_uuid: bytes, build: BodyBuilder) -> int:
        """Send one event to every matching subscription; return how many got it."""
        subs = self._by_event.get(event_id)
        if not subs:
            return 0
        sent = 0
        # Copy: a delivery may disconnect its owner, which deregisters during the loop.
        for sub in list(subs.values()):
            if sub.domain_uuid is not None and sub.domain_uuid != domain_uuid:
                continue
            body = build(None if sub.legacy else sub.callback_id)
            if body is None:
                continue
            procedure, msg = body
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

        return self.bus.emit(C.VIR_DOMAIN_EVENT_ID_LIFECYCLE, dom.uuid, build)

    def reboot(self, dom: R.remote_nonnull_domain) -> int:
        def build(callback_id: int | None) -> tuple[int, Any]:
            msg = R.remote_domain_event_reboot_msg(dom=dom)
            if callback_id is None:
                return R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_REBOOT, msg
            return (
                R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_REBOOT,
                R.remote_domain_event_callback_reboot_msg(callbackID=callback_id, msg=msg),
            )

        return self.bus.emit(C.VIR_DOMAIN_EVENT_ID_REBOOT, dom.uuid, build)

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

        return self.bus.emit(C.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, dom.uuid, build)

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

        return self.bus.emit(C.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, dom.uuid, build)
