"""Where each domain's snapshots and checkpoints live, for both families.

A domain's moments of one kind ("snapshots", "checkpoints") are a
``MomentTree`` kept in ``Domain.extra[kind]``, built on first use: loaded from
``<state-dir>/<kind>/<domain uuid>.xml`` when the domain is persistent.  Both
families inherit this one base, so each can see the other's tree (libvirt
refuses a snapshot while checkpoints exist, and the reverse) even before the
other was ever used since a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .checkpoints import parse_checkpoint_xml
from .core import MemoryCore
from .model import Domain
from .snapshot_tree import MomentTree, load_tree, save_tree
from .snapshots import parse_snapshot_xml
from .store import ObjectStore

SNAPSHOTS = "snapshots"
CHECKPOINTS = "checkpoints"
# How each kind's stored definitions are read back (as redefinitions, like libvirt's own reload).
_PARSERS: dict[str, Callable[[str], Any]] = {
    SNAPSHOTS: lambda xml: parse_snapshot_xml(xml, redefine=True),
    CHECKPOINTS: lambda xml: parse_checkpoint_xml(xml, redefine=True),
}


class DomainMoments(MemoryCore):
    """Per-domain moment trees and their files (no procedures of its own)."""

    _moment_stores: dict[str, ObjectStore]

    def _moment_store(self, kind: str) -> ObjectStore | None:
        if self.state_dir is None:
            return None
        stores: dict[str, ObjectStore] | None = getattr(self, "_moment_stores", None)
        if stores is None:
            stores = self._moment_stores = {}
        if kind not in stores:
            stores[kind] = ObjectStore(self.state_dir / kind, kind)
        return stores[kind]

    def _moment_tree(self, dom: Domain, kind: str) -> MomentTree[Any]:
        tree: MomentTree[Any] | None = dom.extra.get(kind)
        if tree is None:
            tree = dom.extra[kind] = MomentTree()
            store = self._moment_store(kind)
            if store is not None and dom.persistent:
                load_tree(store, dom.uuid_string, tree, _PARSERS[kind])
        return tree

    def _save_moments(self, dom: Domain, kind: str, format_one: Callable[[Any], str]) -> None:
        """Write the domain's moments of ``kind`` (none are kept for a transient domain)."""
        store = self._moment_store(kind)
        if store is not None:
            tree = self._moment_tree(dom, kind) if dom.persistent else MomentTree[Any]()
            save_tree(store, dom.uuid_string, tree, format_one)

    def _forget_moments(self, uuid_string: str) -> None:
        """A domain is no longer persistent: its moments stay in memory only."""
        for kind in (SNAPSHOTS, CHECKPOINTS):
            store = self._moment_store(kind)
            if store is not None:
                store.delete(uuid_string)
