"""Pools and volumes survive a restart with --state-dir: definitions, autostart,
active state, allocation, volume definitions and their bytes (holes included);
transient pools and undefined pools stay gone.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from vwtestkit import start_server, stop_servers

MIB = 1 << 20


def _collect(parts: list[bytes], _stream: Any, buf: bytes, _opaque: Any) -> int:
    parts.append(buf)
    return len(buf)


POOL = "<pool type='{kind}'><name>{name}</name><target><path>/{name}</path></target></pool>"


def _write(conn: Any, vol: Any, data: bytes, flags: int = 0) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), flags)
    stream.send(data)
    stream.finish()


def _read(conn: Any, vol: Any) -> bytes:
    stream = conn.newStream(0)
    vol.download(stream, 0, 0, 0)
    parts: list[bytes] = []
    stream.recvAll(partial(_collect, parts), None)
    stream.finish()
    return b"".join(parts)


def _snapshot(conn: Any) -> dict[str, object]:
    seen: dict[str, object] = {}
    for pool in conn.listAllStoragePools(0):
        entry: dict[str, object] = {
            "xml": pool.XMLDesc(0),
            "info": pool.info(),
            "flags": (pool.isActive(), pool.isPersistent(), pool.autostart()),
        }
        if pool.isActive():
            vols = pool.listAllVolumes(0)
            entry["vols"] = {v.name(): (v.XMLDesc(0), v.info(), _read(conn, v)) for v in vols}
        seen[pool.name()] = entry
    return seen


def test_restart_keeps_pools_volumes_and_bytes(real_libvirt: ModuleType, tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = start_server(pki=None, tls=False, ro=False, state_dir=state)
    try:
        conn = real_libvirt.open(server.tcp_uri)
        kept = conn.storagePoolDefineXML(POOL.format(kind="dir", name="kept"), 0)
        kept.setAutostart(1)
        kept.create(0)
        idle = conn.storagePoolDefineXML(POOL.format(kind="dir", name="idle"), 0)
        idle.create(0)
        odd = "<volume><name>odd name &amp; more</name><capacity unit='M'>4</capacity></volume>"
        vol = idle.createXML(odd, 0)
        payload = b"head" + bytes(2 * MIB) + b"tail"
        _write(conn, vol, payload, real_libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        small = "<volume><name>small</name><capacity>8192</capacity><allocation>4096</allocation></volume>"
        kept.createXML(small, 0)
        idle.destroy()
        conn.storagePoolCreateXML(POOL.format(kind="dir", name="transient"), 0)
        default = conn.storagePoolLookupByName("default-pool")
        default.destroy()
        default.undefine()
        idle.create(0)
        before = _snapshot(conn)
        idle.destroy()
        conn.close()
    finally:
        stop_servers([server])

    server = start_server(pki=None, tls=False, ro=False, state_dir=state)
    try:
        conn = real_libvirt.open(server.tcp_uri)
        names = sorted(p.name() for p in conn.listAllStoragePools(0))
        assert names == ["idle", "kept"]  # default-pool stays undefined, transient is gone
        idle = conn.storagePoolLookupByName("idle")
        assert not idle.isActive()
        idle.create(0)
        after = _snapshot(conn)
        assert after == {name: entry for name, entry in before.items() if name != "transient"}
        vols = after["idle"]
        assert isinstance(vols, dict)
        assert vols["vols"]["odd name & more"][2][: len(payload)] == payload
        assert conn.storagePoolLookupByName("kept").autostart() == 1
        conn.close()
    finally:
        stop_servers([server])
