"""The one call path of the libvirt-python surface, and its error reporting.

`invoke` sends one Op and converts its reply (refused locally first on a
read-only connection); `report` hands an error to the registered error
handler (registerErrorHandler), or without one prints it on stderr as
libvirt-python does, and keeps it as the thread's last error.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

from virtwire.client import core, errfactory, ops
from virtwire.client.surface import errprint, lasterror
from virtwire.client.sync import SyncConnection
from virtwire.protocol.errors import libvirtError

_error_handler: list[tuple[Callable[[Any, Any], Any], Any]] = []


def set_error_handler(f: Callable[[Any, Any], Any] | None, ctx: Any) -> None:
    """registerErrorHandler: `f(ctx, err)` sees every error before it is raised."""
    _error_handler[:] = [] if f is None else [(f, ctx)]


def report(exc: libvirtError) -> None:
    # Code runs inside the async API's bridge only once an async API imported it
    # (bridge.py pulls in greenlet, which a threads program does without).
    bridge = sys.modules.get("virtwire.client.bridge")
    if bridge is not None and bridge.inside():
        return  # the async API's call (client/aio_handle.py): the exception says it all
    err = exc.err
    lasterror.record(err)
    if err is None:
        return
    handlers = list(_error_handler)
    if not handlers:
        # libvirt-python's default: libvirt's report on stderr.
        errprint.print_default(err)
    for f, ctx in handlers:
        f(ctx, err)


def check_duplicable(fds: list[int]) -> None:
    """libvirt duplicates each descriptor before it sends the call (virNetClientProgramCall)."""
    for fd in fds:
        try:
            os.close(os.dup(fd))
        except OSError as exc:
            raise errfactory.system_errno(f"Cannot duplicate FD {fd}", exc) from None
        except (OverflowError, ValueError):
            raise errfactory.system_errno(f"Cannot duplicate FD {fd}", OSError(errno.EBADF, "")) from None


def invoke_with_fds(sock: SyncConnection, readonly: bool, op: ops.Op, fds: list[int]) -> Any:
    """As invoke, for a call that passes file descriptors (CALL_WITH_FDS)."""
    lasterror.reset()
    if readonly:
        core.check_read_only(op.proc, op.flags, op.api)
    check_duplicable(fds)
    proc = op.proc
    return op.convert(core.decode_reply(proc, sock.call_with_fds(proc.number, op.payload(), fds)))


def invoke_receiving_fds(sock: SyncConnection, op: ops.Op) -> tuple[Any, list[int]]:
    """A call whose reply passes descriptors (REPLY_WITH_FDS): its converted
    reply and the descriptors, the caller's to close.  No read-only check here:
    the callers check first, in libvirt's order."""
    proc = op.proc
    reply = sock.call_receiving_fds(proc.number, op.payload())
    fds = core.take_fds(reply)
    try:
        return op.convert(core.decode_reply(proc, reply)), fds
    except BaseException:
        core.close_fds(fds)
        raise


_thread_error = lasterror.state


def run(sock: SyncConnection, readonly: bool, op: ops.Op) -> Any:
    """One public call: invoke, its error also reported (error handler, last error).

    invoke's body is written out here rather than called: this is the path of
    every facade call, and a frame less per call is measurable."""
    _thread_error.err = None  # lasterror.reset(): every libvirt API call starts so
    try:
        if readonly:
            core.check_read_only(op.proc, op.flags, op.api)
        proc = op.proc
        return op.convert(core.decode_reply(proc, sock.call(proc.number, op.payload())))
    except libvirtError as exc:
        report(exc)
        raise


def invoke(sock: SyncConnection, readonly: bool, op: ops.Op) -> Any:
    """Send one call and convert its reply; refused locally on a read-only connection."""
    # Every libvirt API call starts by forgetting the thread's last error.
    lasterror.reset()
    if readonly:
        core.check_read_only(op.proc, op.flags, op.api)
    proc = op.proc
    return op.convert(core.decode_reply(proc, sock.call(proc.number, op.payload())))
