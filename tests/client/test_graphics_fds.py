"""virDomain.openGraphics, openGraphicsFD and FDAssociate: descriptors to and from
the hypervisor, both ends.

Real libvirt-python and virtwire.libvirt side by side against `virtwire serve`
(which answers as libvirt's QEMU driver, with a simulated display behind the
descriptor), and against a real libvirtd (whose test driver implements none of
the three): the same results and the same errors, every field.  Over TCP and on
read-only sockets libvirt's own refusals.  The server never keeps a descriptor a
call failed with (its /proc/PID/fd), and destroying a domain closes its displays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import virtwire.client
import virtwire.client.asyncio as vasyncio
from virtwire.server.driver.memory.graphics_sim import HEIGHT, WIDTH, vnc_response

import virtwire.libvirt as vlibvirt

XML = """<domain type='test'><name>{name}</name><memory>65536</memory><vcpu>1</vcpu>
<os><type>hvm</type></os><devices>
<graphics type='vnc'/><graphics type='spice'/><graphics type='sdl'/>
<graphics type='vnc' passwd='s3cret'/></devices></domain>"""
SKIPAUTH = 1


def _fields(exc: Any) -> tuple[Any, ...]:
    return (
        exc.get_error_code(),
        exc.get_error_domain(),
        exc.get_error_message(),
        exc.get_error_level(),
        exc.get_str1(),
        exc.get_str2(),
        exc.get_str3(),
        exc.get_int1(),
        exc.get_int2(),
    )


def _outcome(lib: ModuleType, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except lib.libvirtError as exc:
        return ("error", _fields(exc))


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"display closed after {data!r}"
        data += chunk
    return data


def rfb_handshake(sock: socket.socket, password: str | None = None) -> tuple[int, int, bytes]:
    """A VNC client's side of RFB 3.8 up to ServerInit: (width, height, desktop name)."""
    assert _read(sock, 12) == b"RFB 003.008\n"
    sock.sendall(b"RFB 003.008\n")
    count = _read(sock, 1)[0]
    types = _read(sock, count)
    kind = 2 if password is not None else 1
    assert types == bytes([kind])
    sock.sendall(bytes([kind]))
    if password is not None:
        sock.sendall(vnc_response(password, _read(sock, 16)))
    assert _read(sock, 4) == b"\0\0\0\0"  # SecurityResult: OK
    sock.sendall(b"\x01")  # ClientInit: shared
    width, height = struct.unpack(">HH", _read(sock, 4))
    _read(sock, 16)  # pixel format
    (length,) = struct.unpack(">I", _read(sock, 4))
    name = _read(sock, length)
    sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, 4, 2))  # FramebufferUpdateRequest, 4x2
    assert _read(sock, 4 + 12) == struct.pack(">BxHHHHHi", 0, 1, 0, 0, 4, 2, 0)
    assert _read(sock, 4 * 2 * 4) == bytes(32)  # a black screen
    return width, height, name


@pytest.fixture
def server(virtwire_host: Any) -> Any:
    return virtwire_host


@pytest.fixture
def own_server(virtwire_server: Callable[..., Any]) -> Any:
    """A server of the test's own: its descriptors are counted."""
    return virtwire_server(tls=False)


@pytest.fixture(params=["ours", "real"])
def lib(request: pytest.FixtureRequest, real_libvirt: ModuleType) -> ModuleType:
    return vlibvirt if request.param == "ours" else real_libvirt


@pytest.fixture
def guest(server: Any, lib: ModuleType) -> Iterator[Any]:
    conn = lib.open(server.unix_uri)
    dom = conn.createXML(XML.format(name=f"gfx-{uuid.uuid4().hex[:8]}"), 0)
    yield dom
    with contextlib.suppress(lib.libvirtError):  # gone when the test destroyed it
        dom.destroy()
    conn.close()


def test_open_graphics_fd_gives_a_socket_to_the_display(guest: Any) -> None:
    fd = guest.openGraphicsFD(0, 0)
    assert isinstance(fd, int)
    with socket.socket(fileno=fd) as sock:
        assert rfb_handshake(sock) == (WIDTH, HEIGHT, guest.name().encode())
        # A password needs VNC Authentication, unless SKIPAUTH.
        with socket.socket(fileno=guest.openGraphicsFD(3, 0)) as locked:
            assert rfb_handshake(locked, "s3cret")[2] == guest.name().encode()
        with socket.socket(fileno=guest.openGraphicsFD(3, SKIPAUTH)) as open_:
            assert rfb_handshake(open_)[2] == guest.name().encode()
        with socket.socket(fileno=guest.openGraphicsFD(1, 0)) as spice:
            spice.sendall(struct.pack("<4sIII", b"REDQ", 2, 2, 4) + b"\0\0\0\0")
            magic, major, _minor, size = struct.unpack("<4sIII", _read(spice, 16))
            assert (magic, major, struct.unpack("<I", _read(spice, size)[:4])[0]) == (b"REDQ", 2, 1)
        guest.destroy()  # the display goes with the domain
        assert sock.recv(16) == b""


def test_open_graphics_serves_the_callers_socket(guest: Any) -> None:
    mine, theirs = socket.socketpair()
    with mine:
        assert guest.openGraphics(0, theirs.fileno(), 0) == 0
        theirs.close()  # the hypervisor has its own copy
        assert rfb_handshake(mine)[2] == guest.name().encode()
        guest.destroy()
        assert mine.recv(16) == b""


def test_fd_associate(guest: Any) -> None:
    r, w = os.pipe()
    try:
        assert guest.FDAssociate("disks", [r, w], 0) == 0
        assert guest.FDAssociate("disks", [r], 3) == 0  # both SECLABEL flags; replaces the group
    finally:
        os.close(r)
        os.close(w)


def _server_fds(server: Any) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def test_errors_identical_and_no_descriptor_kept(own_server: Any, real_libvirt: ModuleType) -> None:
    server = own_server
    name = f"gfx-err-{uuid.uuid4().hex[:8]}"
    sides = {}
    for label, lib in (("ours", vlibvirt), ("real", real_libvirt)):
        conn = lib.open(server.unix_uri)
        conn.defineXML(XML.format(name=f"{name}-{label}"))
        sides[label] = (lib, conn, conn.lookupByName(f"{name}-{label}"))
    r, w = os.pipe()
    mine, theirs = socket.socketpair()
    cases: list[Callable[[Any], Any]] = [
        lambda d: d.openGraphicsFD(0, 0),  # not running
        lambda d: d.openGraphics(0, theirs.fileno(), 0),
        lambda d: d.openGraphics(0, -1, 0),
        lambda d: d.openGraphics(0, 4999, 0),
        lambda d: d.openGraphics(0, r, 0),  # a pipe is not a socket
        lambda d: d.FDAssociate("g", [], 0),
        lambda d: d.FDAssociate("g", [r], 4),
        lambda d: d.FDAssociate("g", [4999], 0),
        lambda d: d.create(),
        lambda d: d.openGraphicsFD(7, 0),
        lambda d: d.openGraphicsFD(2, 0),  # sdl
        lambda d: d.openGraphicsFD(0, 2),
        lambda d: d.openGraphics(2, theirs.fileno(), 0),
        lambda d: d.openGraphics(0, theirs.fileno(), 6),
        lambda d: d.FDAssociate("g", [r, w], 0),
    ]
    try:
        before = _server_fds(server)
        for case in cases:
            got = {label: _outcome(lib, case, dom) for label, (lib, _, dom) in sides.items()}
            assert got["ours"] == got["real"]
        # The failed calls' descriptors are closed; the associated ones are kept.
        assert _server_fds(server) == before + 2 * 2
        for _, _, dom in sides.values():
            dom.destroy()
            dom.undefine()  # its fd groups go with it (its connection's going would do too)
        assert _server_fds(server) == before
        for _, conn, _ in sides.values():
            conn.close()
    finally:
        for fd in (r, w):
            os.close(fd)
        mine.close()
        theirs.close()


def test_libvirtd_answers_the_same(real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    """libvirtd's test driver implements none of them: the same errors from both clients."""
    r, w = os.pipe()
    mine, theirs = socket.socketpair()
    got = {}
    try:
        for label, lib in (("ours", vlibvirt), ("real", real_libvirt)):
            conn = lib.open(real_libvirtd.unix_uri)
            dom = conn.lookupByName("test")
            got[label] = [
                _outcome(lib, lambda d: d.openGraphicsFD(0, 0), dom),
                _outcome(lib, lambda d: d.openGraphics(0, theirs.fileno(), 0), dom),
                _outcome(lib, lambda d: d.openGraphics(0, r, 0), dom),
                _outcome(lib, lambda d: d.FDAssociate("g", [r], 0), dom),
            ]
            conn.close()
    finally:
        for fd in (r, w):
            os.close(fd)
        mine.close()
        theirs.close()
    assert got["ours"] == got["real"]
    assert (
        got["ours"][0][1][2]
        == "this function is not supported by the connection driver: virDomainOpenGraphicsFD"
    )


@pytest.mark.parametrize("kind", ["tcp", "ext", "ro"])
def test_tcp_and_read_only_refusals(kind: str, server: Any, real_libvirt: ModuleType, tmp_path: Path) -> None:
    """Over TCP the daemon runs openGraphicsFD, then cannot pass the descriptor and
    drops the connection; sending one fails before that.  The same through a command's
    pipes (+ext, +ssh): their unix socketpair is no daemon socket.  Read-only: refused."""
    name = f"gfx-{kind}-{uuid.uuid4().hex[:8]}"
    with vlibvirt.open(server.unix_uri) as rw:
        rw.createXML(XML.format(name=name), 0)
    uri = {"tcp": server.tcp_uri, "ro": server.unix_ro_uri}.get(kind, "")
    if kind == "ext":
        bridge = tmp_path / "to-daemon"
        bridge.write_text(f"#!/bin/sh\nexec nc -U '{server.unix_path}'\n")
        bridge.chmod(0o755)
        uri = f"test+ext:///default?command={bridge}"
    mine, theirs = socket.socketpair()
    got = {}
    try:
        for label, lib in (("ours", vlibvirt), ("real", real_libvirt)):
            outcomes = []
            for case in (
                lambda d: d.openGraphicsFD(0, 0),
                lambda d: d.openGraphics(0, theirs.fileno(), 0),
                lambda d: d.FDAssociate("g", [theirs.fileno()], 0),
            ):
                # A fresh connection each: a failed descriptor transfer ends it.
                conn = lib.openReadOnly(uri) if kind == "ro" else lib.open(uri)
                outcomes.append(_outcome(lib, case, conn.lookupByName(name)))
                with contextlib.suppress(lib.libvirtError):
                    conn.close()
            got[label] = outcomes
    finally:
        mine.close()
        theirs.close()
        with vlibvirt.open(server.unix_uri) as rw:
            rw.lookupByName(name).destroy()
    assert got["ours"] == got["real"]
    if kind != "ro":
        assert (
            got["ours"][0][1][2]
            == "internal error: Receiving file descriptors is not supported on this socket"
        )
        assert (
            got["ours"][1][1][2] == "internal error: Sending file descriptors is not supported on this socket"
        )
    else:
        assert all(o[1][0] == vlibvirt.VIR_ERR_OPERATION_DENIED for o in got["ours"])


@pytest.mark.parametrize("api", ["trio", "asyncio"])
def test_async_apis(api: str, server: Any) -> None:
    """The async APIs pass descriptors both ways, other calls in flight meanwhile."""
    name = f"gfx-{api}-{uuid.uuid4().hex[:8]}"

    async def scenario(connect: Any, in_thread: Any, gather: Any) -> None:
        async with await connect(server.unix_uri) as conn:
            dom = await conn.createXML(XML.format(name=name), 0)
            results = await gather(
                dom.openGraphicsFD(0, 0), conn.getLibVersion(), dom.openGraphicsFD(3, SKIPAUTH)
            )
            for fd in (results[0], results[2]):
                with socket.socket(fileno=fd) as sock:
                    assert (await in_thread(lambda: rfb_handshake(sock)))[2] == name.encode()
            mine, theirs = socket.socketpair()
            with mine, theirs:
                assert await dom.openGraphics(0, theirs.fileno(), 0) == 0
                theirs.close()
                assert (await in_thread(lambda: rfb_handshake(mine)))[2] == name.encode()
                assert await dom.FDAssociate("g", [mine.fileno()], 0) == 0
            await dom.destroy()

    if api == "trio":

        async def trio_gather(*coros: Any) -> list[Any]:
            out: list[Any] = [None] * len(coros)

            async def one(i: int, coro: Any) -> None:
                out[i] = await coro

            async with trio.open_nursery() as nursery:
                for i, coro in enumerate(coros):
                    nursery.start_soon(one, i, coro)
            return out

        trio.run(scenario, virtwire.client.connect, trio.to_thread.run_sync, trio_gather)
    else:
        asyncio.run(scenario(vasyncio.connect, asyncio.to_thread, asyncio.gather))
