"""``virtwire serve``: the command line of the server.

Without listener flags it does the README's job: TCP on 127.0.0.1:16509 and a
unix socket pair (libvirt-sock, libvirt-sock-ro) in a runtime folder
($XDG_RUNTIME_DIR/virtwire, or /run/virtwire as root), then prints the URIs to
give virsh and libvirt-python.
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import trio
from virtwire.protocol import sasl
from virtwire.protocol.errors import libvirtError

import virtwire

from . import credentials, daemonconf, passwd_cli, sshhelper, systemd, units
from .access_policy import Policy, PolicyError
from .auth import AUTH_METHODS, auth_warnings
from .config import DEFAULT_SASL_MECHS, ActivatedSockets, Endpoint, ServerConfig
from .daemon import Listeners, serve
from .daemonconf import DaemonSettings
from .driver.memory import guest, nodexml
from .driver.memory.driver import MemoryDriver
from .logsettings import DEFAULT_LOG_LEVEL, LogSettings, parse_level
from .memtrim import release_free_memory
from .metrics import prometheus_available
from .rundir import runtime_dir

log = logging.getLogger("virtwire.server")

DEFAULT_TCP = Endpoint("127.0.0.1", 16509)
T = TypeVar("T")


def endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → Endpoint."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return Endpoint(host, int(port))


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _PrintVersion(argparse.Action):
    """--version, looked up only when asked (importlib.metadata is costly to import)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"virtwire {virtwire.__version__}")
        parser.exit()
def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virtwire", description="libvirt's RPC protocol in pure Python")
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("-V", "--version", action=_PrintVersion, help="print virtwire's version and exit")
    u = sub.add_parser("units", help="write the sample systemd units, set up to start this installation")
    u.add_argument("dest", type=Path, metavar="DIR", help="where to write them (e.g. /etc/systemd/system)")
    s = sub.add_parser("serve", help="run a libvirt-compatible server with the in-memory test driver")
    s.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read settings from a libvirtd.conf-style file (listeners, socket modes, TLS files, limits);"
        " the flags here override it",
    )
    s.add_argument(
        "--tcp",
        action="append",
        type=endpoint,
        default=[],
        metavar="HOST:PORT",
        help="plain TCP listener (test+tcp://HOST:PORT/default)",
    )
    s.add_argument(
        "--tls",
        action="append",
        type=endpoint,
        default=[],
        metavar="HOST:PORT",
        help="TLS listener; its certificates come from --pki-dir (default: libvirtd's /etc/pki locations)",
    )
    s.add_argument(
        "--pki-dir",
        type=Path,
        metavar="DIR",
        help="directory with cacert.pem, servercert.pem, serverkey.pem (and cacrl.pem, if any)",
    )
    s.add_argument(
        "--tls-priority",
        metavar="STRING",
        help="GnuTLS-style priority string, as libvirtd.conf's tls_priority (default NORMAL)",
    )
    s.add_argument(
        "--access-policy",
        type=Path,
        metavar="FILE",
        help="TOML file of per-identity permissions (libvirt's ACL checks); see server/access_policy.py",
    )
    s.add_argument(
        "--tls-allowed-dn",
        action="append",
        default=[],
        metavar="PATTERN",
        help="accept only TLS clients whose certificate DN matches (fnmatch), "
        "e.g. 'O=virtwire-test,CN=*'; repeatable",
    )
    s.add_argument(
        "--unix", action="append", type=Path, default=[], metavar="PATH", help="read-write unix socket"
    )
    s.add_argument(
        "--unix-ro",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="read-only unix socket (every connection on it is read-only)",
    )
    s.add_argument(
        "--admin",
        type=Path,
        metavar="PATH",
        help="admin socket for virt-admin -c 'libvirtd:///system?socket=PATH' (mode 0700;"
        " default with no listener flags: libvirt-admin-sock beside the default sockets)",
    )
    s.add_argument(
        "--timeout",
        type=non_negative,
        default=0,
        metavar="SECONDS",
        help="exit after SECONDS without clients while nothing runs, as libvirtd; 0: never"
        " (default %(default)s; virt-admin daemon-timeout changes it)",
    )
    s.add_argument(
        "--metrics",
        type=endpoint,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (needs prometheus_client:"
        " pip install 'virtwire[metrics]')",
    )
    s.add_argument(
        "--log-level",
        default=None,
        metavar="N",
        help="libvirtd's log_level: 1 debug, 2 info, 3 warning, 4 error (default 3; -v: 1)",
    )
    s.add_argument(
        "--log-filters",
        default="",
        metavar="FILTERS",
        help="libvirtd's log_filters, e.g. '1:connection 4:events' (match in the logger name)",
    )
    s.add_argument(
        "--log-outputs",
        default="",
        metavar="OUTPUTS",
        help="libvirtd's log_outputs, e.g. '3:stderr 1:file:/tmp/vw.log 3:syslog:virtwire 3:journald'"
        " (default LEVEL:stderr)",
    )
    s.add_argument("--state-dir", type=Path, metavar="DIR", help="keep persistent domain definitions here")
    s.add_argument(
        "--node-xml",
        type=Path,
        metavar="FILE",
        help="start from this node description (libvirt's test-driver format, as test:///FILE opens)"
        " instead of test:///default; with --state-dir it seeds a new state directory",
    )
    s.add_argument("--hostname", default=None, help="host name the server reports (default: this machine's)")
    s.add_argument(
        "--max-clients",
        type=positive,
        default=None,
        metavar="N",
        help="connections at once; more wait in the listen backlog until one ends (default 5000)",
    )
    s.add_argument(
        "--max-anonymous-clients",
        type=int,
        default=None,
        metavar="N",
        help="connections still in the TLS handshake or not yet authenticated (SASL) at once;"
        " 0: no limit (default 20)",
    )
    s.add_argument(
        "--max-client-requests",
        type=positive,
        default=None,
        metavar="N",
        help="calls in flight plus replies not yet written, per client, before the server stops"
        " reading from it (default 5)",
    )
    s.add_argument(
        "--max-unsent-bytes",
        type=positive,
        default=1024 * 1024,
        metavar="BYTES",
        help="bytes of replies not yet written to a client before the server stops reading from it"
        " (default %(default)s)",
    )
    s.add_argument(
        "--keepalive-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="silence before pinging a client that asked for keepalive; <= 0: never (default 5)",
    )
    s.add_argument(
        "--keepalive-count",
        type=int,
        default=None,
        metavar="N",
        help="unanswered pings before dropping a client (default 5)",
    )
    s.add_argument(
        "--dirty-rate",
        type=int,
        metavar="PAGES/S",
        help="guest workload: pages written per second, for domains without <virtwire:workload>"
        f" (default {guest.DEFAULT_DIRTY_RATE})",
    )
    s.add_argument(
        "--working-set-mib",
        type=int,
        metavar="MIB",
        help=f"guest workload: touched (non-zero) memory (default {guest.DEFAULT_WORKING_SET_MIB})",
    )
    s.add_argument(
        "--dirty-set-mib",
        type=int,
        metavar="MIB",
        help="guest workload: the hot part of the working set the writes land on"
        f" (default 1/{guest.DEFAULT_DIRTY_SET_FRACTION} of it)",
    )
    s.add_argument(
        "--enable-test-hooks",
        action="store_true",
        help="honour <virtwire:fault> in domain metadata (cuts migration links; test suites only)",
    )
    _auth_arguments(s)
    s.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    sub.add_parser(
        "ssh-helper",
        add_help=False,
        help="[-r] URI: bridge stdin/stdout to the local daemon socket for ssh clients (virt-ssh-helper)",
    )
    passwd_cli.add_parser(sub)
    return parser


def _auth_arguments(s: argparse.ArgumentParser) -> None:
    """libvirtd.conf's auth_* keys and SASL settings (server/auth.py)."""
    for flag, listener in (
        ("--auth-tcp", "plain TCP (sasl is refused there: no mechanism has a security layer)"),
        ("--auth-tls", "TLS"),
        ("--auth-unix-rw", "the read-write unix socket"),
        ("--auth-unix-ro", "the read-only unix socket"),
    ):
        s.add_argument(
            flag,
            choices=AUTH_METHODS,
            default=None,
            help=f"authentication on {listener} (default: the config file's, else none)",
        )
    s.add_argument(
        "--sasl-users-file",
        type=Path,
        metavar="FILE",
        help=f"SASL users, as `virtwire passwd` writes them (default {credentials.default_path()})",
    )
    s.add_argument(
        "--sasl-mech",
        action="append",
        default=[],
        choices=list(sasl.MECHANISMS),
        help=f"offer this SASL mechanism (repeatable; default {', '.join(DEFAULT_SASL_MECHS)})",
    )
    s.add_argument(
        "--sasl-allowed-username",
        action="append",
        default=[],
        metavar="PATTERN",
        help="accept only SASL users matching (fnmatch; repeatable; default: every user)",
    )


def workload_defaults(args: argparse.Namespace) -> guest.ServerDefaults:
    """The guest workload every domain without its own <virtwire:workload> gets."""
    for value, flag in (
        (args.dirty_rate, "--dirty-rate"),
        (args.working_set_mib, "--working-set-mib"),
        (args.dirty_set_mib, "--dirty-set-mib"),
    ):
        if value is not None and value < 0:
            raise ValueError(f"{flag} must not be negative")
    return guest.ServerDefaults(
        args.dirty_rate, args.working_set_mib, args.dirty_set_mib, args.enable_test_hooks
    )


def _first(*values: T | None) -> T:
    """The first value given: the command line's, else the config file's, else the default."""
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value and no default")


def _log_level(args: argparse.Namespace, from_file: int) -> int:
    """--log-level, else 1 with -v, else the config file's; 0: not set (libvirtd's default applies)."""
    if args.log_level is not None:
        return parse_level(args.log_level)
    if args.verbose:
        return 1
    return from_file


def config_from_args(args: argparse.Namespace, settings: DaemonSettings | None = None) -> ServerConfig:
    """The server's settings: command-line flags, over the config file (if any), over defaults.

    Listeners override per kind: ``--tcp`` replaces the file's TCP listener,
    ``--tls`` its TLS listener, ``--unix``/``--unix-ro`` its unix sockets.
    """
    base = ServerConfig()
    file = settings or DaemonSettings()
    config = ServerConfig(
        tcp=list(args.tcp),
        tls=list(args.tls),
        unix=list(args.unix),
        unix_ro=list(args.unix_ro),
        pki_dir=args.pki_dir,
        tls_files=file.tls_files if args.pki_dir is None else None,
        tls_priority=args.tls_priority if args.tls_priority is not None else file.tls_priority,
        tls_allowed_dn=list(args.tls_allowed_dn) or list(file.tls_allowed_dn),
        tls_sanity_check=file.tls_sanity_check,
        tls_verify_client=file.tls_verify_client,
        state_dir=args.state_dir,
        hostname=args.hostname or socket.gethostname(),
        max_clients=_first(args.max_clients, file.max_clients, base.max_clients),
        max_anonymous_clients=_first(
            args.max_anonymous_clients, file.max_anonymous_clients, base.max_anonymous_clients
        ),
        max_client_requests=_first(
            args.max_client_requests, file.max_client_requests, base.max_client_requests
        ),
        max_unsent_bytes=args.max_unsent_bytes,
        keepalive_interval=float(
            _first(args.keepalive_interval, file.keepalive_interval, base.keepalive_interval)
        ),
        keepalive_count=_first(args.keepalive_count, file.keepalive_count, base.keepalive_count),
        unix_rw_mode=file.unix_rw_mode,
        unix_ro_mode=file.unix_ro_mode,
        unix_admin_mode=file.unix_admin_mode,
        unix_group=file.unix_group,
        auth_tcp=args.auth_tcp or file.auth_tcp,
        auth_tls=args.auth_tls or file.auth_tls,
        auth_unix_rw=args.auth_unix_rw or file.auth_unix_rw,
        auth_unix_ro=args.auth_unix_ro or file.auth_unix_ro,
        sasl_users_file=args.sasl_users_file or credentials.default_path(),
        sasl_mech_list=list(args.sasl_mech) or list(DEFAULT_SASL_MECHS),
        sasl_allowed_username_list=list(args.sasl_allowed_username) or list(file.sasl_allowed_username_list),
        admin_socket=args.admin,
        timeout=args.timeout,
        metrics=args.metrics,
        log_level=_log_level(args, file.log_level),
        log_filters=args.log_filters or file.log_filters,
        log_outputs=args.log_outputs or file.log_outputs,
    )
    if settings is not None:
        # libvirtd's layout: TCP/TLS only when listen_tcp/listen_tls say so, and
        # always the unix sockets (admin included) in unix_sock_dir.
        rundir = settings.unix_sock_dir or runtime_dir()
        config.tcp = config.tcp or settings.tcp_endpoints()
        config.tls = config.tls or settings.tls_endpoints()
        if not (config.unix or config.unix_ro):
            config.unix = [rundir / "libvirt-sock"]
            config.unix_ro = [rundir / "libvirt-sock-ro"]
        if config.admin_socket is None:
            config.admin_socket = rundir / "libvirt-admin-sock"
    elif not (config.tcp or config.tls or config.unix or config.unix_ro or config.admin_socket):
        rundir = runtime_dir()
        config.tcp = [DEFAULT_TCP]
        config.unix = [rundir / "libvirt-sock"]
        config.unix_ro = [rundir / "libvirt-sock-ro"]
        config.admin_socket = rundir / "libvirt-admin-sock"
    return config


def _reachable(ep: Endpoint) -> Endpoint:
    # Listening on every address: a client on this machine reaches it on localhost.
    return ep if ep.host not in ("", "0.0.0.0", "::") else Endpoint("localhost", ep.port)


def _listening(config: ServerConfig) -> tuple[list[Endpoint], list[Endpoint], list[str], list[str]]:
    """Where clients reach the server: the configured listeners, or the activated sockets."""
    act = config.activation
    if act is None:
        return (
            [_reachable(ep) for ep in config.tcp],
            [_reachable(ep) for ep in config.tls],
            [str(p) for p in config.unix],
            [str(p) for p in config.unix_ro],
        )

    def endpoints(socks: list[socket.socket]) -> list[Endpoint]:
        return [_reachable(Endpoint(*sock.getsockname()[:2])) for sock in socks]

    def paths(socks: list[socket.socket]) -> list[str]:
        return [str(sock.getsockname()) for sock in socks]

    return endpoints(act.tcp), endpoints(act.tls), paths(act.unix), paths(act.unix_ro)


def print_uris(config: ServerConfig, listeners: Listeners) -> None:
    """Tell the user how to connect (stdout, so scripts can read it)."""
    tcp, tls, unix, unix_ro = _listening(config)
    uris: list[str] = []
    for ep in tcp:
        uris.append(f"test+tcp://{ep}/default")
    for ep in tls:
        uris.append(f"test+tls://{ep}/default?pkipath=DIR-WITH-cacert.pem,clientcert.pem,clientkey.pem")
    for path in unix:
        uris.append(f"test+unix:///default?socket={path}")
    for path in unix_ro:
        uris.append(f"test+unix:///default?socket={path}  (read-only: use virsh -r)")
    if not uris:
        print("virtwire serve: ready (no listener to name)", flush=True)
        return
    lines = ["virtwire serve: ready. Connect with:"]
    lines += [
        f"  virsh -c '{uri}'" if "  (" not in uri else f"  virsh -r -c '{uri.split('  (')[0]}'"
        for uri in uris
    ]
    if uris:
        first = uris[0].split("  (")[0]
        lines.append(f"  python3 -c \"import libvirt; print(libvirt.open('{first}').getHostname())\"")
    if config.admin_socket is not None:
        lines.append(f"  virt-admin -c 'libvirtd:///system?socket={config.admin_socket}' srv-list")
    if listeners.metrics_url is not None:
        lines.append(f"  curl {listeners.metrics_url}")
    print("\n".join(lines), flush=True)


def _load_settings(path: Path | None) -> DaemonSettings | None:
    """The config file's settings (its problems logged); SystemExit when it is unusable."""
    if path is None:
        return None
    try:
        settings = daemonconf.load(path)
    except OSError as exc:
        raise SystemExit(f"virtwire serve: cannot read config file {path}: {exc.strerror or exc}") from None
    except libvirtError as exc:
        raise SystemExit(f"virtwire serve: {exc}") from None
    for warning in settings.warnings:
        log.warning("%s", warning)
    for note in settings.notes:
        log.info("%s", note)
    return settings


def _activation(args: argparse.Namespace) -> ActivatedSockets | None:
    """Sockets passed by systemd, if any; listener flags then make no sense (as libvirtd's --listen)."""
    try:
        activation = systemd.activated_sockets()
    except systemd.ActivationError as exc:
        raise SystemExit(f"virtwire serve: {exc}") from None
    if activation is not None and (args.tcp or args.tls or args.unix or args.unix_ro):
        systemd.close_all(activation)
        raise SystemExit("virtwire serve: --tcp, --tls, --unix and --unix-ro are not permitted with"
                         " systemd activation sockets")
    return activation


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ssh-helper":
        return sshhelper.main(argv[1:], prog="virtwire ssh-helper")
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-V", "--version")):
        argv.insert(0, "serve")  # plain `python -m virtwire.server` serves
    args = build_parser().parse_args(argv)
    if args.command == "passwd":
        return passwd_cli.run(args)
    if args.command == "units":
        for path in units.write_units(args.dest):
            print(path)
        return 0
    if args.command != "serve":
        build_parser().print_help()
        return 2
    logging.basicConfig(  # until the log settings take over (messages of the config file's parsing)
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s virtwire[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = _load_settings(args.config)
        activation = _activation(args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        config = config_from_args(args, settings)
        log_settings = LogSettings(
            config.log_level or DEFAULT_LOG_LEVEL, config.log_filters, config.log_outputs
        )
    except libvirtError as exc:
        print(f"virtwire serve: {exc}", file=sys.stderr)
        return 2
    config.activation = activation
    for problem in auth_warnings(config):
        log.warning("%s", problem)
    if args.access_policy is not None:
        try:
            config.access_policy = Policy.load(args.access_policy)
        except PolicyError as exc:
            print(f"virtwire serve: --access-policy: {exc}", file=sys.stderr)
            return 2
    if config.metrics is not None and not prometheus_available():
        needs = "virtwire serve: --metrics needs prometheus_client: pip install 'virtwire[metrics]'"
        print(needs, file=sys.stderr)
        return 2
    try:
        guest.SERVER_DEFAULTS = workload_defaults(args)
    except ValueError as exc:
        print(f"virtwire serve: {exc}", file=sys.stderr)
        return 2
    try:
        node = nodexml.load(args.node_xml) if args.node_xml is not None else None
        driver = MemoryDriver(hostname=config.hostname, state_dir=config.state_dir, node=node)
        driver.migration_pki_dir = config.pki_dir  # TLS migration uses the host's PKI
    except (nodexml.NodeXMLError, libvirtError) as exc:
        # A broken file, or an object in it that libvirt would refuse (bad domain XML...).
        print(f"virtwire serve: --node-xml {args.node_xml}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"virtwire serve: cannot use the state directory: {exc}", file=sys.stderr)
        return 1
    # The generated codec is thousands of long-lived classes: take them out of the
    # garbage collector's view so full collections do not stall calls.
    gc.collect()
    gc.freeze()
    release_free_memory()  # what importing (maybe compiling) the codec freed
    trio.run(
        lambda: serve(
            config,
            driver,
            on_ready=lambda ls: _ready(config, ls),
            on_stopping=lambda: systemd.notify("STOPPING=1"),
            log_settings=log_settings,
        )
    )
    return 0


def _ready(config: ServerConfig, listeners: Listeners) -> None:
    print_uris(config, listeners)
    systemd.notify("READY=1")
