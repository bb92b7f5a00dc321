"""kill -9 during a burst of defines of every family: nothing that was acknowledged is lost.

A define's reply goes out only after its definition is durable in the state
directory (atomic write + fsync); so whatever a client saw succeed must be back
after the server is killed without warning and started again on the same
directory.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import start_server, stop_servers

DOMAIN = "<domain type='test'><name>{}</name><memory>65536</memory><os><type>hvm</type></os></domain>"
NETWORK = "<network><name>{}</name><bridge name='vb{}'/></network>"
POOL = "<pool type='dir'><name>{}</name><target><path>/pools/{}</path></target></pool>"
INTERFACE = "<interface type='ethernet' name='{}'><mac address='52:54:00:00:{:02x}:{:02x}'/></interface>"
SECRET = "<secret ephemeral='no' private='no'><usage type='ceph'><name>{}</name></usage></secret>"


def _definers(conn: Any) -> list[tuple[str, Callable[[int], str]]]:
    """(family, define number i and return the object's name) for every family."""

    def domain(i: int) -> str:
        return str(conn.defineXML(DOMAIN.format(f"crash-dom-{i}")).name())

    def network(i: int) -> str:
        return str(conn.networkDefineXML(NETWORK.format(f"crash-net-{i}", i)).name())

    def pool(i: int) -> str:
        return str(conn.storagePoolDefineXML(POOL.format(f"crash-pool-{i}", i), 0).name())

    def interface(i: int) -> str:
        return str(conn.interfaceDefineXML(INTERFACE.format(f"crash{i}", i // 256, i % 256), 0).name())

    def secret(i: int) -> str:
        return str(conn.secretDefineXML(SECRET.format(f"crash-secret-{i}"), 0).usageID())

    return [
        ("domain", domain),
        ("network", network),
        ("pool", pool),
        ("interface", interface),
        ("secret", secret),
    ]


def _present(conn: Any) -> dict[str, set[str]]:
    return {
        "domain": {d.name() for d in conn.listAllDomains()},
        "network": {n.name() for n in conn.listAllNetworks()},
        "pool": {p.name() for p in conn.listAllStoragePools()},
        "interface": {i.name() for i in conn.listAllInterfaces()},
        "secret": {s.usageID() for s in conn.listAllSecrets()},
    }


@pytest.mark.parametrize("kill_after", [15, 60])
def test_kill_9_during_a_burst_loses_nothing_acknowledged(
    real_libvirt: ModuleType, tmp_path: Path, kill_after: int
) -> None:
    state = tmp_path / "state"
    first = start_server(pki=None, ro=False, tls=False, state_dir=state)
    acknowledged: dict[str, set[str]] = {family: set() for family, _ in _definers(None)}
    killed = threading.Event()

    def kill_first() -> None:
        os.kill(first.pid, signal.SIGKILL)
        killed.set()
    try:
        conn = real_libvirt.open(first.tcp_uri)
        definers = _definers(conn)
        count = 0
        try:
            for i in range(10_000):
                family, define = definers[i % len(definers)]
                acknowledged[family].add(define(i))
                count += 1
                if count == kill_after:
                    # Killed from another thread while this one keeps defining.
                    threading.Thread(target=kill_first).start()
        except real_libvirt.libvirtError:
            pass  # the connection died with the server; the call in flight was never acknowledged
        assert killed.wait(30)
    finally:
        first.cleanup()  # already dead: only its run directory goes
    assert sum(len(names) for names in acknowledged.values()) >= kill_after

    second = start_server(pki=None, ro=False, tls=False, state_dir=state)
    try:
        conn = real_libvirt.open(second.tcp_uri)
        present = _present(conn)
        for family, names in acknowledged.items():
            assert names <= present[family], (family, sorted(names - present[family]))
        conn.close()
    finally:
        stop_servers([second])
