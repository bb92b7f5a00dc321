"""Socket sends and reads that cannot block, made without letting go of the GIL.

Python's socket methods release the GIL around every system call. When several
threads share a connection, the release hands the GIL to a thread waiting for
it, and the caller, back from the kernel a microsecond later, waits to get it
back: two context switches around a send that never had to wait. libvirt-python
pays no such price: its whole call runs in C without the GIL.

A send or recv with MSG_DONTWAIT returns at once, so the thread shell makes
it through ctypes' PyDLL, which calls C without releasing the GIL. Only when
the call would block (EAGAIN) does the shell fall back to the socket's own
method, which waits without the GIL as before. Linux only (elsewhere
`AVAILABLE` is False and the shell uses the socket methods alone).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

# Would block, or a signal came: the socket's own method takes over (and runs
# the signal handlers).
_RETRY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})
SEND_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)
RECV_FLAGS = getattr(socket, "MSG_DONTWAIT", 0)

Buffer = ctypes.Array[ctypes.c_char]


def _unavailable(fd: int, data: Any, size: int, flags: int) -> int:
    raise OSError(errno.ENOSYS, "no GIL-holding socket calls on this platform")


send: Callable[[int, bytes, int, int], int] = _unavailable
recv: Callable[[int, Buffer, int, int], int] = _unavailable
string_at = ctypes.string_at
AVAILABLE = False

if sys.platform.startswith("linux"):
    # PyDLL: the GIL stays held. No argtypes: ctypes' default conversions (int
    # to C int, bytes and buffers to pointers) cost half as much per call, and
    # every value passed fits: descriptors, flags, and sizes below 2 GiB (packets
    # are at most 32 MiB; libffi widens a C int argument to the register).
    _libc = ctypes.PyDLL(None, use_errno=True)
    send, recv = _libc.send, _libc.recv
    AVAILABLE = True


def failed() -> OSError | None:
    """After a call returned -1: None when it would have blocked (or a signal
    came), else the error, as the socket method would have raised it."""
    err = ctypes.get_errno()
    if err in _RETRY:
        return None
    return OSError(err, os.strerror(err))  # OSError picks the subclass (ConnectionResetError...)


def buffer(size: int) -> Buffer:
    """A receive buffer; `string_at(buf, n)` copies the n bytes read out of it."""
    return ctypes.create_string_buffer(size)
