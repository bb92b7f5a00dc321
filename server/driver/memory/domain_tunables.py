"""Domain-wide tunables of test:///default: scheduler, blkiotune, perf events, launch security.

Each follows its test* function in libvirt 9.0's test driver (and the
hypervisor/domain_driver.c helpers it calls); blkiotune and perf changes are
written into the definition as domain_conf formats them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore
from .domdefs import config_tree, element, one_def, put_section
from .model import Domain
from .paramcheck import Param, first, received, serialise, too_many, validate

_AFFECT = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG
_GET_FLAGS = _AFFECT | C.VIR_TYPED_PARAM_STRING_OKAY
SCHEDULER_WEIGHT = 50  # what the test driver reports, whatever was set

# VIR_PERF_EVENT_* in enum order (what virDomainGetPerfEvents lists and <perf> prints).
PERF_EVENTS = (
    C.VIR_PERF_PARAM_CMT,
    C.VIR_PERF_PARAM_MBMT,
    C.VIR_PERF_PARAM_MBML,
    C.VIR_PERF_PARAM_CPU_CYCLES,
    C.VIR_PERF_PARAM_INSTRUCTIONS,
    C.VIR_PERF_PARAM_CACHE_REFERENCES,
    C.VIR_PERF_PARAM_CACHE_MISSES,
    C.VIR_PERF_PARAM_BRANCH_INSTRUCTIONS,
    C.VIR_PERF_PARAM_BRANCH_MISSES,
    C.VIR_PERF_PARAM_BUS_CYCLES,
    C.VIR_PERF_PARAM_STALLED_CYCLES_FRONTEND,
    C.VIR_PERF_PARAM_STALLED_CYCLES_BACKEND,
    C.VIR_PERF_PARAM_REF_CPU_CYCLES,
    C.VIR_PERF_PARAM_CPU_CLOCK,
    C.VIR_PERF_PARAM_TASK_CLOCK,
    C.VIR_PERF_PARAM_PAGE_FAULTS,
    C.VIR_PERF_PARAM_CONTEXT_SWITCHES,
    C.VIR_PERF_PARAM_CPU_MIGRATIONS,
    C.VIR_PERF_PARAM_PAGE_FAULTS_MIN,
    C.VIR_PERF_PARAM_PAGE_FAULTS_MAJ,
    C.VIR_PERF_PARAM_ALIGNMENT_FAULTS,
    C.VIR_PERF_PARAM_EMULATION_FAULTS,
)

# Per-device blkio parameters: (typed parameter, <device> child, value limit).
_U32, _U64 = 2**32 - 1, 2**64 - 1
BLKIO_DEVICE_PARAMS = (
    (C.VIR_DOMAIN_BLKIO_DEVICE_WEIGHT, "weight", _U32),
    (C.VIR_DOMAIN_BLKIO_DEVICE_READ_IOPS, "read_iops_sec", _U32),
    (C.VIR_DOMAIN_BLKIO_DEVICE_WRITE_IOPS, "write_iops_sec", _U32),
    (C.VIR_DOMAIN_BLKIO_DEVICE_READ_BPS, "read_bytes_sec", _U64),
    (C.VIR_DOMAIN_BLKIO_DEVICE_WRITE_BPS, "write_bytes_sec", _U64),
)
_BLKIO_TYPES = {
    C.VIR_DOMAIN_BLKIO_WEIGHT: C.VIR_TYPED_PARAM_UINT,
    **{name: C.VIR_TYPED_PARAM_STRING for name, _, _ in BLKIO_DEVICE_PARAMS},
}


@dataclass(slots=True)
class BlkioDevice:
    path: str
    values: dict[str, int]  # <device> child -> value; 0 = unset


def read_blkiotune(tree: ET.Element) -> tuple[int, list[BlkioDevice]]:
    section = tree.find("blkiotune")
    if section is None:
        return 0, []
    weight = int((section.findtext("weight") or "0").strip() or 0)
    devices = [
        BlkioDevice(
            (dev.findtext("path") or "").strip(),
            {child: int((dev.findtext(child) or "0").strip() or 0) for _, child, _ in BLKIO_DEVICE_PARAMS},
        )
        for dev in section.findall("device")
    ]
    return weight, devices


def write_blkiotune(tree: ET.Element, weight: int, devices: list[BlkioDevice]) -> None:
    """virDomainDefFormatBlkiotune: the weight if set, devices with any value set."""
    section = ET.Element("blkiotune")
    if weight:
        section.append(element("weight", str(weight)))
    for device in devices:
        if not any(device.values.values()):
            continue
        dev = ET.SubElement(section, "device")
        dev.append(element("path", device.path))
        for _, child, _ in BLKIO_DEVICE_PARAMS:
            if device.values[child]:
                dev.append(element(child, str(device.values[child])))
    put_section(tree, "blkiotune", section if len(section) else None)


def _strtoul(text: str, limit: int) -> tuple[int, str] | None:
    """virStrToLong_uip/ullp: leading blanks, an optional '+', digits; (value, rest) or None."""
    body = text.lstrip(" \t\n\v\f\r")
    if body.startswith("+"):
        body = body[1:]
    end = 0
    while end < len(body) and body[end].isdigit():
        end += 1
    if end == 0 or int(body[:end]) > limit:
        return None
    return int(body[:end]), body[end:]


def parse_blkio_devices(text: str, param: str, limit: int) -> list[tuple[str, int]]:
    """virDomainDriverParseBlkioDeviceStr: ``path,value[,path,value...]``."""
    if text == "":
        return []
    if not text.count(",") & 1:
        raise report(
            C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"unable to parse blkio device '{param}' '{text}'"
        )
    out: list[tuple[str, int]] = []
    rest = text
    while True:
        path, sep, value_text = rest.partition(",")
        if not sep:
            raise report(
                C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"unable to parse blkio device '{param}' '{text}'"
            )
        parsed = _strtoul(value_text, limit)
        if parsed is None:
            detail = f"invalid value '{value_text}' for parameter '{param}' of device '{path}'"
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, detail)
        value, rest = parsed
        out.append((path, value))
        if rest == "":
            return out
        if not rest.startswith(","):
            raise report(
                C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"unable to parse blkio device '{param}' '{text}'"
            )
        rest = rest[1:]


def read_perf(tree: ET.Element) -> dict[str, bool]:
    """The perf events a definition sets (enabled or not)."""
    return {
        event.get("name", ""): event.get("enabled") == "yes"
        for event in tree.findall("perf/event")
        if event.get("name") in PERF_EVENTS
    }


@nonblocking
class DomainTunables(MemoryCore):
    """virDomain* scheduler, blkio, perf and launch security answers of test:///default."""

    def _saved(self, dom: Domain, tree: ET.Element) -> None:
        if tree is config_tree(dom):
            self.save(dom)

    # --- scheduler ------------------------------------------------------------------------

    async def domain_get_scheduler_parameters(
        self, args: R.remote_domain_get_scheduler_parameters_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_scheduler_parameters_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)
        return R.remote_domain_get_scheduler_parameters_ret(params=self._scheduler(args.dom, 0))

    async def domain_get_scheduler_parameters_flags(
        self, args: R.remote_domain_get_scheduler_parameters_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_scheduler_parameters_flags_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)
        # virDomainGetSchedulerParametersFlags adds STRING_OKAY, which the test driver refuses.
        flags = args.flags | C.VIR_TYPED_PARAM_STRING_OKAY
        return R.remote_domain_get_scheduler_parameters_flags_ret(params=self._scheduler(args.dom, flags))

    def _scheduler(self, ref: R.remote_nonnull_domain, flags: int) -> list[R.remote_typed_param]:
        check_flags(flags, 0, "testDomainGetSchedulerParametersFlags")
        self.lookup(ref)
        weight: Param = (C.VIR_DOMAIN_SCHEDULER_WEIGHT, C.VIR_TYPED_PARAM_UINT, SCHEDULER_WEIGHT)
        return serialise([weight], flags, R.REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)

    async def domain_set_scheduler_parameters(
        self, args: R.remote_domain_set_scheduler_parameters_args, ctx: ConnectionContext
    ) -> None:
        self._set_scheduler(args.dom, args.params, 0)

    async def domain_set_scheduler_parameters_flags(
        self, args: R.remote_domain_set_scheduler_parameters_flags_args, ctx: ConnectionContext
    ) -> None:
        self._set_scheduler(args.dom, args.params, args.flags)

    def _set_scheduler(
        self, ref: R.remote_nonnull_domain, wire: list[R.remote_typed_param], flags: int
    ) -> None:
        params = received(wire, R.REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)
        check_flags(flags, 0, "testDomainSetSchedulerParametersFlags")
        validate(params, {C.VIR_DOMAIN_SCHEDULER_WEIGHT: C.VIR_TYPED_PARAM_UINT})
        # The test driver accepts the weight and keeps reporting its fixed one.
        self.lookup(ref)

    # --- blkiotune --------------------------------------------------------------------------

    async def domain_set_blkio_parameters(
        self, args: R.remote_domain_set_blkio_parameters_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_BLKIO_PARAMETERS_MAX)
        check_flags(args.flags, _AFFECT, "testDomainSetBlkioParameters")
        validate(params, _BLKIO_TYPES)
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        weight, devices = read_blkiotune(tree)
        limits = {name: (child, limit) for name, child, limit in BLKIO_DEVICE_PARAMS}
        failure: Exception | None = None
        # virDomainDriverSetupPersistentDefBlkioParams: a bad entry fails the call
        # but the others (before and after it) still apply.
        for name, _, value in params:
            if name == C.VIR_DOMAIN_BLKIO_WEIGHT:
                weight = int(value)
                continue
            child, limit = limits[name]
            try:
                parsed = parse_blkio_devices(str(value), name, limit)
            except Exception as exc:
                failure = exc
                continue
            for path, number in parsed:
                device = next((d for d in devices if d.path == path), None)
                if device is None:
                    if not number:
                        continue
                    device = BlkioDevice(path, {c: 0 for _, c, _ in BLKIO_DEVICE_PARAMS})
                    devices.append(device)
                device.values[child] = number
        write_blkiotune(tree, weight, devices)
        self._saved(dom, tree)
        if failure is not None:
            raise failure

    async def domain_get_blkio_parameters(
        self, args: R.remote_domain_get_blkio_parameters_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_blkio_parameters_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_BLKIO_PARAMETERS_MAX)
        check_flags(args.flags, _GET_FLAGS, "testDomainGetBlkioParameters")
        if args.nparams == 0:
            return R.remote_domain_get_blkio_parameters_ret(params=[], nparams=1 + len(BLKIO_DEVICE_PARAMS))
        tree, _ = one_def(self.lookup(args.dom), args.flags & _AFFECT)
        weight, devices = read_blkiotune(tree)
        values: list[Param] = [(C.VIR_DOMAIN_BLKIO_WEIGHT, C.VIR_TYPED_PARAM_UINT, weight)]
        for name, child, _ in BLKIO_DEVICE_PARAMS:
            text = ",".join(f"{d.path},{d.values[child]}" for d in devices if d.values[child])
            values.append((name, C.VIR_TYPED_PARAM_STRING, text))
        params = serialise(first(values, args.nparams), args.flags, R.REMOTE_DOMAIN_BLKIO_PARAMETERS_MAX)
        return R.remote_domain_get_blkio_parameters_ret(params=params, nparams=0)

    # --- perf events --------------------------------------------------------------------------

    async def domain_set_perf_events(
        self, args: R.remote_domain_set_perf_events_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_PERF_EVENTS_MAX)
        check_flags(args.flags, _AFFECT, "testDomainSetPerfEvents")
        validate(params, dict.fromkeys(PERF_EVENTS, C.VIR_TYPED_PARAM_BOOLEAN))
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        events = read_perf(tree)
        events.update({name: bool(value) for name, _, value in params})
        section = ET.Element("perf")
        for name in PERF_EVENTS:
            if name in events:
                section.append(element("event", name=name, enabled="yes" if events[name] else "no"))
        put_section(tree, "perf", section if len(section) else None)
        self._saved(dom, tree)

    async def domain_get_perf_events(
        self, args: R.remote_domain_get_perf_events_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_perf_events_ret:
        check_flags(args.flags, _GET_FLAGS, "testDomainGetPerfEvents")
        tree, _ = one_def(self.lookup(args.dom), args.flags & _AFFECT)
        events = read_perf(tree)
        values: list[Param] = [
            (name, C.VIR_TYPED_PARAM_BOOLEAN, events.get(name, False)) for name in PERF_EVENTS
        ]
        return R.remote_domain_get_perf_events_ret(
            params=serialise(values, args.flags, R.REMOTE_DOMAIN_PERF_EVENTS_MAX)
        )

    # --- launch security ----------------------------------------------------------------------

    async def domain_get_launch_security_info(
        self, args: R.remote_domain_get_launch_security_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_launch_security_info_ret:
        # virDomainGetLaunchSecurityInfo adds STRING_OKAY, which the test driver refuses:
        # the call always fails, before the domain is even looked up.
        check_flags(args.flags | C.VIR_TYPED_PARAM_STRING_OKAY, 0, "testDomainGetLaunchSecurityInfo")
        return R.remote_domain_get_launch_security_info_ret(params=[])
