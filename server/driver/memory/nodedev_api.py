"""Node device procedures of the memory driver: libvirt's test driver (testNodeDevice*).

The test driver can list and describe its devices, create a vHBA (mocked as a
copy of ``scsi_host11`` named ``scsi_host12``) and destroy one; it has no
define/undefine/start/autostart and no SCSI-host-by-WWN lookup, so those stay
VIR_ERR_NO_SUPPORT as libvirt answers.  Created vHBAs are transient (as on a
real host), so nothing of this family is written to the state directory.
"""

from __future__ import annotations

from pathlib import Path

from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore
from .nodedevs import (
    CAP_FILTERS,
    CAP_TYPES,
    FROM,
    NodeDevice,
    default_devices,
    parse_create_xml,
    parse_node_device_xml,
)
from .nodexml import NodeDescription

# The device the test driver copies to mock a new vHBA, and the copy's name.
_VHBA_TEMPLATE = "scsi_host11"
_VHBA_NAME = "scsi_host12"


def _ref(name: str) -> R.remote_nonnull_node_device:
    return R.remote_nonnull_node_device(name=name)


def _generic_failure() -> libvirtError:
    """virDispatchError's stand-in when a driver failed without an error (virErrorGenericFailure).

    libvirtd's public API layer fills it in before the RPC layer sees the failure.
    """
    message = "An error occurred, but the cause is unknown"
    return libvirtError(
        message, (C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_NONE, message, C.VIR_ERR_ERROR, None, None, None, 0, 0)
    )


def _could_not_find_parent(name: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"Could not find parent device for '{name}'")


@nonblocking
class NodeDeviceAPI(MemoryCore):
    """virNodeDevice* answers of test:///default."""

    _nodedevs: dict[str, NodeDevice]

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__(hostname=hostname, state_dir=state_dir, seed_defaults=seed_defaults, node=node)
        if node is not None:
            # testParseNodedevs: a node file's devices replace the default ones (read at boot,
            # so a bad one stops the server).
            devices = [parse_node_device_xml(xml) for xml in node.devices]
            self._nodedevs = {d.name: d for d in devices}

    def _devices(self) -> dict[str, NodeDevice]:
        # Built on first use: MemoryCore's constructor is shared by every family.
        devices: dict[str, NodeDevice] | None = getattr(self, "_nodedevs", None)
        if devices is None:
            devices = self._nodedevs = {d.name: d for d in default_devices()}
        return devices

    def _device(self, name: str) -> NodeDevice:
        device = self._devices().get(name)
        if device is None:
            detail = f"no node device with matching name '{name}'"
            raise report(C.VIR_ERR_NO_NODE_DEVICE, C.VIR_FROM_TEST, detail)
        return device

    def _with_cap(self, cap: str | None) -> list[NodeDevice]:
        # An unknown capability name matches nothing (virNodeDeviceObjHasCapStr).
        return [d for d in self._devices().values() if cap is None or d.has_cap(cap)]

    # --- listing -------------------------------------------------------------------------------

    async def node_num_of_devices(
        self, args: R.remote_node_num_of_devices_args, ctx: ConnectionContext
    ) -> R.remote_node_num_of_devices_ret:
        check_flags(args.flags, 0, "testNodeNumOfDevices")
        return R.remote_node_num_of_devices_ret(num=len(self._with_cap(args.cap)))

    async def node_list_devices(
        self, args: R.remote_node_list_devices_args, ctx: ConnectionContext
    ) -> R.remote_node_list_devices_ret:
        check_flags(args.flags, 0, "testNodeListDevices")
        names = [d.name for d in self._with_cap(args.cap)]
        return R.remote_node_list_devices_ret(names=names[: max(args.maxnames, 0)])

    async def connect_list_all_node_devices(
        self, args: R.remote_connect_list_all_node_devices_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_node_devices_ret:
        flags = args.flags
        check_flags(flags, CAP_FILTERS, "testConnectListAllNodeDevices")
        wanted = [cap for bit, cap in enumerate(CAP_TYPES) if flags & (1 << bit)]
        found = [d for d in self._devices().values() if not wanted or any(d.has_cap(c) for c in wanted)]
        refs = [_ref(d.name) for d in found] if args.need_results else []
        return R.remote_connect_list_all_node_devices_ret(devices=refs, ret=len(found))

    # --- one device ------------------------------------------------------------------------------

    async def node_device_lookup_by_name(
        self, args: R.remote_node_device_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_node_device_lookup_by_name_ret:
        return R.remote_node_device_lookup_by_name_ret(dev=_ref(self._device(args.name).name))

    async def node_device_get_xml_desc(
        self, args: R.remote_node_device_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_node_device_get_xml_desc_ret:
        check_flags(args.flags, 0, "testNodeDeviceGetXMLDesc")
        return R.remote_node_device_get_xml_desc_ret(xml=self._device(args.name).format())

    async def node_device_get_parent(
        self, args: R.remote_node_device_get_parent_args, ctx: ConnectionContext
    ) -> R.remote_node_device_get_parent_ret:
        # libvirtd answers a device without a parent with no name, not an error.
        return R.remote_node_device_get_parent_ret(parentName=self._device(args.name).parent)

    async def node_device_num_of_caps(
        self, args: R.remote_node_device_num_of_caps_args, ctx: ConnectionContext
    ) -> R.remote_node_device_num_of_caps_ret:
        return R.remote_node_device_num_of_caps_ret(num=len(self._device(args.name).caps))

    async def node_device_list_caps(
        self, args: R.remote_node_device_list_caps_args, ctx: ConnectionContext
    ) -> R.remote_node_device_list_caps_ret:
        names = [cap.type for cap in self._device(args.name).caps]
        return R.remote_node_device_list_caps_ret(names=names[: max(args.maxnames, 0)])

    # --- vHBA create and destroy -------------------------------------------------------------

    async def node_device_create_xml(
        self, args: R.remote_node_device_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_node_device_create_xml_ret:
        check_flags(args.flags, C.VIR_NODE_DEVICE_CREATE_XML_VALIDATE, "testNodeDeviceCreateXML")
        wanted = parse_create_xml(
            args.xml_desc, validate=bool(args.flags & C.VIR_NODE_DEVICE_CREATE_XML_VALIDATE)
        )
        wwnn, wwpn = wanted.fc_wwns()
        self._check_parent_host(wanted)
        template = self._devices().get(_VHBA_TEMPLATE)
        if template is None:
            raise _generic_failure()
        made = template.copy()
        made.name = _VHBA_NAME
        for cap in made.caps:
            host = cap.scsi_host
            if host is not None and host.fc_host:
                host.wwnn, host.wwpn = wwnn, wwpn
            elif host is not None:
                host.host += 1
                host.unique_id += 1
        self._devices()[made.name] = made
        self.node_device_events.lifecycle(_ref(made.name), C.VIR_NODE_DEVICE_EVENT_CREATED, 0)
        return R.remote_node_device_create_xml_ret(dev=_ref(made.name))

    def _check_parent_host(self, wanted: NodeDevice) -> None:
        """virNodeDeviceObjListGetParentHost: the parent must exist and do vport operations."""
        devices = list(self._devices().values())
        parent: NodeDevice | None
        if wanted.parent is not None:
            parent = self._devices().get(wanted.parent)
        elif wanted.parent_wwnn and wanted.parent_wwpn:
            parent = next((d for d in devices if _has_wwns(d, wanted.parent_wwnn, wanted.parent_wwpn)), None)
        elif wanted.parent_fabric_wwn:
            parent = next((d for d in devices if _has_fabric(d, wanted.parent_fabric_wwn)), None)
        else:
            parent = next((d for d in devices if d.has_cap("vports")), None)
            if parent is None:
                raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "Could not find any vport capable device")
        if parent is None:
            raise _could_not_find_parent(wanted.name)
        if not any(c.scsi_host is not None and c.scsi_host.vport_ops for c in parent.caps):
            raise report(
                C.VIR_ERR_INTERNAL_ERROR,
                FROM,
                f"Parent device {parent.name} is not capable of vport operations",
            )

    async def node_device_destroy(
        self, args: R.remote_node_device_destroy_args, ctx: ConnectionContext
    ) -> None:
        device = self._device(args.name)
        # testNodeDeviceDestroy reports these failures but still returns success,
        # so libvirtd answers success and nothing changes.
        try:
            device.fc_wwns()
        except Exception:
            return
        if device.parent is None or device.parent not in self._devices():
            return
        del self._devices()[device.name]
        self.node_device_events.lifecycle(_ref(device.name), C.VIR_NODE_DEVICE_EVENT_DELETED, 0)


def _has_wwns(device: NodeDevice, wwnn: str, wwpn: str) -> bool:
    return any(
        c.scsi_host is not None
        and c.scsi_host.fc_host
        and c.scsi_host.wwnn == wwnn
        and c.scsi_host.wwpn == wwpn
        for c in device.caps
    )


def _has_fabric(device: NodeDevice, fabric: str) -> bool:
    return any(
        c.scsi_host is not None and c.scsi_host.fc_host and c.scsi_host.fabric_wwn == fabric
        for c in device.caps
    )
