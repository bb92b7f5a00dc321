"""The simulated display of a running domain: what its graphics clients talk to.

virDomainOpenGraphics / virDomainOpenGraphicsFD hand QEMU one end of a socket
(QMP add_client), and QEMU serves its display protocol on it.  Here a small
server plays QEMU's part on that socket, owned by the domain's ``GraphicsHub``:
destroying the domain closes every client it serves.

* VNC: a real RFB server handshake (version 3.3, 3.7 or 3.8, as the client
  asks), security as QEMU offers it: "None" when the display has no password or
  the client was added with SKIPAUTH, else "VNC Authentication" (the DES
  challenge, checked against the password); then ClientInit/ServerInit with the
  domain's name and a fixed 720x400 framebuffer (QEMU's text console at boot),
  32 bpp true colour as QEMU sets it.  After that it answers framebuffer update
  requests with a black screen and ignores input.
* SPICE: the link stage is read and answered with SPICE_LINK_ERR_ERROR (no
  channel is simulated), then the socket is closed.
* D-Bus (``@dbus-display``): the socket is held open and nothing is said.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

WIDTH, HEIGHT = 720, 400
RFB_VERSION = b"RFB 003.008\n"
SEC_NONE, SEC_VNC_AUTH = 1, 2
# QEMU's pixel format: 32 bpp, depth 24, little-endian, true colour, 8 bits each, RGB at 16/8/0.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
SPICE_MAGIC = b"REDQ"
SPICE_LINK_ERR_ERROR = 1
_MAX_CUT_TEXT = 1 << 20


@dataclass(frozen=True, slots=True)
class Display:
    """One ``<graphics>`` device as a client meets it."""

    protocol: str  # "vnc", "spice" or "@dbus-display"
    name: str  # the domain's name (RFB's desktop name)
    password: str | None  # VNC's passwd attribute
    skip_auth: bool  # VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH


class _Closed(Exception):
    pass


class _Peer:
    """Exact reads and whole writes on a trio socket."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self._buf = bytearray()

    async def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            data = await self.sock.recv(65536)
            if not data:
                raise _Closed
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await self.sock.send(view) :]


def vnc_response(password: str, challenge: bytes) -> bytes:
    """VNC Authentication's answer: the challenge DES-encrypted with the password
    (8 bytes, zero-padded, each byte's bits reversed, as RFB defines it)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # pragma: no cover - cryptography < 43
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[no-redef,unused-ignore]
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


async def _rfb(peer: _Peer, display: Display) -> None:
    await peer.write(RFB_VERSION)
    version = await peer.read(12)
    if version not in (b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n"):
        return  # QEMU drops a client that speaks another version
    minor = int(version[8:11])
    auth = SEC_VNC_AUTH if display.password is not None and not display.skip_auth else SEC_NONE
    if minor == 3:
        await peer.write(struct.pack(">I", auth))
    else:
        await peer.write(bytes([1, auth]))
        if (await peer.read(1))[0] != auth:
            await _refuse(peer, minor, "Unsupported security type")
            return
    if auth == SEC_VNC_AUTH:
        assert display.password is not None
        challenge = os.urandom(16)
        await peer.write(challenge)
        if await peer.read(16) != vnc_response(display.password, challenge):
            await _refuse(peer, minor, "Authentication failed")
            return
        await peer.write(struct.pack(">I", 0))
    elif minor == 8:
        await peer.write(struct.pack(">I", 0))
    await peer.read(1)  # ClientInit: shared or not, all the same here
    name = display.name.encode()
    await peer.write(struct.pack(">HH", WIDTH, HEIGHT) + PIXEL_FORMAT + struct.pack(">I", len(name)) + name)
    await _rfb_messages(peer)


async def _refuse(peer: _Peer, minor: int, reason: str) -> None:
    text = reason.encode()
    await peer.write(struct.pack(">I", 1) + (struct.pack(">I", len(text)) + text if minor == 8 else b""))


async def _rfb_messages(peer: _Peer) -> None:
    bpp = 32
    while True:
        kind = (await peer.read(1))[0]
        if kind == 0:  # SetPixelFormat
            bpp = (await peer.read(19))[3]
        elif kind == 2:  # SetEncodings
            (count,) = struct.unpack(">xH", await peer.read(3))
            await peer.read(4 * count)
        elif kind == 3:  # FramebufferUpdateRequest
            incremental, x, y, w, h = struct.unpack(">BHHHH", await peer.read(9))
            if incremental:
                await peer.write(struct.pack(">BxH", 0, 0))  # nothing changed
            else:
                w, h = max(0, min(w, WIDTH - x)), max(0, min(h, HEIGHT - y))
                header = struct.pack(">BxHHHHHi", 0, 1, x, y, w, h, 0)  # one Raw rectangle
                await peer.write(header + bytes(w * h * (bpp // 8)))
        elif kind == 4:  # KeyEvent
            await peer.read(7)
        elif kind == 5:  # PointerEvent
            await peer.read(5)
        elif kind == 6:  # ClientCutText
            (length,) = struct.unpack(">3xI", await peer.read(7))
            if length > _MAX_CUT_TEXT:
                return
            await peer.read(length)
        else:
            return  # QEMU disconnects a client sending an unknown message


async def _spice(peer: _Peer) -> None:
    magic, _major, _minor, size = struct.unpack("<4sIII", await peer.read(16))
    if magic != SPICE_MAGIC or size > 65536:
        return
    await peer.read(size)
    # SpiceLinkReply: error, a 162-byte public key, no capabilities.
    reply = struct.pack("<I", SPICE_LINK_ERR_ERROR) + bytes(162) + struct.pack("<III", 0, 0, 0)
    await peer.write(struct.pack("<4sIII", SPICE_MAGIC, 2, 2, len(reply)) + reply)


async def serve(sock: trio.socket.SocketType, display: Display) -> None:
    """Serve one graphics client until it leaves (or the task is cancelled); closes `sock`."""
    peer = _Peer(sock)
    with sock, contextlib.suppress(_Closed, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        if display.protocol == "vnc":
            await _rfb(peer, display)
        elif display.protocol == "spice":
            await _spice(peer)
        else:
            while await sock.recv(65536):
                pass


class GraphicsHub:
    """The graphics clients of one domain run: closed together when it stops."""

    def __init__(self, spawn: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
        self._spawn = spawn
        self._socks: set[trio.socket.SocketType] = set()
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._socks)

    def add(self, fd: int, display: Display) -> None:
        """Serve the client on `fd` (ours now: closed when it leaves or the domain stops)."""
        raw = socket.socket(fileno=fd)
        raw.setblocking(False)
        sock = trio.socket.from_stdlib_socket(raw)
        if self.closed:
            sock.close()
            return
        self._socks.add(sock)

        async def run() -> None:
            try:
                await serve(sock, display)  # a closed socket ends it (close)
            finally:
                self._socks.discard(sock)
                sock.close()

        self._spawn(run)

    def close(self) -> None:
        """The domain stopped: every client's socket is closed at once."""
        self.closed = True
        for sock in list(self._socks):
            sock.close()
        self._socks.clear()
