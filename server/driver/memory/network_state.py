"""The host's virtual networks: each network's state and the registry of all of them.

A network keeps libvirt's pair of definitions: ``defn`` (what is running, and
what XMLDesc prints) and ``new_def`` (a persistent definition waiting for the
next start).  ``NetworkRegistry.assign`` is virNetworkObjAssignDef: the name and
UUID clash rules and which of the two definitions a new one replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import report
from .network_xmlio import uuid_string
from .networks import NetworkDef


@dataclass(slots=True, eq=False)
class Network:
    """One virtual network of the in-memory host."""

    defn: NetworkDef
    new_def: NetworkDef | None = None
    active: bool = False
    persistent: bool = True
    autostart: bool = False

    @property
    def name(self) -> str:
        return self.defn.name

    @property
    def uuid(self) -> bytes:
        return self.defn.uuid

    @property
    def persistent_def(self) -> NetworkDef:
        return self.new_def if self.new_def is not None else self.defn

    def ref(self) -> R.remote_nonnull_network:
        return R.remote_nonnull_network(name=self.name, uuid=self.uuid)

    def list_flags(self) -> int:
        return (
            (C.VIR_CONNECT_LIST_NETWORKS_ACTIVE if self.active else C.VIR_CONNECT_LIST_NETWORKS_INACTIVE)
            | (
                C.VIR_CONNECT_LIST_NETWORKS_PERSISTENT
                if self.persistent
                else C.VIR_CONNECT_LIST_NETWORKS_TRANSIENT
            )
            | (
                C.VIR_CONNECT_LIST_NETWORKS_AUTOSTART
                if self.autostart
                else C.VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART
            )
        )


class NetworkRegistry:
    """The host's networks by UUID and name, with virNetworkObjAssignDef's clash rules."""

    def __init__(self) -> None:
        self.by_uuid: dict[bytes, Network] = {}

    def sorted(self) -> list[Network]:
        return sorted(self.by_uuid.values(), key=lambda n: n.name)

    def by_name(self, name: str) -> Network | None:
        return next((n for n in self.by_uuid.values() if n.name == name), None)

    def assign(self, defn: NetworkDef, *, live: bool, check_live: bool) -> Network:
        """Add ``defn`` or give an existing network (same UUID and name) the new definition."""
        existing = self.by_uuid.get(defn.uuid)
        if existing is not None:
            if existing.name != defn.name:
                raise report(
                    C.VIR_ERR_OPERATION_FAILED,
                    C.VIR_FROM_NETWORK,
                    f"network '{existing.name}' is already defined with uuid {uuid_string(existing.uuid)}",
                )
            if check_live and existing.active:
                raise report(
                    C.VIR_ERR_OPERATION_INVALID,
                    C.VIR_FROM_NETWORK,
                    f"network is already active as '{existing.name}'",
                )
            if live:
                if existing.persistent and existing.new_def is None:
                    existing.new_def = existing.defn
                existing.defn = defn
            elif existing.active:
                # The running definition stays; the new one waits for the next start.
                existing.new_def = defn
                existing.persistent = True
            else:
                existing.new_def = None
                existing.defn = defn
                existing.persistent = True
            return existing
        same_name = self.by_name(defn.name)
        if same_name is not None:
            raise report(
                C.VIR_ERR_OPERATION_FAILED,
                C.VIR_FROM_NETWORK,
                f"network '{defn.name}' already exists with uuid {uuid_string(same_name.uuid)}",
            )
        net = Network(defn, persistent=not live)
        self.by_uuid[defn.uuid] = net
        return net

    def remove(self, net: Network) -> None:
        self.by_uuid.pop(net.uuid, None)
