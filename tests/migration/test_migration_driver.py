"""The migration procedures of two in-process memory drivers, called as the dispatcher calls them.

No daemon, no RPC: two ``MemoryDriver`` instances in one trio run, the five V3
steps called in the order libvirt's client calls them, events recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import MIGRATION_PARAM_TYPES, make_param, params_to_dict
from virtwire.server.driver.base import ConnectionContext
from virtwire.server.driver.memory.driver import MemoryDriver
from virtwire.server.driver.memory.guest import FaultSpec
from virtwire.server.driver.memory.migration_session import OUTGOING, OutgoingSession, finished_job

NS = "https://virtwire.dev/xmlns/1"
UUID = "5c2f3f0e-0d6a-4f7e-9a55-3b0f6a8e1d01"
XML = f"""<domain type='test'>
  <name>vm</name>
  <uuid>{UUID}</uuid>
  <metadata><virtwire:workload xmlns:virtwire="{NS}"
    dirty-rate="{{rate}}" working-set-mib="2"{{hot}}/></metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>"""
CTX = ConnectionContext(conn_id=1, peer="127.0.0.1:1", transport="tcp")
Trail = Any  # conftest.JobStatsTrail


@dataclass
class Events:
    """Stands in for DomainEvents: what the driver emitted, in order."""

    log: list[tuple[Any, ...]] = field(default_factory=list)

    def lifecycle(self, dom: Any, event: int, detail: int) -> int:
        self.log.append(("lifecycle", dom.name, event, detail))
        return 1

    def migration_iteration(self, dom: Any, iteration: int) -> int:
        self.log.append(("iteration", dom.name, iteration))
        return 1

    def job_completed(self, dom: Any, params: list[Any]) -> int:
        self.log.append(("job_completed", dom.name, params_to_dict(params)))
        return 1

    def lifecycle_details(self) -> list[tuple[int, int]]:
        return [(e[2], e[3]) for e in self.log if e[0] == "lifecycle"]


@dataclass
class Pair:
    src: MemoryDriver
    dst: MemoryDriver
    src_events: Events
    dst_events: Events


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    src = MemoryDriver(hostname="src-host")
    dst = MemoryDriver(hostname="dst-host")
    src_events, dst_events = Events(), Events()
    src.events = src_events  # type: ignore[assignment]
    dst.events = dst_events  # type: ignore[assignment]
    async with trio.open_nursery() as nursery:
        src.nursery = nursery
        dst.nursery = nursery
        yield Pair(src, dst, src_events, dst_events)
        nursery.cancel_scope.cancel()


def start_vm(driver: MemoryDriver, rate: int = 2000, hot_mib: int | None = None) -> R.remote_nonnull_domain:
    """``hot_mib`` 2 makes the whole working set hot: pre-copy cannot converge at 1 MiB/s."""
    hot = "" if hot_mib is None else f' dirty-set-mib="{hot_mib}"'
    dom = driver.define_domain(XML.replace("{rate}", str(rate)).replace("{hot}", hot), persistent=True)
    driver.start_domain(dom)
    return R.remote_nonnull_domain(name=dom.name, uuid=dom.uuid, id=dom.id)


def params(**values: Any) -> list[R.remote_typed_param]:
    out = []
    for name, value in values.items():
        wire_name = name.replace("__", ".")
        # Strings as strings (a wrong type on purpose stays wrong); numbers as libvirt types them.
        kind = 7 if isinstance(value, str) else MIGRATION_PARAM_TYPES.get(wire_name, 4)
        out.append(make_param(wire_name, kind, value))
    return out


async def stats(driver: MemoryDriver, ref: R.remote_nonnull_domain, flags: int = 0) -> dict[str, Any]:
    ret = await driver.domain_get_job_stats(R.remote_domain_get_job_stats_args(dom=ref, flags=flags), CTX)
    return {"type": ret.type, **params_to_dict(ret.params)}


async def job_info(driver: MemoryDriver, ref: R.remote_nonnull_domain) -> tuple[int, ...]:
    ret = await driver.domain_get_job_info(R.remote_domain_get_job_info_args(dom=ref), CTX)
    return tuple(int(getattr(ret, name)) for name in ret.__match_args__)


async def migrate(
    pair: Pair,
    ref: R.remote_nonnull_domain,
    flags: int,
    *,
    bandwidth: int = 0,
    during: Any = None,
    tunables: dict[str, Any] | None = None,
) -> tuple[R.remote_nonnull_domain | None, libvirtError | None]:
    """virDomainMigrateVersion3Full, as libvirt's client runs it (``tunables``: more params)."""
    extra = {"bandwidth": bandwidth} if bandwidth else {}
    extra.update(tunables or {})
    begin = await pair.src.domain_migrate_begin3_params(
        R.remote_domain_migrate_begin3_params_args(dom=ref, params=params(**extra), flags=flags), CTX
    )
    dest_params = params(destination_xml=begin.xml, **extra)
    prepared = await pair.dst.domain_migrate_prepare3_params(
        R.remote_domain_migrate_prepare3_params_args(
            params=dest_params, cookie_in=begin.cookie_out, flags=flags
        ),
        CTX,
    )
    assert prepared.uri_out is not None and prepared.uri_out.startswith("tcp://127.0.0.1:")
    perform_params = params(migrate_uri=prepared.uri_out, **extra)
    error: libvirtError | None = None
    async with trio.open_nursery() as nursery:
        if during is not None:
            nursery.start_soon(during)
        try:
            await pair.src.domain_migrate_perform3_params(
                R.remote_domain_migrate_perform3_params_args(
                    dom=ref, dconnuri=None, params=perform_params, cookie_in=prepared.cookie_out, flags=flags
                ),
                CTX,
            )
        except libvirtError as exc:
            error = exc
    cancelled = int(error is not None)
    moved: R.remote_nonnull_domain | None = None
    try:
        finished = await pair.dst.domain_migrate_finish3_params(
            R.remote_domain_migrate_finish3_params_args(
                params=params(destination_name=ref.name), cookie_in=b"", flags=flags, cancelled=cancelled
            ),
            CTX,
        )
        moved = finished.dom
    except libvirtError as exc:
        cancelled = 1
        error = error or exc
    await pair.src.domain_migrate_confirm3_params(
        R.remote_domain_migrate_confirm3_params_args(
            dom=ref, params=[], cookie_in=b"", flags=flags, cancelled=cancelled
        ),
        CTX,
    )
    return moved, error


def job_over(driver: MemoryDriver) -> bool:
    """The source's migration job has ended (perform returns only after this)."""
    return finished_job(driver.find_by_name("vm").extra) is not None


def state(driver: MemoryDriver, name: str) -> tuple[int, int]:
    dom = driver.find_by_name(name)
    return dom.state, dom.reason


async def test_precopy_migration_moves_the_domain_with_libvirts_events(
    pair: Pair, stats_trail: Callable[[], Trail]
) -> None:
    ref = start_vm(pair.src, rate=100)
    trail = stats_trail()

    async def monitor() -> None:
        """Nova's loop: job stats and job info until the job is over."""
        while not job_over(pair.src):
            trail.add(await stats(pair.src, ref))
            trail.add_info(await job_info(pair.src, ref))
            await trio.sleep(0.01)

    flags = C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_PERSIST_DEST
    moved, error = await migrate(pair, ref, flags, bandwidth=8, during=monitor)
    assert error is None and moved is not None
    assert len(trail.samples) > 1
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_MIGRATED)
    assert pair.dst.find_by_name("vm").persistent
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_SHUTOFF, C.VIR_DOMAIN_SHUTOFF_MIGRATED)
    src_lifecycle = pair.src_events.lifecycle_details()
    assert src_lifecycle[-2:] == [
        (C.VIR_DOMAIN_EVENT_SUSPENDED, C.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED),
        (C.VIR_DOMAIN_EVENT_STOPPED, C.VIR_DOMAIN_EVENT_STOPPED_MIGRATED),
    ]
    assert pair.dst_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_STARTED, C.VIR_DOMAIN_EVENT_STARTED_MIGRATED),
        (C.VIR_DOMAIN_EVENT_DEFINED, C.VIR_DOMAIN_EVENT_DEFINED_ADDED),
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_MIGRATED),
    ]
    kinds = [e[0] for e in pair.src_events.log]
    assert kinds.index("job_completed") < len(kinds) - 1  # before STOPPED/MIGRATED
    completed = await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert completed["type"] == C.VIR_DOMAIN_JOB_COMPLETED
    iterations = [e[2] for e in pair.src_events.log if e[0] == "iteration"]
    trail.completed(completed, len(iterations))
    assert "downtime" in completed
    event_stats = [e[2] for e in pair.src_events.log if e[0] == "job_completed"]
    assert event_stats[0]["memory_total"] == completed["memory_total"]
    assert (await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED))["type"] == C.VIR_DOMAIN_JOB_NONE
    dst_ref = R.remote_nonnull_domain(name="vm", uuid=ref.uuid, id=-1)
    incoming = await stats(pair.dst, dst_ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert incoming["operation"] == C.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN


async def test_postcopy_switch_stats_and_events(pair: Pair, stats_trail: Callable[[], Trail]) -> None:
    ref = start_vm(pair.src, rate=4000, hot_mib=2)
    trail = stats_trail()
    flags = C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_POSTCOPY
    seen: list[dict[str, Any]] = []
    # A slow background push, so the running destination must fault pages in.
    await pair.src.domain_migrate_set_max_speed(
        R.remote_domain_migrate_set_max_speed_args(
            dom=ref, bandwidth=2, flags=C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
        ),
        CTX,
    )

    with pytest.raises(libvirtError, match="no job is active on the domain"):
        await pair.src.domain_abort_job(R.remote_domain_abort_job_args(dom=ref), CTX)

    async def operator() -> None:
        while True:
            current = await stats(pair.src, ref)
            if current["type"] == C.VIR_DOMAIN_JOB_UNBOUNDED:
                seen.append(trail.add(current))
                trail.add_info(await job_info(pair.src, ref))
                if current["memory_iteration"] >= 2:
                    break
            await trio.sleep(0.02)
        with pytest.raises(libvirtError, match="unsupported flags"):
            await pair.src.domain_migrate_start_post_copy(
                R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=1), CTX
            )
        await pair.src.domain_migrate_start_post_copy(
            R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=0), CTX
        )
        while state(pair.src, "vm")[1] != C.VIR_DOMAIN_PAUSED_POSTCOPY:
            await trio.sleep(0.005)
        with pytest.raises(libvirtError, match="cannot abort migration in post-copy mode") as refused:
            await pair.src.domain_abort_job(R.remote_domain_abort_job_args(dom=ref), CTX)
        assert refused.value.get_error_code() == C.VIR_ERR_OPERATION_INVALID
        # Post-copy progress: the same rules while the destination pulls pages in.
        while not job_over(pair.src):
            current = await stats(pair.src, ref)
            if current["type"] == C.VIR_DOMAIN_JOB_UNBOUNDED:
                seen.append(trail.add(current))
            await trio.sleep(0.02)

    moved, error = await migrate(pair, ref, flags, bandwidth=1, during=operator)
    assert error is None and moved is not None
    assert seen and all(s["operation"] == C.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT for s in seen)
    assert [s["memory_processed"] for s in seen] == sorted(s["memory_processed"] for s in seen)
    assert pair.src_events.lifecycle_details()[-2:] == [
        (C.VIR_DOMAIN_EVENT_SUSPENDED, C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY),
        (C.VIR_DOMAIN_EVENT_STOPPED, C.VIR_DOMAIN_EVENT_STOPPED_MIGRATED),
    ]
    assert pair.dst_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_STARTED, C.VIR_DOMAIN_EVENT_STARTED_MIGRATED),
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY),
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_MIGRATED),
    ]
    iterations = [e[2] for e in pair.src_events.log if e[0] == "iteration"]
    assert iterations == list(range(1, len(iterations) + 1)) and len(iterations) >= 2
    completed = [e[2] for e in pair.src_events.log if e[0] == "job_completed"]
    assert len(completed) == 1
    trail.completed(completed[0], len(iterations))
    assert completed[0]["memory_postcopy_requests"] > 0
    assert seen[-1]["memory_iteration"] == iterations[-1]  # sampled during post-copy
    # Not persistent on the destination without PERSIST_DEST; stats only on the source.
    assert not pair.dst.find_by_name("vm").persistent
    dst_ref = R.remote_nonnull_domain(name="vm", uuid=ref.uuid, id=-1)
    assert (await stats(pair.dst, dst_ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED))["type"] == C.VIR_DOMAIN_JOB_NONE


async def test_postcopy_requires_the_flag_and_a_migration(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=4000)
    with pytest.raises(
        libvirtError, match="post-copy can only be started while outgoing migration is in progress"
    ):
        await pair.src.domain_migrate_start_post_copy(
            R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=0), CTX
        )

    async def operator() -> None:
        while (await stats(pair.src, ref))["type"] != C.VIR_DOMAIN_JOB_UNBOUNDED:
            await trio.sleep(0.01)
        with pytest.raises(
            libvirtError, match="requires migration to be started with VIR_MIGRATE_POSTCOPY flag"
        ):
            await pair.src.domain_migrate_start_post_copy(
                R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=0), CTX
            )
        await pair.src.domain_abort_job(R.remote_domain_abort_job_args(dom=ref), CTX)

    moved, error = await migrate(pair, ref, C.VIR_MIGRATE_LIVE, bandwidth=1, during=operator)
    assert moved is None and error is not None
    assert error.get_error_code() == C.VIR_ERR_OPERATION_ABORTED
    assert error.get_error_message() == "operation aborted: job 'migration out' canceled by client"
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_BOOTED)
    with pytest.raises(libvirtError):
        pair.dst.find_by_name("vm")
    assert pair.dst_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_STARTED, C.VIR_DOMAIN_EVENT_STARTED_MIGRATED),
        (C.VIR_DOMAIN_EVENT_STOPPED, C.VIR_DOMAIN_EVENT_STOPPED_FAILED),
    ]
    cancelled = await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert cancelled["type"] == C.VIR_DOMAIN_JOB_CANCELLED


async def test_unsupported_flags_and_clashing_domains_are_refused(pair: Pair) -> None:
    ref = start_vm(pair.src)
    with pytest.raises(libvirtError, match=r"unsupported flags \(0x4000\)"):
        await pair.src.domain_migrate_begin3_params(
            R.remote_domain_migrate_begin3_params_args(
                dom=ref, params=[], flags=C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_RDMA_PIN_ALL
            ),
            CTX,
        )
    with pytest.raises(libvirtError, match="not supported with non-live or paused migration"):
        await pair.src.domain_migrate_begin3_params(
            R.remote_domain_migrate_begin3_params_args(dom=ref, params=[], flags=C.VIR_MIGRATE_POSTCOPY), CTX
        )
    with pytest.raises(libvirtError, match="parameter 'no_such_param' not supported") as unknown:
        await pair.src.domain_migrate_begin3_params(
            R.remote_domain_migrate_begin3_params_args(dom=ref, params=params(no_such_param=1), flags=1), CTX
        )
    assert unknown.value.get_error_code() == C.VIR_ERR_ARGUMENT_UNSUPPORTED
    with pytest.raises(
        libvirtError, match="invalid type 'string' for parameter 'bandwidth', expected 'ullong'"
    ):
        await pair.src.domain_migrate_begin3_params(
            R.remote_domain_migrate_begin3_params_args(dom=ref, params=params(bandwidth="fast"), flags=1), CTX
        )
    # Both hosts run `test` with the same UUID.
    test = pair.src.find_by_name("test")
    test_ref = R.remote_nonnull_domain(name="test", uuid=test.uuid, id=test.id)
    with pytest.raises(libvirtError, match="domain 'test' is already active") as clash:
        await migrate(pair, test_ref, C.VIR_MIGRATE_LIVE)
    assert clash.value.get_error_code() == C.VIR_ERR_OPERATION_INVALID
    # Same host: refused from the cookie.
    begin = await pair.src.domain_migrate_begin3_params(
        R.remote_domain_migrate_begin3_params_args(dom=ref, params=[], flags=C.VIR_MIGRATE_LIVE), CTX
    )
    with pytest.raises(libvirtError, match="Attempt to migrate guest to the same host src-host"):
        await pair.src.domain_migrate_prepare3_params(
            R.remote_domain_migrate_prepare3_params_args(
                params=params(destination_xml=begin.xml), cookie_in=begin.cookie_out, flags=C.VIR_MIGRATE_LIVE
            ),
            CTX,
        )


async def test_tunables_and_idle_job_info(pair: Pair) -> None:
    ref = start_vm(pair.src)
    await pair.src.domain_migrate_set_max_downtime(
        R.remote_domain_migrate_set_max_downtime_args(dom=ref, downtime=750, flags=0), CTX
    )
    got = await pair.src.domain_migrate_get_max_downtime(
        R.remote_domain_migrate_get_max_downtime_args(dom=ref, flags=0), CTX
    )
    assert got.downtime == 750
    speed = await pair.src.domain_migrate_get_max_speed(
        R.remote_domain_migrate_get_max_speed_args(dom=ref, flags=0), CTX
    )
    assert speed.bandwidth == 8796093022207  # QEMU's "unlimited"
    await pair.src.domain_migrate_set_max_speed(
        R.remote_domain_migrate_set_max_speed_args(
            dom=ref, bandwidth=5, flags=C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
        ),
        CTX,
    )
    speed = await pair.src.domain_migrate_get_max_speed(
        R.remote_domain_migrate_get_max_speed_args(dom=ref, flags=C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY),
        CTX,
    )
    assert speed.bandwidth == 5
    info = await pair.src.domain_get_job_info(R.remote_domain_get_job_info_args(dom=ref), CTX)
    assert info.type == C.VIR_DOMAIN_JOB_NONE
    assert await stats(pair.src, ref) == {"type": C.VIR_DOMAIN_JOB_NONE}
    assert {4, 6, 13} <= pair.src.features()


async def test_abort_with_postcopy_flag_pauses_both_halves(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=4000)
    await pair.src.domain_migrate_set_max_speed(
        R.remote_domain_migrate_set_max_speed_args(
            dom=ref, bandwidth=1, flags=C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
        ),
        CTX,
    )

    async def operator() -> None:
        while (await stats(pair.src, ref))["type"] != C.VIR_DOMAIN_JOB_UNBOUNDED:
            await trio.sleep(0.01)
        with pytest.raises(libvirtError, match="current job is not outgoing migration in post-copy mode"):
            await pair.src.domain_abort_job_flags(
                R.remote_domain_abort_job_flags_args(dom=ref, flags=C.VIR_DOMAIN_ABORT_JOB_POSTCOPY), CTX
            )
        await pair.src.domain_migrate_start_post_copy(
            R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=0), CTX
        )
        while state(pair.src, "vm")[1] != C.VIR_DOMAIN_PAUSED_POSTCOPY:
            await trio.sleep(0.005)
        await pair.src.domain_abort_job_flags(
            R.remote_domain_abort_job_flags_args(dom=ref, flags=C.VIR_DOMAIN_ABORT_JOB_POSTCOPY), CTX
        )

    flags = C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_POSTCOPY
    moved, error = await migrate(pair, ref, flags, bandwidth=1, during=operator)
    assert moved is None and error is not None
    assert error.get_error_code() == C.VIR_ERR_OPERATION_FAILED
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_PAUSED, C.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)
    assert pair.src_events.lifecycle_details()[-1] == (
        C.VIR_DOMAIN_EVENT_SUSPENDED,
        C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED,
    )
    assert pair.dst_events.lifecycle_details()[-1] == (
        C.VIR_DOMAIN_EVENT_RESUMED,
        C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED,
    )
    # The job stays for a recovery: unbounded, nothing completed yet.
    assert (await stats(pair.src, ref))["type"] == C.VIR_DOMAIN_JOB_UNBOUNDED
    assert (await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED))["type"] == C.VIR_DOMAIN_JOB_NONE
    assert str(error.get_error_message()).endswith("migration paused by client")


async def test_client_gone_mid_perform_leaves_the_source_running(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=4000)
    flags = C.VIR_MIGRATE_LIVE
    begin = await pair.src.domain_migrate_begin3_params(
        R.remote_domain_migrate_begin3_params_args(dom=ref, params=[], flags=flags), CTX
    )
    prepared = await pair.dst.domain_migrate_prepare3_params(
        R.remote_domain_migrate_prepare3_params_args(
            params=params(destination_xml=begin.xml), cookie_in=begin.cookie_out, flags=flags
        ),
        CTX,
    )
    assert prepared.uri_out is not None
    with trio.CancelScope() as scope:  # the server cancels a handler whose client went away

        async def perform() -> None:
            await pair.src.domain_migrate_perform3_params(
                R.remote_domain_migrate_perform3_params_args(
                    dom=ref,
                    dconnuri=None,
                    params=params(migrate_uri=prepared.uri_out, bandwidth=1),
                    cookie_in=prepared.cookie_out,
                    flags=flags,
                ),
                CTX,
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(perform)
            while (await stats(pair.src, ref))["type"] != C.VIR_DOMAIN_JOB_UNBOUNDED:
                await trio.sleep(0.01)
            scope.cancel()
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_BOOTED)
    assert (await stats(pair.src, ref))["type"] == C.VIR_DOMAIN_JOB_NONE
    failed = await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert failed["type"] == C.VIR_DOMAIN_JOB_FAILED
    # The destination's client (the same one) is gone too: its incoming domain is cleaned up.
    await pair.dst.connection_closed(CTX)
    with pytest.raises(libvirtError):
        pair.dst.find_by_name("vm")
    # And the domain can migrate again.
    moved, error = await migrate(pair, ref, flags)
    assert error is None and moved is not None


# --- post-copy recovery (VIR_MIGRATE_POSTCOPY_RESUME) ------------------------------------
# The link of a post-copy migration is broken (migrate-pause, as
# virDomainAbortJobFlags(VIR_DOMAIN_ABORT_JOB_POSTCOPY) does, or the link-cut hook
# during recovery); both halves wait in libvirt's post-copy-failed states with their
# jobs, and a recovery with the five V3 steps finishes the move sending only the pages
# the destination still lacks.

POSTCOPY = C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_POSTCOPY
RESUME = POSTCOPY | C.VIR_MIGRATE_POSTCOPY_RESUME | C.VIR_MIGRATE_CHANGE_PROTECTION


async def pause_in_postcopy(pair: Pair, ref: R.remote_nonnull_domain) -> None:
    """Switch to post-copy once the job runs, then break the link (migrate-pause)."""
    while (await stats(pair.src, ref))["type"] != C.VIR_DOMAIN_JOB_UNBOUNDED:
        await trio.sleep(0.01)
    await pair.src.domain_migrate_start_post_copy(
        R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=0), CTX
    )
    while engine(pair).postcopy_pages_sent < 20:
        await trio.sleep(0.005)
    await pair.src.domain_abort_job_flags(
        R.remote_domain_abort_job_flags_args(dom=ref, flags=C.VIR_DOMAIN_ABORT_JOB_POSTCOPY), CTX
    )


def engine(pair: Pair) -> Any:
    session = pair.src.find_by_name("vm").extra[OUTGOING]
    assert isinstance(session, OutgoingSession)
    return session.engine


async def failed_postcopy_pair(pair: Pair) -> R.remote_nonnull_domain:
    ref = start_vm(pair.src, rate=4000, hot_mib=2)
    await pair.src.domain_migrate_set_max_speed(
        R.remote_domain_migrate_set_max_speed_args(
            dom=ref, bandwidth=1, flags=C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
        ),
        CTX,
    )

    async def operator() -> None:
        await pause_in_postcopy(pair, ref)

    moved, error = await migrate(pair, ref, POSTCOPY, bandwidth=1, during=operator)
    assert moved is None and error is not None
    assert "migration paused by client" in str(error.get_error_message())
    return ref


async def begin(
    pair: Pair, ref: R.remote_nonnull_domain, flags: int
) -> R.remote_domain_migrate_begin3_params_ret:
    return await pair.src.domain_migrate_begin3_params(
        R.remote_domain_migrate_begin3_params_args(dom=ref, params=[], flags=flags), CTX
    )


async def test_failed_postcopy_keeps_both_halves_and_their_jobs(pair: Pair) -> None:
    ref = await failed_postcopy_pair(pair)
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_PAUSED, C.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)
    # The job is still there (virDomainJobStatus POSTCOPY_PAUSED reads as unbounded) ...
    current = await stats(pair.src, ref)
    assert current["type"] == C.VIR_DOMAIN_JOB_UNBOUNDED
    assert current["memory_remaining"] > 0
    assert (await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)) == {"type": C.VIR_DOMAIN_JOB_NONE}
    # ... and so is the destination's, whose stats libvirt never reports.
    with pytest.raises(libvirtError, match="migration statistics are available only on the source host"):
        await stats(pair.dst, ref)
    # A new migration is refused while this one waits for recovery.
    with pytest.raises(libvirtError, match="another migration job is already running for domain 'vm'"):
        await begin(pair, ref, POSTCOPY)


async def test_resume_refusals_in_libvirts_order(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=100)

    async def refused(flags: int) -> libvirtError:
        with pytest.raises(libvirtError) as caught:
            await begin(pair, ref, flags)
        return caught.value

    err = await refused(C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_POSTCOPY_RESUME | C.VIR_MIGRATE_CHANGE_PROTECTION)
    assert err.get_error_code() == C.VIR_ERR_ARGUMENT_UNSUPPORTED
    assert err.get_error_message() == (
        "argument unsupported: resuming failed post-copy migration requires post-copy to be enabled"
    )
    err = await refused(POSTCOPY | C.VIR_MIGRATE_POSTCOPY_RESUME)
    assert err.get_error_message() == (
        "argument unsupported: resuming failed post-copy migration requires change protection"
    )
    err = await refused(RESUME)
    assert err.get_error_code() == C.VIR_ERR_OPERATION_INVALID
    assert err.get_error_message() == "Requested operation is not valid: domain 'vm' is not being migrated"
    # The destination has no such domain at all.
    with pytest.raises(libvirtError, match="no domain with matching name 'ghost'") as caught:
        xml = pair.src.find_by_name("vm").xml().replace("<name>vm</name>", "<name>ghost</name>")
        await pair.dst.domain_migrate_prepare3_params(
            R.remote_domain_migrate_prepare3_params_args(
                params=params(destination_xml=xml), cookie_in=b"", flags=RESUME
            ),
            CTX,
        )
    assert caught.value.get_error_code() == C.VIR_ERR_NO_DOMAIN

    # While post-copy runs: not failed yet; while pre-copy runs: watched by its Perform.
    await pair.src.domain_migrate_set_max_speed(
        R.remote_domain_migrate_set_max_speed_args(
            dom=ref, bandwidth=1, flags=C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
        ),
        CTX,
    )
    seen: list[str] = []

    async def operator() -> None:
        while (await stats(pair.src, ref))["type"] != C.VIR_DOMAIN_JOB_UNBOUNDED:
            await trio.sleep(0.01)
        seen.append(str((await refused(RESUME)).get_error_message()))
        await pair.src.domain_migrate_start_post_copy(
            R.remote_domain_migrate_start_post_copy_args(dom=ref, flags=0), CTX
        )
        while state(pair.src, "vm")[1] != C.VIR_DOMAIN_PAUSED_POSTCOPY:
            await trio.sleep(0.005)
        seen.append(str((await refused(RESUME)).get_error_message()))

    moved, error = await migrate(pair, ref, POSTCOPY, bandwidth=1, during=operator)
    assert error is None and moved is not None
    invalid = "Requested operation is not valid: "
    assert seen == [
        invalid + "migration of domain vm is being actively monitored by another thread",
        invalid + "post-copy migration of domain vm has not failed",
    ]


async def resume(
    pair: Pair, ref: R.remote_nonnull_domain
) -> tuple[R.remote_nonnull_domain | None, libvirtError | None]:
    """A recovery as virDomainMigrate3 runs it: Begin, Prepare, Perform, Finish, Confirm."""
    began = await begin(pair, ref, RESUME)
    prepared = await pair.dst.domain_migrate_prepare3_params(
        R.remote_domain_migrate_prepare3_params_args(
            params=params(destination_xml=began.xml), cookie_in=began.cookie_out, flags=RESUME
        ),
        CTX,
    )
    error: libvirtError | None = None
    try:
        await pair.src.domain_migrate_perform3_params(
            R.remote_domain_migrate_perform3_params_args(
                dom=ref,
                dconnuri=None,
                params=params(migrate_uri=prepared.uri_out),
                cookie_in=prepared.cookie_out,
                flags=RESUME,
            ),
            CTX,
        )
    except libvirtError as exc:
        error = exc
    moved: R.remote_nonnull_domain | None = None
    try:
        finished = await pair.dst.domain_migrate_finish3_params(
            R.remote_domain_migrate_finish3_params_args(
                params=params(destination_name="vm"),
                cookie_in=b"",
                flags=RESUME,
                cancelled=int(error is not None),
            ),
            CTX,
        )
        moved = finished.dom
    except libvirtError as exc:
        error = error or exc
    if error is None:
        await pair.src.domain_migrate_confirm3_params(
            R.remote_domain_migrate_confirm3_params_args(
                dom=ref, params=[], cookie_in=b"", flags=RESUME, cancelled=0
            ),
            CTX,
        )
    return moved, error


async def test_recovery_sends_only_missing_pages_and_finishes_the_move(pair: Pair) -> None:
    ref = await failed_postcopy_pair(pair)
    outgoing = engine(pair)
    dst_missing = len(pair.dst.find_by_name("vm").extra["migration.incoming"].engine.missing)
    sent_before = outgoing.postcopy_pages_sent
    assert dst_missing > 0
    pair.src_events.log.clear()
    pair.dst_events.log.clear()
    moved, error = await resume(pair, ref)
    assert error is None and moved is not None
    # Exactly the pages the destination lacked crossed the new link.
    assert outgoing.postcopy_pages_sent - sent_before == dst_missing
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_MIGRATED)
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_SHUTOFF, C.VIR_DOMAIN_SHUTOFF_MIGRATED)
    assert pair.src_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_SUSPENDED, C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY),
        (C.VIR_DOMAIN_EVENT_STOPPED, C.VIR_DOMAIN_EVENT_STOPPED_MIGRATED),
    ]
    assert pair.dst_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY),
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_MIGRATED),
    ]
    completed = await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert completed["type"] == C.VIR_DOMAIN_JOB_COMPLETED
    assert completed["memory_remaining"] == 0
    assert completed["memory_processed"] == completed["memory_total"]
    # Every page the destination holds is the source's last version of it.
    src_guest = outgoing.guest
    dst_guest = pair.dst.find_by_name("vm").guest
    for number, version in src_guest.memory.versions.items():
        assert dst_guest.memory.version(number) >= version


async def test_link_cut_during_recovery_fails_back_and_a_second_recovery_finishes(pair: Pair) -> None:
    ref = await failed_postcopy_pair(pair)
    outgoing = engine(pair)
    outgoing.settings.fault = FaultSpec(phase="recovery", after_pages=10)
    pair.src_events.log.clear()
    pair.dst_events.log.clear()
    moved, error = await resume(pair, ref)
    assert moved is None and error is not None
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_PAUSED, C.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)
    assert pair.src_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_SUSPENDED, C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY),
        (C.VIR_DOMAIN_EVENT_SUSPENDED, C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED),
    ]
    assert pair.dst_events.lifecycle_details() == [
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY),
        (C.VIR_DOMAIN_EVENT_RESUMED, C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED),
    ]
    moved, error = await resume(pair, ref)
    assert error is None and moved is not None
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_MIGRATED)


async def test_destroying_a_failed_half_ends_its_job(pair: Pair) -> None:
    ref = await failed_postcopy_pair(pair)
    await pair.src.domain_destroy(R.remote_domain_destroy_args(dom=ref), CTX)
    assert (await stats(pair.src, ref))["type"] == C.VIR_DOMAIN_JOB_NONE
    with pytest.raises(libvirtError, match="domain 'vm' is not being migrated"):
        await begin(pair, ref, RESUME)


# --- runtime tuning and auto-converge -------------------------------------------------------


async def set_downtime(pair: Pair, ref: R.remote_nonnull_domain, ms: int) -> None:
    await pair.src.domain_migrate_set_max_downtime(
        R.remote_domain_migrate_set_max_downtime_args(dom=ref, downtime=ms, flags=0), CTX
    )


async def test_raised_downtime_lets_a_non_converging_precopy_converge(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=4000, hot_mib=2)
    await set_downtime(pair, ref, 5)  # 5 ms: the hot 2 MiB never fits at 8 MiB/s
    iterations: list[int] = []

    async def nova() -> None:
        """Nova's downtime steps: raise the limit while the job goes on."""
        while True:
            current = await stats(pair.src, ref)
            if current["type"] == C.VIR_DOMAIN_JOB_UNBOUNDED and current["memory_iteration"] >= 4:
                break
            await trio.sleep(0.02)
        iterations.append(current["memory_iteration"])
        await set_downtime(pair, ref, 1000)
        got = await pair.src.domain_migrate_get_max_downtime(
            R.remote_domain_migrate_get_max_downtime_args(dom=ref, flags=0), CTX
        )
        assert got.downtime == 1000

    moved, error = await migrate(pair, ref, C.VIR_MIGRATE_LIVE, bandwidth=8, during=nova)
    assert error is None and moved is not None
    done = await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)
    # Converged right after the raise: at most one more pass, then stop-and-copy.
    assert done["memory_iteration"] <= iterations[0] + 2
    assert "auto_converge_throttle" not in done


async def test_auto_converge_throttles_in_steps_until_precopy_converges(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=4000, hot_mib=2)
    await set_downtime(pair, ref, 5)
    throttles: list[int] = []

    async def monitor() -> None:
        while not job_over(pair.src):
            current = await stats(pair.src, ref)
            if "auto_converge_throttle" in current:
                throttles.append(current["auto_converge_throttle"])
            await trio.sleep(0.01)

    flags = C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_AUTO_CONVERGE
    tunables = {"auto_converge__initial": 60, "auto_converge__increment": 20}
    moved, error = await migrate(pair, ref, flags, bandwidth=8, during=monitor, tunables=tunables)
    assert error is None and moved is not None
    steps = sorted(set(throttles))
    # QEMU's sequence: initial, + increment, capped at 99.
    assert steps[0] == 60 and set(steps) <= {60, 80, 99}, throttles
    assert throttles == sorted(throttles)
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_MIGRATED)
    # The throttle ends with the job: the source guest is gone, no throttle in the stats.
    assert "auto_converge_throttle" not in await stats(pair.src, ref, C.VIR_DOMAIN_JOB_STATS_COMPLETED)


async def test_auto_converge_and_compression_cache_refusals(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=100)

    async def perform(flags: int, **tunables: Any) -> libvirtError:
        with pytest.raises(libvirtError) as caught:
            await pair.src.domain_migrate_perform3_params(
                R.remote_domain_migrate_perform3_params_args(
                    dom=ref,
                    dconnuri=None,
                    params=params(migrate_uri="tcp://127.0.0.1:1", **tunables),
                    cookie_in=b"",
                    flags=flags,
                ),
                CTX,
            )
        return caught.value

    err = await perform(C.VIR_MIGRATE_LIVE, auto_converge__initial=30)
    assert (err.get_error_code(), err.get_error_message()) == (
        C.VIR_ERR_INVALID_ARG,
        "invalid argument: Turn auto convergence on to tune it",
    )
    err = await perform(C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_AUTO_CONVERGE, auto_converge__increment=100)
    assert err.get_error_message() == (
        "internal error: unable to execute QEMU command 'migrate-set-parameters': "
        "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99"
    )
    # The xbzrle cache: QEMU's default, a power of two no smaller than a page.
    got = await pair.src.domain_migrate_get_compression_cache(
        R.remote_domain_migrate_get_compression_cache_args(dom=ref, flags=0), CTX
    )
    assert got.cacheSize == 64 * 1024 * 1024
    with pytest.raises(libvirtError, match="expects a power of two no less than the target page size"):
        await pair.src.domain_migrate_set_compression_cache(
            R.remote_domain_migrate_set_compression_cache_args(dom=ref, cacheSize=3000, flags=0), CTX
        )
    await pair.src.domain_migrate_set_compression_cache(
        R.remote_domain_migrate_set_compression_cache_args(dom=ref, cacheSize=1 << 20, flags=0), CTX
    )
    got = await pair.src.domain_migrate_get_compression_cache(
        R.remote_domain_migrate_get_compression_cache_args(dom=ref, flags=0), CTX
    )
    assert got.cacheSize == 1 << 20


async def test_a_recovery_left_halfway_by_its_client_can_be_started_again(pair: Pair) -> None:
    ref = await failed_postcopy_pair(pair)
    began = await begin(pair, ref, RESUME)
    with pytest.raises(
        libvirtError, match="resuming failed post-copy migration of domain vm already in progress"
    ):
        await begin(pair, ref, RESUME)
    # The client's connection to the destination (each driver keeps its own per-connection data).
    dst_ctx = ConnectionContext(conn_id=2, peer="127.0.0.1:2", transport="tcp")
    await pair.dst.domain_migrate_prepare3_params(
        R.remote_domain_migrate_prepare3_params_args(
            params=params(destination_xml=began.xml), cookie_in=began.cookie_out, flags=RESUME
        ),
        dst_ctx,
    )
    # The client goes away between the steps: both halves wait for a new recovery.
    await pair.src.connection_closed(CTX)
    await pair.dst.connection_closed(dst_ctx)
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_PAUSED, C.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
    assert state(pair.dst, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)
    moved, error = await resume(pair, ref)
    assert error is None and moved is not None


async def test_an_aborted_auto_converge_migration_stops_throttling_the_guest(pair: Pair) -> None:
    ref = start_vm(pair.src, rate=4000, hot_mib=2)
    await set_downtime(pair, ref, 1)

    async def operator() -> None:
        while "auto_converge_throttle" not in await stats(pair.src, ref):
            await trio.sleep(0.01)
        await pair.src.domain_abort_job(R.remote_domain_abort_job_args(dom=ref), CTX)

    flags = C.VIR_MIGRATE_LIVE | C.VIR_MIGRATE_AUTO_CONVERGE
    moved, error = await migrate(pair, ref, flags, bandwidth=8, during=operator)
    assert moved is None and error is not None
    assert error.get_error_code() == C.VIR_ERR_OPERATION_ABORTED
    assert state(pair.src, "vm") == (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_BOOTED)
    # The guest runs at its own pace again.
    assert pair.src.find_by_name("vm").guest.throttle_pct == 0
