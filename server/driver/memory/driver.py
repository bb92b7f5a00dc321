"""The embedded in-memory driver: test:///default's behaviour plus migration."""

from __future__ import annotations

from .domain_api import DomainAPI
from .host_api import HostAPI
from .interface_api import InterfaceAPI
from .migration_api import MigrationMixin
from .network_api import NetworkAPI
from .screenshot_api import ScreenshotAPI
from .storage_api import StorageAPI
from .volume_streams import VolumeStreamAPI


class MemoryDriver(
    MigrationMixin, DomainAPI, HostAPI, NetworkAPI, InterfaceAPI, StorageAPI, VolumeStreamAPI, ScreenshotAPI
):
    """The driver ``virtwire serve`` hosts: ``MemoryDriver(hostname=..., state_dir=...)``."""
