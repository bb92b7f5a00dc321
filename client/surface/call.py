"""The one call path of the libvirt-python surface, and its error reporting.

`invoke` sends one Op and converts its reply (refused locally first on a
read-only connection); `report` hands an error to the registered error
handler (registerErrorHandler) and keeps it as the thread's last error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from virtwire.client import core, ops
from virtwire.client.surface import lasterror
from virtwire.client.sync import SyncConnection
from virtwire.protocol.errors import libvirtError

_error_handler: list[tuple[Callable[[Any, Any], Any], Any]] = []


def set_error_handler(f: Callable[[Any, Any], Any] | None, ctx: Any) -> None:
    """registerErrorHandler: `f(ctx, err)` sees every error before it is raised."""
    _error_handler[:] = [] if f is None else [(f, ctx)]


def report(exc: libvirtError) -> None:
    lasterror.record(exc.err)
    for f, ctx in list(_error_handler):
        if exc.err is not None:
            f(ctx, exc.err)


def invoke(sock: SyncConnection, readonly: bool, op: ops.Op) -> Any:
    """Send one call and convert its reply; refused locally on a read-only connection."""
    # Every libvirt API call starts by forgetting the thread's last error.
    lasterror.reset()
    if readonly:
        core.check_read_only(op.proc, op.flags, op.api)
    proc = op.proc
    return op.convert(core.decode_reply(proc, sock.call(proc.number, op.payload())))
