"""Storage calls libvirt's test driver lacks and its storage driver has, through real
libvirt-python: the reference is a real libvirtd with only the storage driver
(vwtestkit.storaged).

- virStoragePoolLookupByTargetPath: found pools and errors must be the same; the path
  is sanitized first ('//' runs, a trailing '/'), only active pools count, and an
  error names the sanitized path when it differs.
- virConnectGetStoragePoolCapabilities: the same document, but for which backends
  are supported: all, here (the memory driver keeps pools of every type), the ones
  Debian's build has, there.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
from vwtestkit import run_virsh, start_server, stop_servers
from vwtestkit.differential import Pair
from vwtestkit.storaged import storage_libvirtd

# Unique per run: a root libvirtd keeps transient pools in /run/libvirt/storage.
RUN = uuid.uuid4().hex[:8]
POOLS = {
    # name: (uuid, how the XML spells the target, relative to the pool directory)
    f"vwpath-a-{RUN}": (str(uuid.uuid4()), "a"),
    # Stored sanitized: the lookup finds it by the clean path.
    f"vwpath-b-{RUN}": (str(uuid.uuid4()), "b//inner/"),
}


class Sides(NamedTuple):
    both: Pair
    base: Path  # where the pools' target directories are
    real_uri: str
    ours_uri: str


@pytest.fixture(scope="module")
def sides(real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    with storage_libvirtd(tmp_path_factory.mktemp("storage-libvirtd")) as daemon:
        base = daemon.pool_dir
        (base / "a").mkdir()
        (base / "b" / "inner").mkdir(parents=True)
        server = start_server(pki=None, tls=False, ro=False)
        try:
            both = Pair(real_libvirt, daemon.uri, server.tcp_uri)
            # A root libvirtd keeps its transient pools' state in /run/libvirt/storage,
            # for the next daemon to find: each is destroyed at the end.
            real_pools: list[Any] = []
            try:
                for conn in (both.real, both.ours):
                    for name, (pool_uuid, target) in POOLS.items():
                        xml = (
                            f"<pool type='dir'><name>{name}</name><uuid>{pool_uuid}</uuid>"
                            f"<target><path>{base}/{target}</path></target></pool>"
                        )
                        pool = conn.storagePoolCreateXML(xml, 0)
                        if conn is both.real:
                            real_pools.append(pool)
                yield Sides(both, base, daemon.uri, server.tcp_uri)
            finally:
                for pool in real_pools:
                    pool.destroy()
                both.close()
        finally:
            stop_servers([server])


def assert_same_error(lv: ModuleType, real: tuple[Any, ...], ours: tuple[Any, ...], code: int) -> None:
    """The same error, but from our storage's domain: the test driver's (VIR_FROM_TEST),
    as every storage error of test:///default, where the storage driver names its own."""
    assert real == ("error", code, lv.VIR_FROM_STORAGE, real[3])
    assert ours == ("error", code, lv.VIR_FROM_TEST, real[3])


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
    sides: Sides, spelling: str, expected: str | None
) -> None:
    both, base = sides.both, sides.base
    path = spelling.format(base=base)
    real, ours = both.both(_found(path))
    if expected is not None:
        name = next(n for n in POOLS if n.startswith(f"vwpath-{expected}-"))
        assert real == ours == ("ok", (name, POOLS[name][0]))
        return
    assert_same_error(both.lv, real, ours, both.lv.VIR_ERR_NO_STORAGE_POOL)
    assert f"no storage pool with matching target path '{path}'" in real[3]


def test_a_read_only_connection_may_look_up(sides: Sides) -> None:
    both, base = sides.both, sides.base
    assert both.same(_found(f"{base}/a/"), readonly=True)[0] == "ok"


def test_only_active_pools_are_found(real_libvirt: ModuleType, sides: Sides) -> None:
    # The reference cannot take a persistent pool here (a root libvirtd would write it
    # to /etc/libvirt/storage), so the inactive case runs on virtwire alone.
    both, base = sides.both, sides.base
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


def test_pool_capabilities_as_libvirts_storage_driver(sides: Sides) -> None:
    both = sides.both
    real, ours = both.both(lambda conn: conn.getStoragePoolCapabilities(0))
    assert real[0] == ours[0] == "ok"
    lacking = re.findall(r"<pool type='([^']+)' supported='no'>", real[1])
    assert "dir" not in lacking and "rbd" in lacking  # Debian's build, for the record
    assert ours[1] == real[1].replace("supported='no'", "supported='yes'")


def test_pool_capabilities_take_no_flags(sides: Sides) -> None:
    both = sides.both
    real, ours = both.both(lambda conn: conn.getStoragePoolCapabilities(1), readonly=True)
    assert_same_error(both.lv, real, ours, both.lv.VIR_ERR_INVALID_ARG)


def test_virsh_pool_capabilities(sides: Sides) -> None:
    real = run_virsh(sides.real_uri, "pool-capabilities", check=True).stdout
    ours = run_virsh(sides.ours_uri, "pool-capabilities", check=True).stdout
    assert "<pool type='dir' supported='yes'>" in ours
    assert ours == real.replace("supported='no'", "supported='yes'")
