"""What the test driver answers for a guest agent and the guest's hardware.

Guest time, frozen filesystems, filesystem info, interface addresses, disk
errors, keys, NMIs, memory peeks, passwords, resets and process signals: the
test driver keeps a fake guest clock (627319920 s at first) and the frozen state
of two mount points (``/`` and ``/boot``) per domain, and derives everything
else from the domain's definition.  The per-domain state lives in
``Domain.extra`` and survives stop/start, as the test driver's private data does.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, operation_invalid
from .model import Domain
from .network_api import NetworkAPI
from .network_ip import ip_prefix

_MOUNTS = ("/", "/boot")  # the guest's two filesystems, on the first disk
_BOOT_TIME_S = 627319920  # testDomainObjPrivateAlloc's guest clock
_GUEST = "guest_agent"  # Domain.extra key of the GuestState below


@dataclass(slots=True)
class GuestState:
    """The test driver's per-domain private data that guest calls use."""

    seconds: int = _BOOT_TIME_S
    nseconds: int = 0
    frozen: list[bool] = field(default_factory=lambda: [False, False])


def guest_state(dom: Domain) -> GuestState:
    state = dom.extra.get(_GUEST)
    if not isinstance(state, GuestState):
        state = dom.extra[_GUEST] = GuestState()
    return state


def _running(dom: Domain) -> Domain:
    """virDomainObjCheckActive."""
    if not dom.active:
        raise operation_invalid("domain is not running")
    return dom


def _mount_not_found(mountpoint: str) -> Exception:
    return operation_invalid(f"mount point not found: {mountpoint}", FROM)


def disk_targets(tree: ET.Element, device: str | None = None) -> list[str]:
    """The ``<target dev>`` of every disk, in order (only ``device`` disks if given)."""
    targets: list[str] = []
    for disk in tree.findall("devices/disk"):
        if device is not None and disk.get("device", "disk") != device:
            continue
        target = disk.find("target")
        targets.append(target.get("dev", "") if target is not None else "")
    return targets


@nonblocking
class GuestAPI(NetworkAPI):
    """virDomainGetTime/SetTime/FS*/InterfaceAddresses/GetDiskErrors/SendKey/... of test:///default."""

    # --- the guest clock -----------------------------------------------------------------

    async def domain_get_time(
        self, args: R.remote_domain_get_time_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_time_ret:
        check_flags(args.flags, 0, "testDomainGetTime")
        dom = self.lookup(args.dom)
        if dom.state != C.VIR_DOMAIN_RUNNING:
            raise operation_invalid("domain is not running", FROM)
        state = guest_state(dom)
        return R.remote_domain_get_time_ret(seconds=state.seconds, nseconds=state.nseconds)

    async def domain_set_time(self, args: R.remote_domain_set_time_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, C.VIR_DOMAIN_TIME_SYNC, "testDomainSetTime")
        state = guest_state(_running(self.lookup(args.dom)))
        state.seconds, state.nseconds = args.seconds, args.nseconds

    # --- filesystems ---------------------------------------------------------------------

    async def domain_fsfreeze(
        self, args: R.remote_domain_fsfreeze_args, ctx: ConnectionContext
    ) -> R.remote_domain_fsfreeze_ret:
        check_flags(args.flags, 0, "testDomainFSFreeze")
        state = guest_state(_running(self.lookup(args.dom)))
        return R.remote_domain_fsfreeze_ret(filesystems=_set_frozen(state, args.mountpoints, True))

    async def domain_fsthaw(
        self, args: R.remote_domain_fsthaw_args, ctx: ConnectionContext
    ) -> R.remote_domain_fsthaw_ret:
        check_flags(args.flags, 0, "testDomainFSThaw")
        state = guest_state(_running(self.lookup(args.dom)))
        return R.remote_domain_fsthaw_ret(filesystems=_set_frozen(state, args.mountpoints, False))

    async def domain_fstrim(self, args: R.remote_domain_fstrim_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, 0, "testDomainFSTrim")
        _running(self.lookup(args.dom))
        if args.mountPoint is not None and args.mountPoint not in _MOUNTS:
            raise _mount_not_found(args.mountPoint)

    async def domain_get_fsinfo(
        self, args: R.remote_domain_get_fsinfo_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_fsinfo_ret:
        check_flags(args.flags, 0, "testDomainGetFSInfo")
        dom = _running(self.lookup(args.dom))
        disks = disk_targets(dom.tree, "disk")
        if not disks:
            return R.remote_domain_get_fsinfo_ret(info=[], ret=0)
        name = disks[0]
        info = [
            R.remote_domain_fsinfo(mountpoint=mount, name=f"{name}{n}", fstype="ext4", dev_aliases=[name])
            for n, mount in enumerate(_MOUNTS, start=1)
        ]
        return R.remote_domain_get_fsinfo_ret(info=info, ret=len(info))

    # --- devices seen from the guest -----------------------------------------------------

    async def domain_interface_addresses(
        self, args: R.remote_domain_interface_addresses_args, ctx: ConnectionContext
    ) -> R.remote_domain_interface_addresses_ret:
        if ctx.readonly and args.source == C.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT:
            # virDomainInterfaceAddresses refuses only the agent read-only (the spec allows the call).
            raise E.operation_denied("virDomainInterfaceAddresses")
        check_flags(args.flags, 0, "testDomainInterfaceAddresses")
        if args.source >= C.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LAST:
            raise report(
                C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, f"Unknown IP address data source {args.source}"
            )
        dom = _running(self.lookup(args.dom))
        ifaces: list[R.remote_domain_interface] = []
        for index, net in enumerate(dom.tree.findall("devices/interface")):
            mac = net.find("mac")
            target = net.find("target")
            if net.get("type") == "network":
                source = net.find("source")
                network = source.get("network", "") if source is not None else ""
                addr = self._network_lease(network, 20 * (dom.id - 1) + index + 1)
            else:
                addr = R.remote_domain_ip_addr(
                    type=C.VIR_IP_ADDR_TYPE_IPV4, addr=f"192.168.0.{1 + index}", prefix=24
                )
            ifaces.append(
                R.remote_domain_interface(
                    name=target.get("dev", "") if target is not None else "",
                    hwaddr=mac.get("address", "").lower() if mac is not None else None,
                    addrs=[addr],
                )
            )
        return R.remote_domain_interface_addresses_ret(ifaces=ifaces)

    def _network_lease(self, network: str, offset: int) -> R.remote_domain_ip_addr:
        """testDomainInterfaceAddressFromNet: the network's first DHCP range start (else its
        address) plus ``offset``, with the network's prefix."""
        ip = self._network_by_name(network).defn.tree.find("ip")
        if ip is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"network '{network}' has no IP address")
        range_el = ip.find("dhcp/range")
        start: str | None = range_el.get("start") if range_el is not None else None
        text: str = start if start else ip.get("address", "")
        base = ipaddress.ip_address(text)
        prefix = ip_prefix(ip)
        if ip.get("family") == "ipv6":
            # libvirt adds to the last byte alone (it wraps within it).
            packed = bytearray(base.packed)
            packed[15] = (packed[15] + offset) & 0xFF
            return R.remote_domain_ip_addr(
                type=C.VIR_IP_ADDR_TYPE_IPV6, addr=str(ipaddress.IPv6Address(bytes(packed))), prefix=prefix
            )
        value = (int(base) + offset) & 0xFFFFFFFF
        return R.remote_domain_ip_addr(
            type=C.VIR_IP_ADDR_TYPE_IPV4, addr=str(ipaddress.IPv4Address(value)), prefix=prefix
        )

    async def domain_get_disk_errors(
        self, args: R.remote_domain_get_disk_errors_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_disk_errors_ret:
        if args.maxerrors > R.REMOTE_DOMAIN_DISK_ERRORS_MAX:
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, "maxerrors too large")
        check_flags(args.flags, 0, "testDomainGetDiskErrors")
        dom = _running(self.lookup(args.dom))
        disks = disk_targets(dom.tree)
        if not args.maxerrors:
            return R.remote_domain_get_disk_errors_ret(errors=[], nerrors=len(disks))
        # The test driver cycles through the error kinds: UNSPEC, NO_SPACE, UNSPEC ...
        kinds = C.VIR_DOMAIN_DISK_ERROR_LAST - 1
        errors = [
            R.remote_domain_disk_error(disk=disk, error=i % kinds + 1)
            for i, disk in enumerate(disks[: args.maxerrors])
        ]
        return R.remote_domain_get_disk_errors_ret(errors=errors, nerrors=len(errors))

    # --- input and signals ---------------------------------------------------------------

    async def domain_inject_nmi(self, args: R.remote_domain_inject_nmi_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, 0, "testDomainInjectNMI")
        _running(self.lookup(args.dom))

    async def domain_send_key(self, args: R.remote_domain_send_key_args, ctx: ConnectionContext) -> None:
        # virDomainSendKey's own checks run in the daemon before the driver's.
        if not args.keycodes:
            raise E.invalid_argument(
                "virDomainSendKey", "nkeycodes", _positive("nkeycodes"), C.VIR_FROM_DOMAIN
            )
        if args.codeset >= C.VIR_KEYCODE_SET_LAST:
            raise E.invalid_argument(
                "virDomainSendKey", "codeset", f"Unsupported codeset '{args.codeset}'", C.VIR_FROM_DOMAIN
            )
        if len(args.keycodes) > C.VIR_DOMAIN_SEND_KEY_MAX_KEYS:
            raise E.invalid_argument(
                "virDomainSendKey",
                "nkeycodes",
                f"nkeycodes must be <= {C.VIR_DOMAIN_SEND_KEY_MAX_KEYS}",
                C.VIR_FROM_DOMAIN,
            )
        check_flags(args.flags, 0, "testDomainSendKey")
        _running(self.lookup(args.dom))

    async def domain_send_process_signal(
        self, args: R.remote_domain_send_process_signal_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testDomainSendProcessSignal")
        if args.pid_value != 1:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, "only sending a signal to pid 1 is supported")
        if args.signum >= C.VIR_DOMAIN_PROCESS_SIGNAL_LAST:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, f"signum value {args.signum} is out of range")
        self.lookup(args.dom)

    async def domain_set_user_password(
        self, args: R.remote_domain_set_user_password_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, C.VIR_DOMAIN_PASSWORD_ENCRYPTED, "testDomainSetUserPassword")
        _running(self.lookup(args.dom))

    async def domain_reset(self, args: R.remote_domain_reset_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, 0, "testDomainReset")
        _running(self.lookup(args.dom))

    async def domain_memory_peek(
        self, args: R.remote_domain_memory_peek_args, ctx: ConnectionContext
    ) -> R.remote_domain_memory_peek_ret:
        if args.size > R.REMOTE_DOMAIN_MEMORY_PEEK_BUFFER_MAX:
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, "size > maximum buffer size")
        both = C.VIR_MEMORY_VIRTUAL | C.VIR_MEMORY_PHYSICAL
        if args.flags & both == both:  # virDomainMemoryPeek's own check
            raise E.invalid_argument(
                "virDomainMemoryPeek",
                "ctl",
                "Flags 'VIR_MEMORY_VIRTUAL' and 'VIR_MEMORY_PHYSICAL' are mutually exclusive",
                C.VIR_FROM_DOMAIN,
            )
        check_flags(args.flags, both, "testDomainMemoryPeek")
        if args.flags not in (C.VIR_MEMORY_VIRTUAL, C.VIR_MEMORY_PHYSICAL):
            raise report(
                C.VIR_ERR_INVALID_ARG,
                FROM,
                "flags parameter must be VIR_MEMORY_VIRTUAL or VIR_MEMORY_PHYSICAL",
            )
        _running(self.lookup(args.dom))
        # The test driver's memory: each byte is the low byte of its address.
        first = args.offset & 0xFF
        pattern = bytes(range(first, 256)) + bytes(range(first))
        laps = args.size // 256 + 1
        return R.remote_domain_memory_peek_ret(buffer=(pattern * laps)[: args.size])


def _positive(name: str) -> str:
    """virCheckPositiveArgGoto's wording."""
    return f"{name} in virDomainSendKey must be greater than zero"


def _set_frozen(state: GuestState, mountpoints: list[str], freeze: bool) -> int:
    """testDomainFSFreeze/Thaw: how many filesystems changed; all of them when none is named."""
    if not mountpoints:
        changed = sum(1 for frozen in state.frozen if frozen != freeze)
        state.frozen = [freeze, freeze]
        return changed
    wanted = list(state.frozen)
    changed = 0
    for mountpoint in mountpoints:
        if mountpoint not in _MOUNTS:
            raise _mount_not_found(mountpoint)
        index = _MOUNTS.index(mountpoint)
        if wanted[index] != freeze:
            wanted[index] = freeze
            changed += 1
    state.frozen = wanted
    return changed
