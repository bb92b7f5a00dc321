"""The in-memory driver's domain model.

A ``Domain`` is one guest: its identity (name, UUID, id while active), its life
(state and reason, persistent, autostart), its definition as an XML tree and the
figures the APIs report (memory in KiB, vCPUs).  ``job`` and ``guest`` are free
slots the migration engine fills (job bookkeeping, simulated guest memory).
The driver owns all instances; nothing here does I/O or emits events.
"""

from __future__ import annotations

import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from virtwire.protocol.generated import constants as C

from .domxml import format_domain_xml

# States that count as "active" (the domain has an id and a running guest).
ACTIVE_STATES = frozenset(
    {
        C.VIR_DOMAIN_RUNNING,
        C.VIR_DOMAIN_BLOCKED,
        C.VIR_DOMAIN_PAUSED,
        C.VIR_DOMAIN_SHUTDOWN,
        C.VIR_DOMAIN_CRASHED,
        C.VIR_DOMAIN_PMSUSPENDED,
    }
)


@dataclass(slots=True, eq=False)
class Domain:
    """One guest of the in-memory hypervisor.

    ``uuid`` is 16 raw bytes. ``id`` is -1 while inactive. ``state``/``reason`` are
    VIR_DOMAIN_* state and its reason code. ``tree`` is the normalised ``<domain>``
    definition (without the ``id`` attribute, which is added when printing).
    """

    name: str
    uuid: bytes
    tree: ET.Element
    memory_kib: int
    current_memory_kib: int
    vcpus: int  # current vCPUs (what virDomainGetInfo reports)
    os_type: str
    max_vcpus: int = 0  # the <vcpu> maximum; 0 means the same as vcpus
    id: int = -1
    state: int = C.VIR_DOMAIN_SHUTOFF
    reason: int = C.VIR_DOMAIN_SHUTOFF_UNKNOWN
    persistent: bool = True
    autostart: bool = False
    # Wall-clock ns when the guest last started; cpuTime is derived from it.
    started_ns: int = 0
    # Free slots for the migration engine (job bookkeeping, simulated guest).
    job: Any = None
    guest: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The wire form last built for this domain (see core.dom_ref).
    ref_cache: Any = None
    # Its bulk-stats record as bytes, with what they were built from (see domain_stats).
    stats_wire: Any = None
    # While a persistent domain runs: its persistent definition (libvirt's newDef);
    # ``tree`` is then the live one.  See domdefs.
    new_tree: ET.Element | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def uuid_string(self) -> str:
        return str(uuidlib.UUID(bytes=self.uuid))

    def cpu_time_ns(self) -> int:
        """CPU time as the test driver reports it: the wall clock in ns, active or not."""
        return time.time_ns()

    def xml(self, *, inactive: bool = False) -> str:
        """The XML description (``virDomainGetXMLDesc``); ``inactive`` omits the id."""
        shown_id = self.id if self.active and not inactive else None
        tree = self.new_tree if inactive and self.new_tree is not None else self.tree
        return format_domain_xml(tree, domain_id=shown_id)
