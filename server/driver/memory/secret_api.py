"""Secret procedures of the memory driver: libvirt's secret driver over ``secrets``.

Persistent secrets are kept under ``<state-dir>/secrets``: the definition as
``<uuid>.xml``, the value as a blob beside it.  Ephemeral secrets are never
written (libvirt keeps them in memory only).
"""

from __future__ import annotations

import logging
import uuid as uuidlib

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import report, unsupported_flags
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore
from .secrets import FROM, Secret, SecretDef, SecretRegistry, parse_secret_xml
from .store import ObjectStore

log = logging.getLogger(__name__)

_VALUE_BLOB = "value"
_LIST_FILTERS = (
    C.VIR_CONNECT_LIST_SECRETS_EPHEMERAL
    | C.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL
    | C.VIR_CONNECT_LIST_SECRETS_PRIVATE
    | C.VIR_CONNECT_LIST_SECRETS_NO_PRIVATE
)


def _check_flags(flags: int, allowed: int, function: str) -> None:
    if flags & ~allowed:
        raise unsupported_flags(flags & ~allowed, function, FROM)


def secret_ref(definition: SecretDef) -> R.remote_nonnull_secret:
    return R.remote_nonnull_secret(
        uuid=definition.uuid, usageType=definition.usage_type, usageID=definition.usage_id or ""
    )


def _matches(definition: SecretDef, flags: int) -> bool:
    """virSecretObjMatch: within a group the flags are ORed, groups ANDed."""
    eph = C.VIR_CONNECT_LIST_SECRETS_EPHEMERAL | C.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL
    if flags & eph and not (
        (flags & C.VIR_CONNECT_LIST_SECRETS_EPHEMERAL and definition.ephemeral)
        or (flags & C.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL and not definition.ephemeral)
    ):
        return False
    private = C.VIR_CONNECT_LIST_SECRETS_PRIVATE | C.VIR_CONNECT_LIST_SECRETS_NO_PRIVATE
    return not (
        flags & private
        and not (
            (flags & C.VIR_CONNECT_LIST_SECRETS_PRIVATE and definition.private)
            or (flags & C.VIR_CONNECT_LIST_SECRETS_NO_PRIVATE and not definition.private)
        )
    )


@nonblocking
class SecretAPI(MemoryCore):
    """virSecret* and virConnect*Secrets answers."""

    _secrets: SecretRegistry
    _secret_store: ObjectStore | None

    def _secret_registry(self) -> SecretRegistry:
        # Built on first use: MemoryCore's constructor is shared by every family.
        registry = getattr(self, "_secrets", None)
        if registry is None:
            registry = self._secrets = SecretRegistry()
            self._secret_store = None
            if self.state_dir is not None:
                self._secret_store = ObjectStore(self.state_dir / "secrets", "secret")
                self._load_secrets(self._secret_store, registry)
        return registry

    @staticmethod
    def _load_secrets(store: ObjectStore, registry: SecretRegistry) -> None:
        for stored in store.load():
            try:
                definition = parse_secret_xml(stored.xml)
                if definition.uuid_string != stored.key:
                    raise ValueError(f"<uuid> does not match secret file name '{stored.key}.xml'")
                registry.check_add(definition)
            except Exception as exc:  # one bad file must not stop the server
                log.warning("state dir: skipping a secret that no longer loads: %s", exc)
                continue
            registry.put(Secret(definition, store.load_blob(stored.key, _VALUE_BLOB)))

    def _secret(self, ref: R.remote_nonnull_secret) -> Secret:
        secret = self._secret_registry().get(bytes(ref.uuid))
        if secret is None:
            uuid = str(uuidlib.UUID(bytes=bytes(ref.uuid)))
            raise report(C.VIR_ERR_NO_SECRET, FROM, f"no secret with matching uuid '{uuid}'")
        return secret

    # --- listing ----------------------------------------------------------------------------

    async def connect_num_of_secrets(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_secrets_ret:
        return R.remote_connect_num_of_secrets_ret(num=len(self._secret_registry().all()))

    async def connect_list_secrets(
        self, args: R.remote_connect_list_secrets_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_secrets_ret:
        uuids = [s.definition.uuid_string for s in self._secret_registry().all()]
        return R.remote_connect_list_secrets_ret(uuids=uuids[: max(args.maxuuids, 0)])

    async def connect_list_all_secrets(
        self, args: R.remote_connect_list_all_secrets_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_secrets_ret:
        _check_flags(args.flags, _LIST_FILTERS, "secretConnectListAllSecrets")
        found = [s for s in self._secret_registry().all() if _matches(s.definition, args.flags)]
        refs = [secret_ref(s.definition) for s in found] if args.need_results else []
        return R.remote_connect_list_all_secrets_ret(secrets=refs, ret=len(found))

    # --- lookup -----------------------------------------------------------------------------

    async def secret_lookup_by_uuid(
        self, args: R.remote_secret_lookup_by_uuid_args, ctx: ConnectionContext
    ) -> R.remote_secret_lookup_by_uuid_ret:
        secret = self._secret_registry().get(bytes(args.uuid))
        if secret is None:
            uuid = str(uuidlib.UUID(bytes=bytes(args.uuid)))
            raise report(C.VIR_ERR_NO_SECRET, FROM, f"no secret with matching uuid '{uuid}'")
        return R.remote_secret_lookup_by_uuid_ret(secret=secret_ref(secret.definition))

    async def secret_lookup_by_usage(
        self, args: R.remote_secret_lookup_by_usage_args, ctx: ConnectionContext
    ) -> R.remote_secret_lookup_by_usage_ret:
        secret = self._secret_registry().find_by_usage(args.usageType, args.usageID)
        if secret is None:
            raise report(C.VIR_ERR_NO_SECRET, FROM, f"no secret with matching usage '{args.usageID}'")
        return R.remote_secret_lookup_by_usage_ret(secret=secret_ref(secret.definition))

    # --- definition ---------------------------------------------------------------------------

    async def secret_define_xml(
        self, args: R.remote_secret_define_xml_args, ctx: ConnectionContext
    ) -> R.remote_secret_define_xml_ret:
        _check_flags(args.flags, C.VIR_SECRET_DEFINE_VALIDATE, "secretDefineXML")
        registry = self._secret_registry()
        definition = parse_secret_xml(args.xml, validate=bool(args.flags & C.VIR_SECRET_DEFINE_VALIDATE))
        existing = registry.check_add(definition)
        was_ephemeral = existing is not None and existing.definition.ephemeral
        secret = existing if existing is not None else Secret(definition)
        store = self._secret_store
        key = definition.uuid_string
        # Durable before the reply; the registry changes only once the disk has.
        if store is not None:
            if not definition.ephemeral:
                if was_ephemeral and secret.value is not None:
                    store.save_blob(key, _VALUE_BLOB, secret.value)
                store.save(key, definition.format())
            elif existing is not None and not existing.definition.ephemeral:
                store.delete(key)
        secret.definition = definition
        registry.put(secret)
        self.secret_events.lifecycle(secret_ref(definition), C.VIR_SECRET_EVENT_DEFINED, 0)
        return R.remote_secret_define_xml_ret(secret=secret_ref(definition))

    async def secret_get_xml_desc(
        self, args: R.remote_secret_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_secret_get_xml_desc_ret:
        _check_flags(args.flags, 0, "secretGetXMLDesc")
        return R.remote_secret_get_xml_desc_ret(xml=self._secret(args.secret).definition.format())

    async def secret_undefine(self, args: R.remote_secret_undefine_args, ctx: ConnectionContext) -> None:
        secret = self._secret(args.secret)
        if self._secret_store is not None:
            self._secret_store.delete(secret.definition.uuid_string)
        self._secret_registry().remove(secret)
        self.secret_events.lifecycle(secret_ref(secret.definition), C.VIR_SECRET_EVENT_UNDEFINED, 0)

    # --- value --------------------------------------------------------------------------------

    async def secret_set_value(self, args: R.remote_secret_set_value_args, ctx: ConnectionContext) -> None:
        _check_flags(args.flags, 0, "secretSetValue")
        secret = self._secret(args.secret)
        # libvirt copies the value into g_new0(size), which is NULL for size 0:
        # an empty value leaves the secret without one.
        value = bytes(args.value) or None
        store = self._secret_store
        if store is not None and not secret.definition.ephemeral:
            key = secret.definition.uuid_string
            if value is None:
                store.delete_blob(key, _VALUE_BLOB)
            else:
                store.save_blob(key, _VALUE_BLOB, value)
        secret.value = value
        self.secret_events.value_changed(secret_ref(secret.definition))

    async def secret_get_value(
        self, args: R.remote_secret_get_value_args, ctx: ConnectionContext
    ) -> R.remote_secret_get_value_ret:
        _check_flags(args.flags, 0, "secretGetValue")
        secret = self._secret(args.secret)
        # A remote caller is never the daemon's own elevated identity, so libvirt
        # refuses every private secret's value to it.
        if secret.definition.private:
            raise report(C.VIR_ERR_INVALID_SECRET, FROM, "secret is private")
        if secret.value is None:
            raise report(
                C.VIR_ERR_NO_SECRET, FROM, f"secret '{secret.definition.uuid_string}' does not have a value"
            )
        return R.remote_secret_get_value_ret(value=secret.value)
