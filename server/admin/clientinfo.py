"""What virt-admin client-info shows about one client (libvirt's adminClientGetInfo).

A local (unix socket) client is described by its peer credentials, read with
SO_PEERCRED, and the user and group names they stand for; a TCP or TLS client
by its address.  Parameter names are libvirt-admin.h's VIR_CLIENT_INFO_*.
"""

from __future__ import annotations

import grp
import pwd
import socket
import struct
from typing import TYPE_CHECKING

from virtwire.protocol import typedparams as TP
from virtwire.protocol.generated import constants as C

if TYPE_CHECKING:
    from ..connection import Connection

TRANSPORTS = {"unix": C.VIR_CLIENT_TRANS_UNIX, "tcp": C.VIR_CLIENT_TRANS_TCP, "tls": C.VIR_CLIENT_TRANS_TLS}
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid

Param = tuple[str, int, TP.ParamValue]


def peer_credentials(sock: object) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end of a unix socket, if it is one."""
    if not isinstance(sock, socket.socket) or sock.family != socket.AF_UNIX or sock.fileno() < 0:
        return None
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(data)
    return pid, uid, gid


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def client_info(conn: Connection) -> list[Param]:
    """The parameters in libvirt's order: readonly, then address or unix identity."""
    params: list[Param] = [(C.VIR_CLIENT_INFO_READONLY, TP.BOOLEAN, conn.ctx.readonly)]
    if conn.ctx.transport != "unix":
        params.append((C.VIR_CLIENT_INFO_SOCKET_ADDR, TP.STRING, conn.ctx.peer))
        return params
    creds = peer_credentials(conn.stream)
    if creds is None:
        return params
    pid, uid, gid = creds
    params.append((C.VIR_CLIENT_INFO_UNIX_USER_ID, TP.INT, uid))
    if (user := _user_name(uid)) is not None:
        params.append((C.VIR_CLIENT_INFO_UNIX_USER_NAME, TP.STRING, user))
    params.append((C.VIR_CLIENT_INFO_UNIX_GROUP_ID, TP.INT, gid))
    if (group := _group_name(gid)) is not None:
        params.append((C.VIR_CLIENT_INFO_UNIX_GROUP_NAME, TP.STRING, group))
    params.append((C.VIR_CLIENT_INFO_UNIX_PROCESS_ID, TP.INT, pid))
    return params
