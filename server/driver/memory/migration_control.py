"""Job control of the in-memory driver: post-copy switch, abort, job info/stats, tunables.

These are the calls a management layer makes while a migration runs (virsh
domjobinfo / domjobabort / migrate-postcopy / migrate-setspeed, Nova's monitor
loop). ``MigrationMixin`` (migration_api) builds on this class; both are found
by the table-driven dispatcher by procedure name.
"""

from __future__ import annotations

import trio
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import make_param

from ...errors import check_flags, report
from ..base import ConnectionContext
from .core import FROM, MemoryCore, operation_invalid
from .guest import PAGE_SIZE
from .jobs import (
    ABORT_JOB_POSTCOPY,
    JOB_STATS_COMPLETED,
    JOB_STATS_KEEP_COMPLETED,
    Job,
    JobOperation,
    JobStatus,
)
from .migration import Phase
from .migration_ratelimit import UNLIMITED_MIB_S
from .migration_recovery import MigrationPhase
from .migration_session import (
    COMPLETED_JOB,
    COMPRESSION_CACHE,
    DOWNTIME,
    INCOMING,
    OUTGOING,
    POSTCOPY_SPEED,
    SPEED,
    OutgoingSession,
    finished_job,
    migration_settings,
)
from .model import Domain


def invalid(detail: str) -> Exception:
    """VIR_ERR_OPERATION_INVALID from this driver."""
    return operation_invalid(detail, FROM)


class JobControlMixin(MemoryCore):
    """MigrateStartPostCopy, AbortJob(Flags), GetJobInfo/Stats and the migrate tunables."""

    def _active_domain(self, ref: R.remote_nonnull_domain) -> Domain:
        dom = self.lookup(ref)
        if not dom.active:
            raise invalid("domain is not running")
        return dom

    # --- post-copy and abort ----------------------------------------------------------

    async def domain_migrate_start_post_copy(
        self, args: R.remote_domain_migrate_start_post_copy_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "qemuDomainMigrateStartPostCopy")
        dom = self._active_domain(args.dom)
        session = dom.extra.get(OUTGOING)
        if not isinstance(session, OutgoingSession) or session.engine.phase not in (
            Phase.SETUP,
            Phase.PRECOPY,
            Phase.POSTCOPY,
        ):
            raise invalid("post-copy can only be started while outgoing migration is in progress")
        if not session.flags & C.VIR_MIGRATE_POSTCOPY:
            raise invalid(
                "switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag"
            )
        session.engine.request_postcopy()

    async def domain_abort_job(self, args: R.remote_domain_abort_job_args, ctx: ConnectionContext) -> None:
        self._abort(args.dom, 0)

    async def domain_abort_job_flags(
        self, args: R.remote_domain_abort_job_flags_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, ABORT_JOB_POSTCOPY, "qemuDomainAbortJobFlags")
        self._abort(args.dom, args.flags)

    def _abort(self, ref: R.remote_nonnull_domain, flags: int) -> None:
        dom = self._active_domain(ref)
        if INCOMING in dom.extra:
            raise invalid("cannot abort incoming migration; use virDomainDestroy instead")
        session = dom.extra.get(OUTGOING)
        if not isinstance(session, OutgoingSession) or session.engine.phase is Phase.DONE:
            raise invalid("no job is active on the domain")
        engine = session.engine
        # The guest is paused for the switch (job status post-copy) a little before
        # the engine enters its post-copy phase: from then on, as in libvirt, only
        # VIR_DOMAIN_ABORT_JOB_POSTCOPY stops it.
        job = dom.job
        switched = isinstance(job, Job) and job.status is JobStatus.POSTCOPY
        if engine.phase is Phase.POSTCOPY or switched or session.phase is not MigrationPhase.NONE:
            if not flags & ABORT_JOB_POSTCOPY:
                raise invalid("cannot abort migration in post-copy mode")
            if isinstance(job, Job) and job.status is JobStatus.POSTCOPY_PAUSED:
                # Already broken: QEMU refuses to pause it again (libvirt relays its error).
                raise report(
                    C.VIR_ERR_INTERNAL_ERROR,
                    FROM,
                    "unable to execute QEMU command 'migrate-pause': "
                    "migrate-pause is currently only supported during postcopy-active state",
                )
            engine.break_postcopy()
            return
        if flags & ABORT_JOB_POSTCOPY:
            raise invalid("current job is not outgoing migration in post-copy mode")
        engine.cancel()

    # --- job info and stats -----------------------------------------------------------

    async def domain_get_job_info(
        self, args: R.remote_domain_get_job_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_job_info_ret:
        dom = self.lookup(args.dom)
        info = self._current_job(dom)
        values = info.to_info(trio.current_time()) if info is not None else (0,) * 12
        return R.remote_domain_get_job_info_ret(*values)

    async def domain_get_job_stats(
        self, args: R.remote_domain_get_job_stats_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_job_stats_ret:
        check_flags(args.flags, JOB_STATS_COMPLETED | JOB_STATS_KEEP_COMPLETED, "qemuDomainGetJobStats")
        dom = self.lookup(args.dom)
        if args.flags & JOB_STATS_COMPLETED:
            job = finished_job(dom.extra)
            if job is not None and not args.flags & JOB_STATS_KEEP_COMPLETED:
                dom.extra.pop(COMPLETED_JOB, None)
        else:
            job = self._current_job(dom)
        if job is None:
            return R.remote_domain_get_job_stats_ret(type=0, params=[])
        now = trio.current_time()
        params = [make_param(name, kind, value) for name, kind, value in job.to_params(now)]
        return R.remote_domain_get_job_stats_ret(type=int(job.status.job_type), params=params)

    def _current_job(self, dom: Domain) -> Job | None:
        job = dom.job
        if not isinstance(job, Job) or job.status.finished:
            return None
        if job.operation is JobOperation.MIGRATION_IN:
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED,
                FROM,
                "migration statistics are available only on the source host",
            )
        return job

    # --- tunables ---------------------------------------------------------------------

    async def domain_migrate_set_max_downtime(
        self, args: R.remote_domain_migrate_set_max_downtime_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "qemuDomainMigrateSetMaxDowntime")
        dom = self._active_domain(args.dom)
        dom.extra[DOWNTIME] = args.downtime
        session = dom.extra.get(OUTGOING)
        if isinstance(session, OutgoingSession):
            session.engine.settings.max_downtime_ms = args.downtime

    async def domain_migrate_get_max_downtime(
        self, args: R.remote_domain_migrate_get_max_downtime_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_get_max_downtime_ret:
        check_flags(args.flags, 0, "qemuDomainMigrateGetMaxDowntime")
        dom = self._active_domain(args.dom)
        downtime = dom.extra.get(DOWNTIME)
        return R.remote_domain_migrate_get_max_downtime_ret(
            downtime=downtime if isinstance(downtime, int) else migration_settings({}, 0).max_downtime_ms
        )

    async def domain_migrate_set_max_speed(
        self, args: R.remote_domain_migrate_set_max_speed_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY, "qemuDomainMigrateSetMaxSpeed")
        dom = self.lookup(args.dom)
        if args.bandwidth > UNLIMITED_MIB_S:
            raise report(C.VIR_ERR_OVERFLOW, FROM, f"bandwidth must be less than {UNLIMITED_MIB_S + 1}")
        postcopy = bool(args.flags & C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY)
        dom.extra[POSTCOPY_SPEED if postcopy else SPEED] = args.bandwidth
        session = dom.extra.get(OUTGOING)
        if isinstance(session, OutgoingSession):
            session.engine.set_bandwidth(args.bandwidth or UNLIMITED_MIB_S, postcopy=postcopy)

    async def domain_migrate_get_compression_cache(
        self, args: R.remote_domain_migrate_get_compression_cache_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_get_compression_cache_ret:
        check_flags(args.flags, 0, "qemuDomainMigrateGetCompressionCache")
        dom = self._active_domain(args.dom)
        return R.remote_domain_migrate_get_compression_cache_ret(
            cacheSize=migration_settings(dom.extra, 0).compression_cache_bytes
        )

    async def domain_migrate_set_compression_cache(
        self, args: R.remote_domain_migrate_set_compression_cache_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "qemuDomainMigrateSetCompressionCache")
        dom = self._active_domain(args.dom)
        size = args.cacheSize
        # QEMU's check (migrate_params_check), reported through libvirt's monitor error.
        if size < PAGE_SIZE or size & (size - 1):
            raise report(
                C.VIR_ERR_INTERNAL_ERROR,
                FROM,
                "unable to execute QEMU command 'migrate-set-parameters': Parameter "
                "'xbzrle_cache_size' expects a power of two no less than the target page size",
            )
        dom.extra[COMPRESSION_CACHE] = size
        session = dom.extra.get(OUTGOING)
        if isinstance(session, OutgoingSession):
            session.engine.settings.compression_cache_bytes = size

    async def domain_migrate_get_max_speed(
        self, args: R.remote_domain_migrate_get_max_speed_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_get_max_speed_ret:
        check_flags(args.flags, C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY, "qemuDomainMigrateGetMaxSpeed")
        dom = self.lookup(args.dom)
        if args.flags & C.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY:
            speed = dom.extra.get(POSTCOPY_SPEED, 0)
        else:
            speed = dom.extra.get(SPEED, UNLIMITED_MIB_S)
        return R.remote_domain_migrate_get_max_speed_ret(bandwidth=speed if isinstance(speed, int) else 0)
