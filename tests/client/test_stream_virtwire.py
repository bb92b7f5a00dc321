"""Streams against `virtwire serve` (its in-memory test:///default): volume upload
and download, sparse and plain, and screenshots, through our thread shell, our
async shells, and the real libvirt-python.

NEEDS THE SERVER SIDE: `virtwire serve` must answer STORAGE_VOL_UPLOAD,
STORAGE_VOL_DOWNLOAD and DOMAIN_SCREENSHOT with streams (the server-streams
work). Until it does, these tests fail with libvirt's NO_SUPPORT error; they
are not skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from types import ModuleType
from typing import Any

import trio
import virtwire.client as vclient
import virtwire.client.asyncio as vasyncio
from virtwire.client import ops
from virtwire.client import stream as vstream

import virtwire.libvirt as vlibvirt

POOL = "default-pool"  # test:///default's pool
MIB = 1024 * 1024
SIZE = 6 * MIB
DATA_RUNS = ((0, 300_000), (2 * MIB, MIB), (5 * MIB + 12_345, 4096))


def _content() -> bytes:
    out = bytearray(SIZE)
    for offset, length in DATA_RUNS:
        out[offset : offset + length] = os.urandom(length)
    return bytes(out)


def _sparse_pieces(content: bytes) -> list[bytes | int]:
    """The content as the data runs and the holes between them."""
    pieces: list[bytes | int] = []
    pos = 0
    for offset, length in DATA_RUNS:
        if offset > pos:
            pieces.append(offset - pos)
        pieces.append(content[offset : offset + length])
        pos = offset + length
    if pos < SIZE:
        pieces.append(SIZE - pos)
    return pieces


def _volume_xml(name: str) -> str:
    return f"<volume><name>{name}</name><capacity>{SIZE}</capacity><allocation>0</allocation></volume>"


def test_thread_shell_sparse_round_trip(virtwire_host: Any) -> None:
    content = _content()
    conn = vlibvirt.open(virtwire_host.tcp_uri)
    pool = conn._run(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))
    name = f"vw-{uuid.uuid4().hex[:8]}.img"
    vol = conn._run(
        ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=pool, xml=_volume_xml(name), flags=0)
    )
    try:
        up = conn.newStream(0)
        vstream.storage_vol_upload(
            up, conn._sock, False, vol, 0, 0, vlibvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM
        )
        for piece in _sparse_pieces(content):
            if isinstance(piece, int):
                up.sendHole(piece)
            else:
                up.send(piece)
        up.finish()

        down = conn.newStream(0)
        vstream.storage_vol_download(
            down, conn._sock, False, vol, 0, 0, vlibvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM
        )
        parts: list[bytes] = []
        holes = [0]

        def on_hole(_st: Any, length: int, _opaque: Any) -> None:
            holes[0] += length
            parts.append(bytes(length))

        down.sparseRecvAll(lambda _st, buf, _o: parts.append(buf), on_hole, None)
        down.finish()
        assert b"".join(parts) == content
        assert holes[0] >= SIZE - sum(length for _, length in DATA_RUNS) - MIB
    finally:
        conn._run(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))
        conn.close()


def test_libvirt_python_upload_download_against_virtwire(
    virtwire_host: Any, real_libvirt: ModuleType
) -> None:
    """Stock libvirt-python streams a volume in and out of `virtwire serve`."""
    content = _content()
    conn = real_libvirt.open(virtwire_host.tcp_uri)
    pool = conn.storagePoolLookupByName(POOL)
    vol = pool.createXML(_volume_xml(f"lvpy-{uuid.uuid4().hex[:8]}.img"), 0)
    try:
        up = conn.newStream(0)
        vol.upload(up, 0, 0, 0)
        view = memoryview(content)
        pos = [0]

        def source(_st: Any, n: int, _o: Any) -> bytes:
            start = pos[0]
            pos[0] = min(SIZE, start + n)
            return bytes(view[start : pos[0]])

        up.sendAll(source, None)
        up.finish()
        down = conn.newStream(0)
        vol.download(down, 0, 0, 0)
        parts: list[bytes] = []
        down.recvAll(lambda _st, buf, _o: parts.append(buf), None)
        down.finish()
        assert b"".join(parts) == content
    finally:
        vol.delete(0)
        conn.close()


def test_screenshot_matches_libvirtd(
    virtwire_host: Any, real_libvirtd: Any, real_libvirt: ModuleType
) -> None:
    def shot(uri: str) -> tuple[str, bytes]:
        conn = real_libvirt.open(uri)
        stream = conn.newStream(0)
        mime = conn.lookupByName("test").screenshot(stream, 0, 0)
        parts: list[bytes] = []
        stream.recvAll(lambda _st, buf, _o: parts.append(buf), None)
        stream.finish()
        conn.close()
        return mime, b"".join(parts)

    assert shot(virtwire_host.tcp_uri) == shot(real_libvirtd.tcp_uri)


async def _async_round_trip(conn: Any) -> None:
    content = _content()
    name = f"aio-{uuid.uuid4().hex[:8]}.img"
    pool = await conn.call(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))
    vol = await conn.call(
        ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=pool, xml=_volume_xml(name), flags=0)
    )
    try:
        up = await conn.storage_vol_upload(vol, flags=vlibvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        for piece in _sparse_pieces(content):
            if isinstance(piece, int):
                await up.send_hole(piece)
            else:
                await up.send(piece)
        await up.finish()
        down = await conn.storage_vol_download(vol, flags=vlibvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        parts = [bytes(p) if isinstance(p, int) else p async for p in down.chunks(sparse=True)]
        await down.finish()
        assert b"".join(parts) == content
        dom = await conn.lookup_by_name("test")
        shot = await conn.screenshot(dom)
        image = b"".join([p async for p in shot if isinstance(p, bytes)])
        await shot.finish()
        assert shot.result == "image/png" and image.startswith(b"\x89PNG")
    finally:
        await conn.call(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))


def test_trio_shell_streams(virtwire_host: Any) -> None:
    async def main() -> None:
        async with await vclient.connect(virtwire_host.tcp_uri) as conn:
            await _async_round_trip(conn)

    trio.run(main)


def test_asyncio_shell_streams(virtwire_host: Any) -> None:
    async def main() -> None:
        async with await vasyncio.connect(virtwire_host.tcp_uri) as conn:
            await _async_round_trip(conn)

    asyncio.run(main())
