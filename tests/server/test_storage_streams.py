"""Server streams through the real libvirt-python 9.0 against `virtwire serve`:
volume upload/download (plain and sparse), offsets and lengths, the capacity
limit, the screenshot, and clients that abort or vanish mid-stream.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import remote_error, virNetMessageStatus, virNetMessageType
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer, start_server, stop_servers

MIB = 1 << 20


def _collect(parts: list[bytes], _stream: Any, buf: bytes, _opaque: Any) -> int:
    parts.append(buf)
    return len(buf)


P = R.remote_procedure


@pytest.fixture(scope="module")
def server() -> Iterator[VirtwireServer]:
    started = start_server(pki=None, tls=False, ro=False)
    try:
        yield started
    finally:
        stop_servers([started])


@pytest.fixture
def conn(real_libvirt: ModuleType, server: VirtwireServer) -> Iterator[Any]:
    connection = real_libvirt.open(server.tcp_uri)
    try:
        yield connection
    finally:
        connection.close()


def _volume(conn: Any, name: str, capacity: int) -> Any:
    pool = conn.storagePoolLookupByName("default-pool")
    xml = f"<volume><name>{name}</name><capacity>{capacity}</capacity><allocation>0</allocation></volume>"
    return pool.createXML(xml, 0)


def _holey(seed: int) -> bytes:
    """6 MiB: data, a 2 MiB hole, data, a 1 MiB hole (ends on the hole)."""
    rnd = os.urandom(seed) if seed < 0 else bytes((i * 7 + seed) % 251 for i in range(MIB))
    return rnd + bytes(2 * MIB) + rnd + rnd[: MIB // 2] + bytes(MIB + MIB // 2)


def _upload(lv: ModuleType, conn: Any, vol: Any, data: bytes, offset: int = 0, flags: int = 0) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, offset, len(data), flags)
    view = memoryview(data)
    position = 0

    def source(_st: Any, nbytes: int, _opaque: Any) -> bytes:
        nonlocal position
        chunk = bytes(view[position : position + nbytes])
        position += len(chunk)
        return chunk

    stream.sendAll(source, None)
    stream.finish()


def _download(conn: Any, vol: Any, offset: int = 0, length: int = 0) -> bytes:
    stream = conn.newStream(0)
    vol.download(stream, offset, length, 0)
    parts: list[bytes] = []
    stream.recvAll(partial(_collect, parts), None)
    stream.finish()
    return b"".join(parts)


def test_upload_download_round_trip(real_libvirt: ModuleType, conn: Any) -> None:
    vol = _volume(conn, "plain", 8 * MIB)
    data = _holey(3)
    _upload(real_libvirt, conn, vol, data)
    assert _download(conn, vol, 0, len(data)) == data
    whole = _download(conn, vol)
    assert len(whole) == 8 * MIB and whole[: len(data)] == data and not any(whole[len(data) :])
    # offset and length are honoured both ways
    _upload(real_libvirt, conn, vol, b"abcdef", offset=MIB - 3)
    assert _download(conn, vol, MIB - 4, 8) == data[MIB - 4 : MIB - 3] + b"abcdef" + data[MIB + 3 : MIB + 4]
    vol.delete(0)


def test_sparse_send_and_receive_keep_holes(real_libvirt: ModuleType, conn: Any) -> None:
    lv = real_libvirt
    vol = _volume(conn, "sparse", 8 * MIB)
    data = _holey(5)
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), lv.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
    sections = _sections(data)
    cursor = {"i": 0, "done": 0}

    def hole_handler(_st: Any, _o: Any) -> tuple[int, int]:
        if cursor["i"] >= len(sections):
            return (0, 0)
        is_data, length = sections[cursor["i"]]
        return (1 if is_data else 0, length - cursor["done"])

    def skip_handler(_st: Any, length: int, _o: Any) -> int:
        cursor["done"] += length
        _advance(sections, cursor)
        return 0

    def source(_st: Any, nbytes: int, _o: Any) -> bytes:
        if cursor["i"] >= len(sections):
            return b""  # the end: sparseSendAll asks for 0 bytes
        start = sum(length for _, length in sections[: cursor["i"]]) + cursor["done"]
        chunk = data[start : start + min(nbytes, sections[cursor["i"]][1] - cursor["done"])]
        cursor["done"] += len(chunk)
        _advance(sections, cursor)
        return chunk

    stream.sparseSendAll(source, hole_handler, skip_handler, None)
    stream.finish()

    received: list[tuple[str, int]] = []
    parts: list[bytes] = []
    stream = conn.newStream(0)
    vol.download(stream, 0, len(data), lv.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)

    def sink(_st: Any, buf: bytes, _o: Any) -> int:
        received.append(("data", len(buf)))
        parts.append(buf)
        return len(buf)

    def hole(_st: Any, length: int, _o: Any) -> int:
        received.append(("hole", length))
        parts.append(bytes(length))
        return 0

    stream.sparseRecvAll(sink, hole, None)
    stream.finish()
    assert b"".join(parts) == data
    holes = [length for kind, length in received if kind == "hole"]
    assert holes == [2 * MIB, MIB + MIB // 2]  # the holes travelled as holes
    vol.delete(0)


def _sections(data: bytes) -> list[tuple[bool, int]]:
    """(is_data, length) runs of the test data, holes at 512 KiB granularity."""
    block = MIB // 2
    runs: list[tuple[bool, int]] = []
    for start in range(0, len(data), block):
        is_data = any(data[start : start + block])
        if runs and runs[-1][0] == is_data:
            runs[-1] = (is_data, runs[-1][1] + block)
        else:
            runs.append((is_data, block))
    return runs


def _advance(sections: list[tuple[bool, int]], cursor: dict[str, int]) -> None:
    if cursor["i"] < len(sections) and cursor["done"] >= sections[cursor["i"]][1]:
        cursor["i"] += 1
        cursor["done"] = 0


def test_upload_past_capacity_fails_with_enospc(real_libvirt: ModuleType, conn: Any) -> None:
    lv = real_libvirt
    vol = _volume(conn, "small", 100_000)
    with pytest.raises(lv.libvirtError) as info:
        _upload(lv, conn, vol, bytes(range(256)) * 1000)
    assert info.value.get_error_code() == lv.VIR_ERR_SYSTEM_ERROR
    assert info.value.get_error_domain() == lv.VIR_FROM_STREAMS
    assert "cannot write to stream: No space left on device" in str(info.value)
    assert _download(conn, vol) == (bytes(range(256)) * 1000)[:100_000]  # what fitted was written
    vol.delete(0)


def test_bad_flags_and_missing_volume(real_libvirt: ModuleType, conn: Any) -> None:
    lv = real_libvirt
    vol = _volume(conn, "flags", MIB)
    with pytest.raises(lv.libvirtError) as info:
        vol.upload(conn.newStream(0), 0, 0, 4)
    assert info.value.err[4:6] == ("storageVolUpload", "flags")
    vol.delete(0)
    with pytest.raises(lv.libvirtError) as info:
        vol.download(conn.newStream(0), 0, 0, 0)
    assert info.value.get_error_code() == lv.VIR_ERR_NO_STORAGE_VOL
    assert conn.getHostname()


def test_abort_mid_upload_keeps_serving(real_libvirt: ModuleType, conn: Any, server: VirtwireServer) -> None:
    vol = _volume(conn, "aborted", 4 * MIB)
    baseline = _open_fds(server)
    stream = conn.newStream(0)
    vol.upload(stream, 0, 0, 0)
    stream.send(b"x" * 100_000)
    stream.abort()
    assert _download(conn, vol, 0, 4)  # the server answers; the volume is usable
    _upload(real_libvirt, conn, vol, b"after")
    assert _download(conn, vol, 0, 5) == b"after"
    assert _open_fds(server) == baseline
    vol.delete(0)


def test_client_vanishing_mid_download(conn: Any, server: VirtwireServer) -> None:
    vol = _volume(conn, "vanish", 16 * MIB)
    baseline = _open_fds(server)
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as raw:
        raw.open()
        ref = R.remote_nonnull_storage_vol(pool="default-pool", name="vanish", key=vol.key())
        args = R.remote_storage_vol_download_args(vol=ref, offset=0, length=0, flags=0)
        reply = raw.call(P.REMOTE_PROC_STORAGE_VOL_DOWNLOAD, args.to_bytes())
        assert reply.status == 0
        first = raw.recv_packet()
        assert int.from_bytes(first[16:20], "big") == virNetMessageType.VIR_NET_STREAM
        raw.sock.shutdown(socket.SHUT_RDWR)
    assert conn.storagePoolLookupByName("default-pool").numOfVolumes() >= 1  # still serving
    assert _download(conn, vol, 0, 3) == bytes(3)
    _wait_fds(server, baseline)
    vol.delete(0)


def test_hole_on_a_plain_stream_drops_the_client(conn: Any, server: VirtwireServer) -> None:
    vol = _volume(conn, "noholes", MIB)
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as raw:
        raw.open()
        ref = R.remote_nonnull_storage_vol(pool="default-pool", name="noholes", key=vol.key())
        args = R.remote_storage_vol_upload_args(vol=ref, offset=0, length=0, flags=0)
        reply = raw.call(P.REMOTE_PROC_STORAGE_VOL_UPLOAD, args.to_bytes())
        hole = (4096).to_bytes(8, "big") + bytes(4)
        raw.send_call(
            P.REMOTE_PROC_STORAGE_VOL_UPLOAD,
            hole,
            serial=reply.serial,
            mtype=virNetMessageType.VIR_NET_STREAM_HOLE,
            status=virNetMessageStatus.VIR_NET_CONTINUE,
        )
        assert raw.peer_closed()  # libvirtd closes such a client too
    assert conn.getHostname()
    vol.delete(0)


def test_screenshot_matches_libvirtd(
    real_libvirt: ModuleType, conn: Any, real_libvirtd: RealLibvirtd
) -> None:
    def shot(connection: Any) -> tuple[str, bytes]:
        stream = connection.newStream(0)
        mime = connection.lookupByName("test").screenshot(stream, 0, 0)
        parts: list[bytes] = []
        stream.recvAll(partial(_collect, parts), None)
        stream.finish()
        return mime, b"".join(parts)

    real = real_libvirt.open(real_libvirtd.tcp_uri)
    try:
        theirs = shot(real)
    finally:
        real.close()
    mine = shot(conn)
    assert mine == theirs
    assert mine[1].startswith(b"\x89PNG")


def _open_fds(server: VirtwireServer) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def _wait_fds(server: VirtwireServer, baseline: int) -> None:
    """The server notices the vanished client asynchronously; poll (no timing asserted)."""
    import time

    for _ in range(200):
        if _open_fds(server) <= baseline:
            return
        time.sleep(0.05)
    assert _open_fds(server) <= baseline


def test_volume_files_live_in_a_private_directory(server: VirtwireServer) -> None:
    # Without --state-dir the bytes go to a temporary directory of the server's own.
    links = [os.readlink(f"/proc/{server.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{server.pid}/fd")]
    assert not any(Path(link).suffix == ".img" for link in links)  # no volume file left open


def test_data_after_a_stream_error_is_dropped(conn: Any, server: VirtwireServer) -> None:
    """An upload past the capacity fails with STREAM/ERROR; what the client still sends is
    ignored (libvirtd: "Ignoring unexpected stream data") and the connection keeps serving."""
    vol = _volume(conn, "overflow", 70_000)
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as raw:
        raw.open()
        ref = R.remote_nonnull_storage_vol(pool="default-pool", name="overflow", key=vol.key())
        args = R.remote_storage_vol_upload_args(vol=ref, offset=0, length=0, flags=0)
        reply = raw.call(P.REMOTE_PROC_STORAGE_VOL_UPLOAD, args.to_bytes())
        assert reply.status == 0
        for _ in range(30):  # far more than the stream's queue holds, never reading
            raw.send_call(
                P.REMOTE_PROC_STORAGE_VOL_UPLOAD,
                bytes(65536),
                serial=reply.serial,
                mtype=virNetMessageType.VIR_NET_STREAM,
                status=virNetMessageStatus.VIR_NET_CONTINUE,
            )
        lookup = R.remote_storage_pool_lookup_by_name_args(name="default-pool")
        answer = raw.call(P.REMOTE_PROC_STORAGE_POOL_LOOKUP_BY_NAME, lookup.to_bytes())
        assert answer.status == 0
        errors = [p for p in raw.unsolicited if p.type == virNetMessageType.VIR_NET_STREAM]
        assert [(p.serial, p.status) for p in errors] == [(reply.serial, virNetMessageStatus.VIR_NET_ERROR)]
        error = remote_error.from_bytes(errors[0].payload)
        assert error.message == "cannot write to stream: No space left on device"
    assert _download(conn, vol) == bytes(70_000)
    vol.delete(0)


def test_abort_mid_download(conn: Any, server: VirtwireServer) -> None:
    vol = _volume(conn, "download-abort", 16 * MIB)
    baseline = _open_fds(server)
    stream = conn.newStream(0)
    vol.download(stream, 0, 0, 0)
    assert len(stream.recv(65536)) == 65536
    stream.abort()
    assert _download(conn, vol, 5, 5) == bytes(5)
    _wait_fds(server, baseline)
    vol.delete(0)
