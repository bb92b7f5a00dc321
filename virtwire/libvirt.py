"""A drop-in for libvirt-python: `import virtwire.libvirt as libvirt`.

Pure Python, no C library: every call is an RPC to a libvirt daemon (a stock
libvirtd or `virtwire serve`) over tcp, tls or a unix socket. The classes,
module functions and every VIR_* constant of libvirt 9.0 have libvirt-python's
names and behaviour.
"""

from __future__ import annotations

import collections.abc as _abc
import types as _types
from typing import Any, TypeVar

from virtwire.client import eventloop as _eventloop
from virtwire.client.facade import open_connection as _open_connection
from virtwire.client.facade import report as _report
from virtwire.client.facade import set_error_handler as _set_error_handler
from virtwire.client.facade import virConnect as virConnect
from virtwire.client.facade import virDomain as virDomain
from virtwire.client.stream import virStream as virStream
from virtwire.client.surface import cnames as _cnames
from virtwire.client.surface import eventimpl as _eventimpl
from virtwire.client.surface import lasterror as _lasterror
from virtwire.client.surface.objects import virDomainCheckpoint as virDomainCheckpoint
from virtwire.client.surface.objects import virDomainSnapshot as virDomainSnapshot
from virtwire.client.surface.objects import virInterface as virInterface
from virtwire.client.surface.objects import virNetwork as virNetwork
from virtwire.client.surface.objects import virNetworkPort as virNetworkPort
from virtwire.client.surface.objects import virNodeDevice as virNodeDevice
from virtwire.client.surface.objects import virNWFilter as virNWFilter
from virtwire.client.surface.objects import virNWFilterBinding as virNWFilterBinding
from virtwire.client.surface.objects import virSecret as virSecret
from virtwire.client.surface.objects import virStoragePool as virStoragePool
from virtwire.client.surface.objects import virStorageVol as virStorageVol
from virtwire.protocol.errors import libvirtError as libvirtError
from virtwire.protocol.generated.constants import *  # noqa: F403 - every VIR_* constant, as libvirt-python

# No __all__: like libvirt-python, `from ... import *` brings every VIR_* constant.

# libvirt-python's names for the event-loop callback types (its type hints use them).
_T = TypeVar("_T")
_EventCB = _abc.Callable[[int, int, int, Any], None]
_TimerCB = _abc.Callable[[int, Any], None]

# libvirt 9.0.0, the version whose protocol and behaviour virtwire speaks.
_LIB_VERSION = 9000000


def open(name: str | None = None) -> virConnect:
    """Open a read-write connection to the daemon named by `name`."""
    return _reported(lambda: _open_connection(name, readonly=False))


def openReadOnly(name: str | None = None) -> virConnect:
    """Open a read-only connection: refused calls fail locally, without a packet."""
    return _reported(lambda: _open_connection(name, readonly=True))


def openAuth(uri: str | None, auth: list[Any] | None, flags: int = 0) -> virConnect:
    """Open with credentials: `auth` is [credential types, callback, cbdata]; the
    callback gets [[type, prompt, challenge, defresult, result], ...] and cbdata,
    fills in each result and returns 0 (SASL; auth.conf is consulted first)."""
    readonly = bool(flags & VIR_CONNECT_RO)  # noqa: F405
    return _reported(lambda: _open_connection(uri, readonly=readonly, auth=auth))


def getVersion(name: str | None = None) -> int | tuple[int, int]:
    """The library version (libvirt 9.0.0 = 9000000); with a driver name,
    (library version, driver version) as libvirt-python returns it."""
    if name is not None:
        return (_LIB_VERSION, _LIB_VERSION)
    return _LIB_VERSION


def registerErrorHandler(f: _abc.Callable[[Any, Any], Any] | None, ctx: Any) -> int:
    """Call `f(ctx, err)` for every error before it is raised (None restores the default)."""
    _set_error_handler(f, ctx)
    return 1  # what libvirt-python returns


def virInitialize() -> int:
    """Nothing to set up without a C library; kept for programs that call it."""
    return 0


# -- the last error (per thread) ------------------------------------------------------


def virGetLastError() -> tuple[Any, ...] | None:
    return _lasterror.get()


def virGetLastErrorCode() -> int:
    err = _lasterror.get()
    return 0 if err is None else int(err[0])


def virGetLastErrorDomain() -> int:
    err = _lasterror.get()
    return 0 if err is None else int(err[1])


def virGetLastErrorMessage() -> str:
    err = _lasterror.get()
    return "no error" if err is None else str(err[2])


def virResetLastError() -> None:
    _lasterror.reset()


# -- event loops ------------------------------------------------------------------------


def virEventRegisterDefaultImpl() -> int:
    """Install the default event loop; connections opened afterwards answer keepalives."""
    _eventloop.register_default()
    return 0


def virEventRunDefaultImpl() -> int:
    """Run one iteration of the default event loop: callbacks run on this thread."""
    loop = _eventloop.default()
    if loop is None:
        raise libvirtError("virEventRunDefaultImpl() failed")
    loop.run_once()
    return 0


def virEventRegisterImpl(
    addHandle: _abc.Callable[..., Any],
    updateHandle: _abc.Callable[..., Any],
    removeHandle: _abc.Callable[..., Any],
    addTimeout: _abc.Callable[..., Any],
    updateTimeout: _abc.Callable[..., Any],
    removeTimeout: _abc.Callable[..., Any],
) -> None:
    """Use the application's event loop (e.g. libvirtaio) for connections opened afterwards."""
    _eventimpl.register((addHandle, updateHandle, removeHandle, addTimeout, updateTimeout, removeTimeout))


def _impl(api: str) -> _eventimpl.ImplLoop | _eventimpl.DefaultUserEvents:
    impl = _eventimpl.user_events()
    if impl is None:
        # No event loop: libvirt fails without an error of its own.
        raise libvirtError(f"{api}() failed", _lasterror.get())
    return impl


def virEventAddHandle(fd: int, events: int, cb: _abc.Callable[..., Any], opaque: Any) -> int:
    """Watch `fd` in the event loop (the application's, else the default one):
    `cb(watch, fd, events, opaque)` runs where the loop runs."""
    return int(_impl("virEventAddHandle").add_handle(fd, events, _dispatch_handle, (cb, opaque)))


def virEventUpdateHandle(watch: int, events: int) -> None:
    _impl("virEventUpdateHandle").update_handle(watch, events)


def virEventRemoveHandle(watch: int) -> int:
    ret = int(_impl("virEventRemoveHandle").remove_handle(watch) or 0)
    if ret == -1:
        raise libvirtError("virEventRemoveHandle() failed", _lasterror.get())
    return ret


def virEventAddTimeout(timeout: int, cb: _abc.Callable[..., Any], opaque: Any) -> int:
    """A timer in the registered loop: `cb(timer, opaque)` every `timeout` ms (-1 off)."""
    return int(_impl("virEventAddTimeout").add_timeout(timeout, _dispatch_timeout, (cb, opaque)))


def virEventUpdateTimeout(timer: int, timeout: int) -> None:
    _impl("virEventUpdateTimeout").update_timeout(timer, timeout)


def virEventRemoveTimeout(timer: int) -> int:
    ret = int(_impl("virEventRemoveTimeout").remove_timeout(timer) or 0)
    if ret == -1:
        raise libvirtError("virEventRemoveTimeout() failed", _lasterror.get())
    return ret


def _dispatch_handle(watch: int, fd: int, events: int, opaque: tuple[_abc.Callable[..., Any], Any]) -> None:
    cb, data = opaque
    cb(watch, fd, events, data)


def _dispatch_timeout(timer: int, opaque: tuple[_abc.Callable[..., Any], Any]) -> None:
    cb, data = opaque
    cb(timer, data)


def _eventInvokeHandleCallback(
    watch: int, fd: int, event: int, opaque: Any, opaquecompat: Any = None
) -> None:
    """Run a handle callback an event loop was given: (cb, opaque) or, in the
    older convention, cb with the opaque apart."""
    if isinstance(opaque, tuple):
        cb, data = opaque
    else:
        cb, data = opaque, opaquecompat
    cb(watch, fd, event, data)


def _eventInvokeTimeoutCallback(timer: int, opaque: Any, opaquecompat: Any = None) -> None:
    if isinstance(opaque, tuple):
        cb, data = opaque
    else:
        cb, data = opaque, opaquecompat
    cb(timer, data)


def virEventInvokeFreeCallback(opaque: Any) -> None:
    """Nothing to free: the opaque data is a Python object, collected as usual."""


# The C-level binding names (libvirt-python's `libvirtmod`): each C function
# of the API as the callable that implements it here.
libvirtmod = _types.SimpleNamespace(
    **_cnames.bindings(globals()),
    # libvirt-python's C module has these two besides the API's functions.
    virEventInvokeHandleCallback=_eventInvokeHandleCallback,
    virEventInvokeTimeoutCallback=_eventInvokeTimeoutCallback,
)


def _reported(fn: _abc.Callable[[], virConnect]) -> virConnect:
    try:
        return fn()
    except libvirtError as exc:
        _report(exc)
        raise
