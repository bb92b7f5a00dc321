"""Domain jobs and their statistics, shaped as libvirt's QEMU driver reports them.

A migration engine updates ``MigrationCounters`` as pages are handled;
``Job`` wraps the counters with the job's type, operation and timing and renders
them as the typed parameters of virDomainGetJobStats (same names, types and
order as libvirt's qemuDomainMigrationJobDataToParams) or the 12 numbers of
virDomainGetJobInfo.

Accounting, and why
-------------------
libvirt documents ``memory_total``/``processed``/``remaining`` (and the
``data_*`` aggregates, equal here as there are no disks) as one quantity split
in two: what is done and what is left of the total. Management layers rely on
that: Nova's and virsh's progress is ``processed / total`` and Nova switches to
post-copy when ``remaining`` stops shrinking. So these three are counted in
*guest-memory bytes*, and always satisfy ``processed + remaining == total``:

* a page handled counts one page size toward ``processed``, whether it crossed as
  data (a PAGE record) or as a zero marker (part of a ZERO_RUN record);
* ``total`` starts as the guest's RAM size (pass 1 handles every page once);
* at every new iteration (a dirty-bitmap sync, each with its
  MIGRATION_ITERATION event) ``total`` grows by the bytes of the pages queued
  again: those the guest wrote since the sync before (the dirty log, like KVM's,
  cannot tell a write before a page's send from one after it, so every logged
  page goes again), not counting pages still pending from the pass in progress
  (the unsent rest of a pass cut short, and the pages a pass skipped because the
  guest wrote them again before their turn: each was queued once, and is handled
  once, in a later iteration);
* so within one iteration ``total`` is constant, ``processed`` only grows,
  ``remaining`` only shrinks; ``iteration`` equals the events the source emitted.

The destination derives the same numbers: each ITERATION record carries the
pages that iteration queued, so its completed stats equal the source's. (QEMU
itself reports wire bytes as ``processed`` beside a fixed RAM-size total, which
breaks the sum; we keep libvirt's contract and report the wire bytes apart.)

What really crossed the link is reported honestly beside them, never mixed in:
``memory_normal`` pages sent as data, ``memory_normal_bytes`` = that times the
page size (the page payload bytes really sent), ``memory_constant`` zero pages
sent as markers, ``memory_bps`` the wire throughput measured over the last
window (all bytes written, record headers included), and
``memory_postcopy_requests`` the page faults the destination sent back.
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
    """Where a job is; ACTIVE, POSTCOPY and POSTCOPY_PAUSED report as UNBOUNDED (virdomainjob.c).

    POSTCOPY_PAUSED is a post-copy migration whose link broke: the job stays,
    unfinished, until a recovery completes it.
    """

    ACTIVE = "active"
    POSTCOPY = "postcopy"
    POSTCOPY_PAUSED = "postcopy-paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def job_type(self) -> JobType:
        return _STATUS_TYPE[self]

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.ACTIVE, JobStatus.POSTCOPY, JobStatus.POSTCOPY_PAUSED)

    @property
    def running(self) -> bool:
        """An engine is moving this job's data right now."""
        return self in (JobStatus.ACTIVE, JobStatus.POSTCOPY)


_STATUS_TYPE = {
    JobStatus.ACTIVE: JobType.UNBOUNDED,
    JobStatus.POSTCOPY: JobType.UNBOUNDED,
    JobStatus.POSTCOPY_PAUSED: JobType.UNBOUNDED,
    JobStatus.COMPLETED: JobType.COMPLETED,
    JobStatus.FAILED: JobType.FAILED,
    JobStatus.CANCELLED: JobType.CANCELLED,
}


@dataclass(slots=True)
class CompressionCounters:
    """xbzrle's numbers, reported as compression_* (QEMU's xbzrle-cache block)."""

    cache_bytes: int = 0
    bytes: int = 0  # delta bytes sent
    pages: int = 0  # pages sent as deltas
    cache_misses: int = 0
    overflow: int = 0


@dataclass(slots=True)
class MigrationCounters:
    """A migration's progress and traffic; see the module docstring for the rules."""

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
    cpu_throttle_percentage: int = 0  # auto-converge, while it throttles the guest
    compression: CompressionCounters | None = None  # set while xbzrle is on

    @property
    def memory_normal_bytes(self) -> int:
        return self.memory_normal * PAGE_SIZE

    def start(self, total_pages: int) -> None:
        """Iteration 0 is all of guest RAM, nothing handled yet."""
        self.memory_total = self.memory_remaining = total_pages * PAGE_SIZE
        self.memory_processed = 0

    def new_iteration(self, number: int, pending_pages: int, carried_pages: int = 0) -> None:
        """A bitmap sync: ``pending_pages`` to handle now, ``carried_pages`` of them
        still pending (so already in the total) from the pass the sync interrupts."""
        self.memory_iteration = number
        self.memory_total += (pending_pages - carried_pages) * PAGE_SIZE
        self.memory_remaining = pending_pages * PAGE_SIZE

    def handled(self, pages: int) -> None:
        """``pages`` pages of the current iteration went out (as data or as zero markers)."""
        self.memory_processed += pages * PAGE_SIZE
        self.memory_remaining -= pages * PAGE_SIZE


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
        if c.cpu_throttle_percentage:
            params.append(("auto_converge_throttle", PARAM_INT, c.cpu_throttle_percentage))
        if c.compression is not None:
            params += [
                ("compression_cache", PARAM_ULLONG, c.compression.cache_bytes),
                ("compression_bytes", PARAM_ULLONG, c.compression.bytes),
                ("compression_pages", PARAM_ULLONG, c.compression.pages),
                ("compression_cache_misses", PARAM_ULLONG, c.compression.cache_misses),
                ("compression_overflow", PARAM_ULLONG, c.compression.overflow),
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
