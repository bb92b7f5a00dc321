"""A data stream in the async shells (trio and asyncio): the same methods as
libvirt-python's virStream, awaited, plus async iteration.

The stream's state is core's StreamState; the shell provides the waiting and
the writing (`StreamShell`). Reading never sends anything; writing sends
whole packets, so cancelling any of these leaves the connection in sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any, Protocol

from virtwire.client import errfactory
from virtwire.client.streamstate import AT_HOLE, StreamState
from virtwire.protocol import wire
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

CHUNK = wire.STREAM_CHUNK  # libvirt-python's virStorageVol.streamBufSize


class StreamShell(Protocol):
    async def _stream_wait(self, state: StreamState) -> None: ...
    def _stream_consumed(self, state: StreamState) -> None: ...
    async def _send(self, packet: bytes) -> None: ...
    async def _stream_close(self, state: StreamState, abort: bool) -> None: ...


class AsyncStream:
    """One stream on an async connection; `async with` finishes it, or aborts on error."""

    def __init__(self, shell: StreamShell, state: StreamState | None, result: Any = None) -> None:
        self._shell = shell
        self._state = state  # None: from newStream(), until a call binds it
        self.result = result  # what the opening call returned (a screenshot's MIME type)

    @property
    def state(self) -> StreamState:
        state = self._state
        if state is None:
            # libvirt: a stream no call has opened has no driver behind it.
            raise errfactory.templated(
                c.VIR_ERR_NO_SUPPORT,
                c.VIR_FROM_STREAMS,
                "virStream",
            )
        return state

    def bind(self, opened: AsyncStream) -> None:
        """Take over the stream a call opened (newStream() then download(stream, ...))."""
        self._state = opened._state
        self.result = opened.result

    # -- libvirt-python's virStream names ------------------------------------

    async def sendHole(self, length: int, flags: int = 0) -> int:
        await self.send_hole(length, flags)
        return 0

    async def recvHole(self, flags: int = 0) -> int:
        return await self.recv_hole(flags)

    async def recvFlags(self, nbytes: int, flags: int = 0) -> bytes | int:
        return await self.recv(nbytes, flags)

    async def connect(self) -> Any:
        """The connection the stream belongs to (the shell)."""
        return self._shell

    # -- sending ------------------------------------------------------------

    async def send(self, data: bytes) -> int:
        await self._shell._send(self.state.data_packet(bytes(data)))
        return len(data)

    async def send_hole(self, length: int, flags: int = 0) -> None:
        await self._shell._send(self.state.hole_packet(length, flags))

    async def send_all(self, chunks: AsyncIterable[bytes | int]) -> None:
        """Send every chunk (an int is a hole of that many bytes), then finish."""
        async for chunk in chunks:
            if isinstance(chunk, int):
                await self.send_hole(chunk)
            elif chunk:
                await self.send(chunk)
        await self.finish()

    # -- receiving ----------------------------------------------------------

    async def recv(self, nbytes: int = CHUNK, flags: int = 0) -> bytes | int:
        """Up to `nbytes`; b"" at the end; -3 at a hole with VIR_STREAM_RECV_STOP_AT_HOLE."""
        state = self.state
        stop_at_hole = bool(flags & c.VIR_STREAM_RECV_STOP_AT_HOLE)
        while True:
            got = state.recv(nbytes, stop_at_hole)
            if got is not None:
                self._shell._stream_consumed(state)
                return got
            await self._shell._stream_wait(state)

    async def recv_hole(self, flags: int = 0) -> int:
        state = self.state
        while state.allow_skip and not state.readable:
            await self._shell._stream_wait(state)
        return state.recv_hole()

    async def chunks(self, sparse: bool = False) -> AsyncIterator[bytes | int]:
        """Each piece of data as it comes; with `sparse`, holes as ints (their length)."""
        flags = c.VIR_STREAM_RECV_STOP_AT_HOLE if sparse else 0
        while True:
            got = await self.recv(CHUNK, flags)
            if got == AT_HOLE:
                yield await self.recv_hole()
                continue
            assert isinstance(got, bytes)
            if not got:
                return
            yield got

    def __aiter__(self) -> AsyncIterator[bytes | int]:
        return self.chunks()

    # -- ending ---------------------------------------------------------------

    async def finish(self) -> None:
        await self._shell._stream_close(self.state, abort=False)

    async def abort(self) -> None:
        await self._shell._stream_close(self.state, abort=True)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.state.closed is not None:
            return
        if exc_type is None:
            await self.finish()
        else:
            with contextlib.suppress(libvirtError):  # the original exception is the one to see
                await self.abort()
