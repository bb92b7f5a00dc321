"""A drop-in for libvirt-python: `import virtwire.libvirt as libvirt`.

Pure Python, no C library: every call is an RPC to a libvirt daemon (a stock
libvirtd or `virtwire serve`) over tcp, tls or a unix socket. The classes,
module functions and every VIR_* constant of libvirt 9.0 have libvirt-python's
names and behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from virtwire.client import eventloop
from virtwire.client.facade import open_connection, report, set_error_handler
from virtwire.client.facade import virConnect as virConnect
from virtwire.client.facade import virDomain as virDomain
from virtwire.client.stream import virStream as virStream
from virtwire.protocol.errors import libvirtError as libvirtError
from virtwire.protocol.generated.constants import *  # noqa: F403 - every VIR_* constant, as libvirt-python

# No __all__: like libvirt-python, `from ... import *` brings every VIR_* constant.

# libvirt 9.0.0, the version whose protocol and behaviour virtwire speaks.
_LIB_VERSION = 9000000


def open(name: str | None = None) -> virConnect:
    """Open a read-write connection to the daemon named by `name`."""
    return _reported(lambda: open_connection(name, readonly=False))


def openReadOnly(name: str | None = None) -> virConnect:
    """Open a read-only connection: refused calls fail locally, without a packet."""
    return _reported(lambda: open_connection(name, readonly=True))


def openAuth(uri: str | None, auth: list[Any] | None = None, flags: int = 0) -> virConnect:
    """Open with credentials; the auth callbacks are unused (auth none/polkit only)."""
    readonly = bool(flags & VIR_CONNECT_RO)  # noqa: F405
    return _reported(lambda: open_connection(uri, readonly=readonly))


def getVersion(name: str | None = None) -> int | tuple[int, int]:
    """The library version (libvirt 9.0.0 = 9000000); with a driver name,
    (library version, driver version) as libvirt-python returns it."""
    if name is not None:
        return (_LIB_VERSION, _LIB_VERSION)
    return _LIB_VERSION


def registerErrorHandler(f: Callable[[Any, Any], Any] | None, ctx: Any) -> int:
    """Call `f(ctx, err)` for every error before it is raised (None restores the default)."""
    set_error_handler(f, ctx)
    return 1  # what libvirt-python returns


def virEventRegisterDefaultImpl() -> int:
    """Install the default event loop; connections opened afterwards answer keepalives."""
    eventloop.register_default()
    return 0


def virEventRunDefaultImpl() -> int:
    """Run one iteration of the default event loop: callbacks run on this thread."""
    loop = eventloop.default()
    if loop is None:
        raise libvirtError("virEventRunDefaultImpl() failed")
    loop.run_once()
    return 0


def _reported(fn: Callable[[], virConnect]) -> virConnect:
    try:
        return fn()
    except libvirtError as exc:
        report(exc)
        raise
