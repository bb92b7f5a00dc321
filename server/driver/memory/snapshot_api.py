"""Domain snapshot procedures of the memory driver: libvirt's test driver (testDomainSnapshot*).

Each domain's snapshots live in a ``MomentTree`` kept in ``Domain.extra``; a
persistent domain's snapshots are written to ``<state-dir>/snapshots/<uuid>.xml``
(all of them in one file, rewritten on every change; see ``snapshot_moments``).
This mixin also answers DOMAIN_SNAPSHOT_NUM, refuses to undefine an inactive
domain that still has snapshots (unless VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
as the test driver does, and forgets a no longer persistent domain's snapshot
and checkpoint files; it must come before ``DomainAPI`` among MemoryDriver's bases.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, dom_ref, operation_invalid
from .domsecure import shown
from .domxml import normalise, parse_domain_xml
from .model import Domain
from .nodexml import NodeDescription, NodeSnapshot
from .snapshot_moments import CHECKPOINTS, SNAPSHOTS, DomainMoments
from .snapshot_tree import (
    LIST_LEAVES,
    LIST_METADATA,
    LIST_NO_LEAVES,
    LIST_NO_METADATA,
    LIST_ROOTS,
    LIST_TOPOLOGICAL,
    Moment,
    MomentTree,
    delete_moment,
    exclusive_flags,
    required_flag,
)
from .snapshots import ONLINE_STATES, STATE_DISK, STATE_SHUTOFF, STATES, SnapshotDef, align_disks
from .snapshots import parse_snapshot_xml as parse_snapshot

Snapshot = Moment[SnapshotDef]
SnapshotTree = MomentTree[SnapshotDef]

_FILTERS_LEAVES = C.VIR_DOMAIN_SNAPSHOT_LIST_LEAVES | C.VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES
_FILTERS_METADATA = C.VIR_DOMAIN_SNAPSHOT_LIST_METADATA | C.VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA
_FILTERS_STATUS = (
    C.VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE
    | C.VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE
    | C.VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY
)
_FILTERS_LOCATION = C.VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL | C.VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL
_FILTERS_ALL = _FILTERS_LEAVES | _FILTERS_METADATA | _FILTERS_STATUS | _FILTERS_LOCATION
_LIST_FLAGS = C.VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | C.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | _FILTERS_ALL
_CHILDREN_FLAGS = (
    C.VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | C.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | _FILTERS_ALL
)
# The public listing flags and the common moment flags they become.
_TO_MOMENT = (
    (C.VIR_DOMAIN_SNAPSHOT_LIST_ROOTS, LIST_ROOTS),
    (C.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL, LIST_TOPOLOGICAL),
    (C.VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, LIST_LEAVES),
    (C.VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES, LIST_NO_LEAVES),
    (C.VIR_DOMAIN_SNAPSHOT_LIST_METADATA, LIST_METADATA),
    (C.VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA, LIST_NO_METADATA),
)
_CREATE_FLAGS = (
    C.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
    | C.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
    | C.VIR_DOMAIN_SNAPSHOT_CREATE_HALT
    | C.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    | C.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
    | C.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE
    | C.VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE
)
_REVERT_FLAGS = (
    C.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
    | C.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
    | C.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE
)
_DELETE_FLAGS = C.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN | C.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY
# Every undefine flag libvirt knows: other bits are the flag check's business, not ours.
_UNDEFINE_KNOWN = (
    C.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | C.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | C.VIR_DOMAIN_UNDEFINE_NVRAM
    | C.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
    | C.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | C.VIR_DOMAIN_UNDEFINE_TPM
    | C.VIR_DOMAIN_UNDEFINE_KEEP_TPM
)


def _split_list_flags(flags: int) -> tuple[int, int]:
    """virDomainSnapshotObjListGetNames: (common moment flags, the snapshot filter's flags)."""
    moment = 0
    for public, common in _TO_MOMENT:
        if flags & public:
            flags &= ~public
            moment |= common
    for group in (_FILTERS_STATUS, _FILTERS_LOCATION):
        if flags & group == group:
            flags &= ~group
    return moment, flags


def _snapshot_filter(flags: int) -> Callable[[Snapshot], bool]:
    def keep(moment: Snapshot) -> bool:
        """virDomainSnapshotFilter."""
        d = moment.definition
        if flags & _FILTERS_STATUS:
            if not flags & C.VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE and d.state == STATE_SHUTOFF:
                return False
            if not flags & C.VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY and d.state == STATE_DISK:
                return False
            if not flags & C.VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE and d.state not in (STATE_SHUTOFF, STATE_DISK):
                return False
        if flags & C.VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL and d.external:
            return False
        return not (flags & C.VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL and not d.external)

    return keep


def no_snapshot(name: str) -> Exception:
    return report(C.VIR_ERR_NO_DOMAIN_SNAPSHOT, FROM, f"no domain snapshot with matching name '{name}'")


@nonblocking
class SnapshotAPI(DomainMoments):
    """virDomainSnapshot* answers of test:///default."""

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__(hostname=hostname, state_dir=state_dir, seed_defaults=seed_defaults, node=node)
        store = self._moment_store(SNAPSHOTS)
        if node is not None and (store is None or not store.seeded):
            for spec in node.domains:
                if spec.snapshots:
                    self._seed_snapshots(self.find_by_name(spec.name), spec.snapshots)
            if store is not None:
                store.mark_seeded()

    def _seed_snapshots(self, dom: Domain, snapshots: tuple[NodeSnapshot, ...]) -> None:
        """testParseDomainSnapshots: each one as libvirt reloads its own, then the relations."""
        tree = self._snapshots(dom)
        for spec in snapshots:
            definition = parse_snapshot(spec.xml, redefine=True)
            moment = tree.add(definition.name, definition, definition.parent_name)
            if spec.current:
                if tree.current is not None:
                    raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "more than one snapshot claims to be active")
                tree.current = moment
        for moment in tree.by_name.values():
            parent = moment.parent_name
            if parent is not None and (parent == moment.name or parent not in tree.by_name):
                detail = f"Snapshots have inconsistent relations for domain {dom.name}"
                raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, detail)
            tree.link_parent(moment)
        self._save_snapshots(dom)

    # --- state -------------------------------------------------------------------------------

    def _snapshots(self, dom: Domain) -> SnapshotTree:
        return cast(SnapshotTree, self._moment_tree(dom, SNAPSHOTS))

    def _save_snapshots(self, dom: Domain) -> None:
        self._save_moments(dom, SNAPSHOTS, lambda d: cast(SnapshotDef, d).format(dom.uuid_string))

    def _snapshot(self, ref: R.remote_nonnull_domain_snapshot) -> tuple[Domain, Snapshot]:
        dom = self.lookup(ref.dom)
        snap = self._snapshots(dom).get(ref.name)
        if snap is None:
            raise no_snapshot(ref.name)
        return dom, snap

    @staticmethod
    def _snapshot_ref(dom: Domain, name: str) -> R.remote_nonnull_domain_snapshot:
        return R.remote_nonnull_domain_snapshot(name=name, dom=dom_ref(dom))

    def _names(self, dom: Domain, start: Snapshot | None, flags: int) -> list[str]:
        moment_flags, filter_flags = _split_list_flags(flags)
        keep = _snapshot_filter(filter_flags)
        return self._snapshots(dom).names(start, moment_flags, keep)

    # --- listing -----------------------------------------------------------------------------

    async def domain_snapshot_num(
        self, args: R.remote_domain_snapshot_num_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_num_ret:
        check_flags(args.flags, _LIST_FLAGS, "testDomainSnapshotNum")
        dom = self.lookup(args.dom)
        return R.remote_domain_snapshot_num_ret(num=len(self._names(dom, None, args.flags)))

    async def domain_snapshot_list_names(
        self, args: R.remote_domain_snapshot_list_names_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_list_names_ret:
        check_flags(args.flags, _LIST_FLAGS, "testDomainSnapshotListNames")
        dom = self.lookup(args.dom)
        names = self._names(dom, None, args.flags)
        return R.remote_domain_snapshot_list_names_ret(names=names[: max(args.maxnames, 0)])

    async def domain_list_all_snapshots(
        self, args: R.remote_domain_list_all_snapshots_args, ctx: ConnectionContext
    ) -> R.remote_domain_list_all_snapshots_ret:
        check_flags(args.flags, _LIST_FLAGS, "testDomainListAllSnapshots")
        dom = self.lookup(args.dom)
        names = self._names(dom, None, args.flags)
        refs = [self._snapshot_ref(dom, n) for n in names] if args.need_results else []
        return R.remote_domain_list_all_snapshots_ret(snapshots=refs, ret=len(names))

    async def domain_snapshot_num_children(
        self, args: R.remote_domain_snapshot_num_children_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_num_children_ret:
        check_flags(args.flags, _CHILDREN_FLAGS, "testDomainSnapshotNumChildren")
        dom, snap = self._snapshot(args.snap)
        return R.remote_domain_snapshot_num_children_ret(num=len(self._names(dom, snap, args.flags)))

    async def domain_snapshot_list_children_names(
        self, args: R.remote_domain_snapshot_list_children_names_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_list_children_names_ret:
        check_flags(args.flags, _CHILDREN_FLAGS, "testDomainSnapshotListChildrenNames")
        dom, snap = self._snapshot(args.snap)
        names = self._names(dom, snap, args.flags)
        return R.remote_domain_snapshot_list_children_names_ret(names=names[: max(args.maxnames, 0)])

    async def domain_snapshot_list_all_children(
        self, args: R.remote_domain_snapshot_list_all_children_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_list_all_children_ret:
        check_flags(args.flags, _CHILDREN_FLAGS, "testDomainSnapshotListAllChildren")
        dom, snap = self._snapshot(args.snapshot)
        names = self._names(dom, snap, args.flags)
        refs = [self._snapshot_ref(dom, n) for n in names] if args.need_results else []
        return R.remote_domain_snapshot_list_all_children_ret(snapshots=refs, ret=len(names))

    # --- lookup and information ----------------------------------------------------------------

    async def domain_snapshot_lookup_by_name(
        self, args: R.remote_domain_snapshot_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_lookup_by_name_ret:
        check_flags(args.flags, 0, "testDomainSnapshotLookupByName")
        dom = self.lookup(args.dom)
        snap = self._snapshots(dom).get(args.name)
        if snap is None:
            raise no_snapshot(args.name)
        return R.remote_domain_snapshot_lookup_by_name_ret(snap=self._snapshot_ref(dom, snap.name))

    async def domain_has_current_snapshot(
        self, args: R.remote_domain_has_current_snapshot_args, ctx: ConnectionContext
    ) -> R.remote_domain_has_current_snapshot_ret:
        check_flags(args.flags, 0, "testDomainHasCurrentSnapshot")
        dom = self.lookup(args.dom)
        return R.remote_domain_has_current_snapshot_ret(result=int(self._snapshots(dom).current is not None))

    async def domain_snapshot_get_parent(
        self, args: R.remote_domain_snapshot_get_parent_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_get_parent_ret:
        check_flags(args.flags, 0, "testDomainSnapshotGetParent")
        dom, snap = self._snapshot(args.snap)
        parent = snap.definition.parent_name
        if parent is None:
            raise report(C.VIR_ERR_NO_DOMAIN_SNAPSHOT, FROM, f"snapshot '{snap.name}' does not have a parent")
        return R.remote_domain_snapshot_get_parent_ret(snap=self._snapshot_ref(dom, parent))

    async def domain_snapshot_current(
        self, args: R.remote_domain_snapshot_current_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_current_ret:
        check_flags(args.flags, 0, "testDomainSnapshotCurrent")
        dom = self.lookup(args.dom)
        current = self._snapshots(dom).current
        if current is None:
            raise report(C.VIR_ERR_NO_DOMAIN_SNAPSHOT, FROM, "the domain does not have a current snapshot")
        return R.remote_domain_snapshot_current_ret(snap=self._snapshot_ref(dom, current.name))

    async def domain_snapshot_get_xml_desc(
        self, args: R.remote_domain_snapshot_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_get_xml_desc_ret:
        check_flags(args.flags, C.VIR_DOMAIN_SNAPSHOT_XML_SECURE, "testDomainSnapshotGetXMLDesc")
        dom, snap = self._snapshot(args.snap)
        secure = bool(args.flags & C.VIR_DOMAIN_SNAPSHOT_XML_SECURE)
        xml = shown(snap.definition.format(dom.uuid_string), secure)
        return R.remote_domain_snapshot_get_xml_desc_ret(xml=xml)

    async def domain_snapshot_is_current(
        self, args: R.remote_domain_snapshot_is_current_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_is_current_ret:
        check_flags(args.flags, 0, "testDomainSnapshotIsCurrent")
        dom, snap = self._snapshot(args.snap)
        return R.remote_domain_snapshot_is_current_ret(current=int(self._snapshots(dom).current is snap))

    async def domain_snapshot_has_metadata(
        self, args: R.remote_domain_snapshot_has_metadata_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_has_metadata_ret:
        check_flags(args.flags, 0, "testDomainSnapshotHasMetadata")
        self._snapshot(args.snap)
        return R.remote_domain_snapshot_has_metadata_ret(metadata=1)

    # --- create ----------------------------------------------------------------------------------

    async def domain_snapshot_create_xml(
        self, args: R.remote_domain_snapshot_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_create_xml_ret:
        flags = args.flags
        api = C.VIR_FROM_DOMAIN_SNAPSHOT
        required_flag(flags, "VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT", "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", api)
        exclusive_flags(
            flags, "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", "VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA", api
        )
        exclusive_flags(flags, "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", "VIR_DOMAIN_SNAPSHOT_CREATE_HALT", api)
        check_flags(flags, _CREATE_FLAGS, "testDomainSnapshotCreateXML")
        redefine = bool(flags & C.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
        update_current = not redefine or bool(flags & C.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT)
        dom = self.lookup(args.dom)
        if self._has_checkpoints(dom):
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED, FROM, "cannot create snapshot while checkpoint exists"
            )
        if not dom.persistent and flags & C.VIR_DOMAIN_SNAPSHOT_CREATE_HALT:
            raise operation_invalid("cannot halt after transient domain snapshot", FROM)
        validate = bool(flags & C.VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE)
        definition = parse_snapshot(args.xml_desc, redefine=redefine, validate=validate)
        tree = self._snapshots(dom)
        if redefine:
            snap = self._redefine(dom, tree, definition)
        else:
            definition.domain_xml = dom.xml(inactive=True)
            self._align_new(dom, definition, flags)
            snap = tree.add(definition.name, definition, None)
            parent = tree.current.name if tree.current is not None else None
            definition.parent_name = snap.parent_name = parent
        if update_current:
            tree.current = snap
        tree.link_parent(snap)
        self._save_snapshots(dom)
        if not redefine and flags & C.VIR_DOMAIN_SNAPSHOT_CREATE_HALT and dom.active:
            self._shut_off(dom)
        return R.remote_domain_snapshot_create_xml_ret(snap=self._snapshot_ref(dom, snap.name))

    def _has_checkpoints(self, dom: Domain) -> bool:
        """Whether the domain has checkpoints (the checkpoint family's tree, if it made one)."""
        return len(self._moment_tree(dom, CHECKPOINTS)) > 0

    @staticmethod
    def _align_new(dom: Domain, definition: SnapshotDef, flags: int) -> None:
        """testDomainSnapshotAlignDisks."""
        for disk in definition.disks:
            if disk.snapshot == "manual":
                raise report(
                    C.VIR_ERR_OPERATION_UNSUPPORTED,
                    FROM,
                    "'manual' snapshot mode is not supported by the test driver",
                )
        state = STATES[dom.state] if 0 <= dom.state < len(STATES) else "nostate"
        if definition.memory == "external":
            definition.state = state
            location = "external"
        else:
            definition.state = state
            definition.memory = "no" if state == STATE_SHUTOFF else "internal"
            location = "internal"
        align_disks(definition, None, location)

    def _redefine(self, dom: Domain, tree: SnapshotTree, definition: SnapshotDef) -> Snapshot:
        """virDomainSnapshotRedefinePrep, then replace or add (testDomainSnapshotRedefine)."""
        api = C.VIR_FROM_DOMAIN_SNAPSHOT
        tree.check_cycles(definition.name, definition.parent_name)
        other = tree.get(definition.name)
        if definition.domain_uuid is not None and definition.domain_uuid != dom.uuid:
            raise report(
                C.VIR_ERR_INVALID_ARG,
                api,
                f"definition for snapshot {definition.name} must use uuid {dom.uuid_string}",
            )
        if other is not None:
            old = other.definition
            if (old.state in ONLINE_STATES) != (definition.state in ONLINE_STATES):
                raise report(
                    C.VIR_ERR_INVALID_ARG,
                    api,
                    f"cannot change between online and offline snapshot state in snapshot {definition.name}",
                )
            if (old.state == STATE_DISK) != (definition.state == STATE_DISK):
                raise report(
                    C.VIR_ERR_INVALID_ARG,
                    api,
                    f"cannot change between disk only and full system in snapshot {definition.name}",
                )
        location = "external" if definition.state == STATE_DISK or definition.external else "internal"
        align_disks(definition, other.definition.domain_xml if other is not None else None, location)
        if other is None:
            return tree.add(definition.name, definition, definition.parent_name)
        if definition.domain_xml is None:
            definition.domain_xml = other.definition.domain_xml
        tree.drop_parent(other)
        other.definition = definition
        other.parent_name = definition.parent_name
        return other

    # --- revert and delete ---------------------------------------------------------------------

    async def domain_revert_to_snapshot(
        self, args: R.remote_domain_revert_to_snapshot_args, ctx: ConnectionContext
    ) -> None:
        flags = args.flags
        running, paused = "VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING", "VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED"
        exclusive_flags(flags, running, paused, C.VIR_FROM_DOMAIN_SNAPSHOT)
        check_flags(flags, _REVERT_FLAGS, "testDomainRevertToSnapshot")
        dom, snap = self._snapshot(args.snap)
        definition = snap.definition
        start_flags = flags & (C.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING | C.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED)
        online = definition.state in ONLINE_STATES
        if not dom.persistent and not online and not start_flags:
            raise operation_invalid(
                "transient domain needs to request run or pause to revert to inactive snapshot", FROM
            )
        if definition.domain_xml is None:
            raise report(
                C.VIR_ERR_SNAPSHOT_REVERT_RISKY,
                FROM,
                f"snapshot '{snap.name}' lacks domain '{dom.name}' rollback info",
            )
        tree = self._snapshots(dom)
        tree.current = None
        if online:
            # Transitions 2, 3, 5, 6, 8, 9 of testDomainRevertToSnapshot.
            if dom.active:
                self._shut_off(dom)
            self._assign_definition(dom, definition.domain_xml)
            self.start_domain(
                dom,
                reason=C.VIR_DOMAIN_RUNNING_FROM_SNAPSHOT,
                detail=C.VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT,
            )
            if not flags & C.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING and (
                definition.state == "paused" or flags & C.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
            ):
                self.set_state(
                    dom,
                    C.VIR_DOMAIN_PAUSED,
                    C.VIR_DOMAIN_PAUSED_FROM_SNAPSHOT,
                    C.VIR_DOMAIN_EVENT_SUSPENDED,
                    C.VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT,
                )
        else:
            # Transitions 1, 4, 7.  Asked to run or pause, the test driver emits the
            # events of a start (and pause) but leaves the domain shut off.
            self._assign_definition(dom, definition.domain_xml)
            if dom.active:
                self._shut_off(dom)
            if start_flags:
                ref = dom_ref(dom)
                self.events.lifecycle(
                    ref, C.VIR_DOMAIN_EVENT_STARTED, C.VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT
                )
                if flags & C.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED:
                    self.events.lifecycle(
                        ref, C.VIR_DOMAIN_EVENT_SUSPENDED, C.VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT
                    )
        tree.current = snap
        self._save_snapshots(dom)

    def _assign_definition(self, dom: Domain, xml: str) -> None:
        """virDomainObjAssignDef of the snapshot's domain definition (kept on disk if persistent)."""
        parsed = parse_domain_xml(xml)
        dom.tree = normalise(parsed, dom.uuid)
        dom.memory_kib = parsed.memory_kib
        dom.current_memory_kib = parsed.current_memory_kib
        dom.vcpus = parsed.vcpus
        dom.max_vcpus = parsed.max_vcpus
        dom.os_type = parsed.os_type
        self.save(dom)

    def _shut_off(self, dom: Domain) -> None:
        """testDomainShutdownState + STOPPED/FROM_SNAPSHOT: even a transient domain stays."""
        persistent = dom.persistent
        dom.persistent = True  # keep stop_domain from forgetting a transient domain
        try:
            self.stop_domain(
                dom,
                reason=C.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT,
                detail=C.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT,
            )
        finally:
            dom.persistent = persistent

    async def domain_snapshot_delete(
        self, args: R.remote_domain_snapshot_delete_args, ctx: ConnectionContext
    ) -> None:
        flags = args.flags
        children, only = "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN", "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY"
        exclusive_flags(flags, children, only, C.VIR_FROM_DOMAIN_SNAPSHOT)
        check_flags(flags, _DELETE_FLAGS, "testDomainSnapshotDelete")
        dom, snap = self._snapshot(args.snap)
        delete_moment(
            self._snapshots(dom),
            snap,
            children=bool(flags & C.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN),
            children_only=bool(flags & C.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY),
        )
        self._save_snapshots(dom)

    # --- the domain's own undefine ------------------------------------------------------------

    async def domain_undefine(self, args: R.remote_domain_undefine_args, ctx: ConnectionContext) -> None:
        self._refuse_undefine(args.dom, 0)
        await super().domain_undefine(args, ctx)
        self._forget_moments(_uuid_string(args.dom))

    async def domain_undefine_flags(
        self, args: R.remote_domain_undefine_flags_args, ctx: ConnectionContext
    ) -> None:
        self._refuse_undefine(args.dom, args.flags)
        await super().domain_undefine_flags(args, ctx)
        self._forget_moments(_uuid_string(args.dom))

    def _refuse_undefine(self, ref: R.remote_nonnull_domain, flags: int) -> None:
        if flags & ~_UNDEFINE_KNOWN:
            return  # the flag check comes first
        dom = self.lookup(ref)
        count = len(self._snapshots(dom))
        if not dom.active and count and not flags & C.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA:
            raise operation_invalid(f"cannot delete inactive domain with {count} snapshots", FROM)


def _uuid_string(ref: R.remote_nonnull_domain) -> str:
    return str(uuidlib.UUID(bytes=bytes(ref.uuid)))
