"""The embedded in-memory driver: test:///default's behaviour plus migration."""

from __future__ import annotations

from .domain_api import DomainAPI
from .domain_devices import DeviceAPI
from .domain_guest import GuestAPI
from .domain_metadata import MetadataAPI
from .domain_save import SaveAPI
from .host_api import HostAPI
from .interface_api import InterfaceAPI
from .migration_api import MigrationMixin
from .network_api import NetworkAPI


class MemoryDriver(
    MigrationMixin, SaveAPI, GuestAPI, MetadataAPI, DeviceAPI, DomainAPI, HostAPI, NetworkAPI, InterfaceAPI
):
    """The driver ``virtwire serve`` hosts: ``MemoryDriver(hostname=..., state_dir=...)``."""
