"""The link half of a migration's flags and parameters: compression, parallel, TLS, tunnel.

Both hosts check them (PREPARE on the destination, PERFORM on the source), as
libvirt's qemuMigrationParamsFromFlags runs on both; the refusals and their
wording are libvirt's, or QEMU's as libvirt relays them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from virtwire.protocol.generated import constants as C

from ...errors import report
from .core import FROM
from .migration_codec import CompressionSpec, compression_spec
from .migration_connect import DEFAULT_PARALLEL_CONNECTIONS, LinkPlan
from .migration_link import parse_link_cap
from .migration_tls import destination_tls, source_tls

_MAX_CHANNELS = 255  # QEMU's multifd-channels range is 1..255


def _qemu_refused(command: str, detail: str) -> Exception:
    return report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"unable to execute QEMU command '{command}': {detail}")


def checked(params: dict[str, Any], flags: int) -> tuple[CompressionSpec | None, int]:
    """(compression, parallel data connections) of a migration, or libvirt's refusal.

    ``params[compression]`` is the list of every method given (the parameter repeats).
    """
    methods = params.get(C.VIR_MIGRATE_PARAM_COMPRESSION, [])
    methods = [methods] if isinstance(methods, str) else list(methods)
    if flags & C.VIR_MIGRATE_TUNNELLED and flags & C.VIR_MIGRATE_PARALLEL:
        raise report(
            C.VIR_ERR_INVALID_ARG,
            FROM,
            "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive",
        )
    channels_param = params.get(C.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS)
    if channels_param is not None and not flags & C.VIR_MIGRATE_PARALLEL:
        raise report(C.VIR_ERR_INVALID_ARG, FROM, "Turn parallel migration on to tune it")
    spec = compression_spec(methods, params, flags)
    channels = 0
    if flags & C.VIR_MIGRATE_PARALLEL:
        channels = channels_param if isinstance(channels_param, int) else DEFAULT_PARALLEL_CONNECTIONS
        if not 1 <= channels <= _MAX_CHANNELS:
            raise _qemu_refused(
                "migrate-set-parameters",
                "Parameter 'multifd_channels' expects is invalid, it should be in the range of 1 to 255",
            )
        if flags & C.VIR_MIGRATE_POSTCOPY:
            raise _qemu_refused("migrate-set-capabilities", "Postcopy is not yet compatible with multifd")
    if flags & C.VIR_MIGRATE_TLS and flags & C.VIR_MIGRATE_TUNNELLED:
        # QEMU's TLS needs a return path, which a tunnel lacks (its handshake could never finish).
        raise report(
            C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, "TLS migration is not supported with tunnelled migration"
        )
    return spec, channels


def destination_plan(
    spec: CompressionSpec | None, channels: int, flags: int, pki_dir: Path | None
) -> LinkPlan:
    tls = destination_tls(pki_dir) if flags & C.VIR_MIGRATE_TLS else None
    return LinkPlan(channels=channels, multifd=spec.multifd if spec else None, destination_tls=tls)


def source_plan(
    spec: CompressionSpec | None,
    channels: int,
    flags: int,
    params: dict[str, Any],
    host: str,
    pki_dir: Path | None,
    tree: ET.Element,
) -> LinkPlan:
    tls = None
    if flags & C.VIR_MIGRATE_TLS:
        name = params.get(C.VIR_MIGRATE_PARAM_TLS_DESTINATION)
        tls = source_tls(pki_dir, name if isinstance(name, str) and name else host)
    return LinkPlan(
        channels=channels,
        multifd=spec.multifd if spec else None,
        cap_mib_s=parse_link_cap(tree),
        source_tls=tls,
    )
