"""virStoragePoolLookupByTargetPath through real libvirt-python: libvirt's test driver
lacks it, its storage driver has it, so the reference is a real libvirtd with only the
storage driver (vwtestkit.storaged). Found pools and errors must be the same: the path
is sanitized first ('//' runs, a trailing '/'), only active pools count, and an error
names the sanitized path when it differs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import start_server, stop_servers
from vwtestkit.differential import Pair
from vwtestkit.storaged import storage_libvirtd

# Unique per run: a root libvirtd keeps transient pools in /run/libvirt/storage.
RUN = uuid.uuid4().hex[:8]
POOLS = {
    # name: (uuid, how the XML spells the target, relative to the pool directory)
    f"vwpath-a-{RUN}": ("6c4a9f3e-0d5b-4a43-9d9a-1f0c0b7e1a01", "a"),
    # Stored sanitized: the lookup finds it by the clean path.
    f"vwpath-b-{RUN}": ("6c4a9f3e-0d5b-4a43-9d9a-1f0c0b7e1a02", "b//inner/"),
}


@pytest.fixture(scope="module")
def pair(real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pair, Path]]:
    with storage_libvirtd(tmp_path_factory.mktemp("storage-libvirtd")) as daemon:
        server = start_server(pki=None, tls=False, ro=False)
        both = Pair(real_libvirt, daemon.uri, server.tcp_uri)
        base = daemon.pool_dir
        (base / "a").mkdir()
        (base / "b" / "inner").mkdir(parents=True)
        created: list[Any] = []
        try:
            for conn in (both.real, both.ours):
                for name, (pool_uuid, target) in POOLS.items():
                    xml = (
                        f"<pool type='dir'><name>{name}</name><uuid>{pool_uuid}</uuid>"
                        f"<target><path>{base}/{target}</path></target></pool>"
                    )
                    created.append(conn.storagePoolCreateXML(xml, 0))
            yield both, base
        finally:
            for pool in created:
                try:
                    pool.destroy()
                except real_libvirt.libvirtError:
                    continue  # a test destroyed it already
            both.close()
            stop_servers([server])


def _found(path: str) -> Any:
    def lookup(conn: Any) -> tuple[str, str]:
        pool = conn.storagePoolLookupByTargetPath(path)
        return pool.name(), pool.UUIDString()

    return lookup


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("{base}/a", "a"),
        ("{base}/a/", "a"),  # a trailing '/' goes
        ("{base}//a", "a"),  # so do '//' runs
        ("//{base}/a", "a"),  # and three leading slashes are one
        ("/{base}/a", None),  # but a leading '//' stays (POSIX leaves its meaning open)
        ("{base}/b/inner", "b"),
        ("{base}/b//inner//", "b"),
        ("{base}/b", None),
        ("{base}", None),
        ("{base}/a/../a", None),  # '..' is not resolved
        ("{base}/none//x/", None),  # the error names the sanitized path too
        ("relative/a", None),
        ("", None),
    ],
)
def test_lookup_by_target_path_as_libvirts_storage_driver(
    pair: tuple[Pair, Path], spelling: str, expected: str | None
) -> None:
    both, base = pair
    path = spelling.format(base=base)
    real, ours = both.both(_found(path))
    if expected is not None:
        name = next(n for n in POOLS if n.startswith(f"vwpath-{expected}-"))
        assert real == ours == ("ok", (name, POOLS[name][0]))
        return
    # The same error, but from our storage's domain: the test driver's (VIR_FROM_TEST),
    # as every storage error of test:///default, where the storage driver says its own.
    assert real == ("error", both.lv.VIR_ERR_NO_STORAGE_POOL, both.lv.VIR_FROM_STORAGE, real[3])
    assert ours == ("error", both.lv.VIR_ERR_NO_STORAGE_POOL, both.lv.VIR_FROM_TEST, real[3])
    assert f"no storage pool with matching target path '{path}'" in real[3]


def test_a_read_only_connection_may_look_up(pair: tuple[Pair, Path]) -> None:
    both, base = pair
    assert both.same(_found(f"{base}/a/"), readonly=True)[0] == "ok"


def test_only_active_pools_are_found(real_libvirt: ModuleType, pair: tuple[Pair, Path]) -> None:
    # The reference cannot take a persistent pool here (a root libvirtd would write it
    # to /etc/libvirt/storage), so the inactive case runs on virtwire alone.
    both, base = pair
    name = f"vwpath-inactive-{RUN}"
    pool = both.ours.storagePoolDefineXML(
        f"<pool type='dir'><name>{name}</name><target><path>{base}/inactive/</path></target></pool>", 0
    )
    try:
        with pytest.raises(real_libvirt.libvirtError) as refused:
            both.ours.storagePoolLookupByTargetPath(f"{base}/inactive/")
        assert refused.value.get_error_code() == real_libvirt.VIR_ERR_NO_STORAGE_POOL
        assert refused.value.get_error_message() == (
            f"Storage pool not found: no storage pool with matching target path "
            f"'{base}/inactive/' ({base}/inactive)"
        )
        pool.create(0)
        assert both.ours.storagePoolLookupByTargetPath(f"{base}/inactive").name() == name
    finally:
        if pool.isActive():
            pool.destroy()
        pool.undefine()
