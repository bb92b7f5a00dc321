"""Storage pool and volume procedures of the memory driver (libvirt 9.0's testStorageDriver).

Every method does what the test driver's function of the same name does, with
its checks in its order and its errors.  Events: STORAGE_POOL_EVENT lifecycle
(DEFINED, UNDEFINED, STARTED, STOPPED, CREATED, DELETED; detail 0) and REFRESH.
"""

from __future__ import annotations

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report, unsupported_flags
from ..base import ConnectionContext, nonblocking
from .storage import POOL_CAPACITY, Pool, StorageState, Volume, new_volume, volume_type_number
from .storage_xml import (
    POOL_KINDS,
    format_pool_capabilities,
    parse_document,
    parse_pool,
    parse_pool_source,
    parse_volume,
)

FROM = C.VIR_FROM_TEST

_SOURCES_LOGICAL = """<sources>
  <source>
    <device path='/dev/sda20'/>
    <name>testvg1</name>
    <format type='lvm2'/>
  </source>
  <source>
    <device path='/dev/sda21'/>
    <name>testvg2</name>
    <format type='lvm2'/>
  </source>
</sources>
"""
_SOURCES_NETFS = """<sources>
  <source>
    <host name='{host}'/>
    <dir path='/testshare'/>
    <format type='nfs'/>
  </source>
</sources>
"""

# listAllStoragePools: pool type → its VIR_CONNECT_LIST_STORAGE_POOLS_<TYPE> bit.
_TYPE_BITS: dict[str, int] = {
    name: getattr(C, f"VIR_CONNECT_LIST_STORAGE_POOLS_{name.upper().replace('-', '_')}")
    for name in POOL_KINDS
}
_ALL_TYPES = sum(_TYPE_BITS.values())
_GROUPS = (
    (C.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE | C.VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE),
    (C.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT | C.VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT),
    (C.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART | C.VIR_CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART),
    _ALL_TYPES,
)
_FILTERS_ALL = sum(_GROUPS[:3]) | _ALL_TYPES


def _properties(pool: Pool) -> int:
    return (
        (
            C.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE
            if pool.active
            else C.VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE
        )
        | (
            C.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT
            if pool.persistent
            else C.VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT
        )
        | (
            C.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART
            if pool.autostart
            else C.VIR_CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART
        )
        | _TYPE_BITS[pool.pdef.type]
    )


def _matches(pool: Pool, flags: int) -> bool:
    props = _properties(pool)
    return all(not flags & group or props & flags & group for group in _GROUPS)


@nonblocking
class StorageAPI(StorageState):
    """The storage procedures; every one of them answers without waiting."""

    # --- listings -----------------------------------------------------------------------

    async def connect_num_of_storage_pools(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_storage_pools_ret:
        return R.remote_connect_num_of_storage_pools_ret(num=sum(1 for p in self.pools() if p.active))

    async def connect_list_storage_pools(
        self, args: R.remote_connect_list_storage_pools_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_storage_pools_ret:
        names = [p.name for p in self.pools() if p.active]
        return R.remote_connect_list_storage_pools_ret(names=names[: max(args.maxnames, 0)])

    async def connect_num_of_defined_storage_pools(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_defined_storage_pools_ret:
        return R.remote_connect_num_of_defined_storage_pools_ret(
            num=sum(1 for p in self.pools() if not p.active)
        )

    async def connect_list_defined_storage_pools(
        self, args: R.remote_connect_list_defined_storage_pools_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_defined_storage_pools_ret:
        names = [p.name for p in self.pools() if not p.active]
        return R.remote_connect_list_defined_storage_pools_ret(names=names[: max(args.maxnames, 0)])

    async def connect_list_all_storage_pools(
        self, args: R.remote_connect_list_all_storage_pools_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_storage_pools_ret:
        check_flags(args.flags, _FILTERS_ALL, "testConnectListAllStoragePools")
        found = [p for p in self.pools() if _matches(p, args.flags)]
        refs = [p.ref for p in found] if args.need_results else []
        return R.remote_connect_list_all_storage_pools_ret(pools=refs, ret=len(found))

    async def connect_get_storage_pool_capabilities(
        self, args: R.remote_connect_get_storage_pool_capabilities_args, ctx: ConnectionContext
    ) -> R.remote_connect_get_storage_pool_capabilities_ret:
        # libvirt's test driver lacks it; its storage driver has it.
        check_flags(args.flags, 0, "storageConnectGetStoragePoolCapabilities")
        return R.remote_connect_get_storage_pool_capabilities_ret(capabilities=format_pool_capabilities())

    async def connect_find_storage_pool_sources(
        self, args: R.remote_connect_find_storage_pool_sources_args, ctx: ConnectionContext
    ) -> R.remote_connect_find_storage_pool_sources_ret:
        check_flags(args.flags, 0, "testConnectFindStoragePoolSources")
        pool_type = args.type
        # virStoragePoolTypeFromString: "dir" is 0, which the test driver takes for "unknown".
        if pool_type == "dir":
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"unknown storage pool type {pool_type}")
        source = None
        if args.srcSpec is not None:
            node = parse_document(args.srcSpec, "source", "storage_source_specification")
            if pool_type not in POOL_KINDS:  # the unknown type (-1) has no source options
                raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_STORAGE, "missing backend for pool type -1")
            source = parse_pool_source(node, pool_type)
        if pool_type == "logical":
            return R.remote_connect_find_storage_pool_sources_ret(xml=_SOURCES_LOGICAL)
        if pool_type == "netfs":
            if source is None or not source.hosts:
                raise report(C.VIR_ERR_INVALID_ARG, FROM, "hostname must be specified for netfs sources")
            return R.remote_connect_find_storage_pool_sources_ret(
                xml=_SOURCES_NETFS.format(host=source.hosts[0][0])
            )
        raise report(C.VIR_ERR_NO_SUPPORT, FROM, f"pool type '{pool_type}' does not support source discovery")

    # --- pool lookups -------------------------------------------------------------------

    async def storage_pool_lookup_by_name(
        self, args: R.remote_storage_pool_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_lookup_by_name_ret:
        return R.remote_storage_pool_lookup_by_name_ret(pool=self.pool_by_name(args.name).ref)

    async def storage_pool_lookup_by_uuid(
        self, args: R.remote_storage_pool_lookup_by_uuid_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_lookup_by_uuid_ret:
        return R.remote_storage_pool_lookup_by_uuid_ret(pool=self.pool_by_uuid(args.uuid).ref)

    async def storage_pool_lookup_by_target_path(
        self, args: R.remote_storage_pool_lookup_by_target_path_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_lookup_by_target_path_ret:
        # libvirt's test driver lacks it; its storage driver has it (a dir pool at a path).
        pool = self.pool_by_target_path(args.path)
        return R.remote_storage_pool_lookup_by_target_path_ret(pool=pool.ref)

    async def storage_pool_lookup_by_volume(
        self, args: R.remote_storage_pool_lookup_by_volume_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_lookup_by_volume_ret:
        return R.remote_storage_pool_lookup_by_volume_ret(pool=self.pool_by_name(args.vol.pool).ref)

    async def storage_pool_is_active(
        self, args: R.remote_storage_pool_is_active_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_is_active_ret:
        return R.remote_storage_pool_is_active_ret(active=int(self.pool_by_uuid(args.pool.uuid).active))

    async def storage_pool_is_persistent(
        self, args: R.remote_storage_pool_is_persistent_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_is_persistent_ret:
        pool = self.pool_by_uuid(args.pool.uuid)
        return R.remote_storage_pool_is_persistent_ret(persistent=int(pool.persistent))

    async def storage_pool_get_info(
        self, args: R.remote_storage_pool_get_info_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_get_info_ret:
        pool = self.pool_by_name(args.pool.name)
        state = C.VIR_STORAGE_POOL_RUNNING if pool.active else C.VIR_STORAGE_POOL_INACTIVE
        return R.remote_storage_pool_get_info_ret(
            state=state, capacity=pool.capacity, allocation=pool.allocation, available=pool.available
        )

    async def storage_pool_get_xml_desc(
        self, args: R.remote_storage_pool_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_get_xml_desc_ret:
        check_flags(args.flags, 0, "testStoragePoolGetXMLDesc")
        return R.remote_storage_pool_get_xml_desc_ret(xml=self.pool_by_name(args.pool.name).xml())

    async def storage_pool_get_autostart(
        self, args: R.remote_storage_pool_get_autostart_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_get_autostart_ret:
        pool = self.pool_by_name(args.pool.name)
        return R.remote_storage_pool_get_autostart_ret(autostart=int(pool.persistent and pool.autostart))

    async def storage_pool_set_autostart(
        self, args: R.remote_storage_pool_set_autostart_args, ctx: ConnectionContext
    ) -> None:
        pool = self.pool_by_name(args.pool.name)
        if not pool.persistent:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, "pool has no config file")
        pool.autostart = args.autostart != 0
        self.save_pool(pool)

    # --- pool life cycle ----------------------------------------------------------------

    async def storage_pool_define_xml(
        self, args: R.remote_storage_pool_define_xml_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_define_xml_ret:
        check_flags(args.flags, C.VIR_STORAGE_POOL_DEFINE_VALIDATE, "testStoragePoolDefineXML")
        validate = bool(args.flags & C.VIR_STORAGE_POOL_DEFINE_VALIDATE)
        pool, _ = self.add_pool(parse_pool(args.xml, validate=validate), live=False)
        # testStoragePoolObjSetDefaults: the pool is persistent, its figures start afresh.
        pool.persistent = True
        pool.capacity, pool.allocation = POOL_CAPACITY, 0
        self.save_pool(pool)
        for vol in pool.volumes.values():
            self.save_volume(vol)
        self.pool_events.lifecycle(pool.ref, C.VIR_STORAGE_POOL_EVENT_DEFINED, 0)
        return R.remote_storage_pool_define_xml_ret(pool=pool.ref)

    async def storage_pool_create_xml(
        self, args: R.remote_storage_pool_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_create_xml_ret:
        check_flags(args.flags, 0, "testStoragePoolCreateXML")
        pool, _ = self.add_pool(parse_pool(args.xml), live=True)
        if pool.persistent and self.pool_store is not None:
            self.pool_store.delete(pool.uuid_string)  # the test driver drops its config file
        pool.persistent = False
        pool.autostart = False
        pool.capacity, pool.allocation = POOL_CAPACITY, 0
        pool.active = True
        self.pool_events.lifecycle(pool.ref, C.VIR_STORAGE_POOL_EVENT_STARTED, 0)
        return R.remote_storage_pool_create_xml_ret(pool=pool.ref)

    async def storage_pool_create(
        self, args: R.remote_storage_pool_create_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testStoragePoolCreate")
        pool = self.inactive_pool(args.pool.name)
        pool.active = True
        self.save_pool(pool)
        self.pool_events.lifecycle(args.pool, C.VIR_STORAGE_POOL_EVENT_STARTED, 0)

    async def storage_pool_build(
        self, args: R.remote_storage_pool_build_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testStoragePoolBuild")
        self.inactive_pool(args.pool.name)
        self.pool_events.lifecycle(args.pool, C.VIR_STORAGE_POOL_EVENT_CREATED, 0)

    async def storage_pool_destroy(
        self, args: R.remote_storage_pool_destroy_args, ctx: ConnectionContext
    ) -> None:
        pool = self.active_pool(args.pool.name)
        pool.active = False
        self.save_pool(pool)
        self.pool_events.lifecycle(pool.ref, C.VIR_STORAGE_POOL_EVENT_STOPPED, 0)
        if not pool.persistent:
            self.remove_pool(pool)

    async def storage_pool_delete(
        self, args: R.remote_storage_pool_delete_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testStoragePoolDelete")
        self.inactive_pool(args.pool.name)
        self.pool_events.lifecycle(args.pool, C.VIR_STORAGE_POOL_EVENT_DELETED, 0)

    async def storage_pool_undefine(
        self, args: R.remote_storage_pool_undefine_args, ctx: ConnectionContext
    ) -> None:
        pool = self.inactive_pool(args.pool.name)
        self.remove_pool(pool)
        self.pool_events.lifecycle(args.pool, C.VIR_STORAGE_POOL_EVENT_UNDEFINED, 0)

    async def storage_pool_refresh(
        self, args: R.remote_storage_pool_refresh_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testStoragePoolRefresh")
        self.active_pool(args.pool.name)
        self.pool_events.refresh(args.pool)

    # --- volumes of a pool --------------------------------------------------------------

    async def storage_pool_num_of_volumes(
        self, args: R.remote_storage_pool_num_of_volumes_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_num_of_volumes_ret:
        return R.remote_storage_pool_num_of_volumes_ret(num=len(self.active_pool(args.pool.name).volumes))

    async def storage_pool_list_volumes(
        self, args: R.remote_storage_pool_list_volumes_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_list_volumes_ret:
        names = list(self.active_pool(args.pool.name).volumes)
        return R.remote_storage_pool_list_volumes_ret(names=names[: max(args.maxnames, 0)])

    async def storage_pool_list_all_volumes(
        self, args: R.remote_storage_pool_list_all_volumes_args, ctx: ConnectionContext
    ) -> R.remote_storage_pool_list_all_volumes_ret:
        check_flags(args.flags, 0, "testStoragePoolListAllVolumes")
        pool = self.pool_by_uuid(args.pool.uuid)
        if not pool.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "storage pool is not active")
        refs = [vol.ref for vol in pool.volumes.values()] if args.need_results else []
        return R.remote_storage_pool_list_all_volumes_ret(vols=refs, ret=len(pool.volumes))

    # --- volume lookups -----------------------------------------------------------------

    async def storage_vol_lookup_by_name(
        self, args: R.remote_storage_vol_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_lookup_by_name_ret:
        pool = self.active_pool(args.pool.name)
        return R.remote_storage_vol_lookup_by_name_ret(vol=self.volume_in(pool, args.name).ref)

    async def storage_vol_lookup_by_key(
        self, args: R.remote_storage_vol_lookup_by_key_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_lookup_by_key_ret:
        return R.remote_storage_vol_lookup_by_key_ret(vol=self.find_volume("key", args.key).ref)

    async def storage_vol_lookup_by_path(
        self, args: R.remote_storage_vol_lookup_by_path_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_lookup_by_path_ret:
        return R.remote_storage_vol_lookup_by_path_ret(vol=self.find_volume("path", args.path).ref)

    async def storage_vol_get_info(
        self, args: R.remote_storage_vol_get_info_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_get_info_ret:
        vol = self.volume(args.vol)
        return R.remote_storage_vol_get_info_ret(
            type=volume_type_number(vol.pool.pdef.type),
            capacity=vol.vdef.capacity,
            allocation=vol.vdef.allocation,
        )

    async def storage_vol_get_xml_desc(
        self, args: R.remote_storage_vol_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_get_xml_desc_ret:
        check_flags(args.flags, 0, "testStorageVolGetXMLDesc")
        return R.remote_storage_vol_get_xml_desc_ret(xml=self.volume(args.vol).xml())

    async def storage_vol_get_path(
        self, args: R.remote_storage_vol_get_path_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_get_path_ret:
        return R.remote_storage_vol_get_path_ret(name=self.volume(args.vol).path)

    # --- volume life cycle --------------------------------------------------------------

    async def storage_vol_create_xml(
        self, args: R.remote_storage_vol_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_create_xml_ret:
        check_flags(args.flags, C.VIR_STORAGE_VOL_CREATE_VALIDATE, "testStorageVolCreateXML")
        pool = self.active_pool(args.pool.name)
        validate = bool(args.flags & C.VIR_STORAGE_VOL_CREATE_VALIDATE)
        vdef = parse_volume(pool.pdef.type, args.xml, validate=validate)
        self._check_new_volume(pool, vdef.name, vdef.allocation)
        vol = new_volume(pool, vdef)
        self._add_volume(vol)
        return R.remote_storage_vol_create_xml_ret(vol=vol.ref)

    async def storage_vol_create_xml_from(
        self, args: R.remote_storage_vol_create_xml_from_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_create_xml_from_ret:
        check_flags(args.flags, C.VIR_STORAGE_VOL_CREATE_VALIDATE, "testStorageVolCreateXMLFrom")
        pool = self.active_pool(args.pool.name)
        validate = bool(args.flags & C.VIR_STORAGE_VOL_CREATE_VALIDATE)
        vdef = parse_volume(pool.pdef.type, args.xml, validate=validate)
        if vdef.name in pool.volumes:
            raise report(C.VIR_ERR_OPERATION_FAILED, FROM, "storage vol already exists")
        origin = pool.volumes.get(args.clonevol.name)
        if origin is None:
            raise report(
                C.VIR_ERR_NO_STORAGE_VOL, FROM, f"no storage vol with matching name '{args.clonevol.name}'"
            )
        self._check_new_volume(pool, vdef.name, vdef.allocation)
        vol = new_volume(pool, vdef)
        self.volume_files.clone(pool.uuid_string, origin.name, vol.name, vdef.capacity)
        self._add_volume(vol)
        return R.remote_storage_vol_create_xml_from_ret(vol=vol.ref)

    def _check_new_volume(self, pool: Pool, name: str, allocation: int) -> None:
        if name in pool.volumes:
            raise report(C.VIR_ERR_OPERATION_FAILED, FROM, "storage vol already exists")
        if pool.allocation + allocation > pool.capacity:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"Not enough free space in pool for volume '{name}'")

    def _add_volume(self, vol: Volume) -> None:
        pool = vol.pool
        pool.volumes[vol.name] = vol
        pool.allocation += vol.vdef.allocation
        self.save_volume(vol)
        self.save_pool(pool)

    async def storage_vol_delete(
        self, args: R.remote_storage_vol_delete_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testStorageVolDelete")
        vol = self.volume(args.vol)
        vol.pool.allocation -= vol.vdef.allocation
        self.forget_volume(vol)
        self.save_pool(vol.pool)

    # --- beyond the test driver: libvirt's storage driver (storage_driver.c) ------------

    async def storage_vol_get_info_flags(
        self, args: R.remote_storage_vol_get_info_flags_args, ctx: ConnectionContext
    ) -> R.remote_storage_vol_get_info_flags_ret:
        check_flags(args.flags, C.VIR_STORAGE_VOL_GET_PHYSICAL, "storageVolGetInfoFlags")
        vol = self.volume(args.vol)
        return R.remote_storage_vol_get_info_flags_ret(
            type=volume_type_number(vol.pool.pdef.type),
            capacity=vol.vdef.capacity,
            allocation=vol.vdef.allocation,
        )

    async def storage_vol_resize(
        self, args: R.remote_storage_vol_resize_args, ctx: ConnectionContext
    ) -> None:
        allowed = (
            C.VIR_STORAGE_VOL_RESIZE_ALLOCATE
            | C.VIR_STORAGE_VOL_RESIZE_DELTA
            | C.VIR_STORAGE_VOL_RESIZE_SHRINK
        )
        flags = args.flags
        if flags & ~allowed:
            raise unsupported_flags(flags & ~allowed, "storageVolResize", C.VIR_FROM_STORAGE)
        vol = self.volume(args.vol)
        target = vol.vdef
        if flags & C.VIR_STORAGE_VOL_RESIZE_DELTA:
            if flags & C.VIR_STORAGE_VOL_RESIZE_SHRINK:
                capacity = target.capacity - min(args.capacity, target.capacity)
            else:
                capacity = target.capacity + args.capacity
        else:
            capacity = args.capacity
        if capacity < target.allocation:
            raise report(
                C.VIR_ERR_INVALID_ARG, C.VIR_FROM_STORAGE, "can't shrink capacity below existing allocation"
            )
        if capacity < target.capacity and not flags & C.VIR_STORAGE_VOL_RESIZE_SHRINK:
            raise report(
                C.VIR_ERR_INVALID_ARG,
                C.VIR_FROM_STORAGE,
                "Can't shrink capacity below current capacity unless shrink flag explicitly specified",
            )
        delta = capacity - target.allocation if flags & C.VIR_STORAGE_VOL_RESIZE_ALLOCATE else 0
        if delta > vol.pool.available:
            raise report(
                C.VIR_ERR_OPERATION_FAILED, C.VIR_FROM_STORAGE, "Not enough space left in storage pool"
            )
        target.capacity = capacity
        self.volume_files.truncate(vol.pool.uuid_string, vol.name, capacity)
        if flags & C.VIR_STORAGE_VOL_RESIZE_ALLOCATE:
            target.allocation = capacity
            vol.pool.allocation += delta
            self.save_pool(vol.pool)
        self.save_volume(vol)

    async def storage_vol_wipe(self, args: R.remote_storage_vol_wipe_args, ctx: ConnectionContext) -> None:
        await self._wipe(args.vol, C.VIR_STORAGE_VOL_WIPE_ALG_ZERO, args.flags, "storageVolWipe")

    async def storage_vol_wipe_pattern(
        self, args: R.remote_storage_vol_wipe_pattern_args, ctx: ConnectionContext
    ) -> None:
        await self._wipe(args.vol, args.algorithm, args.flags, "storageVolWipePattern")

    async def _wipe(
        self, ref: R.remote_nonnull_storage_vol, algorithm: int, flags: int, function: str
    ) -> None:
        if flags:
            raise unsupported_flags(flags, function, C.VIR_FROM_STORAGE)
        if algorithm >= C.VIR_STORAGE_VOL_WIPE_ALG_LAST:
            raise report(
                C.VIR_ERR_INVALID_ARG, C.VIR_FROM_STORAGE, f"wiping algorithm {algorithm} not supported"
            )
        vol = self.volume(ref)
        # Every algorithm leaves data nobody can read back; here the volume reads zeros again.
        self.volume_files.wipe(vol.pool.uuid_string, vol.name)
