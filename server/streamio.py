"""Reading and writing a connection's stream, with a fast path for plain sockets.

For TCP and unix sockets the per-call cost of trio's SocketStream (conflict
detectors, a scheduler round trip on every successful send or receive) is a
large share of a call's CPU time.  Here a plain socket is read and written with
non-blocking ``os.read``/``os.write`` on its file descriptor and trio is only
asked to wait when the socket would block.  TLS and other streams go through
their ordinary ``receive_some``/``send_all``.

Cancellation: the waits are trio checkpoints; a reader that always finds data
also checkpoints every ``_CHECKPOINT_EVERY`` reads, so it can be cancelled and
never starves other connections.
"""

from __future__ import annotations

import array
import errno
import os
import socket

import trio
from virtwire.protocol import wire

_CHECKPOINT_EVERY = 16
# Room for the most descriptors one message may pass (a read returns those of one
# carrier byte at most: the kernel ends the read after it).
_ANCILLARY = socket.CMSG_SPACE(wire.NUM_FDS_MAX * array.array("i").itemsize)
_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT)


async def close_stream(stream: trio.abc.Stream | socket.socket) -> None:
    """Close a connection's stream; a plain socket is closed at once."""
    if isinstance(stream, socket.socket):
        trio.lowlevel.notify_closing(stream)
        stream.close()
        await trio.lowlevel.checkpoint()
    else:
        await stream.aclose()


class StreamIO:
    """``receive`` and ``send`` on one stream; one reader and one writer at a time.

    ``stream``: a trio stream, or a connected non-blocking socket (the accept
    loop hands those over without wrapping them in a trio.SocketStream).
    """

    # One per connection, parked ones too: no instance dict.
    __slots__ = ("_fd", "_reads", "_sock", "_stream", "_unix", "direct", "passes_fds", "received_fds")

    def __init__(self, stream: trio.abc.Stream | socket.socket) -> None:
        self._stream: trio.abc.Stream | None = None  # set when not read and written directly
        self._sock: socket.socket | trio.socket.SocketType | None
        if isinstance(stream, socket.socket):
            self._sock = stream
        elif isinstance(stream, trio.SocketStream):
            self._sock = stream.socket
        else:
            self._sock = None
            self._stream = stream
        self._fd = self._sock.fileno() if self._sock is not None else -1
        self._reads = 0
        self.direct = self._sock is not None  # ``send_now`` is available
        # A plain unix socket carries descriptors (SCM_RIGHTS): it is read with
        # recvmsg, and what came is kept in ``received_fds`` for the connection.
        self._unix: socket.socket | None = (
            stream if isinstance(stream, socket.socket) and stream.family == socket.AF_UNIX else None
        )
        self.passes_fds = self._unix is not None
        self.received_fds: list[int] = []

    def _read(self, max_bytes: int) -> bytes:
        unix = self._unix
        if unix is None:
            return os.read(self._fd, max_bytes)
        data, ancdata, _flags, _addr = unix.recvmsg(max_bytes, _ANCILLARY)
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
                self.received_fds.extend(fds)
        return data

    async def send_fd(self, fd: int) -> None:
        """One descriptor in a one-byte message (libvirt's virSocketSendFD)."""
        unix = self._unix
        assert unix is not None
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
        while True:
            try:
                unix.sendmsg([b"\0"], rights)
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._fd)
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket write failed: {exc}") from exc

    def send_now(self, data: bytes) -> int:
        """Write what the socket takes right now, without waiting; return the count.

        Raises OSError when the peer is gone (only for plain sockets: ``direct``).
        """
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0

    @property
    def fd(self) -> int:
        """The socket's file descriptor (only when ``direct``)."""
        return self._fd

    async def receive(
        self, max_bytes: int, wait_first: bool = False, *, waited: bool = False
    ) -> bytes | bytearray:
        """Some bytes, or b"" at EOF (a reset connection counts as EOF).

        ``wait_first``: the caller is between packets, so the peer is most likely
        waiting for our answer; wait for readability before reading instead of
        paying for a read that would fail with EAGAIN (measurably faster for the
        usual call-and-wait client).  ``waited``: the caller has just waited for
        readability itself (``trio.lowlevel.wait_readable(io.fd)``): read at once.
        """
        if self._stream is not None:
            try:
                return await self._stream.receive_some(max_bytes)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
        self._reads += 1
        if not (wait_first or waited) and self._reads % _CHECKPOINT_EVERY == 0:
            await trio.lowlevel.checkpoint()
        if wait_first:
            await trio.lowlevel.wait_readable(self._fd)
        while True:
            try:
                return self._read(max_bytes)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._fd)
            except OSError as exc:
                if exc.errno in _GONE:
                    return b""
                raise

    async def send(self, data: bytes) -> None:
        """Write all of ``data``; raises trio.BrokenResourceError if the peer is gone."""
        if self._stream is not None:
            await self._stream.send_all(data)
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._fd)
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket write failed: {exc}") from exc
