"""The embedded in-memory driver: test:///default's behaviour plus migration.

One mixin per object family or concern, all over ``MemoryCore`` (core.py); the
procedure methods are named after the procedures (server/driver/interface.py).
"""

from __future__ import annotations

from .access_api import AccessAPI
from .checkpoint_api import CheckpointAPI
from .device_tunables import DeviceTunables
from .domain_api import DomainAPI
from .domain_cpu import DomainCPU
from .domain_devices import DeviceAPI
from .domain_guest import GuestAPI
from .domain_memory import DomainMemory
from .domain_metadata import MetadataAPI
from .domain_save import SaveAPI
from .domain_stats import DomainStats
from .domain_tunables import DomainTunables
from .graphics_api import GraphicsAPI
from .host_api import HostAPI
from .interface_api import InterfaceAPI
from .migration_api import MigrationMixin
from .network_api import NetworkAPI
from .node_api import NodeAPI
from .nodedev_api import NodeDeviceAPI
from .screenshot_api import ScreenshotAPI
from .secret_api import SecretAPI
from .snapshot_api import SnapshotAPI
from .storage_api import StorageAPI
from .volume_streams import VolumeStreamAPI


class MemoryDriver(
    GraphicsAPI,
    AccessAPI,
    MigrationMixin,
    SaveAPI,
    GuestAPI,
    MetadataAPI,
    SnapshotAPI,
    CheckpointAPI,
    DeviceAPI,
    DomainCPU,
    DomainMemory,
    DomainTunables,
    DeviceTunables,
    DomainStats,
    DomainAPI,
    NodeAPI,
    HostAPI,
    NetworkAPI,
    InterfaceAPI,
    SecretAPI,
    NodeDeviceAPI,
    StorageAPI,
    VolumeStreamAPI,
    ScreenshotAPI,
):
    """The driver ``virtwire serve`` hosts: ``MemoryDriver(hostname=..., state_dir=...)``."""
