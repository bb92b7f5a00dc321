"""Domain checkpoint procedures of the memory driver: libvirt's test driver (testDomainCheckpoint*).

A domain's checkpoints live in a ``MomentTree`` (see ``snapshot_moments``); a
persistent domain's checkpoints are written to ``<state-dir>/checkpoints/<uuid>.xml``.
"""

from __future__ import annotations

from typing import cast

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .checkpoints import CheckpointDef, align_disks, assign_bitmap_names, parse_checkpoint_xml
from .core import FROM, dom_ref, operation_invalid
from .domsecure import shown
from .model import Domain
from .snapshot_moments import CHECKPOINTS, SNAPSHOTS, DomainMoments
from .snapshot_tree import (
    LIST_LEAVES,
    LIST_NO_LEAVES,
    LIST_ROOTS,
    LIST_TOPOLOGICAL,
    Moment,
    MomentTree,
    delete_moment,
    exclusive_flags,
    required_flag,
)

Checkpoint = Moment[CheckpointDef]
CheckpointTree = MomentTree[CheckpointDef]

# The public checkpoint listing flags are the common moment flags themselves.
_LIST_FLAGS = LIST_ROOTS | LIST_TOPOLOGICAL | LIST_LEAVES | LIST_NO_LEAVES
_CREATE_FLAGS = C.VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE | C.VIR_DOMAIN_CHECKPOINT_CREATE_QUIESCE
_XML_FLAGS = (
    C.VIR_DOMAIN_CHECKPOINT_XML_SECURE
    | C.VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN
    | C.VIR_DOMAIN_CHECKPOINT_XML_SIZE
)
_DELETE_FLAGS = (
    C.VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN
    | C.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY
    | C.VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN_ONLY
)


def _every(_moment: Checkpoint) -> bool:
    return True  # virDomainCheckpointFilter keeps everything


@nonblocking
class CheckpointAPI(DomainMoments):
    """virDomainCheckpoint* answers of test:///default."""

    def _checkpoints(self, dom: Domain) -> CheckpointTree:
        return cast(CheckpointTree, self._moment_tree(dom, CHECKPOINTS))

    def _save_checkpoints(self, dom: Domain) -> None:
        self._save_moments(dom, CHECKPOINTS, lambda d: cast(CheckpointDef, d).format())

    def _checkpoint(self, ref: R.remote_nonnull_domain_checkpoint) -> tuple[Domain, Checkpoint]:
        dom = self.lookup(ref.dom)
        chk = self._checkpoints(dom).get(ref.name)
        if chk is None:
            raise _no_checkpoint(ref.name)
        return dom, chk

    @staticmethod
    def _checkpoint_ref(dom: Domain, name: str) -> R.remote_nonnull_domain_checkpoint:
        return R.remote_nonnull_domain_checkpoint(name=name, dom=dom_ref(dom))

    # --- create --------------------------------------------------------------------------------

    async def domain_checkpoint_create_xml(
        self, args: R.remote_domain_checkpoint_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_domain_checkpoint_create_xml_ret:
        flags, api = args.flags, C.VIR_FROM_DOMAIN_CHECKPOINT
        redefine_flag = "VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE"
        exclusive_flags(flags, redefine_flag, "VIR_DOMAIN_CHECKPOINT_CREATE_QUIESCE", api)
        required_flag(flags, "VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE", redefine_flag, api)
        check_flags(flags, _CREATE_FLAGS, "testDomainCheckpointCreateXML")
        redefine = bool(flags & C.VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE)
        update_current = not redefine
        dom = self.lookup(args.dom)
        if len(self._moment_tree(dom, SNAPSHOTS)):
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED, FROM, "cannot create checkpoint while snapshot exists"
            )
        if not dom.active:
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED, FROM, "cannot create checkpoint for inactive domain"
            )
        definition = parse_checkpoint_xml(args.xml_desc, redefine=redefine)
        tree = self._checkpoints(dom)
        if redefine:
            update_current = self._redefine_prep(dom, tree, definition)
            chk = tree.get(definition.name)
            if chk is not None:
                tree.drop_parent(chk)
                chk.definition = definition
                chk.parent_name = definition.parent_name
            else:
                chk = tree.add(definition.name, definition, definition.parent_name)
        else:
            definition.domain_xml = dom.xml(inactive=True)
            align_disks(definition)
            chk = tree.add(definition.name, definition, None)
        current = tree.current
        if current is not None and not redefine:
            chk.parent_name = definition.parent_name = current.name
        if update_current:
            tree.current = chk
        tree.link_parent(chk)
        self._save_checkpoints(dom)
        return R.remote_domain_checkpoint_create_xml_ret(checkpoint=self._checkpoint_ref(dom, chk.name))

    @staticmethod
    def _redefine_prep(dom: Domain, tree: CheckpointTree, definition: CheckpointDef) -> bool:
        """virDomainCheckpointRedefinePrep; whether the redefined checkpoint becomes current."""
        tree.check_cycles(definition.name, definition.parent_name)
        if definition.domain_xml is not None:
            if definition.domain_uuid != dom.uuid:
                raise report(
                    C.VIR_ERR_INVALID_ARG,
                    C.VIR_FROM_DOMAIN_CHECKPOINT,
                    f"definition for checkpoint {definition.name} must use uuid {dom.uuid_string}",
                )
            align_disks(definition)
        else:
            assign_bitmap_names(definition)
        parent = tree.get(definition.parent_name)
        return (parent is not None and parent is tree.current) or tree.current is None

    # --- listing and lookup ----------------------------------------------------------------------

    async def domain_list_all_checkpoints(
        self, args: R.remote_domain_list_all_checkpoints_args, ctx: ConnectionContext
    ) -> R.remote_domain_list_all_checkpoints_ret:
        check_flags(args.flags, _LIST_FLAGS, "testDomainListAllCheckpoints")
        dom = self.lookup(args.dom)
        names = self._checkpoints(dom).names(None, args.flags, _every)
        refs = [self._checkpoint_ref(dom, n) for n in names] if args.need_results else []
        return R.remote_domain_list_all_checkpoints_ret(checkpoints=refs, ret=len(names))

    async def domain_checkpoint_list_all_children(
        self, args: R.remote_domain_checkpoint_list_all_children_args, ctx: ConnectionContext
    ) -> R.remote_domain_checkpoint_list_all_children_ret:
        check_flags(args.flags, _LIST_FLAGS, "testDomainCheckpointListAllChildren")
        dom, chk = self._checkpoint(args.checkpoint)
        names = self._checkpoints(dom).names(chk, args.flags, _every)
        refs = [self._checkpoint_ref(dom, n) for n in names] if args.need_results else []
        return R.remote_domain_checkpoint_list_all_children_ret(checkpoints=refs, ret=len(names))

    async def domain_checkpoint_lookup_by_name(
        self, args: R.remote_domain_checkpoint_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_domain_checkpoint_lookup_by_name_ret:
        check_flags(args.flags, 0, "testDomainCheckpointLookupByName")
        dom = self.lookup(args.dom)
        chk = self._checkpoints(dom).get(args.name)
        if chk is None:
            raise _no_checkpoint(args.name)
        return R.remote_domain_checkpoint_lookup_by_name_ret(checkpoint=self._checkpoint_ref(dom, chk.name))

    async def domain_checkpoint_get_parent(
        self, args: R.remote_domain_checkpoint_get_parent_args, ctx: ConnectionContext
    ) -> R.remote_domain_checkpoint_get_parent_ret:
        check_flags(args.flags, 0, "testDomainCheckpointGetParent")
        dom, chk = self._checkpoint(args.checkpoint)
        parent = chk.definition.parent_name
        if parent is None:
            raise report(
                C.VIR_ERR_NO_DOMAIN_CHECKPOINT, FROM, f"checkpoint '{chk.name}' does not have a parent"
            )
        return R.remote_domain_checkpoint_get_parent_ret(parent=self._checkpoint_ref(dom, parent))

    async def domain_checkpoint_get_xml_desc(
        self, args: R.remote_domain_checkpoint_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_domain_checkpoint_get_xml_desc_ret:
        check_flags(args.flags, _XML_FLAGS, "testDomainCheckpointGetXMLDesc")
        dom, chk = self._checkpoint(args.checkpoint)
        if args.flags & C.VIR_DOMAIN_CHECKPOINT_XML_SIZE and not dom.active:
            raise operation_invalid("domain is not running")
        # The test driver computes sizes but never marks them valid: none are printed.
        with_domain = not args.flags & C.VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN
        secure = bool(args.flags & C.VIR_DOMAIN_CHECKPOINT_XML_SECURE)
        xml = shown(chk.definition.format(with_domain=with_domain), secure)
        return R.remote_domain_checkpoint_get_xml_desc_ret(xml=xml)

    # --- delete ----------------------------------------------------------------------------------

    async def domain_checkpoint_delete(
        self, args: R.remote_domain_checkpoint_delete_args, ctx: ConnectionContext
    ) -> None:
        flags = args.flags
        children, only = "VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN", "VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN_ONLY"
        exclusive_flags(flags, children, only, C.VIR_FROM_DOMAIN_CHECKPOINT)
        check_flags(flags, _DELETE_FLAGS, "testDomainCheckpointDelete")
        dom, chk = self._checkpoint(args.checkpoint)
        delete_moment(
            self._checkpoints(dom),
            chk,
            children=bool(flags & C.VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN),
            children_only=bool(flags & C.VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN_ONLY),
        )
        self._save_checkpoints(dom)


def _no_checkpoint(name: str) -> Exception:
    return report(C.VIR_ERR_NO_DOMAIN_CHECKPOINT, FROM, f"no domain checkpoint with matching name '{name}'")
