"""The errors libvirt's client library raises locally, with its exact fields.

Each helper returns a `libvirtError` (the protocol package's class) carrying
the nine fields libvirt-python exposes: code, domain, message, level, str1..3,
int1, int2. The text follows libvirt's format strings (virerror.c) so that a
program that matches on messages behaves the same as with libvirt-python.
"""

from __future__ import annotations

import errno
import os

from virtwire.protocol import errors
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

VIR_ERR_ERROR = 2


def make(
    code: int,
    domain: int,
    message: str,
    str1: str | None = None,
    str2: str | None = None,
    str3: str | None = None,
    int1: int = -1,
    int2: int = -1,
) -> libvirtError:
    """A libvirtError with all nine fields given explicitly."""
    return libvirtError(message, (code, domain, message, VIR_ERR_ERROR, str1, str2, str3, int1, int2))


def templated(code: int, domain: int, detail: str) -> libvirtError:
    return errors.make_error(code, domain, detail)


def invalid_arg(detail: str) -> libvirtError:
    return templated(c.VIR_ERR_INVALID_ARG, c.VIR_FROM_REMOTE, detail)


def operation_unsupported(detail: str) -> libvirtError:
    return templated(c.VIR_ERR_OPERATION_UNSUPPORTED, c.VIR_FROM_REMOTE, detail)


def uri_parse(uri: str) -> libvirtError:
    return templated(c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_URI, f"Unable to parse URI {uri}")


def system(message: str, err: int = -1) -> libvirtError:
    """VIR_ERR_SYSTEM_ERROR from the RPC layer, as virReportSystemError builds it."""
    return make(c.VIR_ERR_SYSTEM_ERROR, c.VIR_FROM_RPC, message, "%s", message, None, err, -1)


def system_errno(prefix: str, exc: OSError) -> libvirtError:
    """`prefix: strerror(errno)` with int1 = errno, as virReportSystemError does."""
    code = exc.errno if exc.errno is not None else errno.EIO
    return system(f"{prefix}: {os.strerror(code)}", code)


def rpc(message: str) -> libvirtError:
    """VIR_ERR_RPC / VIR_FROM_RPC with a plain "%s" message."""
    return make(c.VIR_ERR_RPC, c.VIR_FROM_RPC, message, "%s", message)


def read_only(api: str) -> libvirtError:
    return errors.operation_denied(api)


def no_support(api: str, domain: int | None = None) -> libvirtError:
    return errors.no_support(api, domain)


def invalid_conn(api: str) -> libvirtError:
    return templated(c.VIR_ERR_INVALID_CONN, c.VIR_FROM_NONE, api)


def keepalive_timeout() -> libvirtError:
    # virnetclient.c: virNetClientMarkClose(..., VIR_CONNECT_CLOSE_REASON_KEEPALIVE)
    # followed by a call error "connection closed due to keepalive timeout".
    return make(
        c.VIR_ERR_INTERNAL_ERROR,
        c.VIR_FROM_RPC,
        "internal error: connection closed due to keepalive timeout",
        "internal error: %s",
        "connection closed due to keepalive timeout",
    )


def fds_unsupported() -> libvirtError:
    """libvirt's error for descriptors on a socket that cannot carry them (not unix);
    libvirt then drops the connection."""
    return templated(
        c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_RPC, "Sending file descriptors is not supported on this socket"
    )


def socket_closed() -> libvirtError:
    return templated(c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_RPC, "client socket is closed")
