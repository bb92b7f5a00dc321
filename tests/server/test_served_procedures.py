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
NOT_YET_SERVED = frozenset(
    {
        "CONNECT_BASELINE_CPU",
        "CONNECT_GET_ALL_DOMAIN_STATS",
        "CONNECT_GET_CPU_MODEL_NAMES",
        "CONNECT_GET_SYSINFO",
        "CONNECT_LIST_ALL_NODE_DEVICES",
        "DOMAIN_ADD_IOTHREAD",
        "DOMAIN_BLOCK_STATS",
        "DOMAIN_CHECKPOINT_CREATE_XML",
        "DOMAIN_CHECKPOINT_DELETE",
        "DOMAIN_CHECKPOINT_GET_PARENT",
        "DOMAIN_CHECKPOINT_GET_XML_DESC",
        "DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN",
        "DOMAIN_CHECKPOINT_LOOKUP_BY_NAME",
        "DOMAIN_CORE_DUMP",
        "DOMAIN_CORE_DUMP_WITH_FORMAT",
        "DOMAIN_CREATE_WITH_FILES",
        "DOMAIN_CREATE_XML_WITH_FILES",
        "DOMAIN_DEL_IOTHREAD",
        "DOMAIN_FSFREEZE",
        "DOMAIN_FSTHAW",
        "DOMAIN_FSTRIM",
        "DOMAIN_GET_BLKIO_PARAMETERS",
        "DOMAIN_GET_BLOCK_INFO",
        "DOMAIN_GET_BLOCK_IO_TUNE",
        "DOMAIN_GET_CPU_STATS",
        "DOMAIN_GET_DISK_ERRORS",
        "DOMAIN_GET_EMULATOR_PIN_INFO",
        "DOMAIN_GET_FSINFO",
        "DOMAIN_GET_INTERFACE_PARAMETERS",
        "DOMAIN_GET_IOTHREAD_INFO",
        "DOMAIN_GET_LAUNCH_SECURITY_INFO",
        "DOMAIN_GET_MEMORY_PARAMETERS",
        "DOMAIN_GET_METADATA",
        "DOMAIN_GET_NUMA_PARAMETERS",
        "DOMAIN_GET_PERF_EVENTS",
        "DOMAIN_GET_SCHEDULER_PARAMETERS",
        "DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS",
        "DOMAIN_GET_TIME",
        "DOMAIN_GET_VCPUS",
        "DOMAIN_GET_VCPU_PIN_INFO",
        "DOMAIN_HAS_CURRENT_SNAPSHOT",
        "DOMAIN_INJECT_NMI",
        "DOMAIN_INTERFACE_ADDRESSES",
        "DOMAIN_INTERFACE_STATS",
        "DOMAIN_LIST_ALL_CHECKPOINTS",
        "DOMAIN_LIST_ALL_SNAPSHOTS",
        "DOMAIN_MANAGED_SAVE",
        "DOMAIN_MANAGED_SAVE_REMOVE",
        "DOMAIN_MEMORY_PEEK",
        "DOMAIN_MEMORY_STATS",
        "DOMAIN_PIN_EMULATOR",
        "DOMAIN_PIN_IOTHREAD",
        "DOMAIN_PIN_VCPU",
        "DOMAIN_PIN_VCPU_FLAGS",
        "DOMAIN_RENAME",
        "DOMAIN_RESET",
        "DOMAIN_RESTORE",
        "DOMAIN_RESTORE_FLAGS",
        "DOMAIN_REVERT_TO_SNAPSHOT",
        "DOMAIN_SAVE",
        "DOMAIN_SAVE_FLAGS",
        "DOMAIN_SAVE_IMAGE_DEFINE_XML",
        "DOMAIN_SAVE_IMAGE_GET_XML_DESC",
        "DOMAIN_SEND_KEY",
        "DOMAIN_SEND_PROCESS_SIGNAL",
        "DOMAIN_SET_BLKIO_PARAMETERS",
        "DOMAIN_SET_BLOCK_IO_TUNE",
        "DOMAIN_SET_INTERFACE_PARAMETERS",
        "DOMAIN_SET_IOTHREAD_PARAMS",
        "DOMAIN_SET_LIFECYCLE_ACTION",
        "DOMAIN_SET_MAX_MEMORY",
        "DOMAIN_SET_MEMORY",
        "DOMAIN_SET_MEMORY_FLAGS",
        "DOMAIN_SET_MEMORY_PARAMETERS",
        "DOMAIN_SET_MEMORY_STATS_PERIOD",
        "DOMAIN_SET_METADATA",
        "DOMAIN_SET_NUMA_PARAMETERS",
        "DOMAIN_SET_PERF_EVENTS",
        "DOMAIN_SET_SCHEDULER_PARAMETERS",
        "DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS",
        "DOMAIN_SET_TIME",
        "DOMAIN_SET_USER_PASSWORD",
        "DOMAIN_SET_VCPUS",
        "DOMAIN_SET_VCPUS_FLAGS",
        "DOMAIN_SNAPSHOT_CREATE_XML",
        "DOMAIN_SNAPSHOT_CURRENT",
        "DOMAIN_SNAPSHOT_DELETE",
        "DOMAIN_SNAPSHOT_GET_PARENT",
        "DOMAIN_SNAPSHOT_GET_XML_DESC",
        "DOMAIN_SNAPSHOT_HAS_METADATA",
        "DOMAIN_SNAPSHOT_IS_CURRENT",
        "DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN",
        "DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES",
        "DOMAIN_SNAPSHOT_LIST_NAMES",
        "DOMAIN_SNAPSHOT_LOOKUP_BY_NAME",
        "DOMAIN_SNAPSHOT_NUM_CHILDREN",
        "NODE_DEVICE_CREATE_XML",
        "NODE_DEVICE_DESTROY",
        "NODE_DEVICE_GET_PARENT",
        "NODE_DEVICE_GET_XML_DESC",
        "NODE_DEVICE_LIST_CAPS",
        "NODE_DEVICE_LOOKUP_BY_NAME",
        "NODE_DEVICE_NUM_OF_CAPS",
        "NODE_GET_CELLS_FREE_MEMORY",
        "NODE_GET_CPU_MAP",
        "NODE_GET_CPU_STATS",
        "NODE_GET_FREE_PAGES",
        "NODE_LIST_DEVICES",
        "NODE_NUM_OF_DEVICES",
    }
)

# Served by us, not by libvirt's test driver, on purpose: jobs and migration (the
# memory driver really migrates), secrets (OpenStack-style clients need them),
# volume bytes (upload, download, wipe, resize, as libvirt's storage driver does them).
BEYOND_THE_TEST_DRIVER = frozenset(
    {
        "CONNECT_SECRET_EVENT_REGISTER_ANY",
        "CONNECT_SECRET_EVENT_DEREGISTER_ANY",
        "DOMAIN_ABORT_JOB",
        "DOMAIN_ABORT_JOB_FLAGS",
        "DOMAIN_GET_JOB_INFO",
        "DOMAIN_GET_JOB_STATS",
        "DOMAIN_MIGRATE_BEGIN3_PARAMS",
        "DOMAIN_MIGRATE_CONFIRM3_PARAMS",
        "DOMAIN_MIGRATE_FINISH3_PARAMS",
        "DOMAIN_MIGRATE_GET_MAX_DOWNTIME",
        "DOMAIN_MIGRATE_GET_MAX_SPEED",
        "DOMAIN_MIGRATE_PERFORM3_PARAMS",
        "DOMAIN_MIGRATE_PREPARE3_PARAMS",
        "DOMAIN_MIGRATE_SET_MAX_DOWNTIME",
        "DOMAIN_MIGRATE_SET_MAX_SPEED",
        "DOMAIN_MIGRATE_START_POST_COPY",
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
