"""The server's settings, as ``virtwire serve`` parses them."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from .access_policy import Policy
from .tls import ServerTlsFiles

# Offered in this order where the channel allows them (PLAIN: TLS and unix only).
DEFAULT_SASL_MECHS = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TCP host and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(slots=True)
class ActivatedSockets:
    """Listening sockets a service manager passed in (systemd socket activation), by role."""

    unix: list[socket.socket] = field(default_factory=list)
    unix_ro: list[socket.socket] = field(default_factory=list)
    admin: list[socket.socket] = field(default_factory=list)
    tcp: list[socket.socket] = field(default_factory=list)
    tls: list[socket.socket] = field(default_factory=list)


@dataclass(slots=True)
class ServerConfig:
    """Everything a running server needs to know; defaults are libvirtd's."""

    tcp: list[Endpoint] = field(default_factory=list)
    tls: list[Endpoint] = field(default_factory=list)
    unix: list[Path] = field(default_factory=list)
    unix_ro: list[Path] = field(default_factory=list)
    pki_dir: Path | None = None  # None: libvirtd's default PKI locations
    # Explicit credential files (libvirtd.conf's ca_file & co.); they win over pki_dir.
    tls_files: ServerTlsFiles | None = None
    tls_priority: str | None = None  # GnuTLS priority string (libvirtd.conf's tls_priority)
    tls_allowed_dn: list[str] = field(default_factory=list)
    # tls_no_sanity_certificate, tls_no_verify_certificate (libvirtd.conf), negated.
    tls_sanity_check: bool = True
    tls_verify_client: bool = True
    # Who may do what beyond read-only (--access-policy); None: every client may do everything.
    access_policy: Policy | None = None
    # When set, serve these sockets instead of opening the listeners above.
    activation: ActivatedSockets | None = None
    # Unix socket modes and group (libvirtd's unix_sock_*_perms, unix_sock_group).
    unix_rw_mode: int = 0o700
    unix_ro_mode: int = 0o777
    unix_admin_mode: int = 0o700
    unix_group: int | None = None
    # libvirtd.conf's logging settings (log_level 0: not set).
    log_level: int = 0
    log_filters: str = ""
    log_outputs: str = ""
    state_dir: Path | None = None
    hostname: str = "localhost"
    max_clients: int = 5000
    # Clients still in the TLS handshake or not yet authenticated (SASL), at most
    # (0: no limit), as libvirtd's max_anonymous_clients.
    max_anonymous_clients: int = 20
    max_client_requests: int = 5
    # A client's unwritten packets, in bytes, past which its calls are not read
    # (at least one packet of any size is always let through).
    max_unsent_bytes: int = 1024 * 1024
    keepalive_interval: float = 5.0
    keepalive_count: int = 5
    # Events queued for one connection before it counts as too slow and is dropped.
    event_queue_size: int = 1024
    # libvirtd.conf's auth_* per listener kind: "none" or "sasl" (server/auth.py).
    auth_tcp: str = "none"
    auth_tls: str = "none"
    auth_unix_rw: str = "none"
    auth_unix_ro: str = "none"
    # SASL: the users file `virtwire passwd` writes, the mechanisms offered (Cyrus's
    # mech_list) and libvirtd's sasl_allowed_username_list (fnmatch; empty: anyone).
    sasl_users_file: Path | None = None
    sasl_mech_list: list[str] = field(default_factory=lambda: list(DEFAULT_SASL_MECHS))
    sasl_allowed_username_list: list[str] = field(default_factory=list)
    # The admin socket (virt-admin; libvirtd's libvirt-admin-sock); None: none.
    admin_socket: Path | None = None
    # Exit after this many seconds without clients while nothing runs (libvirtd's --timeout); 0: never.
    timeout: int = 0
    # Serve Prometheus metrics over HTTP at this address (/metrics); None: off.
    metrics: Endpoint | None = None

    def tls_credentials(self) -> ServerTlsFiles:
        """The TLS files to serve with: the explicit ones, else pki_dir's, else libvirtd's defaults."""
        return self.tls_files if self.tls_files is not None else ServerTlsFiles.locate(self.pki_dir)
