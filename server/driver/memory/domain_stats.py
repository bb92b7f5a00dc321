"""Domain statistics of test:///default: block and interface counters, block info, bulk stats.

The counters are the test driver's: the wall clock (µs) divided by fixed
numbers, "just enough to mix it up".  Bulk stats (virConnectGetAllDomainStats,
virDomainListGetStats) report the groups the test driver has workers for:
``state`` and ``iothread``.
"""

from __future__ import annotations

import struct
import time
import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, MemoryCore, dom_ref
from .device_tunables import find_disk, find_interface
from .domain_cpu import iothread_poll
from .host_api import matches_list_filter
from .model import Domain
from .paramcheck import Param, serialise

_FILTERS = (
    C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_PERSISTENT
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_TRANSIENT
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_PAUSED
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_SHUTOFF
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_OTHER
)
_STATS_FLAGS = (
    _FILTERS
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING
    | C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS
)
SUPPORTED_STATS = C.VIR_DOMAIN_STATS_STATE | C.VIR_DOMAIN_STATS_IOTHREAD

# virDomainGetBlockInfo of any disk with a source.
BLOCK_CAPACITY = 1099506450432
BLOCK_ALLOCATION = 1099511627776
BLOCK_PHYSICAL = 1099511627776


def _clock_us() -> int:
    return time.time_ns() // 1000


def _has_source(disk: ET.Element) -> bool:
    """Not virStorageSourceIsEmpty: the disk has a source (a path, or a network source)."""
    if disk.get("type") == "network":
        return disk.find("source") is not None
    source = disk.find("source")
    return source is not None and any(source.get(a) for a in ("file", "dev", "dir", "volume", "name"))


# The state group's two records for each (state, reason) seen, built (and range-checked)
# once: a bulk call over thousands of domains then only picks records.  Keyed by the
# values themselves, so an entry can never go stale.
_STATE_RECORDS: dict[tuple[int, int], list[R.remote_typed_param]] = {}


def _state_stats(dom: Domain) -> list[R.remote_typed_param]:
    key = (dom.state, dom.reason)
    records = _STATE_RECORDS.get(key)
    if records is None:
        values: list[Param] = [
            ("state.state", C.VIR_TYPED_PARAM_INT, dom.state),
            ("state.reason", C.VIR_TYPED_PARAM_INT, dom.reason),
        ]
        records = _STATE_RECORDS[key] = serialise(values, C.VIR_TYPED_PARAM_STRING_OKAY, len(values))
    return records


def _iothread_stats(dom: Domain) -> list[R.remote_typed_param]:
    if not dom.active:
        return []
    poll = iothread_poll(dom)
    if not poll:
        return []
    out: list[Param] = [("iothread.count", C.VIR_TYPED_PARAM_UINT, len(poll))]
    for iothread_id, max_ns, grow, shrink in poll:
        out += [
            (f"iothread.{iothread_id}.poll-max-ns", C.VIR_TYPED_PARAM_ULLONG, max_ns),
            (f"iothread.{iothread_id}.poll-grow", C.VIR_TYPED_PARAM_UINT, grow),
            (f"iothread.{iothread_id}.poll-shrink", C.VIR_TYPED_PARAM_UINT, shrink),
        ]
    return serialise(out, C.VIR_TYPED_PARAM_STRING_OKAY, len(out))


_WORKERS = ((C.VIR_DOMAIN_STATS_STATE, _state_stats), (C.VIR_DOMAIN_STATS_IOTHREAD, _iothread_stats))
_pack_count = struct.Struct(">I").pack


class _StatsReply(R.remote_connect_get_all_domain_stats_ret):
    """The reply whose wire form is joined from its records' bytes (see _record_wire)."""

    __slots__ = ("wire",)

    def __init__(self, records: list[R.remote_domain_stats_record], wire: bytes) -> None:
        super().__init__(retStats=records)
        self.wire = wire

    def to_bytes(self) -> bytes:
        return self.wire


def _record_wire(dom: Domain, record: R.remote_domain_stats_record) -> bytes:
    """The record's XDR encoding, reused while it would encode the same.

    A record is a pure function of the domain's wire reference (name, UUID, id:
    core.dom_ref builds a new one whenever they change) and its parameter list;
    the state group's lists are shared per (state, reason), so the same list
    object means the same parameters.  Any other list (IOThreads) is encoded anew.
    """
    cached = dom.stats_wire
    if cached is not None and cached[0] is record.dom and cached[1] is record.params:
        wire: bytes = cached[2]
        return wire
    wire = R.encode_remote_domain_stats_record(record)
    shared = any(record.params is state for state in _STATE_RECORDS.values())
    dom.stats_wire = (record.dom, record.params, wire) if shared else None
    return wire


@nonblocking
class DomainStats(MemoryCore):
    """virDomain{Block,Interface}Stats, virDomainGetBlockInfo, bulk domain stats of test:///default."""

    def _running(self, ref: R.remote_nonnull_domain) -> Domain:
        dom = self.lookup(ref)
        if not dom.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_DOMAIN, "domain is not running")
        return dom

    async def domain_block_stats(
        self, args: R.remote_domain_block_stats_args, ctx: ConnectionContext
    ) -> R.remote_domain_block_stats_ret:
        if not args.path:
            raise report(C.VIR_ERR_OPERATION_UNSUPPORTED, FROM, "summary statistics are not supported yet")
        dom = self._running(args.dom)
        if find_disk(dom.tree, args.path, False) is None:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, f"invalid path: {args.path}")
        base = _clock_us()
        return R.remote_domain_block_stats_ret(
            rd_req=base // 10,
            rd_bytes=base // 20,
            wr_req=base // 30,
            wr_bytes=base // 40,
            errs=base // 2000000,
        )

    async def domain_interface_stats(
        self, args: R.remote_domain_interface_stats_args, ctx: ConnectionContext
    ) -> R.remote_domain_interface_stats_ret:
        dom = self._running(args.dom)
        find_interface(dom.tree, args.device)
        base = _clock_us()
        return R.remote_domain_interface_stats_ret(
            rx_bytes=base // 10,
            rx_packets=base // 100,
            rx_errs=base // 1000000,
            rx_drop=base // 2000000,
            tx_bytes=base // 20,
            tx_packets=base // 110,
            tx_errs=base // 3000000,
            tx_drop=base // 4000000,
        )

    async def domain_get_block_info(
        self, args: R.remote_domain_get_block_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_block_info_ret:
        check_flags(args.flags, 0, "testDomainGetBlockInfo")
        dom = self.lookup(args.dom)
        disk = find_disk(dom.tree, args.path, False)
        if disk is None:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, f"invalid path {args.path} not assigned to domain")
        if not _has_source(disk):
            detail = f"disk '{args.path}' does not currently have a source assigned"
            raise report(C.VIR_ERR_INVALID_ARG, FROM, detail)
        return R.remote_domain_get_block_info_ret(
            allocation=BLOCK_ALLOCATION, capacity=BLOCK_CAPACITY, physical=BLOCK_PHYSICAL
        )

    async def connect_get_all_domain_stats(
        self, args: R.remote_connect_get_all_domain_stats_args, ctx: ConnectionContext
    ) -> R.remote_connect_get_all_domain_stats_ret:
        flags, stats = args.flags, args.stats
        check_flags(flags, _STATS_FLAGS, "testConnectGetAllDomainStats")
        if not stats:
            stats = SUPPORTED_STATS
        elif flags & C.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS and stats & ~SUPPORTED_STATS:
            detail = f"Stats types bits 0x{stats & ~SUPPORTED_STATS:x} are not supported by this daemon"
            raise report(C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, detail)
        if args.doms:
            # virDomainListGetStats: the named domains that still exist, in the order given.
            found = (self._by_uuid.get(bytes(ref.uuid)) for ref in args.doms)
            candidates = [dom for dom in found if dom is not None]
        else:
            candidates = self.domains()
        filters = flags & _FILTERS
        workers = [worker for group, worker in _WORKERS if stats & group]
        limit = R.REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX
        records: list[R.remote_domain_stats_record] = []
        wires: list[bytes] = []
        for dom in candidates:
            if filters and not matches_list_filter(dom, filters):
                continue
            params: list[R.remote_typed_param] = []
            for worker in workers:
                more = worker(dom)  # may be a shared list: never modified
                if more:
                    params = params + more if params else more
            if len(params) > limit:
                raise report(
                    C.VIR_ERR_RPC, C.VIR_FROM_NONE, f"too many parameters '{len(params)}' for limit '{limit}'"
                )
            record = R.remote_domain_stats_record(dom=dom_ref(dom), params=params)
            records.append(record)
            wires.append(_record_wire(dom, record))
        if len(records) > R.REMOTE_DOMAIN_LIST_MAX:
            detail = (
                f"Number of domain stats records is {len(records)}, "
                f"which exceeds max limit: {R.REMOTE_DOMAIN_LIST_MAX}"
            )
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, detail)
        return _StatsReply(records, _pack_count(len(records)) + b"".join(wires))
