"""Domain CPU procedures of test:///default: vCPU counts and pins, emulator pin, IOThreads, CPU stats.

Each follows its test* function in libvirt 9.0's test driver (checks, their
order, errors) and libvirtd's dispatcher around it (buffer sizes, limits).
Changes land in the definition the AFFECT_* flags name (see domdefs); a change
to the persistent one is saved to the state directory.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from . import defaults
from .core import FROM, MemoryCore
from .cputune import IOThread, read_cputune, read_iothreads, vcpu_cpuset, write_cputune, write_iothreads
from .domdefs import (
    bitmap_from_bytes,
    bitmap_to_bytes,
    both_defs,
    config_tree,
    one_def,
    set_vcpu_counts,
    sync_fields,
    vcpu_counts,
)
from .model import Domain
from .paramcheck import received, validate

_AFFECT = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG
_VCPU_FLAGS = _AFFECT | C.VIR_DOMAIN_VCPU_MAXIMUM
HOST_CPUS = set(range(defaults.NODE_CPUS))  # VIR_NODEINFO_MAXCPUS of the default node

# virDomainGetCPUStats of the test driver: total CPU time, and per host core.
TOTAL_CPU_TIME = 48772617035
CPU_STATS_TOTAL = (
    (C.VIR_DOMAIN_CPU_STATS_CPUTIME, TOTAL_CPU_TIME),
    (C.VIR_DOMAIN_CPU_STATS_USERTIME, 5540000000),
    (C.VIR_DOMAIN_CPU_STATS_SYSTEMTIME, 6460000000),
)
PERCPU_STATS = 2  # cpu_time and vcpu_time
VCPU_TIME_OFFSET = 1234567890

# The test driver's per-domain IOThread polling state, in the order added:
# [iothread_id, poll_max_ns, poll_grow, poll_shrink].
_POLL_KEY = "iothread_poll"
DEFAULT_POLL_MAX_NS = 32768
IOTHREAD_PARAM_TYPES = {
    C.VIR_DOMAIN_IOTHREAD_POLL_MAX_NS: C.VIR_TYPED_PARAM_ULLONG,
    C.VIR_DOMAIN_IOTHREAD_POLL_GROW: C.VIR_TYPED_PARAM_UINT,
    C.VIR_DOMAIN_IOTHREAD_POLL_SHRINK: C.VIR_TYPED_PARAM_UINT,
}


def iothread_poll(dom: Domain) -> list[list[int]]:
    """The polling settings of the IOThreads added through the API (test driver private data).

    Kept per domain object, not per definition: adding the same id to the live
    and to the persistent definition lists it twice, as in the test driver.
    """
    poll: list[list[int]] = dom.extra.setdefault(_POLL_KEY, [])
    return poll


def _poll_entry(dom: Domain, iothread_id: int) -> list[int] | None:
    return next((entry for entry in iothread_poll(dom) if entry[0] == iothread_id), None)


def _invalid(detail: str, domain: int = FROM) -> Exception:
    return report(C.VIR_ERR_INVALID_ARG, domain, detail)


def _cause_unknown() -> Exception:
    """virDispatchError's error when a driver failed without reporting one."""
    message = "An error occurred, but the cause is unknown"
    return E.libvirtError(
        message, (C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_NONE, message, C.VIR_ERR_ERROR, None, None, None, 0, 0)
    )


def _rpc_internal(detail: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, detail)


def _vcpu_bitmap(tree: ET.Element, vcpu: int) -> set[int]:
    """A vCPU's affinity: its pin, else ``<vcpu cpuset>``, else every host CPU."""
    pins = read_cputune(tree).vcpupins
    if vcpu in pins:
        return pins[vcpu]
    cpuset = vcpu_cpuset(tree)
    return cpuset if cpuset is not None else HOST_CPUS


@nonblocking
class DomainCPU(MemoryCore):
    """virDomain* vCPU, pinning, IOThread and CPU statistics answers of test:///default."""

    def _changed(self, dom: Domain, trees: list[ET.Element | None]) -> None:
        """After a change: live figures refreshed, the persistent definition saved."""
        sync_fields(dom)
        if any(tree is config_tree(dom) for tree in trees if tree is not None):
            self.save(dom)

    # --- vCPU counts ------------------------------------------------------------------

    async def domain_get_vcpus_flags(
        self, args: R.remote_domain_get_vcpus_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_vcpus_flags_ret:
        check_flags(args.flags, _VCPU_FLAGS, "testDomainGetVcpusFlags")
        tree, _ = one_def(self.lookup(args.dom), args.flags)
        maximum, current = vcpu_counts(tree)
        return R.remote_domain_get_vcpus_flags_ret(
            num=maximum if args.flags & C.VIR_DOMAIN_VCPU_MAXIMUM else current
        )

    async def domain_get_max_vcpus(
        self, args: R.remote_domain_get_max_vcpus_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_max_vcpus_ret:
        tree, _ = one_def(self.lookup(args.dom), C.VIR_DOMAIN_AFFECT_LIVE)
        return R.remote_domain_get_max_vcpus_ret(num=vcpu_counts(tree)[0])

    async def domain_set_vcpus(self, args: R.remote_domain_set_vcpus_args, ctx: ConnectionContext) -> None:
        self._set_vcpus(args.dom, args.nvcpus, C.VIR_DOMAIN_AFFECT_LIVE)

    async def domain_set_vcpus_flags(
        self, args: R.remote_domain_set_vcpus_flags_args, ctx: ConnectionContext
    ) -> None:
        self._set_vcpus(args.dom, args.nvcpus, args.flags)

    def _set_vcpus(self, ref: R.remote_nonnull_domain, count: int, flags: int) -> None:
        check_flags(flags, _VCPU_FLAGS, "testDomainSetVcpusFlags")
        if count > defaults.MAX_VCPUS:
            raise _invalid(
                f"requested cpu amount exceeds maximum supported amount ({count} > {defaults.MAX_VCPUS})"
            )
        dom = self.lookup(ref)
        live, persistent = both_defs(dom, flags)
        if live is not None and vcpu_counts(live)[0] < count:
            raise _invalid(f"requested cpu amount exceeds maximum ({count} > {vcpu_counts(live)[0]})")
        if persistent is not None and not flags & C.VIR_DOMAIN_VCPU_MAXIMUM:
            maximum = vcpu_counts(persistent)[0]
            if maximum < count:
                raise _invalid(f"requested cpu amount exceeds maximum ({count} > {maximum})")
        if live is not None:
            set_vcpu_counts(live, vcpu_counts(live)[0], count)
        if persistent is not None:
            maximum, current = vcpu_counts(persistent)
            if flags & C.VIR_DOMAIN_VCPU_MAXIMUM:
                # virDomainDefSetVcpusMax: added vCPUs start offline, dropped ones take their pins along.
                set_vcpu_counts(persistent, count, min(current, count))
                tune = read_cputune(persistent)
                tune.vcpupins = {v: cpus for v, cpus in tune.vcpupins.items() if v < count}
                write_cputune(persistent, tune, [t.id for t in read_iothreads(persistent)])
            else:
                set_vcpu_counts(persistent, maximum, count)
        self._changed(dom, [live, persistent])

    # --- vCPU information and pinning -------------------------------------------------

    async def domain_get_vcpus(
        self, args: R.remote_domain_get_vcpus_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_vcpus_ret:
        if args.maxinfo > R.REMOTE_VCPUINFO_MAX:
            raise _rpc_internal("maxinfo > REMOTE_VCPUINFO_MAX")
        if args.maxinfo * args.maplen > R.REMOTE_CPUMAPS_MAX:
            raise _rpc_internal("maxinfo * maplen > REMOTE_CPUMAPS_MAX")
        dom = self.lookup(args.dom)
        if not dom.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "cannot list vcpus for an inactive domain")
        tree = dom.tree
        count = min(max(args.maxinfo, 0), vcpu_counts(tree)[1])
        # "Fake an increasing cpu time value": the wall clock in µs / 10, as the test driver.
        cpu_time = time.time_ns() // 1000 // 10
        maplen = max(args.maplen, 0)
        maps = bytearray(max(args.maxinfo, 0) * maplen)
        info: list[R.remote_vcpu_info] = []
        for vcpu in range(count):
            bits = _vcpu_bitmap(tree, vcpu)
            maps[vcpu * maplen : (vcpu + 1) * maplen] = bitmap_to_bytes(bits, maplen)
            info.append(
                R.remote_vcpu_info(
                    number=vcpu, state=C.VIR_VCPU_RUNNING, cpu_time=cpu_time, cpu=max(bits, default=-1)
                )
            )
        return R.remote_domain_get_vcpus_ret(info=info, cpumaps=bytes(maps))

    async def domain_pin_vcpu(self, args: R.remote_domain_pin_vcpu_args, ctx: ConnectionContext) -> None:
        self._pin_vcpu(args.dom, args.vcpu, args.cpumap, 0)

    async def domain_pin_vcpu_flags(
        self, args: R.remote_domain_pin_vcpu_flags_args, ctx: ConnectionContext
    ) -> None:
        self._pin_vcpu(args.dom, args.vcpu, args.cpumap, args.flags)

    def _pin_vcpu(self, ref: R.remote_nonnull_domain, vcpu: int, cpumap: bytes, flags: int) -> None:
        check_flags(flags, 0, "testDomainPinVcpuFlags")
        dom = self.lookup(ref)
        if not dom.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "cannot pin vcpus on an inactive domain")
        tree = dom.tree
        if vcpu >= vcpu_counts(tree)[1]:
            raise _invalid(f"requested vcpu '{vcpu}' is not present in the domain")
        tune = read_cputune(tree)
        tune.vcpupins[vcpu] = bitmap_from_bytes(cpumap)
        write_cputune(tree, tune, [t.id for t in read_iothreads(tree)])
        self._changed(dom, [tree])

    async def domain_get_vcpu_pin_info(
        self, args: R.remote_domain_get_vcpu_pin_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_vcpu_pin_info_ret:
        if args.ncpumaps > R.REMOTE_VCPUINFO_MAX:
            raise _rpc_internal("ncpumaps > REMOTE_VCPUINFO_MAX")
        if args.ncpumaps * args.maplen > R.REMOTE_CPUMAPS_MAX:
            raise _rpc_internal("maxinfo * maplen > REMOTE_CPUMAPS_MAX")
        tree, _ = one_def(self.lookup(args.dom), args.flags)
        maplen = max(args.maplen, 0)
        maps = bytearray(max(args.ncpumaps, 0) * maplen)
        count = min(vcpu_counts(tree)[0], max(args.ncpumaps, 0))
        for vcpu in range(count):
            maps[vcpu * maplen : (vcpu + 1) * maplen] = bitmap_to_bytes(_vcpu_bitmap(tree, vcpu), maplen)
        return R.remote_domain_get_vcpu_pin_info_ret(cpumaps=bytes(maps), num=count)

    # --- emulator pinning -------------------------------------------------------------

    async def domain_pin_emulator(
        self, args: R.remote_domain_pin_emulator_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _AFFECT, "testDomainPinEmulator")
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        cpus = bitmap_from_bytes(args.cpumap)
        if not cpus:
            raise _invalid("Empty cpu list for pinning")
        tune = read_cputune(tree)
        tune.emulatorpin = cpus
        write_cputune(tree, tune, [t.id for t in read_iothreads(tree)])
        self._changed(dom, [tree])

    async def domain_get_emulator_pin_info(
        self, args: R.remote_domain_get_emulator_pin_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_emulator_pin_info_ret:
        check_flags(args.flags, _AFFECT, "testDomainGetEmulatorPinInfo")
        tree, _ = one_def(self.lookup(args.dom), args.flags)
        if args.maplen > R.REMOTE_CPUMAPS_MAX:
            # libvirtd fills a maplen-byte map, then cannot encode the reply; answer the
            # same without building gigabytes first
            raise E.unset_error()
        cpus = read_cputune(tree).emulatorpin
        if cpus is None:
            cpus = vcpu_cpuset(tree)
        if cpus is None:
            cpus = HOST_CPUS
        return R.remote_domain_get_emulator_pin_info_ret(
            cpumaps=bitmap_to_bytes(cpus, max(args.maplen, 0)), ret=1
        )

    # --- IOThreads --------------------------------------------------------------------

    async def domain_get_iothread_info(
        self, args: R.remote_domain_get_iothread_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_iothread_info_ret:
        check_flags(args.flags, _AFFECT, "testDomainGetIOThreadInfo")
        tree, _ = one_def(self.lookup(args.dom), args.flags)
        pins = read_cputune(tree).iothreadpins
        cpuset = vcpu_cpuset(tree)
        vcpus = vcpu_counts(tree)[1]
        info: list[R.remote_domain_iothread_info] = []
        for thread in read_iothreads(tree):
            if thread.id in pins:
                cpus = pins[thread.id]
            elif cpuset is not None:
                cpus = cpuset
            else:
                # An all-set bitmap as wide as the current vCPU count (libvirt's choice).
                cpus = set(range(vcpus))
            # virBitmapToData: as many bytes as the highest set CPU needs (at least one).
            nbytes = max(cpus) // 8 + 1 if cpus else 1
            info.append(
                R.remote_domain_iothread_info(iothread_id=thread.id, cpumap=bitmap_to_bytes(cpus, nbytes))
            )
        if len(info) > R.REMOTE_IOTHREAD_INFO_MAX:
            detail = f"Too many IOThreads in info: {len(info)} for limit {R.REMOTE_IOTHREAD_INFO_MAX}"
            raise report(C.VIR_ERR_RPC, C.VIR_FROM_RPC, detail)
        return R.remote_domain_get_iothread_info_ret(info=info, ret=len(info))

    def _iothread_target(
        self,
        ref: R.remote_nonnull_domain,
        iothread_id: int,
        flags: int,
        function: str,
        allowed: int = _AFFECT,
    ) -> tuple[Domain, ET.Element]:
        check_flags(flags, allowed, function)
        if iothread_id == 0:
            raise _invalid("invalid value of 0 for iothread_id")
        dom = self.lookup(ref)
        tree, _ = one_def(dom, flags)
        return dom, tree

    async def domain_add_iothread(
        self, args: R.remote_domain_add_iothread_args, ctx: ConnectionContext
    ) -> None:
        dom, tree = self._iothread_target(args.dom, args.iothread_id, args.flags, "testDomainAddIOThread")
        threads = read_iothreads(tree)
        if any(t.id == args.iothread_id for t in threads):
            raise _invalid(
                f"an IOThread is already using iothread_id '{args.iothread_id}'", C.VIR_FROM_DOMAIN
            )
        threads.append(IOThread(args.iothread_id, False, {}))
        write_iothreads(tree, threads)
        iothread_poll(dom).append([args.iothread_id, DEFAULT_POLL_MAX_NS, 0, 0])
        self._changed(dom, [tree])

    async def domain_del_iothread(
        self, args: R.remote_domain_del_iothread_args, ctx: ConnectionContext
    ) -> None:
        dom, tree = self._iothread_target(args.dom, args.iothread_id, args.flags, "testDomainDelIOThread")
        iothread_id = args.iothread_id
        threads = read_iothreads(tree)
        index = next((i for i, t in enumerate(threads) if t.id == iothread_id), None)
        if index is None:
            raise _invalid(f"cannot find IOThread '{iothread_id}' in iothreadids list", C.VIR_FROM_DOMAIN)
        _check_iothread_unused(tree, iothread_id)
        # virDomainIOThreadIDDel: the ids after a removed one are no longer autofilled.
        for later in threads[index + 1 :]:
            later.autofill = False
        del threads[index]
        tune = read_cputune(tree)
        tune.iothreadpins.pop(iothread_id, None)
        write_iothreads(tree, threads)
        write_cputune(tree, tune, [t.id for t in threads])
        entry = _poll_entry(dom, iothread_id)
        if entry is not None:
            iothread_poll(dom).remove(entry)
        self._changed(dom, [tree])

    async def domain_pin_iothread(
        self, args: R.remote_domain_pin_iothread_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _AFFECT, "testDomainPinIOThread")
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        cpus = bitmap_from_bytes(args.cpumap)
        if not cpus:
            raise _invalid("Empty iothread cpumap list for pinning")
        threads = read_iothreads(tree)
        thread = next((t for t in threads if t.id == args.iothreads_id), None)
        if thread is None:
            raise _invalid(f"iothreadid {args.iothreads_id} not found")
        thread.autofill = False
        tune = read_cputune(tree)
        tune.iothreadpins[thread.id] = cpus
        write_iothreads(tree, threads)
        write_cputune(tree, tune, [t.id for t in threads])
        self._changed(dom, [tree])

    async def domain_set_iothread_params(
        self, args: R.remote_domain_set_iothread_params_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_IOTHREAD_PARAMS_MAX)
        dom, tree = self._iothread_target(
            args.dom, args.iothread_id, args.flags, "testDomainSetIOThreadParams", C.VIR_DOMAIN_AFFECT_LIVE
        )
        if not any(t.id == args.iothread_id for t in read_iothreads(tree)):
            raise _invalid(f"cannot find IOThread '{args.iothread_id}' in iothreadids")
        poll = _poll_entry(dom, args.iothread_id)
        if poll is None:
            # Only IOThreads added through the API have polling state in the test
            # driver; for others it fails without saying why, and the public API
            # fills in its generic error.
            raise _cause_unknown()
        validate(params, IOTHREAD_PARAM_TYPES)
        values: dict[str, Any] = {name: value for name, _, value in params}
        for slot, name in enumerate(IOTHREAD_PARAM_TYPES, start=1):
            if name in values:
                poll[slot] = int(values[name])

    # --- CPU statistics ---------------------------------------------------------------

    async def domain_get_cpu_stats(
        self, args: R.remote_domain_get_cpu_stats_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_cpu_stats_ret:
        if args.nparams > R.REMOTE_NODE_CPU_STATS_MAX:
            raise _rpc_internal("nparams too large")
        if args.ncpus > R.REMOTE_DOMAIN_GET_CPU_STATS_NCPUS_MAX:
            raise _rpc_internal("ncpus too large")
        check_flags(args.flags, C.VIR_TYPED_PARAM_STRING_OKAY, "testDomainGetCPUStats")
        dom = self.lookup(args.dom)
        if not dom.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_DOMAIN, "domain is not running")
        nparams, ncpus = args.nparams, args.ncpus
        slots: list[tuple[str, int] | None] = [None] * max(nparams * ncpus, 0)
        if args.start_cpu == -1:
            if nparams == 0:
                return R.remote_domain_get_cpu_stats_ret(params=[], nparams=len(CPU_STATS_TOTAL))
            filled = CPU_STATS_TOTAL[:nparams]
            slots[: len(filled)] = filled
            count = len(filled)
        else:
            total = defaults.NODE_CORES  # the test driver counts cores, not CPUs
            if nparams == 0 and ncpus != 0:
                return R.remote_domain_get_cpu_stats_ret(params=[], nparams=PERCPU_STATS)
            if ncpus == 0:
                return R.remote_domain_get_cpu_stats_ret(params=[], nparams=total)
            if args.start_cpu >= total:
                raise _invalid(f"start_cpu {args.start_cpu} larger than maximum of {total - 1}")
            percpu = TOTAL_CPU_TIME // total
            for cpu in range(args.start_cpu, min(total, args.start_cpu + ncpus)):
                row = (cpu - args.start_cpu) * nparams
                slots[row] = (C.VIR_DOMAIN_CPU_STATS_CPUTIME, percpu + cpu)
                if nparams > 1:
                    slots[row + 1] = (C.VIR_DOMAIN_CPU_STATS_VCPUTIME, percpu + cpu - VCPU_TIME_OFFSET)
            count = min(nparams, PERCPU_STATS)
        if len(slots) > R.REMOTE_DOMAIN_GET_CPU_STATS_MAX:
            detail = f"too many parameters '{len(slots)}' for limit '{R.REMOTE_DOMAIN_GET_CPU_STATS_MAX}'"
            raise report(C.VIR_ERR_RPC, C.VIR_FROM_NONE, detail)
        params = [
            R.remote_typed_param(
                field=name, value=R.remote_typed_param_value(type=C.VIR_TYPED_PARAM_ULLONG, value=value)
            )
            for slot in slots
            if slot is not None
            for name, value in (slot,)
        ]
        return R.remote_domain_get_cpu_stats_ret(params=params, nparams=count)


def _check_iothread_unused(tree: ET.Element, iothread_id: int) -> None:
    """virDomainDriverDelIOThreadCheck: no disk or controller may still use it."""
    devices = tree.find("devices")
    if devices is None:
        return
    for disk in devices.findall("disk"):
        driver = disk.find("driver")
        if driver is not None and driver.get("iothread") == str(iothread_id):
            target = disk.find("target")
            dst = target.get("dev", "") if target is not None else ""
            raise _invalid(
                f"cannot remove IOThread {iothread_id} since it is being used by disk '{dst}'",
                C.VIR_FROM_DOMAIN,
            )
    for controller in devices.findall("controller"):
        driver = controller.find("driver")
        if driver is not None and driver.get("iothread") == str(iothread_id):
            raise _invalid(
                f"cannot remove IOThread '{iothread_id}' since it is being used by controller",
                C.VIR_FROM_DOMAIN,
            )
