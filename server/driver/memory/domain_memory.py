"""Domain memory procedures of test:///default: balloon and maximum, stats, memtune, numatune.

Each follows its test* function in libvirt 9.0's test driver; the XML each
change leaves behind is what domain_conf formats (``<memory>``,
``<currentMemory>``, ``<memtune>``, ``<numatune>``, the balloon's ``<stats>``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, MemoryCore
from .domdefs import config_tree, element, format_bitmap, one_def, parse_bitmap, put_section, sync_fields
from .domxml import scale_to_kib
from .model import Domain
from .paramcheck import Param, first, received, serialise, too_many, validate

_AFFECT = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG
_GET_FLAGS = _AFFECT | C.VIR_TYPED_PARAM_STRING_OKAY
UNLIMITED = C.VIR_DOMAIN_MEMORY_PARAM_UNLIMITED

# <memtune> children in libvirt's order, and the typed parameter of each limit.
_MEMTUNE_ORDER = ("hard_limit", "soft_limit", "min_guarantee", "swap_hard_limit")
_LIMIT_PARAMS = (
    (C.VIR_DOMAIN_MEMORY_HARD_LIMIT, "hard_limit"),
    (C.VIR_DOMAIN_MEMORY_SOFT_LIMIT, "soft_limit"),
    (C.VIR_DOMAIN_MEMORY_SWAP_HARD_LIMIT, "swap_hard_limit"),
)
_NUMA_MODES = ("strict", "preferred", "interleave", "restrictive")  # VIR_DOMAIN_NUMATUNE_MEM_*


def _has_balloon(tree: ET.Element) -> ET.Element | None:
    """virDomainDefHasMemballoon: a ``<memballoon>`` whose model is not ``none``."""
    balloon = tree.find("devices/memballoon")
    return balloon if balloon is not None and balloon.get("model") != "none" else None


def memory_limit(tree: ET.Element, name: str) -> int:
    """A ``<memtune>`` limit in KiB; unset limits are VIR_DOMAIN_MEMORY_PARAM_UNLIMITED."""
    limit = tree.find(f"memtune/{name}")
    if limit is None:
        return 0 if name == "min_guarantee" else UNLIMITED
    return scale_to_kib(limit.text, limit.get("unit"))


def _write_memtune(tree: ET.Element, limits: dict[str, int]) -> None:
    section = ET.Element("memtune")
    for name in _MEMTUNE_ORDER:
        value = limits[name]
        if value < UNLIMITED and (value or name != "min_guarantee"):
            section.append(element(name, str(value), unit="KiB"))
    put_section(tree, "memtune", section if len(section) else None)


def numa_memory(tree: ET.Element) -> tuple[int | None, str | None, set[int] | None]:
    """``<numatune><memory>``: (mode index or None when unspecified, placement, nodeset)."""
    memory = tree.find("numatune/memory")
    if memory is None:
        return None, None, None
    mode_name = memory.get("mode", "strict")
    mode = _NUMA_MODES.index(mode_name) if mode_name in _NUMA_MODES else 0
    nodeset_text = memory.get("nodeset")
    nodeset = parse_bitmap(nodeset_text) if nodeset_text else None
    placement = memory.get("placement") or ("static" if nodeset is not None else "auto")
    return mode, placement, nodeset


def _write_numa_memory(tree: ET.Element, mode: int, placement: str, nodeset: set[int] | None) -> None:
    old = tree.find("numatune")
    section = ET.Element("numatune")
    attrs = {"mode": _NUMA_MODES[mode]}
    if placement == "static":
        attrs["nodeset"] = format_bitmap(nodeset or set())
    else:
        attrs["placement"] = placement
    section.append(element("memory", **attrs))
    if old is not None:
        section.extend(child for child in old if child.tag != "memory")
    put_section(tree, "numatune", section)


@nonblocking
class DomainMemory(MemoryCore):
    """virDomain* memory answers of test:///default."""

    def _saved(self, dom: Domain, tree: ET.Element) -> None:
        sync_fields(dom)
        if tree is config_tree(dom):
            self.save(dom)

    # --- balloon and maximum ----------------------------------------------------------

    async def domain_set_memory(self, args: R.remote_domain_set_memory_args, ctx: ConnectionContext) -> None:
        self._set_memory(args.dom, args.memory, C.VIR_DOMAIN_AFFECT_LIVE)

    async def domain_set_max_memory(
        self, args: R.remote_domain_set_max_memory_args, ctx: ConnectionContext
    ) -> None:
        self._set_memory(args.dom, args.memory, C.VIR_DOMAIN_MEM_MAXIMUM)

    async def domain_set_memory_flags(
        self, args: R.remote_domain_set_memory_flags_args, ctx: ConnectionContext
    ) -> None:
        self._set_memory(args.dom, args.memory, args.flags)

    def _set_memory(self, ref: R.remote_nonnull_domain, memory: int, flags: int) -> None:
        check_flags(flags, _AFFECT | C.VIR_DOMAIN_MEM_MAXIMUM, "testDomainSetMemoryFlags")
        dom = self.lookup(ref)
        tree, live = one_def(dom, flags)
        total = int(tree.findtext("memory") or 0)
        if flags & C.VIR_DOMAIN_MEM_MAXIMUM:
            if live:
                raise report(
                    C.VIR_ERR_OPERATION_INVALID, FROM, "cannot resize the maximum memory on an active domain"
                )
            if tree.find("cpu/numa/cell") is not None:
                raise report(
                    C.VIR_ERR_OPERATION_INVALID,
                    FROM,
                    "initial memory size of a domain with NUMA nodes cannot be modified with this API",
                )
            max_memory = tree.find("maxMemory")
            if max_memory is not None and 0 < scale_to_kib(max_memory.text, max_memory.get("unit")) < memory:
                raise report(
                    C.VIR_ERR_OPERATION_INVALID,
                    FROM,
                    "cannot set initial memory size greater than the maximum memory size",
                )
            put_section(tree, "memory", element("memory", str(memory), unit="KiB"))
            if int(tree.findtext("currentMemory") or 0) > memory:
                put_section(tree, "currentMemory", element("currentMemory", str(memory), unit="KiB"))
        else:
            if memory > total:
                raise report(C.VIR_ERR_INVALID_ARG, FROM, "cannot set memory higher than max memory")
            put_section(tree, "currentMemory", element("currentMemory", str(memory), unit="KiB"))
        self._saved(dom, tree)

    async def domain_set_memory_stats_period(
        self, args: R.remote_domain_set_memory_stats_period_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _AFFECT, "testDomainSetMemoryStatsPeriod")
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        balloon = _has_balloon(tree)
        if balloon is None:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR,
                FROM,
                "No memory balloon device configured, can not set the collection period",
            )
        for stats in balloon.findall("stats"):
            balloon.remove(stats)
        if args.period:
            balloon.insert(0, element("stats", period=str(args.period)))
        self._saved(dom, tree)

    async def domain_memory_stats(
        self, args: R.remote_domain_memory_stats_args, ctx: ConnectionContext
    ) -> R.remote_domain_memory_stats_ret:
        if args.maxStats > R.REMOTE_DOMAIN_MEMORY_STATS_MAX:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, "maxStats > REMOTE_DOMAIN_MEMORY_STATS_MAX"
            )
        check_flags(args.flags, 0, "testDomainMemoryStats")
        dom = self.lookup(args.dom)
        if not dom.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_DOMAIN, "domain is not running")
        stats: list[tuple[int, int]] = []
        if _has_balloon(dom.tree) is not None:
            # The test driver holds the balloon in a C int.
            current = (dom.current_memory_kib + 2**31) % 2**32 - 2**31
            stats = [
                (C.VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON, current),
                (C.VIR_DOMAIN_MEMORY_STAT_SWAP_IN, 0),
                (C.VIR_DOMAIN_MEMORY_STAT_SWAP_OUT, 0),
                (C.VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT, 0),
                (C.VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT, 0),
                (C.VIR_DOMAIN_MEMORY_STAT_UNUSED, int(current / 2)),
                (C.VIR_DOMAIN_MEMORY_STAT_AVAILABLE, current),
                (C.VIR_DOMAIN_MEMORY_STAT_USABLE, int(current / 2)),
                (C.VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE, 627319920),
                (C.VIR_DOMAIN_MEMORY_STAT_DISK_CACHES, int(current / 8)),
                (C.VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGALLOC, 0),
                (C.VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGFAIL, 0),
                (C.VIR_DOMAIN_MEMORY_STAT_RSS, int(current / 2)),
            ]
        # Negative ints travel as unsigned 64-bit values.
        return R.remote_domain_memory_stats_ret(
            stats=[
                R.remote_domain_memory_stat(tag=tag, val=val % 2**64)
                for tag, val in stats[: max(args.maxStats, 0)]
            ]
        )

    # --- memtune ------------------------------------------------------------------------

    async def domain_set_memory_parameters(
        self, args: R.remote_domain_set_memory_parameters_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_MEMORY_PARAMETERS_MAX)
        check_flags(args.flags, _AFFECT, "testDomainSetMemoryParameters")
        validate(params, {name: C.VIR_TYPED_PARAM_ULLONG for name, _ in _LIMIT_PARAMS})
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        given = {name: int(value) for name, _, value in params}
        by_param = dict(_LIMIT_PARAMS)
        new = {by_param[name]: value for name, value in given.items()}
        if "hard_limit" in new or "swap_hard_limit" in new:
            # The test driver compares against the live definition's limits.
            hard = new.get("hard_limit", memory_limit(dom.tree, "hard_limit"))
            swap = new.get("swap_hard_limit", memory_limit(dom.tree, "swap_hard_limit"))
            if hard > swap:
                raise report(
                    C.VIR_ERR_INVALID_ARG,
                    FROM,
                    "memory hard_limit tunable value must be lower than or equal to swap_hard_limit",
                )
        limits = {name: memory_limit(tree, name) for name in _MEMTUNE_ORDER}
        limits.update(new)
        _write_memtune(tree, limits)
        self._saved(dom, tree)

    async def domain_get_memory_parameters(
        self, args: R.remote_domain_get_memory_parameters_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_memory_parameters_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_MEMORY_PARAMETERS_MAX)
        check_flags(args.flags, _GET_FLAGS, "testDomainGetMemoryParameters")
        if args.nparams == 0:
            return R.remote_domain_get_memory_parameters_ret(params=[], nparams=len(_LIMIT_PARAMS))
        tree, _ = one_def(self.lookup(args.dom), args.flags & _AFFECT)
        values: list[Param] = [
            (param, C.VIR_TYPED_PARAM_ULLONG, memory_limit(tree, name)) for param, name in _LIMIT_PARAMS
        ]
        params = serialise(first(values, args.nparams), args.flags, R.REMOTE_DOMAIN_MEMORY_PARAMETERS_MAX)
        return R.remote_domain_get_memory_parameters_ret(params=params, nparams=0)

    # --- numatune -------------------------------------------------------------------------

    async def domain_set_numa_parameters(
        self, args: R.remote_domain_set_numa_parameters_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_NUMA_PARAMETERS_MAX)
        check_flags(args.flags, _AFFECT, "testDomainSetNumaParameters")
        validate(
            params,
            {
                C.VIR_DOMAIN_NUMA_MODE: C.VIR_TYPED_PARAM_INT,
                C.VIR_DOMAIN_NUMA_NODESET: C.VIR_TYPED_PARAM_STRING,
            },
        )
        dom = self.lookup(args.dom)
        tree, live = one_def(dom, args.flags)
        mode = -1
        nodeset: set[int] | None = None
        for name, _, value in params:
            if name == C.VIR_DOMAIN_NUMA_MODE:
                mode = int(value)
                if not 0 <= mode < len(_NUMA_MODES):
                    raise report(C.VIR_ERR_INVALID_ARG, FROM, f"unsupported numatune mode: '{mode}'")
            else:
                nodeset = parse_bitmap(str(value))
                if not nodeset:
                    raise report(C.VIR_ERR_OPERATION_INVALID, FROM, f"Invalid nodeset of 'numatune': {value}")
        cur_mode, cur_placement, cur_nodeset = numa_memory(tree)
        if live and mode != -1 and cur_mode is not None and cur_mode != mode:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "can't change numatune mode for running domain")
        if mode == -1 and nodeset is None:
            return
        # virDomainNumatuneSet with placement -1 ("keep the current one").
        placement: str | None = None
        if cur_mode is None:
            mode = 0 if mode == -1 else mode  # strict
            placement = "default"
        new_mode = mode if mode != -1 else (cur_mode or 0)
        if nodeset is not None:
            cur_nodeset = nodeset
            placement = placement or "static"
        if placement == "default":
            vcpu = tree.find("vcpu")
            placement_static = vcpu is None or vcpu.get("placement", "static") == "static"
            placement = "static" if cur_nodeset is not None or placement_static else "auto"
        final = placement or cur_placement or "static"
        if final == "static" and cur_nodeset is None:
            raise report(
                C.VIR_ERR_CONFIG_UNSUPPORTED,
                C.VIR_FROM_DOMAIN,
                "nodeset for NUMA memory tuning must be set if 'placement' is 'static'",
            )
        if final == "auto":
            cur_nodeset = None
        _write_numa_memory(tree, new_mode, final, cur_nodeset)
        self._saved(dom, tree)

    async def domain_get_numa_parameters(
        self, args: R.remote_domain_get_numa_parameters_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_numa_parameters_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_NUMA_PARAMETERS_MAX)
        check_flags(args.flags, _GET_FLAGS, "testDomainGetNumaParameters")
        if args.nparams == 0:
            return R.remote_domain_get_numa_parameters_ret(params=[], nparams=2)
        tree, _ = one_def(self.lookup(args.dom), args.flags & _AFFECT)
        mode, _, nodeset = numa_memory(tree)
        values: list[Param] = [
            (C.VIR_DOMAIN_NUMA_MODE, C.VIR_TYPED_PARAM_INT, mode if mode is not None else 0),
            (C.VIR_DOMAIN_NUMA_NODESET, C.VIR_TYPED_PARAM_STRING, format_bitmap(nodeset or set())),
        ]
        params = serialise(first(values, args.nparams), args.flags, R.REMOTE_DOMAIN_NUMA_PARAMETERS_MAX)
        return R.remote_domain_get_numa_parameters_ret(params=params, nparams=0)
