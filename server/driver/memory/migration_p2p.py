"""Peer-to-peer migration: the source server drives the destination server itself.

With VIR_MIGRATE_PEER2PEER the client makes one PERFORM3_PARAMS call on the source
(``virsh migrate --p2p``, ``migrateToURI3``). Like libvirt's
qemuMigrationSrcPerformPeer2Peer3, the source then opens its own connection to
``dconnuri`` with virtwire's trio client and runs PREPARE3_PARAMS and
FINISH3_PARAMS there, with BEGIN, PERFORM and CONFIRM done locally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from virtwire.client import aio, ops
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import MIGRATION_PARAM_TYPES, dict_to_params

from ...errors import report
from .core import FROM
from .migration_recovery import MigrationPhase
from .migration_session import Cookie, migratable_xml, persist_xml
from .migration_tunnel import TunnelSourceLink
from .model import Domain

if TYPE_CHECKING:
    from .migration_api import MigrationMixin

# VIR_DRV_FEATURE_MIGRATION_V3 and _PARAMS: what the destination must speak.
_REQUIRED_FEATURES = (DriverFeature.MIGRATION_V3, DriverFeature.MIGRATION_PARAMS)
# Flags the destination never sees (libvirt strips them the same way).
_SOURCE_ONLY_FLAGS = C.VIR_MIGRATE_ABORT_ON_ERROR | C.VIR_MIGRATE_AUTO_CONVERGE


def _wire_params(params: dict[str, Any]) -> list[Any]:
    # Each parameter travels with libvirt's type for it (VIR_MIGRATE_PARAM_*):
    # the destination refuses, say, auto_converge.initial sent as ULLONG.
    return dict_to_params(params, MIGRATION_PARAM_TYPES, limit=R.REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX)


async def perform_peer2peer(
    driver: MigrationMixin, dom: Domain, dconnuri: str | None, params: dict[str, Any], flags: int
) -> None:
    if not dconnuri:
        raise report(C.VIR_ERR_INVALID_ARG, FROM, "dconnuri must not be NULL in peer-to-peer migration")
    if flags & C.VIR_MIGRATE_TUNNELLED:
        for name, what in (
            (C.VIR_MIGRATE_PARAM_URI, "migration URI"),
            (C.VIR_MIGRATE_PARAM_LISTEN_ADDRESS, "listen address"),
        ):
            if params.get(name):
                raise report(
                    C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, f"{what} is not supported by tunnelled migration"
                )
    offline = bool(flags & C.VIR_MIGRATE_OFFLINE)
    if not offline and not dom.active:
        raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "domain is not running")
    if flags & C.VIR_MIGRATE_POSTCOPY_RESUME:
        # The Begin step of a recovery, done here before the destination is asked.
        driver._outgoing_to_resume(dom, flags, MigrationPhase.POSTCOPY_FAILED)
    try:
        conn = await aio.connect(dconnuri)
    except libvirtError as exc:
        detail = exc.get_error_message() or str(exc)
        raise report(
            C.VIR_ERR_OPERATION_FAILED, FROM, f"Failed to connect to remote libvirt URI {dconnuri}: {detail}"
        ) from None
    async with conn:
        for feature in _REQUIRED_FEATURES:
            supported = await conn.call(ops.call("CONNECT_SUPPORTS_FEATURE", feature=feature))
            if not getattr(supported, "supported", 0):
                raise report(
                    C.VIR_ERR_OPERATION_FAILED,
                    FROM,
                    "Destination libvirt does not support peer-to-peer migration protocol",
                )
        dest_params = dict(params)
        dest_params[C.VIR_MIGRATE_PARAM_DEST_XML] = migratable_xml(dom.xml(inactive=offline), dom.tree)
        dest_params.setdefault(C.VIR_MIGRATE_PARAM_DEST_NAME, dom.name)
        dest_flags = flags & ~_SOURCE_ONLY_FLAGS
        if flags & C.VIR_MIGRATE_TUNNELLED:
            failure = await _tunnelled(driver, conn, dom, params, dest_params, flags, dest_flags)
        else:
            failure = await _direct(driver, conn, dom, params, dest_params, flags, dest_flags)
        cancelled = failure is not None
        finish_error: libvirtError | None = None
        local = driver._cookie()
        performed = Cookie(local.hostname, local.hostuuid, persist_xml(params, flags)).encode()
        try:
            await conn.call(
                ops.call(
                    "DOMAIN_MIGRATE_FINISH3_PARAMS",
                    params=_wire_params(dest_params),
                    cookie_in=performed,
                    flags=dest_flags,
                    cancelled=int(cancelled),
                )
            )
        except libvirtError as exc:
            finish_error = exc
    driver.confirm_outgoing(dom, flags, cancelled=cancelled or finish_error is not None)
    if failure is not None:
        raise failure
    if finish_error is not None:
        raise finish_error


async def _direct(
    driver: MigrationMixin,
    conn: aio.Connection,
    dom: Domain,
    params: dict[str, Any],
    dest_params: dict[str, Any],
    flags: int,
    dest_flags: int,
) -> libvirtError | None:
    """PREPARE3_PARAMS, then the pages to the port it announced (none when offline)."""
    prepared = await conn.call(
        ops.call(
            "DOMAIN_MIGRATE_PREPARE3_PARAMS",
            params=_wire_params(dest_params),
            cookie_in=driver._cookie().encode(),
            flags=dest_flags,
        )
    )
    Cookie.decode(prepared.cookie_out)
    if flags & C.VIR_MIGRATE_OFFLINE:
        return None
    uri = prepared.uri_out
    if not uri:
        return report(C.VIR_ERR_INTERNAL_ERROR, FROM, "destination did not announce a migration URI")
    try:
        await driver._migrate_to(dom, uri, params, flags)
    except libvirtError as exc:
        return exc
    return None


async def _tunnelled(
    driver: MigrationMixin,
    conn: aio.Connection,
    dom: Domain,
    params: dict[str, Any],
    dest_params: dict[str, Any],
    flags: int,
    dest_flags: int,
) -> libvirtError | None:
    """PREPARE_TUNNEL3_PARAMS with a stream, then the pages into it (qemuMigrationSrcPerformTunnel)."""
    stream = await conn.new_stream(
        ops.call(
            "DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS",
            params=_wire_params(dest_params),
            cookie_in=driver._cookie().encode(),
            flags=dest_flags,
        )
    )
    Cookie.decode(stream.result.cookie_out)
    link = TunnelSourceLink(stream)
    try:
        await driver._migrate_to(dom, None, params, flags, tunnel=link)
    except libvirtError as exc:
        await link.abort()  # refused before it ran: the destination learns it from the stream too
        return exc
    return None
