"""Connection-level procedures: auth, features, open/close, event registration.

These belong to the connection, not to a driver (remote_daemon_dispatch.c in
libvirtd): they change what the connection is (open, read-only, keepalive on)
or what it receives (event callbacks).  Errors and their wording are libvirtd's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from virtwire.protocol import errors as E
from virtwire.protocol import typedparams
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from .driver.base import ConnectionContext
from .events import EventBus, EventFamily, ObjectKey

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)

# The driver features the server itself implements.
FEATURE_PROGRAM_KEEPALIVE = DriverFeature.PROGRAM_KEEPALIVE
FEATURE_REMOTE_EVENT_CALLBACK = DriverFeature.REMOTE_EVENT_CALLBACK
FEATURE_REMOTE_CLOSE_CALLBACK = DriverFeature.REMOTE_CLOSE_CALLBACK
# libvirtd answers FD_PASSING itself, whatever the transport (a TCP client learns
# otherwise when it tries: remote_daemon_dispatch.c).
SERVER_FEATURES = frozenset(
    {DriverFeature.FD_PASSING, FEATURE_REMOTE_EVENT_CALLBACK, FEATURE_REMOTE_CLOSE_CALLBACK}
)

# What CONNECT_SET_IDENTITY accepts (virIdentitySetParameters).
IDENTITY_PARAMS = {
    C.VIR_CONNECT_IDENTITY_USER_NAME: typedparams.STRING,
    C.VIR_CONNECT_IDENTITY_UNIX_USER_ID: typedparams.ULLONG,
    C.VIR_CONNECT_IDENTITY_GROUP_NAME: typedparams.STRING,
    C.VIR_CONNECT_IDENTITY_UNIX_GROUP_ID: typedparams.ULLONG,
    C.VIR_CONNECT_IDENTITY_PROCESS_ID: typedparams.LLONG,
    C.VIR_CONNECT_IDENTITY_PROCESS_TIME: typedparams.ULLONG,
    C.VIR_CONNECT_IDENTITY_SASL_USER_NAME: typedparams.STRING,
    C.VIR_CONNECT_IDENTITY_X509_DISTINGUISHED_NAME: typedparams.STRING,
    C.VIR_CONNECT_IDENTITY_SELINUX_CONTEXT: typedparams.STRING,
    "system.token": typedparams.STRING,  # libvirt-internal (viridentity.c), not in the public header
}


def _internal(detail: str) -> E.libvirtError:
    return E.internal_error(detail, C.VIR_FROM_RPC)


class ConnectionProcedures:
    """Handlers named after their procedures, bound to one connection."""

    # One per connection, idle ones too: no instance dict (subclasses may have one).
    __slots__ = ("close_callback", "conn")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.close_callback = False

    @property
    def bus(self) -> EventBus:
        return self.conn.service.bus

    async def auth_list(self, args: None, ctx: ConnectionContext) -> R.remote_auth_list_ret:
        return R.remote_auth_list_ret(types=self.conn.auth.auth_types())

    async def auth_sasl_init(self, args: None, ctx: ConnectionContext) -> R.remote_auth_sasl_init_ret:
        return self.conn.auth.sasl_init()

    async def auth_sasl_start(
        self, args: R.remote_auth_sasl_start_args, ctx: ConnectionContext
    ) -> R.remote_auth_sasl_start_ret:
        return await self.conn.auth.sasl_start(args)

    async def auth_sasl_step(
        self, args: R.remote_auth_sasl_step_args, ctx: ConnectionContext
    ) -> R.remote_auth_sasl_step_ret:
        return await self.conn.auth.sasl_step(args)

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
        if conn.service.metrics is not None:
            conn.service.metrics.connection_opened(ctx.transport, ctx.readonly)
        await conn.service.driver.connection_opened(ctx)
        log.debug("client %s opened %s%s", ctx.conn_id, args.name, " read-only" if ctx.readonly else "")

    async def connect_close(self, args: None, ctx: ConnectionContext) -> None:
        self.conn.queue_close()

    # --- event registration ---------------------------------------------------------

    def _register(self, family: EventFamily, event_id: int, object_key: ObjectKey | None) -> int:
        if not family.valid_event_id(event_id):
            raise _internal(f"unsupported {family.label} event ID {event_id}")
        return self.bus.register(self.conn, family, event_id, object_key)

    def _deregister(self, family: EventFamily, callback_id: int) -> None:
        sub = self.bus.find(self.conn, family, callback_id)
        if sub is None or sub.legacy:
            raise _internal(f"{family.label} event callback {callback_id} not registered")
        self.bus.deregister(sub)

    async def connect_domain_event_callback_register_any(
        self, args: R.remote_connect_domain_event_callback_register_any_args, ctx: ConnectionContext
    ) -> R.remote_connect_domain_event_callback_register_any_ret:
        uuid = bytes(args.dom.uuid) if args.dom is not None else None
        callback_id = self._register(EventFamily.DOMAIN, args.eventID, uuid)
        return R.remote_connect_domain_event_callback_register_any_ret(callbackID=callback_id)

    async def connect_domain_event_callback_deregister_any(
        self, args: R.remote_connect_domain_event_callback_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        self._deregister(EventFamily.DOMAIN, args.callbackID)

    async def connect_domain_event_register_any(
        self, args: R.remote_connect_domain_event_register_any_args, ctx: ConnectionContext
    ) -> None:
        if not EventFamily.DOMAIN.valid_event_id(args.eventID):
            raise _internal(f"unsupported event ID {args.eventID}")
        if self.bus.find_legacy(self.conn, args.eventID) is not None:
            raise E.make_error(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, "event callback already tracked")
        self.bus.register(self.conn, EventFamily.DOMAIN, args.eventID, None, legacy=True)

    async def connect_domain_event_deregister_any(
        self, args: R.remote_connect_domain_event_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        sub = self.bus.find_legacy(self.conn, args.eventID)
        if sub is None:
            raise _internal(f"domain event {args.eventID} not registered")
        self.bus.deregister(sub)

    async def connect_domain_event_register(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_domain_event_register_ret:
        # The oldest API: lifecycle events in their legacy form.  libvirtd leaves
        # cb_registered at 0 and accepts any number of such registrations.
        self.bus.register(self.conn, EventFamily.DOMAIN, C.VIR_DOMAIN_EVENT_ID_LIFECYCLE, None, legacy=True)
        return R.remote_connect_domain_event_register_ret(cb_registered=0)

    async def connect_domain_event_deregister(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_domain_event_deregister_ret:
        # libvirtd drops the client's oldest lifecycle callback, whichever API made it.
        sub = self.bus.first_of(self.conn, EventFamily.DOMAIN, C.VIR_DOMAIN_EVENT_ID_LIFECYCLE)
        if sub is None:
            raise _internal(f"domain event {C.VIR_DOMAIN_EVENT_ID_LIFECYCLE} not registered")
        self.bus.deregister(sub)
        return R.remote_connect_domain_event_deregister_ret(cb_registered=0)

    async def connect_network_event_register_any(
        self, args: R.remote_connect_network_event_register_any_args, ctx: ConnectionContext
    ) -> R.remote_connect_network_event_register_any_ret:
        uuid = bytes(args.net.uuid) if args.net is not None else None
        callback_id = self._register(EventFamily.NETWORK, args.eventID, uuid)
        return R.remote_connect_network_event_register_any_ret(callbackID=callback_id)

    async def connect_network_event_deregister_any(
        self, args: R.remote_connect_network_event_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        self._deregister(EventFamily.NETWORK, args.callbackID)

    async def connect_storage_pool_event_register_any(
        self, args: R.remote_connect_storage_pool_event_register_any_args, ctx: ConnectionContext
    ) -> R.remote_connect_storage_pool_event_register_any_ret:
        uuid = bytes(args.pool.uuid) if args.pool is not None else None
        callback_id = self._register(EventFamily.STORAGE_POOL, args.eventID, uuid)
        return R.remote_connect_storage_pool_event_register_any_ret(callbackID=callback_id)

    async def connect_storage_pool_event_deregister_any(
        self, args: R.remote_connect_storage_pool_event_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        self._deregister(EventFamily.STORAGE_POOL, args.callbackID)

    async def connect_node_device_event_register_any(
        self, args: R.remote_connect_node_device_event_register_any_args, ctx: ConnectionContext
    ) -> R.remote_connect_node_device_event_register_any_ret:
        name = args.dev.name if args.dev is not None else None
        callback_id = self._register(EventFamily.NODE_DEVICE, args.eventID, name)
        return R.remote_connect_node_device_event_register_any_ret(callbackID=callback_id)

    async def connect_node_device_event_deregister_any(
        self, args: R.remote_connect_node_device_event_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        self._deregister(EventFamily.NODE_DEVICE, args.callbackID)

    async def connect_secret_event_register_any(
        self, args: R.remote_connect_secret_event_register_any_args, ctx: ConnectionContext
    ) -> R.remote_connect_secret_event_register_any_ret:
        uuid = bytes(args.secret.uuid) if args.secret is not None else None
        callback_id = self._register(EventFamily.SECRET, args.eventID, uuid)
        return R.remote_connect_secret_event_register_any_ret(callbackID=callback_id)

    async def connect_secret_event_deregister_any(
        self, args: R.remote_connect_secret_event_deregister_any_args, ctx: ConnectionContext
    ) -> None:
        self._deregister(EventFamily.SECRET, args.callbackID)

    async def connect_set_identity(
        self, args: R.remote_connect_set_identity_args, ctx: ConnectionContext
    ) -> None:
        # A client acting for another (virtproxyd, a session daemon) names who it acts
        # for; libvirtd validates and keeps it on the connection.  Flags are not checked.
        params = typedparams.params_to_list(args.params, R.REMOTE_CONNECT_IDENTITY_PARAMS_MAX)
        typedparams.validate(params, IDENTITY_PARAMS)
        ctx.data["identity"] = {name: value for name, _, value in params}

    async def connect_register_close_callback(self, args: None, ctx: ConnectionContext) -> None:
        self.close_callback = True

    async def connect_unregister_close_callback(self, args: None, ctx: ConnectionContext) -> None:
        self.close_callback = False
