"""The async API's object classes besides Domain (client/aio_api.py).

Each is its generated methods (aio_generated.py: libvirt-python's names,
awaited) on an AsyncObject (parent, wire reference, `name`); the volume's
stream calls bind a stream from `conn.newStream()`.
"""

from __future__ import annotations

from typing import Any

from virtwire.client import aio_generated as g
from virtwire.client import ops
from virtwire.client.aio_handle import AsyncObject, register
from virtwire.client.stream_aio import AsyncStream
from virtwire.protocol.generated import constants as c

__all__ = [
    "DomainCheckpoint",
    "DomainSnapshot",
    "Interface",
    "NWFilter",
    "NWFilterBinding",
    "Network",
    "NetworkPort",
    "NodeDevice",
    "Secret",
    "StoragePool",
    "StorageVol",
]


@register("virNetwork")
class Network(g.NetworkCalls, AsyncObject):
    pass


@register("virNetworkPort")
class NetworkPort(g.NetworkPortCalls, AsyncObject):
    pass


@register("virInterface")
class Interface(g.InterfaceCalls, AsyncObject):
    pass


@register("virStoragePool")
class StoragePool(g.StoragePoolCalls, AsyncObject):
    pass


@register("virStorageVol")
class StorageVol(g.StorageVolCalls, AsyncObject):
    async def download(self, stream: AsyncStream, offset: int, length: int, flags: int = 0) -> int:
        """virStorageVolDownload into a stream from newStream() (holes kept with
        VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)."""
        op = ops.call("STORAGE_VOL_DOWNLOAD", vol=self._ref, offset=offset, length=length, flags=flags)
        conn: Any = self._conn
        await conn._bind(stream, op, bool(flags & c.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM))
        return 0

    async def upload(self, stream: AsyncStream, offset: int, length: int, flags: int = 0) -> int:
        """virStorageVolUpload from a stream from newStream(): send, then finish it."""
        op = ops.call("STORAGE_VOL_UPLOAD", vol=self._ref, offset=offset, length=length, flags=flags)
        conn: Any = self._conn
        await conn._bind(stream, op, bool(flags & c.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM))
        return 0


@register("virNodeDevice")
class NodeDevice(g.NodeDeviceCalls, AsyncObject):
    pass


@register("virSecret")
class Secret(g.SecretCalls, AsyncObject):
    pass


@register("virNWFilter")
class NWFilter(g.NWFilterCalls, AsyncObject):
    pass


@register("virNWFilterBinding")
class NWFilterBinding(g.NWFilterBindingCalls, AsyncObject):
    pass


@register("virDomainSnapshot")
class DomainSnapshot(g.DomainSnapshotCalls, AsyncObject):
    pass


@register("virDomainCheckpoint")
class DomainCheckpoint(g.DomainCheckpointCalls, AsyncObject):
    pass
