"""The admin program's procedures (libvirt's admin_server_dispatch.c and admin_server.c).

Each handler is named after its procedure and takes the generated args struct
and the calling connection's context, like a driver method.  The checks run
in libvirtd's order (the server is looked up before the flags are checked)
and the errors are its own: most lookups report virNetDaemonGetServer's or
virNetServerGetClient's error (VIR_FROM_RPC), the three hand-written
dispatchers (set threadpool, client info, set client limits) their own
wording (VIR_FROM_ADMIN).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from virtwire.protocol import errors as E
from virtwire.protocol import typedparams as TP
from virtwire.protocol.generated import admin as A
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ..driver.base import ConnectionContext
from .clientinfo import TRANSPORTS, Param, client_info

if TYPE_CHECKING:
    from ..connection import Connection
    from ..service import Service
    from .daemon import Daemon

log = logging.getLogger(__name__)

# What virAdmConnectGetLibVersion answers: libvirt 9.0.0, the version we speak.
LIB_VERSION = 9_000_000
ADMIN = C.VIR_FROM_ADMIN

THREADPOOL_SETTABLE = {
    C.VIR_THREADPOOL_WORKERS_MIN: TP.UINT,
    C.VIR_THREADPOOL_WORKERS_MAX: TP.UINT,
    C.VIR_THREADPOOL_WORKERS_PRIORITY: TP.UINT,
}
CLIENT_LIMITS_SETTABLE = {C.VIR_SERVER_CLIENTS_MAX: TP.UINT, C.VIR_SERVER_CLIENTS_UNAUTH_MAX: TP.UINT}


def check_flags(flags: int, function: str, allowed: int = 0) -> None:
    """virCheckFlags in admin_server.c (VIR_FROM_ADMIN, libvirt's function name)."""
    if flags & ~allowed:
        raise E.unsupported_flags(flags & ~allowed, function, ADMIN)


def _to_admin(params: Sequence[Param]) -> list[A.admin_typed_param]:
    # admin_typed_param has remote_typed_param's layout: build one, re-read it as the other.
    return [A.admin_typed_param.from_bytes(TP.make_param(*p).to_bytes()) for p in params]


def _from_admin(params: Sequence[A.admin_typed_param], limit: int) -> list[Param]:
    TP.check_count(len(params), limit)  # virTypedParamsDeserialize
    return TP.params_to_list([R.remote_typed_param.from_bytes(p.to_bytes()) for p in params])


def _nonnull_client(service: Service, conn: Connection) -> A.admin_nonnull_client:
    return A.admin_nonnull_client(
        srv=A.admin_nonnull_server(name=service.name),
        id=conn.ctx.conn_id,
        timestamp=int(conn.connected_at),
        transport=TRANSPORTS.get(conn.ctx.transport, C.VIR_CLIENT_TRANS_TCP),
    )


class AdminProcedures:
    """The daemon-level admin calls, bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    # --- lookups -----------------------------------------------------------------------------

    def _server(self, name: str) -> Service:
        """virNetDaemonGetServer."""
        service = self.daemon.servers.get(name)
        if service is None:
            raise E.make_error(C.VIR_ERR_NO_SERVER, C.VIR_FROM_RPC, f"No server named '{name}'")
        return service

    def _server_admin_wording(self, name: str) -> Service:
        """The hand-written dispatchers replace the lookup's error with their own."""
        service = self.daemon.servers.get(name)
        if service is None:
            detail = f"no server with matching name '{name}' found"
            raise E.make_error(C.VIR_ERR_NO_SERVER, ADMIN, detail)
        return service

    @staticmethod
    def _client(service: Service, client_id: int) -> Connection:
        """virNetServerGetClient."""
        for conn in service.connections:
            if conn.ctx.conn_id == client_id:
                return conn
        raise E.make_error(C.VIR_ERR_NO_CLIENT, C.VIR_FROM_RPC, f"No client with matching ID '{client_id}'")

    # --- the daemon -------------------------------------------------------------------------

    async def connect_get_lib_version(
        self, args: None, ctx: ConnectionContext
    ) -> A.admin_connect_get_lib_version_ret:
        return A.admin_connect_get_lib_version_ret(libVer=LIB_VERSION)

    async def connect_list_servers(
        self, args: A.admin_connect_list_servers_args, ctx: ConnectionContext
    ) -> A.admin_connect_list_servers_ret:
        check_flags(args.flags, "adminConnectListServers")
        names = list(self.daemon.servers)
        servers = [A.admin_nonnull_server(name=n) for n in names] if args.need_results else []
        return A.admin_connect_list_servers_ret(servers=servers, ret=len(names))

    async def connect_lookup_server(
        self, args: A.admin_connect_lookup_server_args, ctx: ConnectionContext
    ) -> A.admin_connect_lookup_server_ret:
        # libvirt checks these flags against themselves: any value passes.
        service = self._server(args.name)
        return A.admin_connect_lookup_server_ret(srv=A.admin_nonnull_server(name=service.name))

    # --- worker pool -------------------------------------------------------------------------

    async def server_get_threadpool_parameters(
        self, args: A.admin_server_get_threadpool_parameters_args, ctx: ConnectionContext
    ) -> A.admin_server_get_threadpool_parameters_ret:
        service = self._server(args.srv.name)
        check_flags(args.flags, "adminServerGetThreadPoolParameters")
        pool = self.daemon.threadpools[service.name]
        running = sum(conn.calls_in_flight for conn in service.connections)
        params: list[Param] = [
            (C.VIR_THREADPOOL_WORKERS_MIN, TP.UINT, pool.min_workers),
            (C.VIR_THREADPOOL_WORKERS_MAX, TP.UINT, pool.max_workers),
            # Calls running in tasks of their own right now; none ever waits in a queue.
            (C.VIR_THREADPOOL_WORKERS_CURRENT, TP.UINT, running),
            (C.VIR_THREADPOOL_WORKERS_FREE, TP.UINT, 0),
            (C.VIR_THREADPOOL_WORKERS_PRIORITY, TP.UINT, pool.prio_workers),
            (C.VIR_THREADPOOL_JOB_QUEUE_DEPTH, TP.UINT, 0),
        ]
        return A.admin_server_get_threadpool_parameters_ret(params=_to_admin(params))

    async def server_set_threadpool_parameters(
        self, args: A.admin_server_set_threadpool_parameters_args, ctx: ConnectionContext
    ) -> None:
        service = self._server_admin_wording(args.srv.name)
        params = _from_admin(args.params, A.ADMIN_SERVER_THREADPOOL_PARAMETERS_MAX)
        check_flags(args.flags, "adminServerSetThreadPoolParameters")
        TP.validate(params, THREADPOOL_SETTABLE)
        values = {name: int(value) for name, _, value in params}
        pool = self.daemon.threadpools[service.name]
        new_min = values.get(C.VIR_THREADPOOL_WORKERS_MIN, pool.min_workers)
        new_max = values.get(C.VIR_THREADPOOL_WORKERS_MAX, pool.max_workers)
        # virThreadPoolSetParameters (util/virthreadpool.c: VIR_FROM_NONE)
        if new_min > new_max:
            raise E.invalid_arg("minWorkers cannot be larger than maxWorkers", C.VIR_FROM_NONE)
        if C.VIR_THREADPOOL_WORKERS_MAX in values and (new_max == 0) != (pool.max_workers == 0):
            detail = "maxWorkers must not be switched from zero to non-zero and vice versa"
            raise E.invalid_arg(detail, C.VIR_FROM_NONE)
        pool.min_workers = new_min
        pool.max_workers = new_max
        pool.prio_workers = values.get(C.VIR_THREADPOOL_WORKERS_PRIORITY, pool.prio_workers)

    # --- clients -----------------------------------------------------------------------------

    async def server_list_clients(
        self, args: A.admin_server_list_clients_args, ctx: ConnectionContext
    ) -> A.admin_server_list_clients_ret:
        service = self._server(args.srv.name)
        check_flags(args.flags, "adminServerListClients")
        conns = sorted(service.connections, key=lambda c: c.ctx.conn_id)
        clients = [_nonnull_client(service, c) for c in conns] if args.need_results else []
        return A.admin_server_list_clients_ret(clients=clients, ret=len(conns))

    async def server_lookup_client(
        self, args: A.admin_server_lookup_client_args, ctx: ConnectionContext
    ) -> A.admin_server_lookup_client_ret:
        service = self._server(args.srv.name)
        check_flags(args.flags, "adminServerLookupClient")
        return A.admin_server_lookup_client_ret(clnt=_nonnull_client(service, self._client(service, args.id)))

    async def client_get_info(
        self, args: A.admin_client_get_info_args, ctx: ConnectionContext
    ) -> A.admin_client_get_info_ret:
        service = self._server_admin_wording(args.clnt.srv.name)
        conn = next((c for c in service.connections if c.ctx.conn_id == args.clnt.id), None)
        if conn is None:
            detail = f"no client with matching id '{args.clnt.id}' found"
            raise E.make_error(C.VIR_ERR_NO_CLIENT, ADMIN, detail)
        check_flags(args.flags, "adminClientGetInfo")
        return A.admin_client_get_info_ret(params=_to_admin(client_info(conn)))

    async def client_close(self, args: A.admin_client_close_args, ctx: ConnectionContext) -> None:
        service = self._server(args.clnt.srv.name)
        conn = self._client(service, args.clnt.id)
        check_flags(args.flags, "adminClientClose")
        conn.abort("closed by virt-admin client-disconnect")

    async def server_get_client_limits(
        self, args: A.admin_server_get_client_limits_args, ctx: ConnectionContext
    ) -> A.admin_server_get_client_limits_ret:
        service = self._server(args.srv.name)
        check_flags(args.flags, "adminServerGetClientLimits")
        cfg = service.config
        params: list[Param] = [
            (C.VIR_SERVER_CLIENTS_MAX, TP.UINT, cfg.max_clients),
            (C.VIR_SERVER_CLIENTS_CURRENT, TP.UINT, len(service.connections) + service.handshaking),
            (C.VIR_SERVER_CLIENTS_UNAUTH_MAX, TP.UINT, cfg.max_anonymous_clients),
            (C.VIR_SERVER_CLIENTS_UNAUTH_CURRENT, TP.UINT, service.handshaking),
        ]
        return A.admin_server_get_client_limits_ret(params=_to_admin(params))

    async def server_set_client_limits(
        self, args: A.admin_server_set_client_limits_args, ctx: ConnectionContext
    ) -> None:
        service = self._server_admin_wording(args.srv.name)
        params = _from_admin(args.params, A.ADMIN_SERVER_CLIENT_LIMITS_MAX)
        check_flags(args.flags, "adminServerSetClientLimits")
        TP.validate(params, CLIENT_LIMITS_SETTABLE)
        values = {name: int(value) for name, _, value in params}
        cfg = service.config
        new_max = values.get(C.VIR_SERVER_CLIENTS_MAX, cfg.max_clients)
        new_unauth = values.get(C.VIR_SERVER_CLIENTS_UNAUTH_MAX, cfg.max_anonymous_clients)
        if new_max < new_unauth:  # virNetServerSetClientLimits
            detail = (
                "The overall maximum number of clients waiting for authentication must not be less"
                " than the overall maximum number of clients"
            )
            raise E.invalid_arg(detail, C.VIR_FROM_RPC)
        service.set_client_limits(new_max, new_unauth)

    async def server_update_tls_files(
        self, args: A.admin_server_update_tls_files_args, ctx: ConnectionContext
    ) -> None:
        service = self._server(args.srv.name)
        check_flags(args.flags, "adminServerUpdateTlsFiles")
        tls = self.daemon.tls if service.name == "libvirtd" else None
        if tls is None:
            raise E.internal_error("no tls service found, unable to update tls files", C.VIR_FROM_RPC)
        context, files = tls
        try:  # the new files replace the old ones in the listeners' context
            context.load_verify_locations(files.cacert)
            if files.cacrl is not None and files.cacrl.exists():
                context.load_verify_locations(files.cacrl)
            context.load_cert_chain(files.cert, files.key)
        except OSError as exc:
            detail = f"Cannot read certificate '{exc.filename}'"
            raise E.system_error(exc.errno or 0, detail, C.VIR_FROM_RPC) from None
        except ssl.SSLError as exc:
            detail = f"Unable to load the TLS files {files.cert}, {files.key}: {exc}"
            raise E.internal_error(detail, C.VIR_FROM_RPC) from None
        log.info("TLS files reloaded: %s", files.cert)

    # --- logging and timeout ---------------------------------------------------------------------

    async def connect_get_logging_outputs(
        self, args: A.admin_connect_get_logging_outputs_args, ctx: ConnectionContext
    ) -> A.admin_connect_get_logging_outputs_ret:
        check_flags(args.flags, "adminConnectGetLoggingOutputs")
        settings = self.daemon.log
        return A.admin_connect_get_logging_outputs_ret(
            outputs=settings.outputs_text(), noutputs=len(settings.outputs)
        )

    async def connect_get_logging_filters(
        self, args: A.admin_connect_get_logging_filters_args, ctx: ConnectionContext
    ) -> A.admin_connect_get_logging_filters_ret:
        check_flags(args.flags, "adminConnectGetLoggingFilters")
        settings = self.daemon.log
        count = len(settings.filters)
        return A.admin_connect_get_logging_filters_ret(
            filters=settings.filters_text() if count else None, nfilters=count
        )

    async def connect_set_logging_outputs(
        self, args: A.admin_connect_set_logging_outputs_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, "adminConnectSetLoggingOutputs")
        self.daemon.log.set_outputs(args.outputs)

    async def connect_set_logging_filters(
        self, args: A.admin_connect_set_logging_filters_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, "adminConnectSetLoggingFilters")
        self.daemon.log.set_filters(args.filters)

    async def connect_set_daemon_timeout(
        self, args: A.admin_connect_set_daemon_timeout_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, "adminConnectSetDaemonTimeout")
        self.daemon.idle.set_timeout(args.timeout)
