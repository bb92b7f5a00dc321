"""Receiving file descriptors on the client's unix sockets (SCM_RIGHTS).

libvirt's daemon passes descriptors after a REPLY_WITH_FDS packet, one per
one-byte message (virSocketSendFD).  A plain recv() that reaches such a byte
would make the kernel close the descriptor it carries, so the shells read unix
sockets with recvmsg and an ancillary buffer: a read then ends at the first
byte carrying descriptors, and they come with it.  The core pairs them with
their reply (core.ClientProtocol.receive_data).
"""

from __future__ import annotations

import _socket
import array
import socket
from typing import Any, Final

from virtwire.protocol import wire

# Room for the most descriptors one message may pass; a read returns those of one
# carrier byte (the kernel stops after it), the rest of a bigger batch is dropped.
ANCILLARY_SIZE: Final = socket.CMSG_SPACE(wire.NUM_FDS_MAX * 4)
_INT = array.array("i").itemsize


def fds_of(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors in recvmsg's ancillary data."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _INT
            fds.extend(array.array("i", data[:usable]))
    return fds


def recv(sock: Any, size: int) -> tuple[bytes, list[int]]:
    """Up to `size` bytes from a unix socket and the descriptors that came with them."""
    data, ancdata, _flags, _addr = sock.recvmsg(size, ANCILLARY_SIZE)
    return data, (fds_of(ancdata) if ancdata else [])


# The C socket's family, a plain int: socket.socket.family converts it to an
# AddressFamily member through the enum machinery (a dozen Python calls), and
# every open asks.
_family = _socket.socket.family.__get__


def is_unix(sock: Any) -> bool:
    """Whether `sock` is a unix socket (a daemon's, or a tunnel's socketpair)."""
    return isinstance(sock, socket.socket) and _family(sock) == socket.AF_UNIX


def carries_fds(sock: Any) -> bool:
    """Whether descriptors may travel on `sock`, as libvirt's virNetSocketHasPassFD
    decides: a unix socket connected to a daemon's address.  The unix socketpair of an
    ssh or ext tunnel has a program's stdin/stdout at its far end, not the daemon:
    libvirt's command sockets have no address, and pass no descriptors."""
    if not is_unix(sock):
        return False
    try:
        return bool(sock.getpeername())
    except OSError:
        return False
