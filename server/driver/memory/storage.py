"""Storage pools and volumes of the in-memory driver: state, lookups, persistence.

The model is libvirt 9.0's test driver (src/test/test_driver.c): every pool
reports a capacity of 100 GiB; its allocation grows and shrinks by the
allocation of the volumes created in and deleted from it; a volume's key and
path are ``<pool target>/<name>``.  Lookups report the test driver's errors
(VIR_FROM_TEST); the definitions' own checks are storage_conf's
(``storage_xml``).

Persistence (``--state-dir``): pools in ``pools/`` (one file per persistent
pool, by UUID, with its autostart flag, whether it was active and its
allocation), volume definitions of persistent pools in ``volumes/<pool uuid>/``
beside their bytes (``volume_data``).  The default pool of test:///default is
seeded the first time.  A change is on disk before the call that made it returns.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import report
from .core import MemoryCore
from .nodexml import NodeDescription
from .storage_xml import (
    POOL_KINDS,
    VOL_TYPES,
    PoolDef,
    VolDef,
    format_pool,
    format_volume,
    parse_pool,
    parse_volume,
    sanitize_path,
    target_volume_path,
)
from .store import ObjectStore
from .volume_data import VolumeFiles

log = logging.getLogger(__name__)

FROM = C.VIR_FROM_TEST
POOL_CAPACITY = 100 * 1024 * 1024 * 1024  # testStoragePoolObjSetDefaults' defaultPoolCap

DEFAULT_POOL_XML = """<pool type='dir'>
  <name>default-pool</name>
  <uuid>dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566</uuid>
  <target>
    <path>/default-pool</path>
  </target>
</pool>
"""


@dataclass(eq=False)
class Volume:
    """One volume of a pool (virStorageVolDef)."""

    vdef: VolDef
    pool: Pool
    ref_cache: R.remote_nonnull_storage_vol | None = None

    @property
    def name(self) -> str:
        return self.vdef.name

    @property
    def key(self) -> str:
        return self.vdef.key or ""

    @property
    def path(self) -> str:
        return self.vdef.target.path or ""

    @property
    def ref(self) -> R.remote_nonnull_storage_vol:
        """The wire form; built once (pool name, volume name and key never change). Read-only."""
        if self.ref_cache is None:
            self.ref_cache = R.remote_nonnull_storage_vol(pool=self.pool.name, name=self.name, key=self.key)
        return self.ref_cache

    def xml(self) -> str:
        return format_volume(self.pool.pdef.type, self.vdef)


@dataclass(eq=False)
class Pool:
    """One storage pool (virStoragePoolObj)."""

    pdef: PoolDef
    persistent: bool
    active: bool = False
    autostart: bool = False
    capacity: int = POOL_CAPACITY
    allocation: int = 0
    volumes: dict[str, Volume] = field(default_factory=dict)  # by name, in creation order

    @property
    def name(self) -> str:
        return self.pdef.name

    @property
    def uuid(self) -> bytes:
        return self.pdef.uuid

    @property
    def uuid_string(self) -> str:
        return str(uuidlib.UUID(bytes=self.pdef.uuid))

    @property
    def available(self) -> int:
        return self.capacity - self.allocation

    @property
    def ref(self) -> R.remote_nonnull_storage_pool:
        return R.remote_nonnull_storage_pool(name=self.name, uuid=self.uuid)

    def xml(self) -> str:
        return format_pool(self.pdef, self.capacity, self.allocation, self.available)


def not_active(name: str) -> Exception:
    return report(C.VIR_ERR_OPERATION_INVALID, FROM, f"storage pool '{name}' is not active")


def is_active_error(name: str) -> Exception:
    return report(C.VIR_ERR_OPERATION_INVALID, FROM, f"storage pool '{name}' is active")


class StorageState(MemoryCore):
    """Pools and volumes on top of the domains of ``MemoryCore``."""

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__(hostname=hostname, state_dir=state_dir, seed_defaults=seed_defaults, node=node)
        self._pools_by_uuid: dict[bytes, Pool] = {}
        self._pools_by_name: dict[str, Pool] = {}
        self.pool_store = ObjectStore(state_dir / "pools", "pool") if state_dir is not None else None
        self.volume_files = VolumeFiles(state_dir)
        self._load_storage(seed_defaults)

    # --- boot ---------------------------------------------------------------------------

    def _load_storage(self, seed_defaults: bool) -> None:
        store = self.pool_store
        if store is not None and store.seeded:
            for stored in store.load():
                try:
                    pool = self._add_pool(parse_pool(stored.xml), persistent=True)
                except Exception as exc:  # one bad file must not stop the server
                    log.warning("state dir: skipping a pool definition that no longer parses: %s", exc)
                    continue
                pool.autostart = stored.autostart
                pool.active = stored.attrs.get("active") == "1" or pool.autostart
                pool.allocation = int(stored.attrs.get("allocation", "0"))
                self._load_volumes(pool)
            self._forget_stray_volume_dirs()
        elif self.node is not None:
            # testParseStorage: every pool of a node file is defined and running, with its volumes.
            for spec in self.node.pools:
                pool = self._add_pool(parse_pool(spec.xml), persistent=True)
                pool.active = True
                for xml in spec.volumes:
                    # testOpenVolumesForPool keeps a path and key the file gives.
                    vdef = parse_volume(pool.pdef.type, xml)
                    if vdef.target.path is None:
                        vdef.target.path = target_volume_path(pool.pdef, vdef.name)
                    if vdef.key is None:
                        vdef.key = vdef.target.path
                    vol = Volume(vdef, pool)
                    pool.volumes[vol.name] = vol
                    pool.allocation += vol.vdef.allocation
                    self.save_volume(vol)
                self.save_pool(pool)
            if store is not None:
                store.mark_seeded()
        elif seed_defaults:
            pool = self._add_pool(parse_pool(DEFAULT_POOL_XML), persistent=True)
            pool.active = True
            self.save_pool(pool)
            if store is not None:
                store.mark_seeded()

    def _volume_store(self, pool: Pool) -> ObjectStore | None:
        if self.state_dir is None or not pool.persistent:
            return None
        return ObjectStore(self.volume_files.root / pool.uuid_string, "volume")

    def _load_volumes(self, pool: Pool) -> None:
        store = self._volume_store(pool)
        if store is None:
            return
        for stored in store.load():
            try:
                vdef = parse_volume(pool.pdef.type, stored.xml)
            except Exception as exc:
                log.warning("state dir: skipping a volume definition that no longer parses: %s", exc)
                continue
            pool.volumes[vdef.name] = Volume(vdef, pool)

    def _forget_stray_volume_dirs(self) -> None:
        """Bytes of transient pools (not kept over a restart) are removed."""
        for directory in self.volume_files.root.iterdir():
            try:
                known = uuidlib.UUID(directory.name).bytes in self._pools_by_uuid
            except ValueError:
                known = False
            if not known:
                self.volume_files.delete_pool(directory.name)

    # --- pools --------------------------------------------------------------------------

    def pools(self) -> list[Pool]:
        """Every pool, by name."""
        return sorted(self._pools_by_uuid.values(), key=lambda p: p.name)

    def _add_pool(self, pdef: PoolDef, *, persistent: bool) -> Pool:
        pool = Pool(pdef, persistent)
        self._pools_by_uuid[pdef.uuid] = pool
        self._pools_by_name[pdef.name] = pool
        return pool

    def remove_pool(self, pool: Pool) -> None:
        self._pools_by_uuid.pop(pool.uuid, None)
        if self._pools_by_name.get(pool.name) is pool:
            del self._pools_by_name[pool.name]
        if self.pool_store is not None and pool.persistent:
            self.pool_store.delete(pool.uuid_string)
        self.volume_files.delete_pool(pool.uuid_string)

    def pool_by_name(self, name: str) -> Pool:
        pool = self._pools_by_name.get(name)
        if pool is None:
            raise report(C.VIR_ERR_NO_STORAGE_POOL, FROM, f"no storage pool with matching name '{name}'")
        return pool

    def pool_by_uuid(self, uuid: bytes) -> Pool:
        pool = self._pools_by_uuid.get(bytes(uuid))
        if pool is None:
            text = str(uuidlib.UUID(bytes=bytes(uuid)))
            raise report(C.VIR_ERR_NO_STORAGE_POOL, FROM, f"no storage pool with matching uuid '{text}'")
        return pool

    def pool_by_target_path(self, path: str) -> Pool:
        """An active pool whose target is ``path`` once sanitized (storagePoolLookupByTargetPath;
        a pool's target path is stored sanitized, as libvirt parses it)."""
        clean = sanitize_path(path)
        for pool in self._pools_by_uuid.values():
            if pool.active and pool.pdef.target_path == clean:
                return pool
        shown = f"'{path}'" if clean == path else f"'{path}' ({clean})"
        raise report(C.VIR_ERR_NO_STORAGE_POOL, FROM, f"no storage pool with matching target path {shown}")

    def active_pool(self, name: str) -> Pool:
        pool = self.pool_by_name(name)
        if not pool.active:
            raise not_active(name)
        return pool

    def inactive_pool(self, name: str) -> Pool:
        pool = self.pool_by_name(name)
        if pool.active:
            raise is_active_error(name)
        return pool

    def save_pool(self, pool: Pool) -> None:
        """Write a persistent pool's definition and attributes (if there is a state dir)."""
        if self.pool_store is not None and pool.persistent:
            self.pool_store.save(
                pool.uuid_string,
                format_pool(pool.pdef, pool.capacity, 0, pool.capacity),
                autostart=pool.autostart,
                active=pool.active,
                allocation=pool.allocation,
            )

    def add_pool(self, pdef: PoolDef, *, live: bool) -> tuple[Pool, bool]:
        """virStoragePoolObjListAdd: a new pool, or the existing one redefined; (pool, added)."""
        self._check_source_duplicate(pdef)
        existing = self._pools_by_uuid.get(pdef.uuid)
        if existing is not None:
            if existing.name != pdef.name:
                raise report(
                    C.VIR_ERR_OPERATION_FAILED,
                    C.VIR_FROM_STORAGE,
                    f"pool '{existing.name}' is already defined with uuid {existing.uuid_string}",
                )
            if live and existing.active:
                raise report(
                    C.VIR_ERR_OPERATION_INVALID,
                    C.VIR_FROM_STORAGE,
                    f"pool is already active as '{existing.name}'",
                )
            if not existing.active:
                existing.pdef = pdef  # an active pool keeps its definition (libvirt keeps the new as newDef)
            return existing, False
        named = self._pools_by_name.get(pdef.name)
        if named is not None:
            raise report(
                C.VIR_ERR_OPERATION_FAILED,
                C.VIR_FROM_STORAGE,
                f"pool '{pdef.name}' already exists with uuid {named.uuid_string}",
            )
        return self._add_pool(pdef, persistent=not live), True

    def _check_source_duplicate(self, pdef: PoolDef) -> None:
        """virStoragePoolObjSourceFindDuplicate, for the pool types it compares."""
        for other in self._pools_by_uuid.values():
            if other.name == pdef.name:
                continue
            if _same_source(other.pdef, pdef):
                raise report(
                    C.VIR_ERR_OPERATION_FAILED,
                    C.VIR_FROM_STORAGE,
                    f"Storage source conflict with pool: '{other.name}'",
                )

    # --- volumes ------------------------------------------------------------------------

    def volume_in(self, pool: Pool, name: str) -> Volume:
        vol = pool.volumes.get(name)
        if vol is None:
            raise report(C.VIR_ERR_NO_STORAGE_VOL, FROM, f"no storage vol with matching name '{name}'")
        return vol

    def volume(self, ref: R.remote_nonnull_storage_vol) -> Volume:
        """The volume a call names (by pool name and volume name, as the test driver finds it)."""
        return self.volume_in(self.active_pool(ref.pool), ref.name)

    def find_volume(self, attribute: str, value: str) -> Volume:
        """A volume of an active pool by ``key`` or ``path``."""
        for pool in self._pools_by_uuid.values():
            if not pool.active:
                continue
            for vol in pool.volumes.values():
                if getattr(vol, attribute) == value:
                    return vol
        raise report(C.VIR_ERR_NO_STORAGE_VOL, FROM, f"no storage vol with matching {attribute} '{value}'")

    def save_volume(self, vol: Volume) -> None:
        store = self._volume_store(vol.pool)
        if store is not None:
            store.save(vol.name.encode().hex(), vol.xml())

    def forget_volume(self, vol: Volume) -> None:
        vol.pool.volumes.pop(vol.name, None)
        store = self._volume_store(vol.pool)
        if store is not None:
            store.delete(vol.name.encode().hex())
        self.volume_files.delete(vol.pool.uuid_string, vol.name)


def _same_source(existing: PoolDef, new: PoolDef) -> bool:
    kind = existing.type
    if kind in ("dir", "gluster", "netfs"):
        if new.type != kind:
            return False
        if kind == "dir":
            return existing.target_path == new.target_path
        return (
            _same_host(existing, new)
            and existing.source.dir == new.source.dir
            and (kind != "gluster" or existing.source.name == new.source.name)
        )
    block = ("iscsi", "fs", "logical", "disk", "zfs")
    if kind in block and new.type in block:
        mine = {path for path, _ in existing.source.devices}
        return any(path in mine for path, _ in new.source.devices)
    if kind == "sheepdog" and new.type == kind:
        return _same_host(existing, new)
    if kind == "mpath":
        return new.type == kind
    if kind == "vstorage" and new.type == kind:
        return existing.source.name == new.source.name
    return False


def _same_host(a: PoolDef, b: PoolDef) -> bool:
    if len(a.source.hosts) != 1 or len(b.source.hosts) != 1:
        return False
    return a.source.hosts[0][0] == b.source.hosts[0][0] and a.source.hosts[0][1] == b.source.hosts[0][1]


def volume_type_number(pool_type: str) -> int:
    """testStorageVolumeTypeForPool as a VIR_STORAGE_VOL_* number."""
    return VOL_TYPES.index(POOL_KINDS[pool_type].vol_type)


def new_volume(pool: Pool, vdef: VolDef) -> Volume:
    """What testStorageVolCreateXML fills in: path and key are ``<pool target>/<name>``."""
    vdef.target.path = target_volume_path(pool.pdef, vdef.name)
    vdef.key = vdef.target.path
    return Volume(vdef, pool)
