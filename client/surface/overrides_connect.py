"""virConnect's hand-written bindings (libvirt-python's libvirt-override.c and
libvirt-override-virConnect.py): lists, lookups by UUID, node statistics,
typed parameters as dicts.

A mixin of client/facade.py's virConnect, which keeps the connection's
lifetime, events and close callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from virtwire.client import errfactory
from virtwire.client.surface import shapes
from virtwire.client.surface.base import Handle, parse_uuid
from virtwire.protocol import typedparams
from virtwire.protocol.generated import constants as c


def _chars(raw: Sequence[int]) -> str:
    return bytes(ch & 0xFF for ch in raw).split(b"\0", 1)[0].decode("utf-8", "replace")


def _uuid_lookup_error(api: str) -> str:
    return f"uuidstr in {api} must be a valid UUID"


class ConnectOverrides(Handle):
    # -- file descriptors for the guest (CALL_WITH_FDS) ------------------------

    def createXMLWithFiles(self, xmlDesc: str, files: list[int], flags: int = 0) -> Any:
        ret = self._rpc_fds("DOMAIN_CREATE_XML_WITH_FILES", (xmlDesc, flags), files, flags)
        return self._wrap("virDomain", self, ret.dom)

    # -- listAll*: objects ----------------------------------------------------

    def _all(self, proc: str, flags: int, klass: str) -> list[Any]:
        return shapes.list_all(self, proc, (), flags, klass, self)

    def listAllNetworks(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_NETWORKS", flags, "virNetwork")

    def listAllInterfaces(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_INTERFACES", flags, "virInterface")

    def listAllStoragePools(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_STORAGE_POOLS", flags, "virStoragePool")

    def listAllDevices(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_NODE_DEVICES", flags, "virNodeDevice")

    def listAllSecrets(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_SECRETS", flags, "virSecret")

    def listAllNWFilters(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_NWFILTERS", flags, "virNWFilter")

    def listAllNWFilterBindings(self, flags: int = 0) -> list[Any]:
        return self._all("CONNECT_LIST_ALL_NWFILTER_BINDINGS", flags, "virNWFilterBinding")

    # -- name lists: count first ----------------------------------------------

    def listNetworks(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_NETWORKS", "CONNECT_LIST_NETWORKS")

    def listDefinedNetworks(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_DEFINED_NETWORKS", "CONNECT_LIST_DEFINED_NETWORKS")

    def listInterfaces(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_INTERFACES", "CONNECT_LIST_INTERFACES")

    def listDefinedInterfaces(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_DEFINED_INTERFACES", "CONNECT_LIST_DEFINED_INTERFACES")

    def listStoragePools(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_STORAGE_POOLS", "CONNECT_LIST_STORAGE_POOLS")

    def listDefinedStoragePools(self) -> list[str]:
        return shapes.names(
            self, "CONNECT_NUM_OF_DEFINED_STORAGE_POOLS", "CONNECT_LIST_DEFINED_STORAGE_POOLS"
        )

    def listSecrets(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_SECRETS", "CONNECT_LIST_SECRETS")

    def listNWFilters(self) -> list[str]:
        return shapes.names(self, "CONNECT_NUM_OF_NWFILTERS", "CONNECT_LIST_NWFILTERS")

    def listDevices(self, cap: str | None, flags: int = 0) -> list[str]:
        return shapes.names(self, "NODE_NUM_OF_DEVICES", "NODE_LIST_DEVICES", (cap,), flags)

    # -- lookups by raw UUID or UUID string ------------------------------------

    def _by_uuid(self, proc: str, uuid: bytes, klass: str) -> Any:
        ret = self._rpc(proc, (bytes(uuid),))
        return self._wrap(klass, self, shapes.ret_fields(ret)[0])

    def _by_uuid_string(self, proc: str, uuidstr: str, klass: str, api: str, domain: int) -> Any:
        raw = parse_uuid(uuidstr, api, domain, _uuid_lookup_error(api))
        return self._by_uuid(proc, raw, klass)

    def networkLookupByUUID(self, uuid: bytes) -> Any:
        return self._by_uuid("NETWORK_LOOKUP_BY_UUID", uuid, "virNetwork")

    def networkLookupByUUIDString(self, uuidstr: str) -> Any:
        return self._by_uuid_string(
            "NETWORK_LOOKUP_BY_UUID",
            uuidstr,
            "virNetwork",
            "virNetworkLookupByUUIDString",
            c.VIR_FROM_NETWORK,
        )

    def storagePoolLookupByUUID(self, uuid: bytes) -> Any:
        return self._by_uuid("STORAGE_POOL_LOOKUP_BY_UUID", uuid, "virStoragePool")

    def storagePoolLookupByUUIDString(self, uuidstr: str) -> Any:
        return self._by_uuid_string(
            "STORAGE_POOL_LOOKUP_BY_UUID",
            uuidstr,
            "virStoragePool",
            "virStoragePoolLookupByUUIDString",
            c.VIR_FROM_STORAGE,
        )

    def secretLookupByUUID(self, uuid: bytes) -> Any:
        return self._by_uuid("SECRET_LOOKUP_BY_UUID", uuid, "virSecret")

    def secretLookupByUUIDString(self, uuidstr: str) -> Any:
        return self._by_uuid_string(
            "SECRET_LOOKUP_BY_UUID", uuidstr, "virSecret", "virSecretLookupByUUIDString", c.VIR_FROM_SECRET
        )

    def nwfilterLookupByUUID(self, uuid: bytes) -> Any:
        return self._by_uuid("NWFILTER_LOOKUP_BY_UUID", uuid, "virNWFilter")

    def nwfilterLookupByUUIDString(self, uuidstr: str) -> Any:
        return self._by_uuid_string(
            "NWFILTER_LOOKUP_BY_UUID",
            uuidstr,
            "virNWFilter",
            "virNWFilterLookupByUUIDString",
            c.VIR_FROM_NWFILTER,
        )

    def createLinux(self, xmlDesc: str, flags: int = 0) -> Any:
        # virDomainCreateLinux is virDomainCreateXML under its old name.
        ret = self._rpc("DOMAIN_CREATE_XML", (xmlDesc, flags), flags)
        return self._wrap("virDomain", self, ret.dom)

    # -- host and CPU ----------------------------------------------------------

    def baselineCPU(self, xmlCPUs: list[str], flags: int = 0) -> str:
        return str(self._rpc("CONNECT_BASELINE_CPU", (list(xmlCPUs), flags), flags).cpu)

    def baselineHypervisorCPU(
        self,
        emulator: str | None,
        arch: str | None,
        machine: str | None,
        virttype: str | None,
        xmlCPUs: list[str],
        flags: int = 0,
    ) -> str:
        ret = self._rpc(
            "CONNECT_BASELINE_HYPERVISOR_CPU",
            (emulator, arch, machine, virttype, list(xmlCPUs), flags),
            flags,
        )
        return str(ret.cpu)

    def getCPUModelNames(self, arch: str, flags: int = 0) -> list[str]:
        return list(self._rpc("CONNECT_GET_CPU_MODEL_NAMES", (arch, 1, flags), flags).models)

    def getCPUMap(self, flags: int = 0) -> tuple[int, list[bool], int]:
        ret = self._rpc("NODE_GET_CPU_MAP", (1, 1, flags), flags)
        ncpus = int(ret.ret)
        cpumap = bytes(ret.cpumap)
        bits = [bool(cpumap[i // 8] & (1 << (i % 8))) for i in range(ncpus)]
        return (ncpus, bits, int(ret.online))

    def getCPUStats(self, cpuNum: int, flags: int = 0) -> dict[str, int]:
        first = self._rpc("NODE_GET_CPU_STATS", (cpuNum, 0, flags), flags)
        count = int(first.nparams)
        if count == 0:
            return {}
        ret = self._rpc("NODE_GET_CPU_STATS", (cpuNum, count, flags), flags)
        return {p.field: int(p.value) for p in ret.params}

    def getMemoryStats(self, cellNum: int, flags: int = 0) -> dict[str, int]:
        first = self._rpc("NODE_GET_MEMORY_STATS", (0, cellNum, flags), flags)
        count = int(first.nparams)
        if count == 0:
            return {}
        ret = self._rpc("NODE_GET_MEMORY_STATS", (count, cellNum, flags), flags)
        return {p.field: int(p.value) for p in ret.params}

    def getCellsFreeMemory(self, startCell: int, maxCells: int) -> list[int]:
        return list(self._rpc("NODE_GET_CELLS_FREE_MEMORY", (startCell, maxCells)).cells)

    def getFreePages(
        self, pages: list[int], startCell: int, maxCells: int, flags: int = 0
    ) -> dict[int, dict[int, int]]:
        ret = self._rpc("NODE_GET_FREE_PAGES", (list(pages), startCell, maxCells, flags), flags)
        counts = list(ret.counts)
        out: dict[int, dict[int, int]] = {}
        for cell in range(len(counts) // max(len(pages), 1)):
            out[startCell + cell] = {page: counts[cell * len(pages) + i] for i, page in enumerate(pages)}
        return out

    def allocPages(
        self, pages: Mapping[int, int], startCell: int = 0, cellCount: int = 0, flags: int = 0
    ) -> int:
        sizes = list(pages.keys())
        counts = [pages[size] for size in sizes]
        return int(self._rpc("NODE_ALLOC_PAGES", (sizes, counts, startCell, cellCount, flags), flags).ret)

    def getSecurityModel(self) -> list[str]:
        ret = self._rpc("NODE_GET_SECURITY_MODEL", ())
        return [_chars(ret.model), _chars(ret.doi)]

    def getMemoryParameters(self, flags: int = 0) -> dict[str, Any]:
        return shapes.get_params(self, "NODE_GET_MEMORY_PARAMETERS", (), flags)

    def setMemoryParameters(self, params: Mapping[str, Any], flags: int = 0) -> int:
        return shapes.set_params(
            self, "NODE_GET_MEMORY_PARAMETERS", "NODE_SET_MEMORY_PARAMETERS", (), params, flags, "Node"
        )

    def getSEVInfo(self, flags: int = 0) -> dict[str, Any]:
        ret = self._rpc("NODE_GET_SEV_INFO", (c.VIR_TYPED_PARAM_FIELD_LENGTH, flags), flags)
        return typedparams.params_to_dict(ret.params)

    def setIdentity(self, params: Mapping[str, Any], flags: int = 0) -> int:
        self._rpc("CONNECT_SET_IDENTITY", (typedparams.dict_to_params(params), flags), flags)
        return 0

    def restoreParams(self, params: Mapping[str, Any], flags: int = 0) -> int:
        self._rpc("DOMAIN_RESTORE_PARAMS", (typedparams.dict_to_params(params), flags), flags)
        return 0

    # -- statistics ------------------------------------------------------------

    def _stats(self, doms: list[Any], stats: int, flags: int) -> list[tuple[Any, dict[str, Any]]]:
        ret = self._rpc("CONNECT_GET_ALL_DOMAIN_STATS", (doms, stats, flags), flags)
        return [
            (self._wrap("virDomain", self, rec.dom), typedparams.params_to_dict(rec.params))
            for rec in ret.retStats
        ]

    def getAllDomainStats(self, stats: int = 0, flags: int = 0) -> list[tuple[Any, dict[str, Any]]]:
        return self._stats([], stats, flags)

    def domainListGetStats(
        self, doms: list[Any], stats: int = 0, flags: int = 0
    ) -> list[tuple[Any, dict[str, Any]]]:
        refs = []
        for dom in doms:
            if not hasattr(dom, "_ref") or dom.__class__.__name__ != "virDomain":
                raise errfactory.invalid_arg("domain list contains an object that is not a domain")
            refs.append(dom._ref)
        return self._stats(refs, stats, flags)

    # -- the last error of this connection ---------------------------------------

    def virConnGetLastError(self) -> Any:
        from virtwire.client.surface import lasterror

        return lasterror.get()

    def virConnResetLastError(self) -> None:
        from virtwire.client.surface import lasterror

        lasterror.reset()
