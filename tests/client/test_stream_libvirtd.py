"""Streams against a real libvirtd: volume upload and download (sparse and
not), screenshots, errors, abort, threads, and the trio and asyncio shells.

The shared real_libvirtd fixture loads the test driver only, whose storage
has no upload or download (libvirt 9.0's test_driver.c has neither). Streams of
volumes are therefore tested against a second real libvirtd that loads
libvirt's own storage driver (vwtestkit.storaged), with a transient dir pool in
a temporary directory; screenshots come from the test driver itself.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import virtwire.client as vclient
from virtwire.client import aio_shell, ops
from virtwire.client import stream as vstream
from virtwire.client.stream_aio import AsyncStream
from vwtestkit.storaged import StorageDaemon, storage_libvirtd

import virtwire.libvirt as vlibvirt

MIB = 1024 * 1024


# -- sparse files ---------------------------------------------------------------

# (offset, length) of the data runs of the test image; everything else is a hole.
DATA_RUNS = ((0, MIB), (5 * MIB, MIB // 2), (20 * MIB - 4096, 8192 + 100_000))
IMAGE_SIZE = 24 * MIB


def make_sparse_image(path: Path) -> bytes:
    """A 24 MiB file with three data runs (random bytes) and holes between them."""
    with open(path, "wb") as f:
        f.truncate(IMAGE_SIZE)
        for offset, length in DATA_RUNS:
            f.seek(offset)
            f.write(os.urandom(length))
    return path.read_bytes()


def data_extents(path: Path) -> list[tuple[int, int]]:
    """The file's data runs as the kernel reports them (SEEK_DATA / SEEK_HOLE)."""
    out: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end))
            pos = end
    finally:
        os.close(fd)
    return out


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def hole_handler(fd: int) -> tuple[bool, int]:
    """libvirt-python's sparseSendAll holeHandler: are we in data, and how long is this section."""
    cur = os.lseek(fd, 0, os.SEEK_CUR)
    size = os.fstat(fd).st_size
    if cur >= size:
        return True, 0  # the end: the data handler reads nothing and the loop stops
    try:
        data = os.lseek(fd, cur, os.SEEK_DATA)
    except OSError:
        data = size  # only a hole is left
    if data > cur:
        in_data, length = False, data - cur
    else:
        hole = os.lseek(fd, cur, os.SEEK_HOLE)
        in_data, length = True, hole - cur
    os.lseek(fd, cur, os.SEEK_SET)
    return in_data, length


# -- fixtures -----------------------------------------------------------------------

# Unique per run: a root libvirtd keeps transient pools in /run/libvirt/storage.
POOL = f"vwstreams-{uuid.uuid4().hex[:12]}"
SPARSE_UP = vlibvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM
SPARSE_DOWN = vlibvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageDaemon]:
    with storage_libvirtd(tmp_path_factory.mktemp("storage-libvirtd")) as daemon:
        conn = vlibvirt.open(daemon.uri)
        xml = f"<pool type='dir'><name>{POOL}</name><target><path>{daemon.pool_dir}</path></target></pool>"
        pool = conn._run(ops.call("STORAGE_POOL_CREATE_XML", ops.field("pool"), xml=xml, flags=0))
        try:
            yield daemon
        finally:
            conn._run(ops.call("STORAGE_POOL_DESTROY", pool=pool))
            conn.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("images") / "source.img"
    return path, make_sparse_image(path)


def _pool(conn: vlibvirt.virConnect) -> Any:
    return conn._run(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))


def _new_volume(conn: vlibvirt.virConnect, name: str, capacity: int = IMAGE_SIZE) -> Any:
    xml = (
        f"<volume><name>{name}</name><capacity>{capacity}</capacity><allocation>0</allocation>"
        "<target><format type='raw'/></target></volume>"
    )
    return conn._run(ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=_pool(conn), xml=xml, flags=0))


def _delete_volume(conn: vlibvirt.virConnect, vol: Any) -> None:
    conn._run(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))


def _upload(conn: vlibvirt.virConnect, vol: Any, source: Path, flags: int) -> None:
    stream = conn.newStream(0)
    vstream.storage_vol_upload(stream, conn._sock, conn._readonly, vol, 0, 0, flags)
    fd = os.open(source, os.O_RDONLY)
    try:
        if flags & SPARSE_UP:
            stream.sparseSendAll(
                lambda _st, n, fd: os.read(fd, n),
                lambda _st, fd: hole_handler(fd),
                lambda _st, length, fd: os.lseek(fd, length, os.SEEK_CUR),
                fd,
            )
        else:
            stream.sendAll(lambda _st, n, fd: os.read(fd, n), fd)
    finally:
        os.close(fd)
    stream.finish()


def _download_sparse(conn: vlibvirt.virConnect, vol: Any, target: Path) -> int:
    """Download with holes kept; returns how many hole bytes arrived as holes."""
    stream = conn.newStream(0)
    vstream.storage_vol_download(stream, conn._sock, conn._readonly, vol, 0, 0, SPARSE_DOWN)
    holes = [0]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def on_hole(_st: Any, length: int, fd: int) -> None:
        holes[0] += length
        os.ftruncate(fd, os.lseek(fd, length, os.SEEK_CUR))

    try:
        stream.sparseRecvAll(lambda _st, buf, fd: os.write(fd, buf), on_hole, fd)
        stream.finish()
    finally:
        os.close(fd)
    return holes[0]


def _download_all(conn: Any, stream: Any) -> bytes:
    parts: list[bytes] = []
    stream.recvAll(lambda _st, buf, parts: parts.append(buf), parts)
    stream.finish()
    return b"".join(parts)


# -- thread shell (virtwire.libvirt) ------------------------------------------------------


def test_sparse_upload_and_download_round_trip(
    storage: StorageDaemon, image: tuple[Path, bytes], tmp_path: Path
) -> None:
    """sparseSendAll up, sparseRecvAll down: the same bytes, and the holes travel as holes."""
    source, content = image
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "sparse.img")
    try:
        _upload(conn, vol, source, SPARSE_UP)
        on_disk = storage.pool_dir / "sparse.img"
        assert on_disk.read_bytes() == content
        assert allocated(on_disk) < IMAGE_SIZE // 4  # the daemon made holes, not zeroes
        target = tmp_path / "down.img"
        hole_bytes = _download_sparse(conn, vol, target)
        assert target.read_bytes() == content
        data_bytes = sum(length for _, length in DATA_RUNS)
        assert hole_bytes >= IMAGE_SIZE - data_bytes - 2 * MIB  # holes, give or take block rounding
        assert allocated(target) < IMAGE_SIZE // 4
    finally:
        _delete_volume(conn, vol)
        conn.close()


def test_plain_download_matches_libvirt_python(
    storage: StorageDaemon, image: tuple[Path, bytes], real_libvirt: ModuleType
) -> None:
    """Without the sparse flag holes arrive as zeroes, byte for byte what libvirt-python gets."""
    source, content = image
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "plain.img")
    try:
        _upload(conn, vol, source, 0)
        stream = conn.newStream(0)
        vstream.storage_vol_download(stream, conn._sock, False, vol, 0, 0, 0)
        ours = _download_all(conn, stream)
        theirs_conn = real_libvirt.open(storage.uri)
        theirs_vol = theirs_conn.storagePoolLookupByName(POOL).storageVolLookupByName("plain.img")
        theirs_stream = theirs_conn.newStream(0)
        theirs_vol.download(theirs_stream, 0, 0, 0)
        theirs = _download_all(theirs_conn, theirs_stream)
        theirs_conn.close()
        assert ours == theirs == content
    finally:
        _delete_volume(conn, vol)
        conn.close()


def test_ranged_download_and_recv_sizes(storage: StorageDaemon, image: tuple[Path, bytes]) -> None:
    """offset/length pick a range; recv(n) returns at most n bytes, b"" at the end."""
    source, content = image
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "ranged.img")
    try:
        _upload(conn, vol, source, SPARSE_UP)
        stream = conn.newStream(0)
        offset, length = 5 * MIB - 1000, 300_000
        vstream.storage_vol_download(stream, conn._sock, False, vol, offset, length, 0)
        got = b""
        while True:
            chunk = stream.recv(7000)
            assert isinstance(chunk, bytes) and len(chunk) <= 7000
            if not chunk:
                break
            got += chunk
        stream.finish()
        assert got == content[offset : offset + length]
    finally:
        _delete_volume(conn, vol)
        conn.close()


def test_stream_errors_match_libvirt_python(
    storage: StorageDaemon, real_libvirt: ModuleType
) -> None:
    """An unbound stream, a finished stream, and an upload past the volume's end fail as in libvirt."""

    def fields(exc: BaseException) -> tuple[Any, ...]:
        assert isinstance(exc, vlibvirt.libvirtError | real_libvirt.libvirtError)
        return (exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())

    conn = vlibvirt.open(storage.uri)
    theirs_conn = real_libvirt.open(storage.uri)
    vol = _new_volume(conn, "small.img", capacity=4096)
    try:
        with pytest.raises(vlibvirt.libvirtError) as ours:
            conn.newStream(0).recv(10)
        with pytest.raises(real_libvirt.libvirtError) as theirs:
            theirs_conn.newStream(0).recv(10)
        assert fields(ours.value) == fields(theirs.value)

        # More data than the upload's length: the daemon's stream fails, finish reports it.
        def overlong(lib: Any, st: Any, start: Callable[[Any], Any]) -> tuple[Any, ...]:
            start(st)
            with pytest.raises(lib.libvirtError) as caught:
                for _ in range(4):
                    st.send(b"x" * 200)
                st.finish()
            return fields(caught.value)

        theirs_vol = theirs_conn.storagePoolLookupByName(POOL).storageVolLookupByName("small.img")
        ours_err = overlong(
            vlibvirt,
            conn.newStream(0),
            lambda st: vstream.storage_vol_upload(st, conn._sock, False, vol, 0, 100, 0),
        )
        theirs_err = overlong(
            real_libvirt, theirs_conn.newStream(0), lambda st: theirs_vol.upload(st, 0, 100, 0)
        )
        assert ours_err == theirs_err
        assert conn.getType() == theirs_conn.getType()

        stream = conn.newStream(0)
        vstream.storage_vol_download(stream, conn._sock, False, vol, 0, 0, 0)
        _download_all(conn, stream)
        theirs_stream = theirs_conn.newStream(0)
        theirs_conn.storagePoolLookupByName(POOL).storageVolLookupByName("small.img").download(
            theirs_stream, 0, 0, 0
        )
        _download_all(theirs_conn, theirs_stream)
        with pytest.raises(vlibvirt.libvirtError) as ours:
            stream.recv(10)
        with pytest.raises(real_libvirt.libvirtError) as theirs:
            theirs_stream.recv(10)
        assert fields(ours.value) == fields(theirs.value)
        assert conn.getType()  # the connection is still fine
    finally:
        _delete_volume(conn, vol)
        conn.close()
        theirs_conn.close()


def test_abort_mid_download_leaves_connection_usable(
    storage: StorageDaemon, image: tuple[Path, bytes]
) -> None:
    source, content = image
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "abort.img")
    try:
        _upload(conn, vol, source, 0)
        stream = conn.newStream(0)
        vstream.storage_vol_download(stream, conn._sock, False, vol, 0, 0, 0)
        first = stream.recv(65536)
        assert first == content[:65536]
        assert stream.abort() == 0
        with pytest.raises(vlibvirt.libvirtError) as caught:
            stream.recv(10)
        assert caught.value.get_error_code() == vlibvirt.VIR_ERR_OPERATION_FAILED
        assert caught.value.get_error_message() == "operation failed: stream is closed"
        # later calls and streams on the same connection work
        again = conn.newStream(0)
        vstream.storage_vol_download(again, conn._sock, False, vol, 0, 100_000, 0)
        assert _download_all(conn, again) == content[:100_000]
    finally:
        _delete_volume(conn, vol)
        conn.close()


def test_nonblocking_stream_recv(storage: StorageDaemon, image: tuple[Path, bytes]) -> None:
    """VIR_STREAM_NONBLOCK: recv gives -2 until data is in, never blocks."""
    source, content = image
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "nonblock.img")
    try:
        _upload(conn, vol, source, 0)
        stream = conn.newStream(vlibvirt.VIR_STREAM_NONBLOCK)
        vstream.storage_vol_download(stream, conn._sock, False, vol, 0, 2 * MIB, 0)
        got = b""
        would_block = 0
        while True:
            chunk = stream.recv(65536)
            if chunk == -2:
                would_block += 1
                select_readable(conn)
                continue
            assert isinstance(chunk, bytes)
            if not chunk:
                break
            got += chunk
        stream.finish()
        assert got == content[: 2 * MIB]
        with pytest.raises(vlibvirt.libvirtError, match="nonblocking"):
            blocked = conn.newStream(vlibvirt.VIR_STREAM_NONBLOCK)
            vstream.storage_vol_download(blocked, conn._sock, False, vol, 0, 0, 0)
            try:
                blocked.recvAll(lambda *_: 0, None)
            finally:
                blocked.abort()
    finally:
        _delete_volume(conn, vol)
        conn.close()


def select_readable(conn: vlibvirt.virConnect) -> None:
    import select

    select.select([conn._sock], [], [], 5)


def test_many_threads_stream_and_call_on_one_connection(
    storage: StorageDaemon, image: tuple[Path, bytes]
) -> None:
    """Downloads in several threads and plain calls in others share one socket."""
    import threading

    source, content = image
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "threads.img")
    try:
        _upload(conn, vol, source, SPARSE_UP)
        results: list[bytes] = []
        failures: list[BaseException] = []
        calls = [0]

        def download(offset: int) -> None:
            try:
                stream = conn.newStream(0)
                vstream.storage_vol_download(stream, conn._sock, False, vol, offset, 3 * MIB, 0)
                results.append(_download_all(conn, stream))
            except BaseException as exc:
                failures.append(exc)

        def caller() -> None:
            try:
                for _ in range(50):
                    _pool(conn)
                    calls[0] += 1
            except BaseException as exc:
                failures.append(exc)

        offsets = [0, 4 * MIB, 18 * MIB, 2 * MIB]
        threads = [threading.Thread(target=download, args=(o,)) for o in offsets]
        threads += [threading.Thread(target=caller) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        assert sorted(results) == sorted(content[o : o + 3 * MIB] for o in offsets)
        assert calls[0] == 200
    finally:
        _delete_volume(conn, vol)
        conn.close()


def test_stream_event_callback_on_default_loop(
    storage: StorageDaemon, image: tuple[Path, bytes]
) -> None:
    """eventAddCallback: READABLE fires from virEventRunDefaultImpl until the data is read."""
    source, content = image
    vlibvirt.virEventRegisterDefaultImpl()
    conn = vlibvirt.open(storage.uri)
    vol = _new_volume(conn, "events.img")
    try:
        _upload(conn, vol, source, 0)
        stream = conn.newStream(vlibvirt.VIR_STREAM_NONBLOCK)
        vstream.storage_vol_download(stream, conn._sock, False, vol, 0, MIB, 0)
        got: list[bytes] = []
        done = [False]

        def on_event(st: Any, events: int, opaque: list[bytes]) -> None:
            assert events & vlibvirt.VIR_STREAM_EVENT_READABLE
            chunk = st.recv(65536)
            if chunk == -2:
                return
            if chunk == b"":
                st.eventRemoveCallback()
                done[0] = True
                return
            opaque.append(chunk)

        stream.eventAddCallback(vlibvirt.VIR_STREAM_EVENT_READABLE, on_event, got)
        while not done[0]:
            vlibvirt.virEventRunDefaultImpl()
        stream.finish()
        assert b"".join(got) == content[:MIB]
    finally:
        _delete_volume(conn, vol)
        conn.close()


def test_screenshot_from_the_test_driver(real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    """virDomainScreenshot on test:///default: the same PNG and MIME type as libvirt-python."""
    conn = vlibvirt.open(real_libvirtd.tcp_uri)
    dom = conn.lookupByName("test")
    stream = conn.newStream(0)
    mime = vstream.domain_screenshot(stream, conn._sock, False, dom._ref, 0, 0)
    ours = _download_all(conn, stream)
    theirs_conn = real_libvirt.open(real_libvirtd.tcp_uri)
    theirs_stream = theirs_conn.newStream(0)
    theirs_mime = theirs_conn.lookupByName("test").screenshot(theirs_stream, 0, 0)
    theirs = _download_all(theirs_conn, theirs_stream)
    theirs_conn.close()
    conn.close()
    assert (mime, ours) == (theirs_mime, theirs)
    assert ours.startswith(b"\x89PNG")


# -- async shells -------------------------------------------------------------------------


async def _sparse_chunks(path: Path) -> AsyncIterator[bytes | int]:
    """The file as data chunks and hole lengths."""
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            in_data, length = hole_handler(fd)
            if not in_data and length > 0:
                os.lseek(fd, length, os.SEEK_CUR)
                yield length
                continue
            data = os.read(fd, min(length, 262120))
            if not data:
                return
            yield data
    finally:
        os.close(fd)


async def _collect(stream: AsyncStream, sparse: bool) -> tuple[bytes, int]:
    parts: list[bytes] = []
    holes = 0
    async for chunk in stream.chunks(sparse=sparse):
        if isinstance(chunk, int):
            holes += chunk
            parts.append(bytes(chunk))
        else:
            parts.append(chunk)
    await stream.finish()
    return b"".join(parts), holes


async def _async_round_trip(conn: Any, name: str, source: Path, content: bytes) -> None:
    pool = await conn.call(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))
    xml = f"<volume><name>{name}</name><capacity>{IMAGE_SIZE}</capacity><allocation>0</allocation></volume>"
    vol = await conn.call(ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=pool, xml=xml, flags=0))
    try:
        upload = await conn.storage_vol_upload(vol, flags=SPARSE_UP)
        await upload.send_all(_sparse_chunks(source))
        assert await conn.storage_vol_lookup(POOL, name) == vol
        download = await conn.storage_vol_download(vol, flags=SPARSE_DOWN)
        data, holes = await _collect(download, sparse=True)
        assert data == content
        assert holes >= IMAGE_SIZE // 2
        plain = await conn.storage_vol_download(vol, 0, 3 * MIB)
        data, holes = await _collect(plain, sparse=False)
        assert (data, holes) == (content[: 3 * MIB], 0)
    finally:
        await conn.call(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))


async def test_trio_stream_round_trip(storage: StorageDaemon, image: tuple[Path, bytes]) -> None:
    source, content = image
    async with await vclient.connect(storage.uri) as conn:
        await _async_round_trip(conn, "trio.img", source, content)


def test_asyncio_stream_round_trip(storage: StorageDaemon, image: tuple[Path, bytes]) -> None:
    import asyncio

    from virtwire.client import asyncio_client

    source, content = image

    async def main() -> None:
        async with await asyncio_client.connect(storage.uri) as conn:
            await _async_round_trip(conn, "asyncio.img", source, content)

    asyncio.run(main())


async def test_trio_cancel_mid_stream_then_abort(storage: StorageDaemon, image: tuple[Path, bytes]) -> None:
    """A download cancelled between chunks is aborted cleanly; the connection goes on."""
    source, content = image
    async with await vclient.connect(storage.uri) as conn:
        pool = await conn.call(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))
        xml = f"<volume><name>cancel.img</name><capacity>{IMAGE_SIZE}</capacity></volume>"
        create = ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=pool, xml=xml, flags=0)
        vol = await conn.call(create)
        try:
            upload = await conn.storage_vol_upload(vol, flags=SPARSE_UP)
            await upload.send_all(_sparse_chunks(source))
            download = await conn.storage_vol_download(vol)
            got = b""
            with trio.CancelScope() as scope:
                async for chunk in download:
                    assert isinstance(chunk, bytes)
                    got += chunk
                    if len(got) > MIB:
                        scope.cancel()
                    await trio.lowlevel.checkpoint()
            assert scope.cancelled_caught and content.startswith(got)
            await download.abort()
            assert await conn.get_type() == "storage"
        finally:
            await conn.call(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))


def test_asyncio_cancel_mid_stream_then_abort(storage: StorageDaemon, image: tuple[Path, bytes]) -> None:
    """The asyncio shell: a download task cancelled between chunks, then aborted; the connection goes on."""
    import asyncio

    from virtwire.client import asyncio_client

    source, content = image

    async def main() -> None:
        async with await asyncio_client.connect(storage.uri) as conn:
            pool = await conn.call(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))
            xml = f"<volume><name>acancel.img</name><capacity>{IMAGE_SIZE}</capacity></volume>"
            create = ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=pool, xml=xml, flags=0)
            vol = await conn.call(create)
            try:
                upload = await conn.storage_vol_upload(vol, flags=SPARSE_UP)
                await upload.send_all(_sparse_chunks(source))
                download = await conn.storage_vol_download(vol)
                got = bytearray()
                first_mib = asyncio.Event()

                async def consume() -> None:
                    async for chunk in download:
                        assert isinstance(chunk, bytes)
                        got.extend(chunk)
                        if len(got) > MIB:
                            first_mib.set()

                task = asyncio.create_task(consume())
                await first_mib.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert content.startswith(bytes(got))
                await download.abort()
                assert await conn.get_type() == "storage"
            finally:
                await conn.call(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))

    asyncio.run(main())


async def _lagging_reader_scenario(
    conn: Any, shell_sleep: Any, limit: int, source: Path, content: bytes
) -> None:
    pool = await conn.call(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=POOL))
    xml = f"<volume><name>lag-{uuid.uuid4().hex[:6]}.img</name><capacity>{IMAGE_SIZE}</capacity></volume>"
    vol = await conn.call(ops.call("STORAGE_VOL_CREATE_XML", ops.field("vol"), pool=pool, xml=xml, flags=0))
    try:
        upload = await conn.storage_vol_upload(vol, flags=SPARSE_UP)
        await upload.send_all(_sparse_chunks(source))
        download = await conn.storage_vol_download(vol)
        for _ in range(10):
            await shell_sleep(0.02)  # let the daemon push as much as it may
        # nothing read, no call waiting: the reader held back near the limit
        assert download.state.rx_bytes <= limit + 2 * MIB
        # a call still gets its reply (the reader runs again while it waits)
        assert await conn.get_type() == "storage"
        data, holes = await _collect(download, sparse=False)
        assert (data, holes) == (content, 0)
    finally:
        await conn.call(ops.call("STORAGE_VOL_DELETE", vol=vol, flags=0))


async def test_trio_lagging_stream_reader_is_bounded_and_never_starves_calls(
    storage: StorageDaemon, image: tuple[Path, bytes]
) -> None:

    source, content = image
    async with await vclient.connect(storage.uri) as conn:
        await _lagging_reader_scenario(conn, trio.sleep, aio_shell.STREAM_RX_LIMIT, source, content)


def test_asyncio_lagging_stream_reader_is_bounded_and_never_starves_calls(
    storage: StorageDaemon, image: tuple[Path, bytes]
) -> None:
    import asyncio

    from virtwire.client import asyncio_client

    source, content = image

    async def main() -> None:
        async with await asyncio_client.connect(storage.uri) as conn:
            limit = aio_shell.STREAM_RX_LIMIT
            await _lagging_reader_scenario(conn, asyncio.sleep, limit, source, content)

    asyncio.run(main())
