"""Domain jobs and their statistics, shaped as libvirt's QEMU driver reports them.

A migration engine updates ``MigrationCounters`` as bytes really cross the link;
``Job`` wraps the counters with the job's type, operation and timing and renders
them as the typed parameters of virDomainGetJobStats (same names, types and
order as libvirt's qemuDomainMigrationJobDataToParams) or the 12 numbers of
virDomainGetJobInfo.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .guest import PAGE_SIZE

# Typed-parameter type codes (include/libvirt/libvirt-common.h).
PARAM_INT = 1
PARAM_ULLONG = 4
PARAM_BOOLEAN = 6
PARAM_STRING = 7

# virDomainGetJobStats flags.
JOB_STATS_COMPLETED = 1
JOB_STATS_KEEP_COMPLETED = 2
# virDomainAbortJobFlags flag.
ABORT_JOB_POSTCOPY = 1

TypedParam = tuple[str, int, int | float | bool | str]


class JobType(enum.IntEnum):
    NONE = 0
    BOUNDED = 1
    UNBOUNDED = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 5


class JobOperation(enum.IntEnum):
    UNKNOWN = 0
    MIGRATION_IN = 4
    MIGRATION_OUT = 5


class JobStatus(enum.Enum):
    """Where a job is; ACTIVE and POSTCOPY both report as UNBOUNDED (virdomainjob.c)."""

    ACTIVE = "active"
    POSTCOPY = "postcopy"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def job_type(self) -> JobType:
        return _STATUS_TYPE[self]

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.ACTIVE, JobStatus.POSTCOPY)


_STATUS_TYPE = {
    JobStatus.ACTIVE: JobType.UNBOUNDED,
    JobStatus.POSTCOPY: JobType.UNBOUNDED,
    JobStatus.COMPLETED: JobType.COMPLETED,
    JobStatus.FAILED: JobType.FAILED,
    JobStatus.CANCELLED: JobType.CANCELLED,
}


@dataclass(slots=True)
class MigrationCounters:
    """What really went over the migration link, in QEMU's terms.

    ``memory_processed`` counts every byte of memory records sent (a zero page
    costs its small marker, a normal page its header plus 4 KiB); ``memory_remaining``
    is the pages still pending in the current pass times the page size, so it
    jumps up at every new pass like QEMU's ram_bytes_remaining.
    """

    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    memory_constant: int = 0
    memory_normal: int = 0
    memory_bps: int = 0
    memory_dirty_rate: int = 0
    memory_iteration: int = 0
    memory_postcopy_requests: int = 0
    setup_time_ms: int | None = None
    downtime_ms: int | None = None

    @property
    def memory_normal_bytes(self) -> int:
        return self.memory_normal * PAGE_SIZE


@dataclass(slots=True)
class Job:
    """One migration job of one domain, on one side."""

    operation: JobOperation
    started: float  # trio.current_time() at start
    counters: MigrationCounters = field(default_factory=MigrationCounters)
    status: JobStatus = JobStatus.ACTIVE
    ended: float | None = None
    errmsg: str | None = None

    def finish(self, status: JobStatus, now: float, errmsg: str | None = None) -> None:
        self.status = status
        self.ended = now
        self.errmsg = errmsg

    def time_elapsed_ms(self, now: float) -> int:
        end = self.ended if self.ended is not None else now
        return max(int((end - self.started) * 1000), 0)

    def to_params(self, now: float) -> list[TypedParam]:
        """Job stats as (name, type code, value), in the QEMU driver's order."""
        c = self.counters
        params: list[TypedParam] = [
            ("operation", PARAM_INT, int(self.operation)),
            ("time_elapsed", PARAM_ULLONG, self.time_elapsed_ms(now)),
        ]
        if c.downtime_ms is not None:
            params.append(("downtime", PARAM_ULLONG, c.downtime_ms))
        if c.setup_time_ms is not None:
            params.append(("setup_time", PARAM_ULLONG, c.setup_time_ms))
        params += [
            ("data_total", PARAM_ULLONG, c.memory_total),
            ("data_processed", PARAM_ULLONG, c.memory_processed),
            ("data_remaining", PARAM_ULLONG, c.memory_remaining),
            ("memory_total", PARAM_ULLONG, c.memory_total),
            ("memory_processed", PARAM_ULLONG, c.memory_processed),
            ("memory_remaining", PARAM_ULLONG, c.memory_remaining),
        ]
        if c.memory_bps:
            params.append(("memory_bps", PARAM_ULLONG, c.memory_bps))
        params += [
            ("memory_constant", PARAM_ULLONG, c.memory_constant),
            ("memory_normal", PARAM_ULLONG, c.memory_normal),
            ("memory_normal_bytes", PARAM_ULLONG, c.memory_normal_bytes),
            ("memory_dirty_rate", PARAM_ULLONG, c.memory_dirty_rate),
            ("memory_iteration", PARAM_ULLONG, c.memory_iteration),
            ("memory_postcopy_requests", PARAM_ULLONG, c.memory_postcopy_requests),
            ("memory_page_size", PARAM_ULLONG, PAGE_SIZE),
            ("disk_total", PARAM_ULLONG, 0),
            ("disk_processed", PARAM_ULLONG, 0),
            ("disk_remaining", PARAM_ULLONG, 0),
        ]
        if self.errmsg is not None:
            params.append(("errmsg", PARAM_STRING, self.errmsg))
        return params

    def to_info(self, now: float) -> tuple[int, ...]:
        """virDomainGetJobInfo's (type, timeElapsed, timeRemaining, data*, mem*, file*)."""
        c = self.counters
        return (
            int(self.status.job_type),
            self.time_elapsed_ms(now),
            0,
            c.memory_total,
            c.memory_processed,
            c.memory_remaining,
            c.memory_total,
            c.memory_processed,
            c.memory_remaining,
            0,
            0,
            0,
        )


def params_dict(params: list[TypedParam]) -> dict[str, int | float | bool | str]:
    return {name: value for name, _, value in params}
