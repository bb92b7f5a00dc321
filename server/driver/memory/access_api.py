"""The memory driver's side of access control: the objects a reference designates.

A call names an object by name and UUID; the memory driver resolves some
families by UUID and others by name (as libvirt's test driver does), so the
access checks look at both (server/access.py).
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any, Protocol

from virtwire.protocol.generated import remote as R

from ...access_policy import AccessObject
from .domain_api import DomainAPI
from .network_api import NetworkAPI
from .storage_api import StorageAPI


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def uuid(self) -> bytes: ...


def _obj(kind: str, name: str, uuid: bytes) -> AccessObject:
    return AccessObject(kind, name, str(uuidlib.UUID(bytes=uuid)))


class AccessAPI(DomainAPI, NetworkAPI, StorageAPI):
    access_name = "Test"  # libvirt's test driver's name (conn->driver->name)

    def access_objects(self, kind: str, ref: Any) -> list[AccessObject]:
        found: list[_Named | None]
        match kind, ref:
            case "domain", R.remote_nonnull_domain():
                found = [self._by_uuid.get(bytes(ref.uuid))]
            case "domain", str():
                found = [self._by_name.get(ref)]
            case "domain", int():
                found = [self._by_id.get(ref)]
            case "network", R.remote_nonnull_network():
                found = [self.networks.by_uuid.get(bytes(ref.uuid)), self.networks.by_name(ref.name)]
            case "network", str():
                found = [self.networks.by_name(ref)]
            case "storage_pool", R.remote_nonnull_storage_pool():
                found = [self._pools_by_uuid.get(bytes(ref.uuid)), self._pools_by_name.get(ref.name)]
            case "storage_pool", str():
                found = [self._pools_by_name.get(ref)]
            case _:
                return super().access_objects(kind, ref)
        objs: list[AccessObject] = []
        for o in found:
            if o is not None and (not objs or objs[0].name != o.name):
                objs.append(_obj(kind, o.name, o.uuid))
        return objs
