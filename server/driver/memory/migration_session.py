"""Per-domain migration state and the small formats the five migration steps share.

A domain being migrated out carries an ``OutgoingSession`` (the engine, its
settings, the flags), a domain coming in an ``IncomingSession`` (listener, engine,
the task running it). Both live in ``Domain.extra`` under their own keys, with the
active ``Job`` in ``Domain.job`` and the last finished one (for
VIR_DOMAIN_JOB_STATS_COMPLETED) under ``COMPLETED_JOB``.

Cookies are opaque to libvirt's client; between two virtwire hosts they are a
small XML document naming the sending host (name and host UUID, so a migration
to the same host is refused as QEMU hosts refuse it).
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio
from virtwire.protocol.generated import constants as C

from ...errors import report
from .core import FROM
from .domxml import parse_domain_xml
from .guest import VIRTWIRE_XMLNS
from .jobs import Job
from .migration import MigrationSettings, OutgoingMigration
from .migration_connect import LinkPlan
from .migration_incoming import IncomingMigration
from .migration_link import MigrationLink
from .migration_recovery import MigrationPhase

OUTGOING = "migration.outgoing"
INCOMING = "migration.incoming"
COMPLETED_JOB = "migration.completed_job"
SPEED = "migration.max_speed"  # MiB/s, pre-copy
POSTCOPY_SPEED = "migration.max_speed_postcopy"
DOWNTIME = "migration.max_downtime"  # ms
COMPRESSION_CACHE = "migration.compression_cache"  # bytes (xbzrle)

_HOST_UUID_NAMESPACE = uuidlib.UUID("2f4bd1f6-6a5e-4c1e-9a8e-7c1d6f2b9e10")

# The flags this driver implements; anything else is refused, never ignored.
SUPPORTED_FLAGS = (
    C.VIR_MIGRATE_LIVE
    | C.VIR_MIGRATE_PEER2PEER
    | C.VIR_MIGRATE_PERSIST_DEST
    | C.VIR_MIGRATE_UNDEFINE_SOURCE
    | C.VIR_MIGRATE_PAUSED
    | C.VIR_MIGRATE_CHANGE_PROTECTION
    | C.VIR_MIGRATE_POSTCOPY
    | C.VIR_MIGRATE_POSTCOPY_RESUME
    | C.VIR_MIGRATE_ABORT_ON_ERROR
    | C.VIR_MIGRATE_AUTO_CONVERGE
    | C.VIR_MIGRATE_OFFLINE
    | C.VIR_MIGRATE_COMPRESSED
    | C.VIR_MIGRATE_TUNNELLED
    | C.VIR_MIGRATE_TLS
    | C.VIR_MIGRATE_PARALLEL
)


def host_uuid(hostname: str) -> str:
    """A stable host UUID per host name: two servers told apart by --hostname differ."""
    return str(uuidlib.uuid5(_HOST_UUID_NAMESPACE, hostname))


@dataclass(frozen=True, slots=True)
class Cookie:
    hostname: str
    hostuuid: str
    # The definition the destination keeps with VIR_MIGRATE_PERSIST_DEST
    # (VIR_MIGRATE_PARAM_PERSIST_XML), sent by Perform as libvirt's cookie does.
    persistent: str | None = None

    def encode(self) -> bytes:
        root = ET.Element("virtwire-migration")
        ET.SubElement(root, "hostname").text = self.hostname
        ET.SubElement(root, "hostuuid").text = self.hostuuid
        if self.persistent is not None:
            ET.SubElement(root, "persistent").text = self.persistent
        return ET.tostring(root) + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> Cookie | None:
        """The peer's cookie, or None when it sent none (or not ours)."""
        if not data:
            return None
        try:
            root = ET.fromstring(data.rstrip(b"\0"))
        except ET.ParseError:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "invalid migration cookie") from None
        if root.tag != "virtwire-migration":
            return None
        hostname = root.findtext("hostname")
        hostuuid = root.findtext("hostuuid")
        if not hostname or not hostuuid:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "missing hostname element in migration data")
        return cls(hostname, hostuuid, root.findtext("persistent"))


def check_not_same_host(local: Cookie, remote: Cookie | None) -> None:
    if remote is not None and remote.hostuuid == local.hostuuid:
        raise report(
            C.VIR_ERR_INTERNAL_ERROR, FROM, f"Attempt to migrate guest to the same host {remote.hostname}"
        )


def parse_migrate_uri(uri: str) -> tuple[str, int]:
    """``tcp://host:port`` or QEMU's ``tcp:host:port`` -> (host, port)."""
    if uri.startswith("tcp:") and not uri.startswith("tcp://"):
        host, sep, port = uri[4:].rpartition(":")
        if sep and port.isdigit():
            return host.strip("[]") or "127.0.0.1", int(port)
    else:
        parts = urlsplit(uri)
        if parts.scheme == "tcp" and parts.port is not None:
            return parts.hostname or "127.0.0.1", parts.port
    raise report(C.VIR_ERR_INVALID_ARG, FROM, f"unable to parse URI {uri}")


def listen_spec(uri: str | None, listen_address: str | None) -> tuple[str, int]:
    """Where the destination listens: the client's migrate_uri port if given, else any."""
    host = listen_address or "127.0.0.1"
    if not uri:
        return host, 0
    uri_host, port = parse_migrate_uri(uri)
    return listen_address or uri_host, port


@dataclass(slots=True, eq=False)
class OutgoingSession:
    engine: OutgoingMigration
    flags: int
    phase: MigrationPhase = MigrationPhase.NONE  # past NONE: post-copy failed, recovery steps


@dataclass(slots=True, eq=False)
class IncomingSession:
    """A prepared incoming migration; ``done`` is set when its engine stops."""

    engine: IncomingMigration | None  # None for an offline migration
    flags: int
    listener: trio.SocketListener | None
    uri: str | None
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    failure: str | None = None
    owner_conn: int | None = None
    new_domain: bool = True  # False: an inactive persistent definition existed here
    phase: MigrationPhase = MigrationPhase.NONE  # past NONE: post-copy failed, recovery steps
    connected: bool = False  # the source connected to ``listener``
    link_plan: LinkPlan = field(default_factory=LinkPlan)  # how the source connects
    tunnel: MigrationLink | None = None  # tunnelled: the link the PREPARE_TUNNEL3 stream feeds


def migration_settings(extra: dict[str, object], flags: int) -> MigrationSettings:
    """Settings for a new migration from the domain's migrateSet* values."""
    settings = MigrationSettings(postcopy=bool(flags & C.VIR_MIGRATE_POSTCOPY))
    speed = extra.get(SPEED)
    if isinstance(speed, int):
        settings.bandwidth_mib_s = speed
    postcopy_speed = extra.get(POSTCOPY_SPEED)
    if isinstance(postcopy_speed, int):
        settings.postcopy_bandwidth_mib_s = postcopy_speed
    downtime = extra.get(DOWNTIME)
    if isinstance(downtime, int):
        settings.max_downtime_ms = downtime
    cache = extra.get(COMPRESSION_CACHE)
    if isinstance(cache, int):
        settings.compression_cache_bytes = cache
    return settings


def apply_auto_converge(settings: MigrationSettings, params: dict[str, Any], flags: int) -> None:
    """VIR_MIGRATE_AUTO_CONVERGE and its two tunables, refused as libvirt and QEMU refuse them."""
    initial = params.get(C.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL)
    increment = params.get(C.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT)
    if (initial is not None or increment is not None) and not flags & C.VIR_MIGRATE_AUTO_CONVERGE:
        raise report(C.VIR_ERR_INVALID_ARG, FROM, "Turn auto convergence on to tune it")
    for qemu_name, value in (("cpu_throttle_initial", initial), ("cpu_throttle_increment", increment)):
        if value is not None and not 1 <= value <= 99:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR,
                FROM,
                "unable to execute QEMU command 'migrate-set-parameters': "
                f"Parameter '{qemu_name}' expects an integer in the range of 1 to 99",
            )
    settings.auto_converge = bool(flags & C.VIR_MIGRATE_AUTO_CONVERGE)
    if isinstance(initial, int):
        settings.throttle_initial = initial
    if isinstance(increment, int):
        settings.throttle_increment = increment


def job_failed_message(job_name: str, reason: str) -> str:
    return f"job '{job_name}' failed: {reason}"


def migratable_xml(text: str, tree: ET.Element) -> str:
    """The domain XML to send to the destination: ``text`` if it parses back.

    Namespaced metadata (our workload element) must survive the trip; if the
    printed form does not parse, serialise the definition tree directly.
    """
    try:
        ET.fromstring(text)
    except ET.ParseError:
        ET.register_namespace("virtwire", VIRTWIRE_XMLNS)
        return ET.tostring(tree, encoding="unicode")
    return text


def finished_job(extra: dict[str, object]) -> Job | None:
    job = extra.get(COMPLETED_JOB)
    return job if isinstance(job, Job) else None


def persist_xml(params: dict[str, Any], flags: int) -> str | None:
    """VIR_MIGRATE_PARAM_PERSIST_XML, checked here as the source parses it; used with PERSIST_DEST only."""
    xml = params.get(C.VIR_MIGRATE_PARAM_PERSIST_XML)
    if not isinstance(xml, str) or not xml or not flags & C.VIR_MIGRATE_PERSIST_DEST:
        return None
    parse_domain_xml(xml)
    return xml
