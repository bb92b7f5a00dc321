"""libvirt-python's virStream over the thread shell.

A stream is created unbound (`conn.newStream(flags)`, nothing is sent), then
bound by the call that opens it: virStorageVol.download/upload and
virDomain.screenshot run `start(...)` here, which makes the call and ties the
stream to its serial. Data then travels in VIR_NET_STREAM packets
(streamstate.py has the state, sync.py the waiting); libvirt itself has no
window: a download is held back by TCP while nobody reads, an upload by the
socket's send buffer.

The helper methods (recvAll, sendAll, sparseRecvAll, sparseSendAll) follow
libvirt-python 9.0's overrides step by step, including when they abort.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from virtwire.client import core, errfactory, ops
from virtwire.client.eventloop import StreamSource, default
from virtwire.client.streamstate import AT_HOLE, StreamState
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

if TYPE_CHECKING:
    from virtwire.client.facade import virConnect
    from virtwire.client.sync import SyncConnection

# virStorageVol.streamBufSize: libvirt-python's chunk for the *All helpers.
STREAM_BUF_SIZE: Final = 262120


def _unsupported(api: str) -> libvirtError:
    # An unbound stream has no driver: virReportUnsupportedError.
    return errfactory.no_support(api, c.VIR_FROM_STREAMS)


class virStream:
    """A data stream (virStreamPtr) of one connection."""

    def __init__(self, conn: virConnect, _obj: Any = None, flags: int = 0) -> None:
        self._conn = conn
        self._flags = flags
        self._state: StreamState | None = None
        self._sock: SyncConnection | None = None
        self._source: StreamSource | None = None
        self.cb: Callable[..., Any] | None = None

    def __del__(self) -> None:
        source = getattr(self, "_source", None)
        if source is not None:
            with contextlib.suppress(Exception):
                source.remove()

    def c_pointer(self) -> int:
        """An integer naming the stream (there is no C pointer: its id), as libvirt-python's."""
        return id(self)

    def connect(self) -> virConnect:
        return self._conn

    def _bound(self, api: str) -> tuple[SyncConnection, StreamState]:
        state, sock = self._state, self._sock
        if state is None or sock is None:
            raise _unsupported(api)
        return sock, state

    # -- data ----------------------------------------------------------------

    def send(self, data: bytes) -> int:
        sock, state = self._bound("virStreamSend")
        sock.stream_send(state, bytes(data))
        return len(data)

    def recv(self, nbytes: int) -> bytes | int:
        """Up to `nbytes`; b"" at the end; -2 if a non-blocking stream has nothing yet."""
        return self._recv("virStreamRecv", nbytes, False)

    def recvFlags(self, nbytes: int, flags: int = 0) -> bytes | int:
        """As recv; with VIR_STREAM_RECV_STOP_AT_HOLE, -3 when a hole comes next."""
        unknown = flags & ~c.VIR_STREAM_RECV_STOP_AT_HOLE
        if unknown:
            raise errfactory.templated(
                c.VIR_ERR_INVALID_ARG,
                c.VIR_FROM_REMOTE,
                f"unsupported flags (0x{unknown:x}) in function remoteStreamRecvFlags",
            )
        return self._recv("virStreamRecvFlags", nbytes, bool(flags & c.VIR_STREAM_RECV_STOP_AT_HOLE))

    def _recv(self, api: str, nbytes: int, stop_at_hole: bool) -> bytes | int:
        sock, state = self._bound(api)
        block = not self._flags & c.VIR_STREAM_NONBLOCK
        return sock.stream_recv(state, nbytes, stop_at_hole, block)

    def sendHole(self, length: int, flags: int = 0) -> int:
        sock, state = self._bound("virStreamSendHole")
        sock.stream_send_hole(state, length, flags)
        return 0

    def recvHole(self, flags: int = 0) -> int:
        sock, state = self._bound("virStreamRecvHole")
        if flags:
            raise errfactory.templated(
                c.VIR_ERR_INVALID_ARG,
                c.VIR_FROM_REMOTE,
                f"unsupported flags (0x{flags:x}) in function remoteStreamRecvHole",
            )
        return sock.stream_recv_hole(state)

    # -- ending ----------------------------------------------------------------

    def finish(self) -> int:
        sock, state = self._bound("virStreamFinish")
        sock.stream_close(state, abort=False)
        return 0

    def abort(self) -> int:
        sock, state = self._bound("virStreamAbort")
        sock.stream_close(state, abort=True)
        return 0

    # -- whole transfers (libvirt-python's overrides) -----------------------------

    def recvAll(self, handler: Callable[[virStream, bytes, Any], Any], opaque: Any) -> None:
        while True:
            got = self.recv(STREAM_BUF_SIZE)
            if got == -2:
                raise libvirtError("cannot use recvAll with nonblocking stream")
            assert isinstance(got, bytes)
            if not got:
                break
            try:
                ret = handler(self, got, opaque)
                if isinstance(ret, int) and ret < 0:
                    raise RuntimeError(f"recvAll handler returned {ret}")
            except BaseException:
                with contextlib.suppress(Exception):
                    self.abort()
                raise

    def sendAll(self, handler: Callable[[virStream, int, Any], bytes], opaque: Any) -> None:
        while True:
            try:
                got = handler(self, STREAM_BUF_SIZE, opaque)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.abort()
                raise
            if not got:
                break
            self.send(got)

    def sparseRecvAll(
        self,
        handler: Callable[[virStream, bytes, Any], Any],
        holeHandler: Callable[[virStream, int, Any], Any],
        opaque: Any,
    ) -> None:
        while True:
            got = self.recvFlags(STREAM_BUF_SIZE, c.VIR_STREAM_RECV_STOP_AT_HOLE)
            if got == -2:
                raise libvirtError("cannot use sparseRecvAll with nonblocking stream")
            if got == AT_HOLE:
                length = self.recvHole()
                ret_hole = holeHandler(self, length, opaque)
                if isinstance(ret_hole, int) and ret_hole < 0:
                    self.abort()
                    raise RuntimeError(f"holeHandler handler returned {ret_hole}")
                continue
            if isinstance(got, int):
                raise ValueError(got)
            if not got:
                break
            ret_data = handler(self, got, opaque)
            if isinstance(ret_data, int) and ret_data < 0:
                self.abort()
                raise RuntimeError(f"sparseRecvAll handler returned {ret_data}")

    def sparseSendAll(
        self,
        handler: Callable[[virStream, int, Any], bytes | int],
        holeHandler: Callable[[virStream, Any], Any],
        skipHandler: Callable[[virStream, int, Any], int],
        opaque: Any,
    ) -> None:
        while True:
            in_data, section_len = holeHandler(self, opaque)
            if not in_data and section_len > 0:
                if self.sendHole(section_len) < 0 or skipHandler(self, section_len, opaque) < 0:
                    self.abort()
                continue
            want = min(STREAM_BUF_SIZE, section_len)
            got = handler(self, want, opaque)
            if isinstance(got, int) and got < 0:
                self.abort()
                raise RuntimeError(f"sparseSendAll handler returned {got}")
            if not got:
                break
            assert isinstance(got, bytes)
            self.send(got)

    # -- event callbacks (need the default event loop) --------------------------

    def eventAddCallback(self, events: int, cb: Callable[[virStream, int, Any], Any], opaque: Any) -> None:
        sock, state = self._bound("virStreamEventAddCallback")
        if self._source is not None:
            raise errfactory.templated(
                c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_RPC, "multiple stream callbacks not supported"
            )
        loop = default()
        if loop is None:
            raise libvirtError("virStreamEventAddCallback() failed")
        self.cb = cb

        def fire(got: int) -> None:
            cb(self, got, opaque)

        self._source = loop.add_stream(sock, state, events, fire)

    def eventUpdateCallback(self, events: int) -> int:
        self._bound("virStreamEventUpdateCallback")
        source = self._source
        if source is None:
            raise errfactory.templated(
                c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_RPC, "no stream callback registered"
            )
        source.events = events
        source.loop.wake()
        return 0

    def eventRemoveCallback(self) -> int:
        self._bound("virStreamEventRemoveCallback")
        source = self._source
        if source is None:
            raise errfactory.templated(
                c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_RPC, "no stream callback registered"
            )
        source.remove()
        self._source = None
        self.cb = None
        return 0


def start(stream: virStream, sock: SyncConnection, readonly: bool, op: ops.Op, sparse: bool) -> Any:
    """Make the call that opens `stream` (download, upload, screenshot) and bind it.

    Returns what the call returns (a screenshot's MIME type, else None).
    """
    if not isinstance(stream, virStream):
        raise TypeError("stream must be a virStream")
    if stream._state is not None:
        raise errfactory.templated(
            c.VIR_ERR_OPERATION_INVALID, c.VIR_FROM_STREAMS, "stream is already in use"
        )
    if readonly:
        core.check_read_only(op.proc, op.flags, op.api)
    state, reply = sock.open_stream(op.proc.number, op.payload(), sparse)
    result = op.convert(core.decode_reply(op.proc, reply))
    stream._state, stream._sock = state, sock
    return result


def storage_vol_download(
    stream: virStream, sock: SyncConnection, readonly: bool, vol: Any, offset: int, length: int, flags: int
) -> int:
    """virStorageVolDownload on the wire handle `vol` (remote_nonnull_storage_vol)."""
    op = ops.call("STORAGE_VOL_DOWNLOAD", vol=vol, offset=offset, length=length, flags=flags)
    start(stream, sock, readonly, op, bool(flags & c.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM))
    return 0


def storage_vol_upload(
    stream: virStream, sock: SyncConnection, readonly: bool, vol: Any, offset: int, length: int, flags: int
) -> int:
    """virStorageVolUpload on the wire handle `vol`."""
    op = ops.call("STORAGE_VOL_UPLOAD", vol=vol, offset=offset, length=length, flags=flags)
    start(stream, sock, readonly, op, bool(flags & c.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM))
    return 0


def domain_screenshot(
    stream: virStream, sock: SyncConnection, readonly: bool, dom: Any, screen: int, flags: int
) -> str:
    """virDomainScreenshot on the wire handle `dom`: the image's MIME type."""
    op = ops.call("DOMAIN_SCREENSHOT", ops.field("mime"), dom=dom, screen=screen, flags=flags)
    return str(start(stream, sock, readonly, op, False))
