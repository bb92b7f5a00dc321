"""libvirt-python's object classes besides virConnect and virDomain.

Each class is its generated methods (generated.py) plus what libvirt-python
writes by hand: the identity answered locally from the wire reference
(name, UUID, key, ...), list and info shapes, typed parameters as dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from virtwire.client.surface import generated as g
from virtwire.client.surface import shapes
from virtwire.client.surface.base import ObjectHandle, parse_uuid, register, uuid_string
from virtwire.client.surface.streams import StorageVolStreams
from virtwire.protocol.generated import constants as c


class _Named:
    _ref: Any

    def name(self) -> str:
        return str(self._ref.name)


class _WithUUID:
    _ref: Any

    def UUID(self) -> bytes:
        return bytes(self._ref.uuid)

    def UUIDString(self) -> str:
        return uuid_string(self._ref.uuid)


@register
class virNetwork(_Named, _WithUUID, g.virNetworkGenerated, ObjectHandle):
    def autostart(self) -> int:
        return int(self._rpc("NETWORK_GET_AUTOSTART", (self._ref,)).autostart)

    def DHCPLeases(self, mac: str | None = None, flags: int = 0) -> list[dict[str, Any]]:
        ret = self._rpc("NETWORK_GET_DHCP_LEASES", (self._ref, mac, 1, flags), flags)
        return [
            {
                "iface": lease.iface,
                "expirytime": lease.expirytime,
                "type": lease.type,
                "mac": lease.mac,
                "iaid": lease.iaid,
                "ipaddr": lease.ipaddr,
                "prefix": lease.prefix,
                "hostname": lease.hostname,
                "clientid": lease.clientid,
            }
            for lease in ret.leases
        ]

    def listAllPorts(self, flags: int = 0) -> list[Any]:
        return shapes.list_all(self, "NETWORK_LIST_ALL_PORTS", (self._ref,), flags, "virNetworkPort", self)

    def portLookupByUUID(self, uuid: bytes) -> Any:
        ret = self._rpc("NETWORK_PORT_LOOKUP_BY_UUID", (self._ref, bytes(uuid)))
        return self._wrap("virNetworkPort", self, ret.port)

    def portLookupByUUIDString(self, uuidstr: str) -> Any:
        raw = parse_uuid(
            uuidstr,
            "virNetworkPortLookupByUUIDString",
            c.VIR_FROM_NETWORK,
            "uuidstr in virNetworkPortLookupByUUIDString must be a valid UUID",
        )
        return self.portLookupByUUID(raw)


@register
class virNetworkPort(_WithUUID, g.virNetworkPortGenerated, ObjectHandle):
    @classmethod
    def _parent_kind(cls) -> str:
        return "network"

    def network(self) -> Any:
        return self._parent

    def parameters(self, flags: int = 0) -> dict[str, Any]:
        return shapes.get_params(self, "NETWORK_PORT_GET_PARAMETERS", (self._ref,), flags)

    def setParameters(self, params: Mapping[str, Any], flags: int = 0) -> int:
        return shapes.set_params(
            self,
            "NETWORK_PORT_GET_PARAMETERS",
            "NETWORK_PORT_SET_PARAMETERS",
            (self._ref,),
            params,
            flags,
            "Network port",
        )


@register
class virInterface(_Named, g.virInterfaceGenerated, ObjectHandle):
    def MACString(self) -> str:
        return str(self._ref.mac)


@register
class virStoragePool(_Named, _WithUUID, g.virStoragePoolGenerated, ObjectHandle):
    def autostart(self) -> int:
        return int(self._rpc("STORAGE_POOL_GET_AUTOSTART", (self._ref,)).autostart)

    def info(self) -> list[int]:
        ret = self._rpc("STORAGE_POOL_GET_INFO", (self._ref,))
        return [int(ret.state), ret.capacity, ret.allocation, ret.available]

    def listAllVolumes(self, flags: int = 0) -> list[Any]:
        return shapes.list_all(
            self, "STORAGE_POOL_LIST_ALL_VOLUMES", (self._ref,), flags, "virStorageVol", self._conn
        )

    def listVolumes(self) -> list[str]:
        return shapes.names(self, "STORAGE_POOL_NUM_OF_VOLUMES", "STORAGE_POOL_LIST_VOLUMES", (self._ref,))


@register
class virStorageVol(_Named, StorageVolStreams, g.virStorageVolGenerated, ObjectHandle):
    def key(self) -> str:
        return str(self._ref.key)

    def info(self) -> list[int]:
        ret = self._rpc("STORAGE_VOL_GET_INFO", (self._ref,))
        return [int(ret.type), ret.capacity, ret.allocation]

    def infoFlags(self, flags: int = 0) -> list[int]:
        ret = self._rpc("STORAGE_VOL_GET_INFO_FLAGS", (self._ref, flags), flags)
        return [int(ret.type), ret.capacity, ret.allocation]


@register
class virNodeDevice(_Named, g.virNodeDeviceGenerated, ObjectHandle):
    def autostart(self) -> int:
        return int(self._rpc("NODE_DEVICE_GET_AUTOSTART", (self._ref.name,)).autostart)

    def listCaps(self) -> list[str]:
        return shapes.names(self, "NODE_DEVICE_NUM_OF_CAPS", "NODE_DEVICE_LIST_CAPS", (self._ref.name,))


@register
class virSecret(_WithUUID, g.virSecretGenerated, ObjectHandle):
    def usageType(self) -> int:
        return int(self._ref.usageType)

    def usageID(self) -> str:
        return str(self._ref.usageID)

    def value(self, flags: int = 0) -> bytes:
        ret = self._rpc("SECRET_GET_VALUE", (self._ref, flags), flags)
        return bytes(ret.value)

    def setValue(self, value: bytes | str, flags: int = 0) -> int:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        self._rpc("SECRET_SET_VALUE", (self._ref, raw, flags), flags)
        return 0


@register
class virNWFilter(_Named, _WithUUID, g.virNWFilterGenerated, ObjectHandle):
    pass


@register
class virNWFilterBinding(g.virNWFilterBindingGenerated, ObjectHandle):
    def portDev(self) -> str:
        return str(self._ref.portdev)

    def filterName(self) -> str:
        return str(self._ref.filtername)


class _OfDomain(ObjectHandle):
    @classmethod
    def _parent_kind(cls) -> str:
        return "domain"

    def domain(self) -> Any:
        return self._parent

    def getDomain(self) -> Any:
        return self._parent

    def getConnect(self) -> Any:
        return self._conn

    def getName(self) -> str:
        return str(self._ref.name)


@register
class virDomainSnapshot(g.virDomainSnapshotGenerated, _OfDomain):
    def listAllChildren(self, flags: int = 0) -> list[Any]:
        return shapes.list_all(
            self, "DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN", (self._ref,), flags, "virDomainSnapshot", self._dom
        )

    def listChildrenNames(self, flags: int = 0) -> list[str]:
        return shapes.names(
            self,
            "DOMAIN_SNAPSHOT_NUM_CHILDREN",
            "DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES",
            (self._ref,),
            flags,
        )


@register
class virDomainCheckpoint(g.virDomainCheckpointGenerated, _OfDomain):
    def listAllChildren(self, flags: int = 0) -> list[Any]:
        return shapes.list_all(
            self,
            "DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN",
            (self._ref,),
            flags,
            "virDomainCheckpoint",
            self._dom,
        )
