"""The tree of a domain's moments (snapshots or checkpoints), as libvirt keeps it.

libvirt's virDomainMomentObjList (src/conf/virdomainmomentobjlist.c): every
moment hangs under its parent or under an invisible metaroot; a new child goes
in FRONT of its siblings (so children are listed newest first); one moment may
be "current".  Listing walks children, descendants (depth first, parents before
their children) or every moment, and filters leaves/non-leaves and, through a
family callback, the family's own flags.

libvirt walks "every moment" in its hash table's order; we use definition order
(callers and tests must not depend on either).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from virtwire.protocol.generated import constants as C

from ...errors import report
from .store import ObjectStore

log = logging.getLogger(__name__)

# The common listing flags (VIR_DOMAIN_MOMENT_LIST_*), what each family's flags map to.
LIST_ROOTS = LIST_DESCENDANTS = 1 << 0
LIST_TOPOLOGICAL = 1 << 1
LIST_LEAVES = 1 << 2
LIST_NO_LEAVES = 1 << 3
LIST_METADATA = 1 << 4
LIST_NO_METADATA = 1 << 5


class MomentDef(Protocol):
    """What the tree needs of a snapshot or checkpoint definition."""

    name: str
    parent_name: str | None


D = TypeVar("D", bound=MomentDef)
_FROM = C.VIR_FROM_DOMAIN  # virdomainmomentobjlist.c reports as the domain


def _invalid_arg(detail: str) -> Exception:
    return report(C.VIR_ERR_INVALID_ARG, _FROM, detail)


@dataclass(eq=False)
class Moment(Generic[D]):
    """One snapshot or checkpoint: its definition and where it sits in the tree."""

    name: str
    definition: D
    parent_name: str | None = None
    parent: Moment[D] | None = None  # None: under the metaroot (or not linked)
    children: list[Moment[D]] = field(default_factory=list)  # newest first

    def descendants(self) -> Iterator[Moment[D]]:
        """Depth first, each moment before its own children (ForEachDescendant)."""
        for child in list(self.children):
            yield child
            yield from child.descendants()


class MomentTree(Generic[D]):
    """A domain's moments by name, their parent links and the current one."""

    def __init__(self) -> None:
        self.by_name: dict[str, Moment[D]] = {}
        self.roots: list[Moment[D]] = []  # the metaroot's children, newest first
        self.current: Moment[D] | None = None

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str | None) -> Moment[D] | None:
        return self.by_name.get(name) if name is not None else None

    def add(self, name: str, definition: D, parent_name: str | None) -> Moment[D]:
        """virDomainMomentAssignDef: a new, not yet linked moment; a name clash fails."""
        if name in self.by_name:
            raise report(
                C.VIR_ERR_OPERATION_FAILED, C.VIR_FROM_DOMAIN, f"domain moment {name} already exists"
            )
        moment = Moment(name, definition, parent_name)
        self.by_name[name] = moment
        return moment

    def _siblings(self, parent: Moment[D] | None) -> list[Moment[D]]:
        return self.roots if parent is None else parent.children

    def link_parent(self, moment: Moment[D]) -> None:
        """virDomainMomentLinkParent: under its named parent, else under the metaroot."""
        parent = self.get(moment.parent_name)
        moment.parent = parent
        self._siblings(parent).insert(0, moment)

    def drop_parent(self, moment: Moment[D]) -> None:
        """virDomainMomentDropParent."""
        siblings = self._siblings(moment.parent)
        if moment in siblings:
            siblings.remove(moment)
        moment.parent = None

    def move_children(self, source: Moment[D], target: Moment[D] | None) -> None:
        """virDomainMomentMoveChildren: ``source``'s children go in front of ``target``'s."""
        for child in source.children:
            child.parent = target
        siblings = self._siblings(target)
        siblings[:0] = source.children
        source.children = []

    def remove(self, moment: Moment[D]) -> bool:
        """virDomainMomentObjListRemove: forget it; True if it was current (now none is)."""
        self.by_name.pop(moment.name, None)
        was_current = self.current is moment
        if was_current:
            self.current = None
        return was_current

    def check_cycles(self, name: str, parent_name: str | None) -> None:
        """virDomainMomentCheckCycles, before a redefinition."""
        if parent_name is None:
            return
        if name == parent_name:
            raise report(
                C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"cannot set moment {name} as its own parent"
            )
        other = self.get(parent_name)
        if other is None:
            raise _invalid_arg(f"parent {parent_name} for moment {name} not found")
        while other is not None and other.parent_name is not None:
            if other.parent_name == name:
                raise report(
                    C.VIR_ERR_INVALID_ARG,
                    C.VIR_FROM_DOMAIN,
                    f"parent {other.name} would create cycle to {name}",
                )
            other = self.get(other.parent_name)

    def names(
        self,
        start: Moment[D] | None,
        flags: int,
        family_filter: Callable[[Moment[D]], bool],
    ) -> list[str]:
        """virDomainMomentObjListGetNames with common ``flags`` (LIST_*) and the family's filter."""
        if start is None:
            # ROOTS and DESCENDANTS share a bit with opposite meanings; the metaroot flips it.
            flags ^= LIST_ROOTS
        if flags & (LIST_METADATA | LIST_NO_METADATA) == LIST_NO_METADATA:
            return []  # every moment here has metadata
        if flags & LIST_DESCENDANTS:
            if start is not None or flags & LIST_TOPOLOGICAL:
                walked = list(start.descendants()) if start is not None else self._all_topological()
            else:
                walked = list(self.by_name.values())
        else:
            walked = list(start.children) if start is not None else list(self.roots)
        found = []
        for moment in walked:
            if flags & LIST_LEAVES and moment.children:
                continue
            if flags & LIST_NO_LEAVES and not moment.children:
                continue
            if family_filter(moment):
                found.append(moment.name)
        return found

    def _all_topological(self) -> list[Moment[D]]:
        out: list[Moment[D]] = []
        for root in list(self.roots):
            out.append(root)
            out.extend(root.descendants())
        return out


def exclusive_flags(flags: int, first: str, second: str, domain: int) -> None:
    """VIR_EXCLUSIVE_FLAGS_GOTO of the public API (libvirtd runs it before the driver).

    ``first``/``second`` are the flags' names in the generated constants.
    """
    if flags & getattr(C, first) and flags & getattr(C, second):
        raise report(C.VIR_ERR_INVALID_ARG, domain, f"Flags '{first}' and '{second}' are mutually exclusive")


def required_flag(flags: int, flag: str, needs: str, domain: int) -> None:
    """VIR_REQUIRE_FLAG_GOTO of the public API: ``flag`` needs ``needs``."""
    if flags & getattr(C, flag) and not flags & getattr(C, needs):
        raise report(C.VIR_ERR_INVALID_ARG, domain, f"Flag '{needs}' is required by flag '{flag}'")


def delete_moment(tree: MomentTree[D], moment: Moment[D], *, children: bool, children_only: bool) -> None:
    """testDomainSnapshotDelete / testDomainCheckpointDelete: the same tree surgery."""
    if children or children_only:
        removed_current = False
        for descendant in list(moment.descendants()):
            removed_current |= tree.remove(descendant)
        if removed_current:
            tree.current = moment
    elif moment.children:
        parent = moment.parent
        for child in moment.children:
            child.parent_name = child.definition.parent_name = parent.name if parent is not None else None
        tree.move_children(moment, parent)
    if children_only:
        moment.children = []
        return
    tree.drop_parent(moment)
    if tree.current is moment:
        tree.current = tree.get(moment.definition.parent_name)
    tree.remove(moment)


def save_tree(store: ObjectStore, key: str, tree: MomentTree[D], format_one: Callable[[D], str]) -> None:
    """All of a domain's moments in one file (``<KIND current='NAME'>``), or none when empty."""
    if not tree.by_name:
        store.delete(key)
        return
    body = "".join(format_one(m.definition) for m in tree.by_name.values())
    current = ""
    if tree.current is not None:
        name = tree.current.name.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")
        current = f" current='{name}'"
    store.save(key, f"<{store.kind}{current}>\n{body}</{store.kind}>")


def load_tree(store: ObjectStore, key: str, tree: MomentTree[D], parse_one: Callable[[str], D]) -> None:
    """Fill ``tree`` from what ``save_tree`` wrote under ``key``, if anything."""
    for stored in store.load():
        if stored.key != key:
            continue
        root = ET.fromstring(stored.xml)
        for element in root:
            try:
                definition = parse_one(ET.tostring(element, encoding="unicode"))
                moment = tree.add(definition.name, definition, definition.parent_name)
            except Exception as exc:  # one bad entry must not stop the server
                log.warning("state dir: skipping a %s entry of %s: %s", store.kind, key, exc)
                continue
            tree.link_parent(moment)
        tree.current = tree.get(root.get("current"))
