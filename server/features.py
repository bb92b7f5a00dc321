"""Connection-level procedures: auth, features, open/close, event registration.

These belong to the connection, not to a driver (remote_daemon_dispatch.c in
libvirtd): they change what the connection is (open, read-only, keepalive on)
or what it receives (event callbacks).  Errors and their wording are libvirtd's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from virtwire.protocol import errors as E
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from .driver.base import ConnectionContext
from .events import EventBus

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)

# The driver features the server itself implements.
FEATURE_PROGRAM_KEEPALIVE = DriverFeature.PROGRAM_KEEPALIVE
FEATURE_REMOTE_EVENT_CALLBACK = DriverFeature.REMOTE_EVENT_CALLBACK
FEATURE_REMOTE_CLOSE_CALLBACK = DriverFeature.REMOTE_CLOSE_CALLBACK
SERVER_FEATURES = frozenset({FEATURE_REMOTE_EVENT_CALLBACK, FEATURE_REMOTE_CLOSE_CALLBACK})


def _internal(detail: str) -> E.libvirtError:
    return E.internal_error(detail, C.VIR_FROM_RPC)


class ConnectionProcedures:
    """Handlers named after their procedures, bound to one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.close_callback = False

    @property
    def bus(self) -> EventBus:
        return self.conn.service.bus

    async def auth_list(self, args: None, ctx: ConnectionContext) -> R.remote_auth_list_ret:
        return R.remote_auth_list_ret(types=[R.remote_auth_type.REMOTE_AUTH_NONE])

    async def connect_supports_feature(
        self, args: R.remote_connect_supports_feature_args, ctx: ConnectionContext
    ) -> R.remote_connect_supports_feature_ret:
        # Keepalive is the one feature a client may ask about before CONNECT_OPEN.
        if args.feature == FEATURE_PROGRAM_KEEPALIVE:
            self.conn.start_keepalive()
            return R.remote_connect_supports_feature_ret(supported=1)
        if not self.conn.opened:
            raise E.connection_not_open()
        supported = args.feature in SERVER_FEATURES or args.feature in self.conn.service.driver.features()
        return R.remote_connect_supports_feature_ret(supported=int(supported))

    async def connect_open(self, args: R.remote_connect_open_args, ctx: ConnectionContext) -> None:
        conn = self.conn
        if conn.opened:
            conn.reopen_refused()
            await conn.service.driver.connection_closed(ctx)
            raise E.connection_already_open()
        if args.name is None:
            # virConnectOpen(NULL) probing has nothing to probe here; libvirtd's words.
            raise _internal("connection not open")
        conn.service.driver.check_uri(args.name)
        ctx.uri = args.name
        ctx.readonly = conn.readonly_socket or bool(args.flags & C.VIR_CONNECT_RO)
        conn.opened = True
        await conn.service.driver.connection_opened(ctx)
        log.debug("client %s opened %s%s", ctx.conn_id, args.name, " read-only" if ctx.readonly else "")

    async def connect_close(self, args: None, ctx: ConnectionContext) -> None:
        self.conn.queue_close()

    async def connect_domain_event_callback_register_any(
        self, args: R.remote_connect_domain_event_callback_register_any_args, ctx: ConnectionContext
    ) -> R.remote_connect_domain_event_callback_register_any_ret:
        if not EventBus.valid_event_id(args.eventID):
            raise _internal(f"unsupported event ID {args.eventID}")
        uuid = bytes(args.dom.uuid) if args.dom is not None else None
        callback_id = self.bus.register(self.conn, args.eventID, uuid)
        return R.remote_connect_domain_event_callback_register_any_ret(callbackID=callback_id)

    async def connect_domain_event_callback_deregister_any(
        self, args: R.remote_connect_domain_event_callback_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        sub = self.bus.find(self.conn, args.callbackID)
        if sub is None or sub.legacy:
            raise _internal(f"domain event callback {args.callbackID} not registered")
        self.bus.deregister(sub)

    async def connect_domain_event_register_any(
        self, args: R.remote_connect_domain_event_register_any_args, ctx: ConnectionContext
    ) -> None:
        if not EventBus.valid_event_id(args.eventID):
            raise _internal(f"unsupported event ID {args.eventID}")
        if self.bus.find_legacy(self.conn, args.eventID) is not None:
            raise E.make_error(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, "event callback already tracked")
        self.bus.register(self.conn, args.eventID, None, legacy=True)

    async def connect_domain_event_deregister_any(
        self, args: R.remote_connect_domain_event_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        sub = self.bus.find_legacy(self.conn, args.eventID)
        if sub is None:
            raise _internal(f"domain event {args.eventID} not registered")
        self.bus.deregister(sub)

    async def connect_register_close_callback(self, args: None, ctx: ConnectionContext) -> None:
        self.close_callback = True

    async def connect_unregister_close_callback(self, args: None, ctx: ConnectionContext) -> None:
        self.close_callback = False
