"""The embedded in-memory driver: test:///default's behaviour plus migration."""

from __future__ import annotations

from .checkpoint_api import CheckpointAPI
from .domain_api import DomainAPI
from .host_api import HostAPI
from .migration_api import MigrationMixin
from .nodedev_api import NodeDeviceAPI
from .secret_api import SecretAPI
from .snapshot_api import SnapshotAPI


class MemoryDriver(MigrationMixin, SnapshotAPI, CheckpointAPI, DomainAPI, HostAPI, SecretAPI, NodeDeviceAPI):
    """The driver ``virtwire serve`` hosts: ``MemoryDriver(hostname=..., state_dir=...)``."""
