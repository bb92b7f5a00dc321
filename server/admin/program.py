"""The ADMIN program as the dispatcher sees it: routes to the handlers, open and close.

Every admin call may come before ADMIN_PROC_CONNECT_OPEN (libvirtd's admin
dispatchers never look for an open connection) and needs no authentication
(the admin socket admits the daemon's own user only); none ever waits, so
all of them run in the connection's reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtwire.protocol.generated import admin as A

from ..dispatch import Handler, Program, Route
from ..driver.base import ConnectionContext
from .procedures import AdminProcedures, check_flags

if TYPE_CHECKING:
    from ..connection import Connection
    from .daemon import Daemon

CONNECTION_LEVEL = frozenset({"CONNECT_OPEN", "CONNECT_CLOSE"})


class AdminConnectionProcedures:
    """ADMIN_PROC_CONNECT_OPEN / CLOSE, bound to one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def connect_open(self, args: A.admin_connect_open_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, "adminDispatchConnectOpen")
        self.conn.opened = True

    async def connect_close(self, args: None, ctx: ConnectionContext) -> None:
        self.conn.queue_close()


def admin_program(daemon: Daemon) -> Program:
    handlers = AdminProcedures(daemon)
    routes: dict[int, Route] = {}
    for number, proc in A.PROCEDURES.items():
        if proc.name in CONNECTION_LEVEL:
            routes[number] = Route(proc, None, True, True, True, needs_auth=False)
            continue
        handler: Handler = getattr(handlers, proc.name.lower())
        routes[number] = Route(proc, handler, False, True, True, needs_auth=False)
    return Program(A.ADMIN_PROGRAM, A.ADMIN_PROTOCOL_VERSION, routes, AdminConnectionProcedures)
