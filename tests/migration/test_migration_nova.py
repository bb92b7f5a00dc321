"""A libvirt-python program written the way OpenStack Nova drives a live migration.

It runs unchanged against two virtwire hosts, once with the real libvirt-python
and once with ``virtwire.libvirt``: migrateToURI3 (peer-to-peer, as Nova calls it)
in a worker thread; the monitor polls jobStats() every 0.5 s and, like Nova's old
``should_switch_to_postcopy``, calls migrateStartPostCopy() once memory_iteration
> 1 and memory_remaining shrank by less than 10 % since the last poll.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

Hosts = Any  # tests/migration/conftest.py's Hosts
Trail = Any  # tests/migration/conftest.py's JobStatsTrail


@dataclass
class MonitorLog:
    polls: list[dict[str, Any]] = field(default_factory=list)
    switched_at: dict[str, Any] | None = None
    outcome: str = ""
    error: BaseException | None = None
    iteration_events: list[int] = field(default_factory=list)


def nova_style_migration(
    libvirt: ModuleType, src_uri: str, dst_uri: str, name: str, trail: Trail
) -> MonitorLog:
    """Nova's monitor loop; every jobStats() sample also goes through ``trail``."""
    log = MonitorLog()
    conn = libvirt.open(src_uri)
    try:
        dom = conn.lookupByName(name)
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PEER2PEER
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            | libvirt.VIR_MIGRATE_POSTCOPY
        )
        params = {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 2}

        def migrate() -> None:
            try:
                dom.migrateToURI3(dst_uri, params, flags)
            except libvirt.libvirtError as exc:
                log.error = exc

        worker = threading.Thread(target=migrate)
        worker.start()
        previous_remaining: int | None = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                stats = dom.jobStats()
                trail.add(stats)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                    stats = {"type": libvirt.VIR_DOMAIN_JOB_NONE}
                else:
                    raise
            log.polls.append(stats)
            job_type = stats["type"]
            if job_type == libvirt.VIR_DOMAIN_JOB_NONE and not worker.is_alive():
                break
            if job_type == libvirt.VIR_DOMAIN_JOB_UNBOUNDED and log.switched_at is None:
                iteration = stats.get("memory_iteration", 0)
                remaining = stats.get("memory_remaining", 0)
                if iteration > 1 and previous_remaining is not None and remaining > previous_remaining * 0.9:
                    dom.migrateStartPostCopy()
                    log.switched_at = stats
                previous_remaining = remaining
            time.sleep(0.5)
        worker.join(timeout=120)
        log.outcome = "failed" if log.error is not None else "completed"
        return log
    finally:
        conn.close()


@pytest.fixture(params=["libvirt-python", "virtwire.libvirt"])
def libvirt_module(request: pytest.FixtureRequest, real_libvirt: ModuleType) -> ModuleType:
    if request.param == "libvirt-python":
        return real_libvirt
    return importlib.import_module("virtwire.libvirt")


def test_nova_style_postcopy_switch(
    libvirt_module: ModuleType,
    hosts: Hosts,
    start_domain: Callable[..., str],
    real_libvirt: ModuleType,
    stats_trail: Callable[[], Trail],
) -> None:
    libvirt = libvirt_module
    # All of the 2 MiB working set hot: 1 s per pass at 2 MiB/s, pre-copy cannot converge.
    name = start_domain(
        hosts.src.tcp_uri, f"nova-{libvirt.__name__}", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2
    )
    trail = stats_trail()
    log = nova_style_migration(libvirt, hosts.src.tcp_uri, hosts.dst.tcp_uri, name, trail)
    assert log.error is None, log.error
    assert log.switched_at is not None, log.polls
    assert log.switched_at["memory_iteration"] > 1
    running = [p for p in log.polls if p["type"] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED]
    assert running, log.polls
    for stats in running:
        assert stats["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
        assert stats["memory_page_size"] == 4096
    # The trail checked processed + remaining == total in each poll, processed
    # monotonic, total fixed within an iteration; iteration 1's total is all of RAM.
    assert len(trail.samples) == len(running)
    first = [p for p in running if p["memory_iteration"] <= 1]
    assert all(p["memory_total"] == 256 * 1024 * 1024 for p in first)
    assert running[-1]["memory_total"] > 256 * 1024 * 1024

    # UNDEFINE_SOURCE + PERSIST_DEST: the guest now lives only on the destination.
    src = libvirt.open(hosts.src.tcp_uri)
    dst = libvirt.open(hosts.dst.tcp_uri)
    try:
        with pytest.raises(libvirt.libvirtError) as gone:
            src.lookupByName(name)
        assert gone.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
        moved = dst.lookupByName(name)
        assert moved.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED]
        assert moved.isPersistent() == 1
        # Post-copy: no completed stats on the destination.
        assert moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED) == {"type": libvirt.VIR_DOMAIN_JOB_NONE}
    finally:
        src.close()
        dst.close()


def test_migrate3_client_managed_precopy_and_completed_stats(
    libvirt_module: ModuleType,
    hosts: Hosts,
    start_domain: Callable[..., str],
    stats_trail: Callable[[], Trail],
) -> None:
    libvirt = libvirt_module
    name = start_domain(hosts.src.tcp_uri, f"mig3-{libvirt.__name__}", dirty_rate=100, working_set_mib=2)
    src = libvirt.open(hosts.src.tcp_uri)
    dst = libvirt.open(hosts.dst.tcp_uri)
    try:
        dom = src.lookupByName(name)
        dom.migrateSetMaxDowntime(500)
        assert dom.migrateGetMaxDowntime() == 500
        moved = dom.migrate3(dst, {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 100}, libvirt.VIR_MIGRATE_LIVE)
        assert moved.name() == name
        assert moved.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED]
        assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED]
        stats = dom.jobStats(
            libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
        )
        assert stats["type"] == libvirt.VIR_DOMAIN_JOB_COMPLETED
        assert stats["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
        trail = stats_trail()
        trail.completed(stats, stats["memory_iteration"])  # no events here; relations only
        assert stats["downtime"] >= 0
        # Untouched pages crossed as zero-page markers only.
        assert stats["memory_constant"] == (256 - 2) * 256
        assert stats["memory_normal"] >= 2 * 256
        # Every page handled counts a page: the total is RAM plus what went again.
        assert stats["memory_total"] == (stats["memory_constant"] + stats["memory_normal"]) * 4096
        incoming = moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        assert incoming["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN
        stats_trail().completed(incoming, stats["memory_iteration"])
        for name_ in ("memory_total", "memory_processed", "memory_normal", "memory_constant"):
            assert incoming[name_] == stats[name_], name_
        # Read without KEEP_COMPLETED: gone on the next read.
        assert moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED) == {"type": libvirt.VIR_DOMAIN_JOB_NONE}
        info = moved.jobInfo()
        assert info[0] == libvirt.VIR_DOMAIN_JOB_NONE and len(info) == 12
    finally:
        src.close()
        dst.close()


def test_job_completed_and_iteration_events_reach_libvirt_python(
    hosts: Hosts, start_domain: Callable[..., str], real_libvirt: ModuleType, stats_trail: Callable[[], Trail]
) -> None:
    libvirt = real_libvirt
    name = start_domain(hosts.src.tcp_uri, "events", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2)
    libvirt.virEventRegisterDefaultImpl()
    seen: dict[str, list[Any]] = {"iteration": [], "completed": [], "lifecycle": []}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            libvirt.virEventRunDefaultImpl()

    src = libvirt.open(hosts.src.tcp_uri)
    dst = libvirt.open(hosts.dst.tcp_uri)
    thread = threading.Thread(target=loop, daemon=True)
    try:
        dom = src.lookupByName(name)

        def on_iteration(c: Any, d: Any, iteration: int, o: Any) -> None:
            # virsh --postcopy-after-precopy: switch when the second pass starts.
            seen["iteration"].append(iteration)
            if iteration == 2:
                d.migrateStartPostCopy()

        src.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, on_iteration, None)
        src.domainEventRegisterAny(
            dom, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
            lambda c, d, params, o: seen["completed"].append(params), None,
        )  # fmt: skip
        src.domainEventRegisterAny(
            dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            lambda c, d, ev, det, o: seen["lifecycle"].append((ev, det)), None,
        )  # fmt: skip
        thread.start()
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_POSTCOPY
        dom.migrate3(dst, {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 2}, flags)
        # JOB_COMPLETED comes first, STOPPED/MIGRATED with the confirm step (as libvirt's
        # QEMU driver emits them); the event loop thread delivers both in its own time.
        stopped = (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
        deadline = time.monotonic() + 30
        while not (seen["completed"] and stopped in seen["lifecycle"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        src.close()
        dst.close()
    assert seen["iteration"][:2] == [1, 2]
    assert seen["completed"], seen
    completed = seen["completed"][0]
    assert completed["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
    assert seen["iteration"] == list(range(1, len(seen["iteration"]) + 1))
    stats_trail().completed(completed, len(seen["iteration"]))
    assert (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY) in seen[
        "lifecycle"
    ]
    assert seen["lifecycle"][-1] == (
        libvirt.VIR_DOMAIN_EVENT_STOPPED,
        libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED,
    )


def test_nova_style_downtime_steps_with_auto_converge(
    libvirt_module: ModuleType, hosts: Hosts, start_domain: Callable[..., str]
) -> None:
    """Nova without post-copy: AUTO_CONVERGE on, downtime raised in steps while it watches."""
    libvirt = libvirt_module
    name = start_domain(
        hosts.src.tcp_uri, f"novadt-{libvirt.__name__}", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2
    )
    conn = libvirt.open(hosts.src.tcp_uri)
    try:
        dom = conn.lookupByName(name)
        # Nova's downtime_steps(): (delay, downtime ms); the first one before the migration starts.
        steps = [(0.0, 5), (0.5, 20), (1.0, 500)]
        dom.migrateSetMaxDowntime(steps[0][1])
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PEER2PEER
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            | libvirt.VIR_MIGRATE_AUTO_CONVERGE
        )
        errors: list[BaseException] = []

        def migrate() -> None:
            try:
                dom.migrateToURI3(hosts.dst.tcp_uri, {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 4}, flags)
            except libvirt.libvirtError as exc:
                errors.append(exc)

        worker = threading.Thread(target=migrate)
        worker.start()
        started = time.monotonic()
        step = 1
        throttles: list[int] = []
        applied = [steps[0][1]]
        while worker.is_alive():
            try:
                stats = dom.jobStats()
            except libvirt.libvirtError:
                break  # UNDEFINE_SOURCE: the domain is gone once the job is over
            if "auto_converge_throttle" in stats:
                throttles.append(stats["auto_converge_throttle"])
            # The last, converging step waits until throttling was seen, so the test sees both.
            due = step < len(steps) and time.monotonic() - started >= steps[step][0]
            if due and (step < len(steps) - 1 or throttles):
                try:
                    dom.migrateSetMaxDowntime(steps[step][1])
                except libvirt.libvirtError:
                    break  # converged meanwhile (throttled enough): the domain moved on
                now = dom.migrateGetMaxDowntime()  # libvirt-python answers None when it fails
                if now is None:
                    break  # the same, between the two calls
                applied.append(now)
                step += 1
            time.sleep(0.1)
        worker.join(timeout=120)
        assert not errors, errors
        assert applied == [downtime for _, downtime in steps[: len(applied)]]
        # QEMU's steps: 20 first, then +10 up to 99; how many a monitor sees depends on
        # how often it polls, so only the step values and their order are checked
        assert throttles and throttles == sorted(throttles), throttles
        assert set(throttles) <= {*range(20, 99, 10), 99}, throttles
    finally:
        conn.close()
    dst = libvirt.open(hosts.dst.tcp_uri)
    try:
        moved = dst.lookupByName(name)
        assert moved.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED]
    finally:
        dst.close()


def test_nova_style_forced_postcopy_then_recovery_after_cut_links(
    libvirt_module: ModuleType, hosts: Hosts, start_domain: Callable[..., str]
) -> None:
    """A forced post-copy switch whose link is cut; recovery cut too; a second recovery finishes.

    The first recovery is peer-to-peer (migrateToURI3, as Nova), the second client-managed (migrate3).
    """
    libvirt = libvirt_module
    name = start_domain(
        hosts.src.tcp_uri,
        f"novarec-{libvirt.__name__}",
        dirty_rate=4000,
        working_set_mib=2,
        dirty_set_mib=2,
        fault="postcopy recovery:100",
    )
    src = libvirt.open(hosts.src.tcp_uri)
    dst = libvirt.open(hosts.dst.tcp_uri)
    try:
        dom = src.lookupByName(name)
        dom.migrateSetMaxSpeed(1, libvirt.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY)
        assert dom.migrateGetMaxSpeed(libvirt.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY) == 1
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_POSTCOPY
        params = {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 2}
        errors: list[Any] = []

        def migrate() -> None:
            try:
                dom.migrateToURI3(hosts.dst.tcp_uri, params, flags)
            except libvirt.libvirtError as exc:
                errors.append(exc)

        worker = threading.Thread(target=migrate)
        worker.start()
        # Nova's forced switch (live_migration_timeout_action=force_complete, post-copy permitted).
        while dom.jobStats().get("memory_iteration", 0) < 2:
            time.sleep(0.05)
        dom.migrateStartPostCopy()
        worker.join(timeout=120)
        assert len(errors) == 1, errors
        assert errors[0].get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED
        assert dom.state() == [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED]
        assert dom.jobStats()["type"] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED  # kept for recovery
        incoming = dst.lookupByName(name)
        assert incoming.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED]

        resume = flags | libvirt.VIR_MIGRATE_POSTCOPY_RESUME
        with pytest.raises(libvirt.libvirtError) as cut:
            dom.migrateToURI3(hosts.dst.tcp_uri, {}, resume)
        assert cut.value.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED
        assert dom.state() == [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED]
        deadline = time.monotonic() + 30
        failed_here = libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED
        while incoming.state()[1] != failed_here and time.monotonic() < deadline:
            time.sleep(0.05)

        moved = dom.migrate3(dst, {}, resume & ~libvirt.VIR_MIGRATE_PEER2PEER)
        assert moved.name() == name
        assert moved.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED]
        assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED]
        completed = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        assert completed["type"] == libvirt.VIR_DOMAIN_JOB_COMPLETED
        assert completed["memory_remaining"] == 0
    finally:
        src.close()
        dst.close()


def test_offline_migration_client_managed_and_p2p(
    libvirt_module: ModuleType, hosts: Hosts, start_domain: Callable[..., str]
) -> None:
    """VIR_MIGRATE_OFFLINE moves a shut-off definition (feature 12 probed on both sides)."""
    libvirt = libvirt_module
    name = start_domain(hosts.src.tcp_uri, f"offl-{libvirt.__name__}", dirty_rate=100, working_set_mib=1)
    src = libvirt.open(hosts.src.tcp_uri)
    dst = libvirt.open(hosts.dst.tcp_uri)
    try:
        dom = src.lookupByName(name)
        dom.destroy()
        offline = libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST
        with pytest.raises(
            libvirt.libvirtError, match="offline migration must be specified with the persistent"
        ):
            dom.migrate3(dst, {}, libvirt.VIR_MIGRATE_OFFLINE)
        moved = dom.migrate3(dst, {}, offline)
        assert moved.isPersistent() == 1 and moved.isActive() == 0
        # And back, peer-to-peer, leaving nothing behind on the way.
        moved.migrateToURI3(
            hosts.src.tcp_uri,
            {},
            offline | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE,
        )
        with pytest.raises(libvirt.libvirtError) as gone:
            dst.lookupByName(name)
        assert gone.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
        assert src.lookupByName(name).isPersistent() == 1
    finally:
        src.close()
        dst.close()
