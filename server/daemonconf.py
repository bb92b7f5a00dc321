"""libvirtd.conf's settings, read onto a ServerConfig (``virtwire serve --config FILE``).

The keys and their types are libvirt 9.0's (src/remote/remote_daemon_config.c);
a value of the wrong type, a port, mode or group that cannot be used, or an
authentication scheme virtwire does not offer is refused, naming the file and
line.  Differences from libvirtd, all deliberate:

* listen_tcp and listen_tls are honoured without a ``--listen`` flag (as
  virtproxyd does); both default to 0, so a file alone opens only the unix
  sockets (``libvirt-sock``, ``libvirt-sock-ro`` in unix_sock_dir).
* Keys libvirtd reads that mean nothing for an in-memory hypervisor (worker
  pools, audit, host_uuid, ovs_timeout...) are checked for their type and
  otherwise ignored, with a note in the log.
* Unknown keys are warned about (libvirtd ignores them silently): a typo in a
  key name should not go unnoticed.
"""

from __future__ import annotations

import grp
import logging
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from virtwire.protocol.errors import libvirtError, make_error
from virtwire.protocol.generated.constants import (
    VIR_ERR_CONFIG_UNSUPPORTED,
    VIR_ERR_INTERNAL_ERROR,
    VIR_ERR_INVALID_ARG,
    VIR_FROM_CONF,
)

from .auth import AUTH_METHODS
from .config import Endpoint
from .tls import ServerTlsFiles
from .virconf import ConfFile, Entry

log = logging.getLogger(__name__)

# Authentication schemes libvirtd knows; virtwire serves auth.AUTH_METHODS of them.
LIBVIRT_AUTH = ("none", "sasl", "polkit")
# remote_driver.h's SSF_WARNING_LEVEL: the lowest tcp_min_ssf libvirtd accepts.
SSF_WARNING_LEVEL = 112
# virLogSetDefaultPriority's range (1 debug .. 4 error); 0 leaves the default.
LOG_LEVELS = range(0, 5)

# Keys read with their type checked and then not used, by getter.
_IGNORED_STRING = ("host_uuid", "host_uuid_source")
_IGNORED_STRING_LIST: tuple[str, ...] = ()
_IGNORED_BOOL = ("audit_logging",)
_IGNORED_UINT = (
    "min_workers",
    "prio_workers",
    "max_queued_clients",
    "admin_min_workers",
    "admin_max_workers",
    "admin_max_clients",
    "admin_max_queued_clients",
    "admin_max_client_requests",
    "audit_level",
    "admin_keepalive_count",
    "ovs_timeout",
)
_IGNORED_INT = ("admin_keepalive_interval",)
# In libvirt's sample file, but no longer read by libvirt 9.0 either.
_OBSOLETE = ("keepalive_required", "admin_keepalive_required")

_APPLIED = (
    "listen_tcp",
    "listen_tls",
    "tls_port",
    "tcp_port",
    "listen_addr",
    "auth_unix_rw",
    "auth_unix_ro",
    "auth_tcp",
    "auth_tls",
    "access_drivers",
    "unix_sock_group",
    "unix_sock_admin_perms",
    "unix_sock_ro_perms",
    "unix_sock_rw_perms",
    "unix_sock_dir",
    "tls_no_verify_certificate",
    "tls_no_sanity_certificate",
    "tls_priority",
    "sasl_allowed_username_list",
    "key_file",
    "cert_file",
    "ca_file",
    "crl_file",
    "tls_allowed_dn_list",
    "tcp_min_ssf",
    "max_workers",
    "max_clients",
    "max_anonymous_clients",
    "max_client_requests",
    "log_level",
    "log_filters",
    "log_outputs",
    "keepalive_interval",
    "keepalive_count",
)
KNOWN_KEYS = frozenset(
    _APPLIED
    + _IGNORED_STRING
    + _IGNORED_STRING_LIST
    + _IGNORED_BOOL
    + _IGNORED_UINT
    + _IGNORED_INT
    + _OBSOLETE
)

_MODE = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-7]+")  # what strtol(..., 8) consumes whole


@dataclass(slots=True)
class DaemonSettings:
    """What a libvirtd.conf says, with libvirt's defaults for what it leaves out."""

    listen_tcp: bool = False
    listen_tls: bool = False
    tcp_port: int = 16509
    tls_port: int = 16514
    listen_addr: str = ""  # "": every address, as libvirtd binds without listen_addr
    unix_sock_dir: Path | None = None
    unix_group: int | None = None
    unix_ro_mode: int = 0o777
    unix_rw_mode: int = 0o700
    unix_admin_mode: int = 0o700
    auth_unix_rw: str = "none"
    auth_unix_ro: str = "none"
    auth_tcp: str = "none"
    auth_tls: str = "none"
    tls_files: ServerTlsFiles | None = None
    tls_priority: str | None = None
    tls_sanity_check: bool = True
    tls_verify_client: bool = True
    tls_allowed_dn: list[str] = field(default_factory=list)
    sasl_allowed_username_list: list[str] = field(default_factory=list)
    max_clients: int | None = None
    max_anonymous_clients: int | None = None
    max_client_requests: int | None = None
    keepalive_interval: int | None = None
    keepalive_count: int | None = None
    log_level: int = 0
    log_filters: str = ""
    log_outputs: str = ""
    warnings: list[str] = field(default_factory=list)  # unknown keys
    notes: list[str] = field(default_factory=list)  # keys without effect here

    def tcp_endpoints(self) -> list[Endpoint]:
        return [Endpoint(self.listen_addr, self.tcp_port)] if self.listen_tcp else []

    def tls_endpoints(self) -> list[Endpoint]:
        return [Endpoint(self.listen_addr, self.tls_port)] if self.listen_tls else []


class _Reader:
    def __init__(self, conf: ConfFile) -> None:
        self.conf = conf

    def refuse(self, key: str, info: str, code: int = VIR_ERR_CONFIG_UNSUPPORTED) -> libvirtError:
        entry = self.conf.entry(key)
        where = f"{self.conf.filename}:{entry.line}" if entry is not None else self.conf.filename
        return make_error(code, VIR_FROM_CONF, f"{where}: {info}")

    def auth(self, key: str) -> str:
        value = self.conf.get_string(key)
        if value is None:
            return "none"
        if value not in LIBVIRT_AUTH:
            raise self.refuse(key, f"{key}: unsupported auth {value}")
        if value not in AUTH_METHODS:
            raise self.refuse(
                key,
                f"{key}: auth {value} is not available in virtwire (it serves: {', '.join(AUTH_METHODS)})",
            )
        return value

    def port(self, key: str, default: int) -> int:
        value = self.conf.get_string(key)
        if value is None:
            return default
        if value.isascii() and value.isdigit():
            port = int(value)
            if port <= 65535:
                return port
        else:
            try:
                return socket.getservbyname(value, "tcp")
            except (OSError, UnicodeError):
                pass
        raise self.refuse(key, f"{key}: invalid port '{value}'")

    def mode(self, key: str, default: int) -> int:
        value = self.conf.get_string(key)
        if value is None:
            return default
        if _MODE.fullmatch(value):
            mode = int(value.strip(), 8)
            if 0 <= mode <= 0o777:
                return mode
        raise self.refuse(key, f"Failed to parse mode '{value}'")

    def group(self, key: str) -> int | None:
        value = self.conf.get_string(key)
        if value is None:
            return None
        name = value
        if name.startswith("+"):
            name = name[1:]
        else:
            try:
                return grp.getgrnam(name).gr_gid
            except (KeyError, UnicodeError, ValueError):
                pass
        if name.isascii() and name.isdigit() and int(name) <= 0xFFFFFFFF:
            return int(name)
        raise self.refuse(key, f"Failed to parse group '{name}'", code=VIR_ERR_INVALID_ARG)

    def path(self, key: str) -> Path | None:
        value = self.conf.get_string(key)
        return Path(value) if value else None

    def at_least_one(self, key: str) -> int | None:
        value = self.conf.get_uint(key)
        if value is not None and value < 1:
            raise self.refuse(key, f"'{key}' must be greater than 0", code=VIR_ERR_INTERNAL_ERROR)
        return value


def _tls_files(reader: _Reader) -> ServerTlsFiles | None:
    """ca_file, cert_file and key_file go together (libvirtd's checks, in its order)."""
    ca, cert, key = (reader.path(k) for k in ("ca_file", "cert_file", "key_file"))
    crl = reader.path("crl_file")
    if ca is None and cert is None and key is None:
        return None
    if ca is None:
        raise reader.refuse(
            "cert_file" if cert else "key_file", "No CA certificate path set to match server key/cert"
        )
    if cert is None:
        raise reader.refuse("key_file", "No server certificate path set to match server key")
    if key is None:
        raise reader.refuse("cert_file", "No server key path set to match server cert")
    return ServerTlsFiles(ca, cert, key, crl)


def settings_from(conf: ConfFile) -> DaemonSettings:
    """Read every libvirtd.conf key; libvirtError (with the file and line) for a bad value."""
    r = _Reader(conf)
    s = DaemonSettings()
    s.listen_tcp = bool(conf.get_bool("listen_tcp"))
    s.listen_tls = bool(conf.get_bool("listen_tls"))
    s.tls_port = r.port("tls_port", s.tls_port)
    s.tcp_port = r.port("tcp_port", s.tcp_port)
    s.listen_addr = conf.get_string("listen_addr") or ""
    s.auth_unix_rw = r.auth("auth_unix_rw")
    s.auth_unix_ro = r.auth("auth_unix_ro")
    s.auth_tcp = r.auth("auth_tcp")
    s.auth_tls = r.auth("auth_tls")
    access = conf.get_string_list("access_drivers")
    if access:
        raise r.refuse("access_drivers", f"access_drivers: {', '.join(access)} is not available in virtwire")
    s.unix_group = r.group("unix_sock_group")
    s.unix_admin_mode = r.mode("unix_sock_admin_perms", s.unix_admin_mode)
    s.unix_ro_mode = r.mode("unix_sock_ro_perms", s.unix_ro_mode)
    s.unix_rw_mode = r.mode("unix_sock_rw_perms", s.unix_rw_mode)
    s.unix_sock_dir = r.path("unix_sock_dir")
    s.tls_sanity_check = not conf.get_bool("tls_no_sanity_certificate")
    s.tls_verify_client = not conf.get_bool("tls_no_verify_certificate")
    # libvirtd checks the TLS files only when it sets up a TLS listener.
    s.tls_files = _tls_files(r) if s.listen_tls else None
    s.tls_allowed_dn = conf.get_string_list("tls_allowed_dn_list") or []
    s.tls_priority = conf.get_string("tls_priority")
    s.sasl_allowed_username_list = conf.get_string_list("sasl_allowed_username_list") or []
    ssf = conf.get_uint("tcp_min_ssf")
    if ssf is not None and ssf < SSF_WARNING_LEVEL:
        raise r.refuse("tcp_min_ssf", f"minimum SSF levels lower than {SSF_WARNING_LEVEL} are not supported")
    r.at_least_one("max_workers")
    s.max_clients = r.at_least_one("max_clients")
    s.max_anonymous_clients = conf.get_uint("max_anonymous_clients")
    s.max_client_requests = r.at_least_one("max_client_requests")
    level = conf.get_uint("log_level")
    if level is not None and level not in LOG_LEVELS:
        raise r.refuse(
            "log_level", f"Failed to set logging priority, argument '{level}' is invalid", VIR_ERR_INVALID_ARG
        )
    s.log_level = level or 0
    s.log_filters = conf.get_string("log_filters") or ""
    s.log_outputs = conf.get_string("log_outputs") or ""
    s.keepalive_interval = conf.get_int("keepalive_interval")
    s.keepalive_count = conf.get_uint("keepalive_count")
    for key in _IGNORED_STRING:
        conf.get_string(key)
    for key in _IGNORED_STRING_LIST:
        conf.get_string_list(key)
    for key in _IGNORED_BOOL:
        conf.get_bool(key)
    for key in _IGNORED_UINT:
        conf.get_uint(key)
    for key in _IGNORED_INT:
        conf.get_int(key)
    s.warnings = [
        f"{conf.filename}:{entry.line}: unknown setting '{entry.name}' ignored"
        for entry in conf.entries
        if entry.name not in KNOWN_KEYS
    ]
    s.notes = _without_effect(conf)
    return s


def _without_effect(conf: ConfFile) -> list[str]:
    notes = []
    ignored = _IGNORED_STRING + _IGNORED_STRING_LIST + _IGNORED_BOOL + _IGNORED_UINT + _IGNORED_INT
    for name in (*ignored, "max_workers", "tcp_min_ssf", *_OBSOLETE):
        found: Entry | None = conf.entry(name)
        if found is not None:
            why = "libvirt 9.0 no longer reads it either" if name in _OBSOLETE else "no effect in virtwire"
            notes.append(f"{conf.filename}:{found.line}: '{name}' ignored: {why}")
    return notes


def load(path: Path) -> DaemonSettings:
    """Read and check a libvirtd.conf; OSError if unreadable, libvirtError if invalid."""
    return settings_from(ConfFile.read(path))
