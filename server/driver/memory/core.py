"""The in-memory hypervisor's state and the operations every API is built from.

``MemoryCore`` owns the domains: lookup (by name, UUID, id, or a wire
``remote_nonnull_domain``), define (persistent or transient), start, state
changes with their lifecycle events, removal, and persistence to the state
directory.  The procedure methods (``domain_api``, ``host_api``) and the
migration engine (``migration_api``) are written on top of these; keep their
signatures stable.

The store is written synchronously from the event loop: a definition is a few
KiB and the write is what makes ``define`` durable before its reply goes out.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from pathlib import Path

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import report
from ..base import Driver
from . import defaults
from .domdefs import merge_on_stop, split_on_start
from .domxml import normalise, parse_domain_xml
from .model import Domain
from .nodexml import NodeDescription
from .store import DomainStore

log = logging.getLogger(__name__)

# The test driver reports its own errors under VIR_FROM_TEST.
FROM = C.VIR_FROM_TEST


def dom_ref(dom: Domain) -> R.remote_nonnull_domain:
    """The wire form of a domain: name, raw UUID, id (-1 while inactive).

    Cached per domain until its id changes (listings build thousands); callers
    must treat it as read-only.
    """
    ref: R.remote_nonnull_domain | None = dom.ref_cache
    if ref is None or ref.id != dom.id:
        ref = dom.ref_cache = R.remote_nonnull_domain(name=dom.name, uuid=dom.uuid, id=dom.id)
    return ref


def internal(detail: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, FROM, detail)


def operation_invalid(detail: str, domain: int = C.VIR_FROM_DOMAIN) -> Exception:
    """VIR_ERR_OPERATION_INVALID: domain_conf's checks report VIR_FROM_DOMAIN, the test driver's own FROM."""
    return report(C.VIR_ERR_OPERATION_INVALID, domain, detail)


class MemoryCore(Driver):
    """Domains of an in-memory hypervisor that starts like libvirt's test:///default."""

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__()
        self.hostname = hostname
        # A custom node description (--node-xml) seeds a fresh host instead of test:///default.
        self.node = node
        self._by_uuid: dict[bytes, Domain] = {}
        self._by_name: dict[str, Domain] = {}
        self._by_id: dict[int, Domain] = {}
        self._next_id = 1
        self._sorted: list[Domain] | None = None  # domains by name, rebuilt after add/remove
        # Every family keeps its objects under the state directory (domains at its top).
        self.state_dir = state_dir
        self.store = DomainStore(state_dir) if state_dir is not None else None
        self._load(seed_defaults)

    # --- boot --------------------------------------------------------------------------

    def _load(self, seed_defaults: bool) -> None:
        if self.store is not None and self.store.seeded:
            for stored in self.store.load():
                try:
                    dom = self.define_domain(stored.xml, persistent=True, emit=False, save=False)
                except Exception as exc:  # one bad file must not stop the server
                    log.warning("state dir: skipping a definition that no longer parses: %s", exc)
                    continue
                dom.autostart = stored.autostart
        elif self.node is not None:
            self._seed_from_node(self.node)
            if self.store is not None:
                self.store.mark_seeded()
            return
        elif seed_defaults:
            self.define_domain(defaults.TEST_DOMAIN_XML, persistent=True, emit=False)
            if self.store is not None:
                self.store.mark_seeded()
        # test:///default boots ``test`` with reason UNKNOWN; autostart domains boot too.
        test_uuid = uuidlib.UUID("6695eb01-f6a4-8304-79aa-97f2502e193f").bytes
        for dom in sorted(self._by_uuid.values(), key=lambda d: d.name):
            if dom.uuid == test_uuid:
                self.start_domain(dom, reason=C.VIR_DOMAIN_RUNNING_UNKNOWN, emit=False)
        for dom in sorted(self._by_uuid.values(), key=lambda d: d.name):
            if dom.autostart and not dom.active:
                self.start_domain(dom, emit=False)

    def _seed_from_node(self, node: NodeDescription) -> None:
        """The domains of a node file, as testParseDomains: each started unless its runstate is shutoff."""
        for spec in node.domains:
            dom = self.define_domain(spec.xml, persistent=not spec.transient, emit=False)
            if spec.runstate != C.VIR_DOMAIN_SHUTOFF:
                self.start_domain(dom, reason=C.VIR_DOMAIN_RUNNING_BOOTED, emit=False)
                # The test driver then forces the file's state, reason 0.
                dom.state, dom.reason = spec.runstate, 0

    # --- lookup ------------------------------------------------------------------------

    def domains(self) -> list[Domain]:
        """Every domain, sorted by name (the order listAllDomains answers in). Do not modify."""
        if self._sorted is None:
            self._sorted = sorted(self._by_uuid.values(), key=lambda d: d.name)
        return self._sorted

    def find_by_name(self, name: str) -> Domain:
        dom = self._by_name.get(name)
        if dom is None:
            raise report(C.VIR_ERR_NO_DOMAIN, FROM)
        return dom

    def find_by_uuid(self, uuid: bytes) -> Domain:
        dom = self._by_uuid.get(bytes(uuid))
        if dom is None:
            raise report(C.VIR_ERR_NO_DOMAIN, FROM)
        return dom

    def find_by_id(self, domain_id: int) -> Domain:
        dom = self._by_id.get(domain_id)
        if dom is None:
            raise report(C.VIR_ERR_NO_DOMAIN, FROM)
        return dom

    def lookup(self, ref: R.remote_nonnull_domain) -> Domain:
        """The domain a call names (by UUID, as the test driver does), or VIR_ERR_NO_DOMAIN."""
        dom = self._by_uuid.get(bytes(ref.uuid))
        if dom is None:
            uuid = str(uuidlib.UUID(bytes=bytes(ref.uuid)))
            raise report(C.VIR_ERR_NO_DOMAIN, FROM, f"no domain with matching uuid '{uuid}' ({ref.name})")
        return dom

    # --- definitions -------------------------------------------------------------------

    def define_domain(
        self,
        xml: str,
        *,
        persistent: bool,
        emit: bool = True,
        save: bool = True,
        live: bool = False,
        validate: bool = False,
    ) -> Domain:
        """Define (or redefine) a domain from XML; libvirt's name/UUID clash rules.

        ``live`` is createXML's variant: an existing active domain is an error
        instead of getting a new pending definition.  ``validate``: against domain.rng.
        """
        parsed = parse_domain_xml(xml, validate=validate)
        existing = self._by_name.get(parsed.name)
        if existing is not None and (parsed.uuid is None or parsed.uuid != existing.uuid):
            raise report(
                C.VIR_ERR_OPERATION_FAILED,
                C.VIR_FROM_DOMAIN,
                f"domain '{existing.name}' already exists with uuid {existing.uuid_string}",
            )
        if existing is None and parsed.uuid is not None and parsed.uuid in self._by_uuid:
            other = self._by_uuid[parsed.uuid]
            raise report(
                C.VIR_ERR_OPERATION_FAILED,
                C.VIR_FROM_DOMAIN,
                f"domain '{other.name}' is already defined with uuid {other.uuid_string}",
            )
        uuid = parsed.uuid if parsed.uuid is not None else uuidlib.uuid4().bytes
        tree = normalise(parsed, uuid)
        if existing is not None and existing.active and not live:
            # A running domain keeps its live definition; the new one waits for the next start.
            existing.new_tree = tree
            existing.persistent = existing.persistent or persistent
            dom = existing
            detail = C.VIR_DOMAIN_EVENT_DEFINED_UPDATED
        elif existing is not None:
            if live and existing.active:
                raise operation_invalid(f"domain '{existing.name}' is already active")
            existing.tree = tree
            existing.memory_kib = parsed.memory_kib
            existing.current_memory_kib = parsed.current_memory_kib
            existing.vcpus = parsed.vcpus
            existing.max_vcpus = parsed.max_vcpus
            existing.os_type = parsed.os_type
            existing.persistent = existing.persistent or persistent
            dom = existing
            detail = C.VIR_DOMAIN_EVENT_DEFINED_UPDATED
        else:
            dom = Domain(
                name=parsed.name,
                uuid=uuid,
                tree=tree,
                memory_kib=parsed.memory_kib,
                current_memory_kib=parsed.current_memory_kib,
                vcpus=parsed.vcpus,
                max_vcpus=parsed.max_vcpus,
                os_type=parsed.os_type,
                persistent=persistent,
            )
            self._by_uuid[uuid] = dom
            self._by_name[dom.name] = dom
            self._sorted = None
            detail = C.VIR_DOMAIN_EVENT_DEFINED_ADDED
        if persistent and save:
            self.save(dom)
        if persistent and emit:
            self.events.lifecycle(dom_ref(dom), C.VIR_DOMAIN_EVENT_DEFINED, detail)
        return dom

    def save(self, dom: Domain) -> None:
        """Write a persistent domain's definition to the state directory (if any)."""
        if self.store is not None and dom.persistent:
            self.store.save(dom.uuid_string, dom.xml(inactive=True), autostart=dom.autostart)

    def undefine_domain(self, dom: Domain) -> None:
        """Remove the persistent definition; an active domain lives on as transient."""
        if self.store is not None:
            self.store.delete(dom.uuid_string)
        dom.persistent = False
        dom.autostart = False
        self.events.lifecycle(
            dom_ref(dom), C.VIR_DOMAIN_EVENT_UNDEFINED, C.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED
        )
        if not dom.active:
            self.remove_domain(dom)

    def remove_domain(self, dom: Domain) -> None:
        """Forget a domain entirely (no event; callers emit what fits)."""
        self._by_uuid.pop(dom.uuid, None)
        self._sorted = None
        if self._by_name.get(dom.name) is dom:
            del self._by_name[dom.name]
        if dom.id >= 0 and self._by_id.get(dom.id) is dom:
            del self._by_id[dom.id]

    # --- life cycle --------------------------------------------------------------------

    def start_domain(
        self,
        dom: Domain,
        *,
        reason: int = C.VIR_DOMAIN_RUNNING_BOOTED,
        detail: int = C.VIR_DOMAIN_EVENT_STARTED_BOOTED,
        state: int = C.VIR_DOMAIN_RUNNING,
        emit: bool = True,
    ) -> None:
        """Give an inactive domain the next id and make it run; STARTED/``detail`` event."""
        if dom.active:
            raise internal(f"Domain '{dom.name}' is already running")
        dom.id = self._next_id
        self._next_id += 1
        self._by_id[dom.id] = dom
        dom.state, dom.reason = state, reason
        split_on_start(dom)
        if emit:
            self.events.lifecycle(dom_ref(dom), C.VIR_DOMAIN_EVENT_STARTED, detail)

    def set_state(
        self, dom: Domain, state: int, reason: int, event: int | None = None, detail: int = 0
    ) -> None:
        """Change a domain's state and reason, emitting lifecycle ``event``/``detail`` if given."""
        dom.state, dom.reason = state, reason
        if event is not None:
            self.events.lifecycle(dom_ref(dom), event, detail)

    def stop_domain(self, dom: Domain, *, reason: int, detail: int, emit: bool = True) -> None:
        """Shut a domain off; STOPPED/``detail`` event; a transient one disappears."""
        if dom.id >= 0 and self._by_id.get(dom.id) is dom:
            del self._by_id[dom.id]
        dom.id = -1
        dom.state, dom.reason = C.VIR_DOMAIN_SHUTOFF, reason
        merge_on_stop(dom)
        if emit:
            self.events.lifecycle(dom_ref(dom), C.VIR_DOMAIN_EVENT_STOPPED, detail)
        if not dom.persistent:
            self.remove_domain(dom)
