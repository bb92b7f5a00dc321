"""Every procedure libvirt 9.0's test driver serves, `virtwire serve` serves too.

tests/server/data/test-driver-served.json lists the procedures a real libvirtd
(test driver) answers with anything but "this function is not supported by the
connection driver", measured by vwtestkit.probe; the first test re-measures it
against the real daemon, so the fixture cannot go stale.  Our own answer to the
same probe must then differ only where this file says so: procedures not served
yet (a list that may only shrink: each one served must leave it), and
procedures we serve beyond libvirt's test driver on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from virtwire.server.dispatch import build_routes
from virtwire.server.driver.memory.driver import MemoryDriver
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer
from vwtestkit.probe import NOT_SENT, probe, served

FIXTURE = Path(__file__).with_name("data") / "test-driver-served.json"

# Served by libvirt's test driver, not yet by virtwire serve.
NOT_YET_SERVED: frozenset[str] = frozenset()

# Served by us, not by libvirt's test driver, on purpose: jobs and migration (the
# memory driver really migrates), secrets (OpenStack-style clients need them),
# volume bytes (upload, download, wipe, resize, as libvirt's storage driver does them),
# graphics descriptors (as libvirt's QEMU driver: OPEN_GRAPHICS and FD_ASSOCIATE too,
# which the probe does not send over TCP), a pool by its target path and the pool
# capabilities (as libvirt's storage driver: tests/server/test_diff_storage_driver.py).
BEYOND_THE_TEST_DRIVER = frozenset(
    {
        "CONNECT_GET_STORAGE_POOL_CAPABILITIES",
        "CONNECT_LIST_ALL_SECRETS",
        "CONNECT_LIST_SECRETS",
        "CONNECT_NUM_OF_SECRETS",
        "CONNECT_SECRET_EVENT_DEREGISTER_ANY",
        "CONNECT_SECRET_EVENT_REGISTER_ANY",
        "DOMAIN_ABORT_JOB",
        "DOMAIN_ABORT_JOB_FLAGS",
        "DOMAIN_ATTACH_DEVICE",
        "DOMAIN_ATTACH_DEVICE_FLAGS",
        "DOMAIN_DETACH_DEVICE",
        "DOMAIN_DETACH_DEVICE_ALIAS",
        "DOMAIN_DETACH_DEVICE_FLAGS",
        "DOMAIN_GET_JOB_INFO",
        "DOMAIN_GET_JOB_STATS",
        "DOMAIN_MIGRATE_BEGIN3_PARAMS",
        "DOMAIN_MIGRATE_CONFIRM3_PARAMS",
        "DOMAIN_MIGRATE_FINISH3_PARAMS",
        "DOMAIN_MIGRATE_GET_COMPRESSION_CACHE",
        "DOMAIN_MIGRATE_GET_MAX_DOWNTIME",
        "DOMAIN_MIGRATE_GET_MAX_SPEED",
        "DOMAIN_MIGRATE_PERFORM3_PARAMS",
        "DOMAIN_MIGRATE_PREPARE3_PARAMS",
        "DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS",
        "DOMAIN_MIGRATE_SET_COMPRESSION_CACHE",
        "DOMAIN_MIGRATE_SET_MAX_DOWNTIME",
        "DOMAIN_MIGRATE_SET_MAX_SPEED",
        "DOMAIN_MIGRATE_START_POST_COPY",
        "DOMAIN_OPEN_GRAPHICS_FD",
        "DOMAIN_UPDATE_DEVICE_FLAGS",
        "SECRET_DEFINE_XML",
        "SECRET_GET_VALUE",
        "SECRET_GET_XML_DESC",
        "SECRET_LOOKUP_BY_USAGE",
        "SECRET_LOOKUP_BY_UUID",
        "SECRET_SET_VALUE",
        "SECRET_UNDEFINE",
        "STORAGE_POOL_LOOKUP_BY_TARGET_PATH",
        "STORAGE_VOL_DOWNLOAD",
        "STORAGE_VOL_GET_INFO_FLAGS",
        "STORAGE_VOL_RESIZE",
        "STORAGE_VOL_UPLOAD",
        "STORAGE_VOL_WIPE",
        "STORAGE_VOL_WIPE_PATTERN",
    }
)


def served_by_libvirts_test_driver() -> set[str]:
    served_names: list[str] = json.loads(FIXTURE.read_text())["served"]
    return set(served_names)


def routed_by_us() -> set[str]:
    """What our routes send to a handler (connection or driver), as the probe would see it."""
    routes = build_routes(MemoryDriver(hostname="probe"))
    return {
        r.proc.name
        for r in routes.values()
        if (r.connection_level or r.driver_handler is not None) and r.proc.name not in NOT_SENT
    }


def test_fixture_is_what_a_real_libvirtd_serves(real_libvirtd: RealLibvirtd) -> None:
    with RawRpcClient.tcp("127.0.0.1", real_libvirtd.tcp_port, timeout=30) as client:
        client.open()
        measured = served(probe(client))
    assert measured == served_by_libvirts_test_driver(), (
        "libvirtd's served procedures changed: refresh tests/server/data/test-driver-served.json"
        " with `python tests/fixtures/vwtestkit/probe.py 127.0.0.1 PORT`"
    )


def test_every_test_driver_procedure_is_served_or_listed() -> None:
    missing = served_by_libvirts_test_driver() - routed_by_us()
    assert missing <= NOT_YET_SERVED, (
        f"served by libvirt's test driver, not by us: {sorted(missing - NOT_YET_SERVED)}"
    )
    now_served = NOT_YET_SERVED - missing
    assert not now_served, f"served now: remove from NOT_YET_SERVED: {sorted(now_served)}"


def test_what_we_serve_beyond_the_test_driver_is_deliberate() -> None:
    assert routed_by_us() - served_by_libvirts_test_driver() == BEYOND_THE_TEST_DRIVER


def test_our_answers_to_the_probe_agree_with_our_routes(
    virtwire_server: Callable[..., VirtwireServer],
) -> None:
    # A routed procedure must not answer libvirt's generic "not supported" (a stub),
    # and an unrouted one must answer exactly that.
    server = virtwire_server(ro=False, tls=False)
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port, timeout=30) as client:
        client.open()
        measured = served(probe(client))
    assert measured == routed_by_us()
