"""Volume resize, wipe and GetInfoFlags on `virtwire serve`.

libvirt's test driver lacks them (NO_SUPPORT, checked against libvirtd here);
virtwire follows libvirt's storage driver (storage_driver.c storageVolResize,
storageVolWipePattern, storageVolGetInfoFlags): its checks, errors and effect
on the pool's allocation.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_server, stop_servers

MIB = 1 << 20


@pytest.fixture(scope="module")
def server() -> Iterator[VirtwireServer]:
    started = start_server(pki=None, tls=False, ro=False)
    try:
        yield started
    finally:
        stop_servers([started])


def _collect(parts: list[bytes], _stream: Any, buf: bytes, _opaque: Any) -> int:
    parts.append(buf)
    return len(buf)


def _error(lv: ModuleType, call: Any) -> tuple[int, int, str]:
    with pytest.raises(lv.libvirtError) as info:
        call()
    return info.value.get_error_code(), info.value.get_error_domain(), info.value.get_error_message()


def test_resize_follows_the_storage_driver(real_libvirt: ModuleType, server: VirtwireServer) -> None:
    lv = real_libvirt
    conn = lv.open(server.tcp_uri)
    try:
        pool = conn.storagePoolLookupByName("default-pool")
        before = pool.info()[2]
        grow = "<volume><name>grow</name><capacity unit='M'>4</capacity><allocation unit='M'>1</allocation>"
        vol = pool.createXML(grow + "</volume>", 0)
        vol.resize(8 * MIB, 0)
        assert vol.info()[1:] == [8 * MIB, MIB]
        assert _error(lv, partial(vol.resize, 6 * MIB, 0)) == (
            lv.VIR_ERR_INVALID_ARG,
            lv.VIR_FROM_STORAGE,
            "invalid argument: Can't shrink capacity below current capacity"
            " unless shrink flag explicitly specified",
        )
        assert _error(lv, partial(vol.resize, MIB // 2, lv.VIR_STORAGE_VOL_RESIZE_SHRINK)) == (
            lv.VIR_ERR_INVALID_ARG,
            lv.VIR_FROM_STORAGE,
            "invalid argument: can't shrink capacity below existing allocation",
        )
        vol.resize(2 * MIB, lv.VIR_STORAGE_VOL_RESIZE_SHRINK | lv.VIR_STORAGE_VOL_RESIZE_DELTA)
        assert vol.info()[1] == 6 * MIB
        vol.resize(MIB, lv.VIR_STORAGE_VOL_RESIZE_DELTA | lv.VIR_STORAGE_VOL_RESIZE_ALLOCATE)
        assert vol.info()[1:] == [7 * MIB, 7 * MIB]
        assert pool.info()[2] == before + 7 * MIB  # ALLOCATE charges the pool
        assert "<capacity unit='bytes'>7340032</capacity>" in vol.XMLDesc(0)
        flags_error = _error(lv, partial(vol.resize, MIB, 8))
        assert flags_error[:2] == (lv.VIR_ERR_INVALID_ARG, lv.VIR_FROM_STORAGE)
        assert "storageVolResize" in flags_error[2]
        vol.delete(0)
        assert pool.info()[2] == before
    finally:
        conn.close()


def test_wipe_zeroes_the_bytes(real_libvirt: ModuleType, server: VirtwireServer) -> None:
    lv = real_libvirt
    conn = lv.open(server.tcp_uri)
    try:
        pool = conn.storagePoolLookupByName("default-pool")
        vol = pool.createXML("<volume><name>wiped</name><capacity>4096</capacity></volume>", 0)
        stream = conn.newStream(0)
        vol.upload(stream, 0, 4, 0)
        stream.send(b"data")
        stream.finish()
        vol.wipe(0)
        parts: list[bytes] = []
        stream = conn.newStream(0)
        vol.download(stream, 0, 0, 0)
        stream.recvAll(partial(_collect, parts), None)
        stream.finish()
        assert b"".join(parts) == bytes(4096)
        vol.wipePattern(lv.VIR_STORAGE_VOL_WIPE_ALG_DOD, 0)
        assert _error(lv, partial(vol.wipePattern, 99, 0)) == (
            lv.VIR_ERR_INVALID_ARG,
            lv.VIR_FROM_STORAGE,
            "invalid argument: wiping algorithm 99 not supported",
        )
        assert vol.infoFlags(lv.VIR_STORAGE_VOL_GET_PHYSICAL) == vol.info()
        vol.delete(0)
    finally:
        conn.close()


def test_libvirtd_test_driver_lacks_them(real_libvirt: ModuleType, real_libvirtd: RealLibvirtd) -> None:
    lv = real_libvirt
    conn = lv.open(real_libvirtd.tcp_uri)
    try:
        pool = conn.storagePoolLookupByName("default-pool")
        vol = pool.createXML("<volume><name>nosup</name><capacity>4096</capacity></volume>", 0)
        try:
            for call, api in (
                (partial(vol.resize, 8192, 0), "virStorageVolResize"),
                (partial(vol.wipe, 0), "virStorageVolWipe"),
                (partial(vol.infoFlags, 0), "virStorageVolGetInfoFlags"),
            ):
                assert _error(lv, call)[0] == lv.VIR_ERR_NO_SUPPORT, api
        finally:
            vol.delete(0)
    finally:
        conn.close()
