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
from collections.abc import Iterator

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


@contextlib.contextmanager
def serving(incoming: list[int]) -> Iterator[CallFds]:
    """Run one call with its descriptors; those it did not take are closed after."""
    call = CallFds(incoming)
    token = _current.set(call)
    try:
        yield call
    except BaseException:
        close_all(call.outgoing)
        raise
    finally:
        _current.reset(token)
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
