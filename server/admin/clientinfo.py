"""What virt-admin client-info shows about one client (libvirt's adminClientGetInfo).

The client's identity is the connection's record (server/identity.py), the
one the access policy matches on: a local (unix socket) client by its peer
credentials and the user and group names they stand for, a TCP or TLS client
by its address and certificate DN, and the SASL user name once it logged in.
Parameter names are libvirt-admin.h's VIR_CLIENT_INFO_*, in libvirt's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtwire.protocol import typedparams as TP
from virtwire.protocol.generated import constants as C

from ..peer_identity import identity_attributes

if TYPE_CHECKING:
    from ..connection import Connection

TRANSPORTS = {"unix": C.VIR_CLIENT_TRANS_UNIX, "tcp": C.VIR_CLIENT_TRANS_TCP, "tls": C.VIR_CLIENT_TRANS_TLS}

Param = tuple[str, int, TP.ParamValue]

# identity attribute -> (client info parameter, its type), for a local client
_UNIX = (
    ("unix_user_id", C.VIR_CLIENT_INFO_UNIX_USER_ID, TP.INT),
    ("user_name", C.VIR_CLIENT_INFO_UNIX_USER_NAME, TP.STRING),
    ("unix_group_id", C.VIR_CLIENT_INFO_UNIX_GROUP_ID, TP.INT),
    ("group_name", C.VIR_CLIENT_INFO_UNIX_GROUP_NAME, TP.STRING),
    ("process_id", C.VIR_CLIENT_INFO_UNIX_PROCESS_ID, TP.INT),
)


def peer_uid(stream: object) -> int | None:
    """The user id of the process at the other end of a unix socket, if it is one."""
    try:
        uid = identity_attributes(stream, "unix").get("unix_user_id")
    except OSError:
        return None
    return None if uid is None else int(uid)


def client_info(conn: Connection) -> list[Param]:
    attrs = conn.ctx.identity.attributes()
    params: list[Param] = [(C.VIR_CLIENT_INFO_READONLY, TP.BOOLEAN, conn.ctx.readonly)]
    if "sasl_user_name" in attrs:
        params.append((C.VIR_CLIENT_INFO_SASL_USER_NAME, TP.STRING, attrs["sasl_user_name"]))
    if conn.ctx.transport != "unix":
        params.append((C.VIR_CLIENT_INFO_SOCKET_ADDR, TP.STRING, conn.ctx.peer))
        if "x509_dname" in attrs:
            params.append((C.VIR_CLIENT_INFO_X509_DISTINGUISHED_NAME, TP.STRING, attrs["x509_dname"]))
        return params
    for attr, name, kind in _UNIX:
        if attr in attrs:
            params.append((name, kind, int(attrs[attr]) if kind == TP.INT else attrs[attr]))
    return params
