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

import errno
import os
import socket

import trio

_CHECKPOINT_EVERY = 16
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
                return os.read(self._fd, max_bytes)
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
