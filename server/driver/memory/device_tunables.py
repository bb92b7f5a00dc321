"""Per-device tunables of test:///default: a disk's ``<iotune>``, an interface's ``<bandwidth>``.

Devices are found as libvirt finds them (virDomainDiskByName, virDomainNetFind);
each change is written into the device element as domain_conf formats it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, MemoryCore
from .domdefs import config_tree, element, one_def
from .model import Domain
from .paramcheck import Param, first, received, serialise, too_many, validate

_AFFECT = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG
_GET_FLAGS = _AFFECT | C.VIR_TYPED_PARAM_STRING_OKAY

# The <iotune> fields in libvirt's order; each typed parameter has the child's name.
_RATES = (
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
)
IOTUNE_FIELDS = (
    *_RATES,
    *(f"{rate}_max" for rate in _RATES),
    "size_iops_sec",
    "group_name",
    *(f"{rate}_max_length" for rate in _RATES),
)
IOTUNE_LIMIT = 1000000000000000  # TEST_BLOCK_IOTUNE_MAX
_IOTUNE_TYPES = {
    name: C.VIR_TYPED_PARAM_STRING if name == "group_name" else C.VIR_TYPED_PARAM_ULLONG
    for name in IOTUNE_FIELDS
}

# Interface bandwidth parameters: (typed parameter, direction, attribute).
BANDWIDTH_PARAMS = (
    (C.VIR_DOMAIN_BANDWIDTH_IN_AVERAGE, "inbound", "average"),
    (C.VIR_DOMAIN_BANDWIDTH_IN_PEAK, "inbound", "peak"),
    (C.VIR_DOMAIN_BANDWIDTH_IN_BURST, "inbound", "burst"),
    (C.VIR_DOMAIN_BANDWIDTH_IN_FLOOR, "inbound", "floor"),
    (C.VIR_DOMAIN_BANDWIDTH_OUT_AVERAGE, "outbound", "average"),
    (C.VIR_DOMAIN_BANDWIDTH_OUT_PEAK, "outbound", "peak"),
    (C.VIR_DOMAIN_BANDWIDTH_OUT_BURST, "outbound", "burst"),
)
_RATE_ATTRS = ("average", "peak", "floor", "burst")  # the order virNetDevBandwidthRateFormat prints
# Interface children that come before <bandwidth> in virDomainNetDefFormat.
_BEFORE_BANDWIDTH = frozenset({"mac", "source", "vlan", "virtualport"})
_MAC = re.compile(r"^([0-9A-Fa-f]{1,2}:){5}[0-9A-Fa-f]{1,2}(?=[\x00- ]|$)")


def find_disk(tree: ET.Element, name: str, allow_ambiguous: bool) -> ET.Element | None:
    """virDomainDiskByName: by target dev, or (a name with a leading '/') by source path."""
    candidate: ET.Element | None = None
    for disk in tree.findall("devices/disk"):
        if not name.startswith("/"):
            target = disk.find("target")
            if target is not None and target.get("dev") == name:
                return disk
            continue
        source = disk.find("source")
        path = None
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("dir") or source.get("name")
        if path == name:
            if allow_ambiguous:
                return disk
            if candidate is not None:
                return None
            candidate = disk
    return candidate


def _mac_bytes(text: str) -> bytes | None:
    """virMacAddrParse: six 1-2 digit hex groups, anything at or below ' ' may follow."""
    match = _MAC.match(text)
    if match is None:
        return None
    return bytes(int(part, 16) for part in match.group(0).split(":"))


def find_interface(tree: ET.Element, device: str) -> ET.Element:
    """virDomainNetFind: by MAC address if ``device`` is one, else by target dev."""
    mac = _mac_bytes(device)
    for net in tree.findall("devices/interface"):
        if mac is not None:
            given = net.find("mac")
            if given is not None and _mac_bytes(given.get("address", "")) == mac:
                return net
        else:
            target = net.find("target")
            if target is not None and target.get("dev") == device:
                return net
    raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"'{device}' is not a known interface")


def read_iotune(disk: ET.Element) -> dict[str, int | str | None]:
    section = disk.find("iotune")
    values: dict[str, int | str | None] = {name: 0 for name in IOTUNE_FIELDS}
    values["group_name"] = None
    if section is not None:
        for child in section:
            if child.tag == "group_name":
                values["group_name"] = child.text or ""
            elif child.tag in values:
                values[child.tag] = int((child.text or "0").strip() or 0)
    return values


def write_iotune(disk: ET.Element, values: dict[str, int | str | None]) -> None:
    """virDomainDiskDefFormatIotune, placed right after the disk's ``<target>``."""
    section = ET.Element("iotune")
    for name in IOTUNE_FIELDS:
        value = values[name]
        if value is not None if name == "group_name" else value:
            section.append(element(name, str(value)))
    old = disk.find("iotune")
    if old is not None:
        disk.remove(old)
    if not len(section):
        return
    target = disk.find("target")
    index = list(disk).index(target) + 1 if target is not None else len(disk)
    disk.insert(index, section)


def read_bandwidth(net: ET.Element) -> dict[str, dict[str, int]] | None:
    """An interface's bandwidth: direction -> rate attributes; None when it has none."""
    section = net.find("bandwidth")
    if section is None:
        return None
    out: dict[str, dict[str, int]] = {}
    for direction in ("inbound", "outbound"):
        rate = section.find(direction)
        if rate is not None:
            out[direction] = {attr: int(rate.get(attr, "0")) for attr in _RATE_ATTRS}
    return out


def write_bandwidth(net: ET.Element, bandwidth: dict[str, dict[str, int]] | None) -> None:
    old = net.find("bandwidth")
    index = None
    if old is not None:
        index = list(net).index(old)
        net.remove(old)
    if bandwidth is None:
        return
    section = ET.Element("bandwidth")
    for direction in ("inbound", "outbound"):
        rate = bandwidth.get(direction)
        if rate is not None and (rate["average"] or rate["floor"]):
            attrs = {attr: str(rate[attr]) for attr in _RATE_ATTRS if rate[attr]}
            section.append(element(direction, **attrs))
    if index is None:
        index = 0
        for i, child in enumerate(net):
            if child.tag in _BEFORE_BANDWIDTH:
                index = i + 1
    net.insert(index, section)


@nonblocking
class DeviceTunables(MemoryCore):
    """virDomain{Get,Set}{BlockIoTune,InterfaceParameters} answers of test:///default."""

    def _saved(self, dom: Domain, tree: ET.Element) -> None:
        if tree is config_tree(dom):
            self.save(dom)

    # --- block I/O tuning -------------------------------------------------------------------

    async def domain_set_block_io_tune(
        self, args: R.remote_domain_set_block_io_tune_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_BLOCK_IO_TUNE_PARAMETERS_MAX)
        check_flags(args.flags, _AFFECT, "testDomainSetBlockIoTune")
        validate(params, _IOTUNE_TYPES)
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        disk = find_disk(tree, args.disk, True)
        if disk is None:
            detail = f"missing persistent configuration for disk '{args.disk}'"
            raise report(C.VIR_ERR_INVALID_ARG, FROM, detail)
        info = read_iotune(disk)
        for name, type_code, value in params:
            if type_code != C.VIR_TYPED_PARAM_STRING and int(value) > IOTUNE_LIMIT:
                detail = f"block I/O throttle limit value must be no more than {IOTUNE_LIMIT}"
                raise report(C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, detail)
            info[name] = str(value) if type_code == C.VIR_TYPED_PARAM_STRING else int(value)
        for suffix in ("", "_max"):
            for unit in ("bytes_sec", "iops_sec"):
                total = info[f"total_{unit}{suffix}"]
                if total and (info[f"read_{unit}{suffix}"] or info[f"write_{unit}{suffix}"]):
                    detail = f"total and read/write of {unit}{suffix} cannot be set at the same time"
                    raise report(C.VIR_ERR_INVALID_ARG, FROM, detail)
        for rate in _RATES:
            if int(info[rate] or 0) > int(info[f"{rate}_max"] or 0):
                raise report(C.VIR_ERR_INVALID_ARG, FROM, f"{rate} cannot be set higher than {rate}_max ")
        write_iotune(disk, info)
        self._saved(dom, tree)

    async def domain_get_block_io_tune(
        self, args: R.remote_domain_get_block_io_tune_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_block_io_tune_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_BLOCK_IO_TUNE_PARAMETERS_MAX)
        check_flags(args.flags, _GET_FLAGS, "testDomainGetBlockIoTune")
        if args.nparams == 0:
            return R.remote_domain_get_block_io_tune_ret(params=[], nparams=len(IOTUNE_FIELDS))
        tree, _ = one_def(self.lookup(args.dom), args.flags & _AFFECT)
        disk = find_disk(tree, args.disk or "", True)
        if disk is None:
            detail = f"disk '{args.disk or ''}' was not found in the domain config"
            raise report(C.VIR_ERR_INVALID_ARG, FROM, detail)
        info = read_iotune(disk)
        values: list[Param] = [
            (name, C.VIR_TYPED_PARAM_STRING, str(info[name] or ""))
            if name == "group_name"
            else (name, C.VIR_TYPED_PARAM_ULLONG, int(info[name] or 0))
            for name in IOTUNE_FIELDS
        ]
        params = serialise(
            first(values, args.nparams), args.flags, R.REMOTE_DOMAIN_BLOCK_IO_TUNE_PARAMETERS_MAX
        )
        return R.remote_domain_get_block_io_tune_ret(params=params, nparams=0)

    # --- interface bandwidth ----------------------------------------------------------------

    async def domain_set_interface_parameters(
        self, args: R.remote_domain_set_interface_parameters_args, ctx: ConnectionContext
    ) -> None:
        params = received(args.params, R.REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX)
        check_flags(args.flags, _AFFECT, "testDomainSetInterfaceParameters")
        validate(params, {name: C.VIR_TYPED_PARAM_UINT for name, _, _ in BANDWIDTH_PARAMS})
        dom = self.lookup(args.dom)
        tree, _ = one_def(dom, args.flags)
        net = find_interface(tree, args.device)
        given = {name: int(value) for name, _, value in params}
        new: dict[str, dict[str, int] | None] = {
            "inbound": dict.fromkeys(_RATE_ATTRS, 0),
            "outbound": dict.fromkeys(_RATE_ATTRS, 0),
        }
        for name, direction, attr in BANDWIDTH_PARAMS:
            if name in given:
                rates = new[direction]
                assert rates is not None
                rates[attr] = given[name]
        inbound_specified = any(
            n in given for n in (C.VIR_DOMAIN_BANDWIDTH_IN_AVERAGE, C.VIR_DOMAIN_BANDWIDTH_IN_FLOOR)
        )
        outbound_specified = C.VIR_DOMAIN_BANDWIDTH_OUT_AVERAGE in given
        inbound, outbound = new["inbound"], new["outbound"]
        # Average (or, inbound, floor) is mandatory; without it the direction is dropped.
        if inbound is not None and not inbound["average"] and not inbound["floor"]:
            new["inbound"] = None
        if outbound is not None and not outbound["average"]:
            new["outbound"] = None
        current = read_bandwidth(net)
        if current is None:
            result = {d: r for d, r in new.items() if r is not None}
        else:
            result = dict(current)
            for direction, specified in (("inbound", inbound_specified), ("outbound", outbound_specified)):
                rate = new[direction]
                if rate is not None:
                    result[direction] = rate
                elif specified:
                    result.pop(direction, None)
        write_bandwidth(net, result)
        self._saved(dom, tree)

    async def domain_get_interface_parameters(
        self, args: R.remote_domain_get_interface_parameters_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_interface_parameters_ret:
        too_many(args.nparams, R.REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX)
        check_flags(args.flags, _GET_FLAGS, "testDomainGetInterfaceParameters")
        if args.nparams == 0:
            return R.remote_domain_get_interface_parameters_ret(params=[], nparams=len(BANDWIDTH_PARAMS))
        tree, _ = one_def(self.lookup(args.dom), args.flags & _AFFECT)
        bandwidth = read_bandwidth(find_interface(tree, args.device)) or {}
        values: list[Param] = [
            (name, C.VIR_TYPED_PARAM_UINT, bandwidth.get(direction, {}).get(attr, 0))
            for name, direction, attr in BANDWIDTH_PARAMS
        ]
        params = serialise(first(values, args.nparams), args.flags, R.REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX)
        return R.remote_domain_get_interface_parameters_ret(params=params, nparams=0)
