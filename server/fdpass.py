"""File descriptors that come with a call or go with its reply (unix sockets).

libvirt passes descriptors beside a packet: a CALL_WITH_FDS brings some (its
payload starts with their count, each follows as a one-byte message carrying
one by SCM_RIGHTS), a REPLY_WITH_FDS takes some back the same way.  The
connection (server/connection.py) receives and sends them; a driver method
sees them through this module while its call runs:

* ``take()`` hands it the descriptors the call brought; they are then its own
  to close.  Whatever it does not take is closed when the call ends, failed or
  not, as libvirtd closes its message's descriptors (no leak on any error);
* ``give(fd)`` passes a descriptor back with the reply; the connection closes its
  copy once sent, or at once if the call fails.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C


class CallFds:
    """The descriptors of one call: those it brought and those its reply takes."""

    __slots__ = ("incoming", "outgoing")

    def __init__(self, incoming: list[int]) -> None:
        self.incoming = incoming
        self.outgoing: list[int] = []


_current: contextvars.ContextVar[CallFds | None] = contextvars.ContextVar("virtwire_call_fds", default=None)


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class serving:
    """Run one call with its descriptors; those it did not take are closed after,
    and those its reply was to take too if the call fails.

    A class rather than a @contextmanager generator: it wraps every call the
    server answers, and a generator's context manager costs several times more.
    """

    __slots__ = ("_call", "_token")

    def __init__(self, incoming: list[int]) -> None:
        self._call = CallFds(incoming)

    def __enter__(self) -> CallFds:
        self._token = _current.set(self._call)
        return self._call

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        call = self._call
        try:
            if exc_type is not None:
                close_all(call.outgoing)
        finally:
            _current.reset(self._token)
            close_all(call.incoming)


def take() -> list[int]:
    """The descriptors the running call brought, now the caller's to close."""
    call = _current.get()
    if call is None:
        return []
    fds, call.incoming = call.incoming, []
    return fds


def take_one(slot: int = 0) -> int:
    """The descriptor at ``slot`` (virNetMessageDupFD); libvirt's error when there is none."""
    call = _current.get()
    if call is None or slot >= len(call.incoming):
        raise E.make_error(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, f"No FD available at slot {slot}")
    return call.incoming.pop(slot)


def give(fd: int) -> None:
    """Pass ``fd`` back with the reply (REPLY_WITH_FDS); the connection owns it now."""
    call = _current.get()
    if call is None:
        os.close(fd)
        raise E.internal_error("no call to pass a descriptor with", C.VIR_FROM_RPC)
    call.outgoing.append(fd)
