"""Post-copy recovery (VIR_MIGRATE_POSTCOPY_RESUME): job phases and libvirt's refusals.

A post-copy migration whose link broke leaves both halves alive: the source
paused (PAUSED/POSTCOPY_FAILED), the destination running (RUNNING/POSTCOPY_FAILED),
each keeping its session and its job. A later migration with
VIR_MIGRATE_POSTCOPY_RESUME runs the same five steps on those sessions; every
step first checks, in libvirt 9.0's order (qemuMigrationAnyCanResume), that the
migration really is a failed post-copy one waiting at the step before.
"""

from __future__ import annotations

import enum

from virtwire.protocol.generated import constants as C

from ...errors import report
from .core import FROM, operation_invalid
from .model import Domain


class MigrationPhase(enum.IntEnum):
    """The part of libvirt's qemuMigrationJobPhase ordering recovery compares against."""

    NONE = 0
    POSTCOPY_FAILED = 10
    BEGIN_RESUME = 11
    PERFORM_RESUME = 12
    CONFIRM_RESUME = 13
    PREPARE_RESUME = 14
    FINISH_RESUME = 15


def in_postcopy(dom: Domain) -> bool:
    """virDomainObjIsPostcopy: switched to post-copy, failed or not."""
    return failed_postcopy(dom) or (dom.state, dom.reason) in (
        (C.VIR_DOMAIN_PAUSED, C.VIR_DOMAIN_PAUSED_POSTCOPY),
        (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_POSTCOPY),
    )


def failed_postcopy(dom: Domain) -> bool:
    """virDomainObjIsFailedPostcopy, from the domain's state."""
    return (dom.state, dom.reason) in (
        (C.VIR_DOMAIN_PAUSED, C.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED),
        (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED),
    )


def check_resume(
    dom: Domain,
    phase: MigrationPhase | None,
    flags: int,
    *,
    incoming: bool,
    expected: MigrationPhase,
    monitored: bool = False,
) -> None:
    """Refuse a recovery step as libvirt does; ``phase`` None: no migration job.

    ``monitored``: the migration's own call is still watching it (the source's
    Perform before post-copy, the destination's incoming task).
    """
    if not flags & C.VIR_MIGRATE_POSTCOPY:
        raise report(
            C.VIR_ERR_ARGUMENT_UNSUPPORTED,
            FROM,
            "resuming failed post-copy migration requires post-copy to be enabled",
        )
    if (
        not incoming
        and expected < MigrationPhase.PERFORM_RESUME
        and not flags & (C.VIR_MIGRATE_CHANGE_PROTECTION | C.VIR_MIGRATE_PEER2PEER)
    ):
        raise report(
            C.VIR_ERR_ARGUMENT_UNSUPPORTED,
            FROM,
            "resuming failed post-copy migration requires change protection",
        )
    if phase is None:
        what = "is not processing incoming migration" if incoming else "is not being migrated"
        raise operation_invalid(f"domain '{dom.name}' {what}", FROM)
    if monitored:
        raise operation_invalid(
            f"migration of domain {dom.name} is being actively monitored by another thread", FROM
        )
    if not in_postcopy(dom):
        raise operation_invalid(f"migration of domain {dom.name} is not in post-copy phase", FROM)
    if phase < MigrationPhase.POSTCOPY_FAILED and not failed_postcopy(dom):
        raise operation_invalid(f"post-copy migration of domain {dom.name} has not failed", FROM)
    if phase > expected:
        raise operation_invalid(
            f"resuming failed post-copy migration of domain {dom.name} already in progress", FROM
        )
