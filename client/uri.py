"""Parse a libvirt connection URI the way libvirt's remote driver does.

`DRIVER+TRANSPORT://[user@]host[:port]/path?params#fragment` becomes a `Target`:
where to connect (transport, host, port, socket path, TLS files) and the name
sent in CONNECT_OPEN (the URI without transport, host and transport parameters).
No I/O happens here except looking at which socket files exist, as libvirt does
to choose between the monolithic and the modular daemon's socket.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from dataclasses import dataclass
from enum import Enum

from virtwire.client import errfactory, sshcmd
from virtwire.protocol.generated import constants as c

TCP_PORT = 16509
TLS_PORT = 16514

# Query parameters the remote driver consumes itself and strips from the name it
# sends (remote_driver.c, doRemoteOpen: every EXTRACT_URI_ARG_* key).
TRANSPORT_PARAMS = frozenset(
    {
        "name",
        "command",
        "socket",
        "auth",
        "authfile",
        "netcat",
        "keyfile",
        "sshauth",
        "known_hosts",
        "known_hosts_verify",
        "no_sanity",
        "no_verify",
        "no_tty",
        "pkipath",
        "tls_priority",
        "mode",
        "proxy",
    }
)

RECOGNISED = ("tls", "unix", "ssh", "libssh2", "ext", "tcp", "libssh")


class Transport(Enum):
    TCP = "tcp"
    TLS = "tls"
    UNIX = "unix"
    SSH = "ssh"
    LIBSSH = "libssh"
    LIBSSH2 = "libssh2"
    EXT = "ext"


# Transports that run a program and speak the protocol over its stdin/stdout.
TUNNELS = frozenset({Transport.SSH, Transport.LIBSSH, Transport.LIBSSH2, Transport.EXT})


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cacert: str
    clientcert: str
    clientkey: str
    cacrl: str  # used when it exists


@dataclass(frozen=True, slots=True)
class Target:
    """Everything needed to reach the daemon and open the driver."""

    uri: str  # as the user wrote it (getURI() answers this)
    transport: Transport
    host: str  # "" for unix
    port: int  # 0 for unix
    socket_path: str  # "" unless unix
    name: str  # sent in CONNECT_OPEN
    no_verify: bool
    tls: TlsFiles | None
    no_sanity: bool = False  # skip the check of our own certificate (?no_sanity=1)
    tls_priority: str | None = None  # GnuTLS-style priority string (?tls_priority=)
    tunnel: sshcmd.Tunnel | None = None

    @property
    def secure_transport(self) -> bool:
        """libvirt's priv->is_secure: tls, unix and ssh, but not tcp or an external command."""
        if self.tunnel is not None:
            return self.tunnel.secure
        return self.transport is not Transport.TCP

    @property
    def encrypted_transport(self) -> bool:
        """virNetClientIsEncrypted: only libvirt's own TLS (or SASL) layer counts, not ssh."""
        return self.transport is Transport.TLS

    @property
    def address(self) -> str:
        """The address as libvirt prints it in "unable to connect to server at ..."."""
        return f"{self.host}:{self.port}"


def _bool_param(key: str, value: str) -> bool:
    try:
        return int(value) != 0
    except ValueError:
        raise errfactory.invalid_arg(f"Failed to parse value of URI component {key}") from None


def _user_runtime_dir() -> str:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "libvirt")
    return os.path.join(os.path.expanduser("~"), ".cache", "libvirt")


def default_socket(driver: str, path: str, scheme: str, readonly: bool, mode: str) -> str:
    """libvirt's default unix socket (remote_sockets.c: remoteGetUNIXSocket)."""
    if (path == "/session" or scheme.startswith("test+")) and os.geteuid() > 0:
        # The session daemon has no separate read-only socket.
        return os.path.join(_user_runtime_dir(), "libvirt-sock")
    suffix = "sock-ro" if readonly else "sock"
    legacy = f"/var/run/libvirt/libvirt-{suffix}"
    direct = f"/var/run/libvirt/virt{driver}d-{suffix}" if driver else ""
    if mode == "legacy":
        return legacy
    if mode == "direct":
        if not direct:
            raise errfactory.operation_unsupported("Cannot use direct socket mode if no URI is set")
        return direct
    if direct and os.path.exists(direct):
        return direct
    return legacy


def default_tls_files(pkipath: str | None) -> TlsFiles:
    """libvirt's client PKI locations (virNetTLSContextLocateCredentials)."""
    if pkipath:
        return TlsFiles(
            os.path.join(pkipath, "cacert.pem"),
            os.path.join(pkipath, "clientcert.pem"),
            os.path.join(pkipath, "clientkey.pem"),
            os.path.join(pkipath, "cacrl.pem"),
        )
    system = TlsFiles(
        "/etc/pki/CA/cacert.pem",
        "/etc/pki/libvirt/clientcert.pem",
        "/etc/pki/libvirt/private/clientkey.pem",
        "/etc/pki/CA/cacrl.pem",
    )
    if os.geteuid() == 0:
        return system
    # Unprivileged users get their own directory; a missing CA or CRL file falls
    # back to the system's, the certificate and key only as a pair.
    user = os.path.join(os.path.expanduser("~"), ".pki", "libvirt")
    cacert, cacrl = os.path.join(user, "cacert.pem"), os.path.join(user, "cacrl.pem")
    cert, key = os.path.join(user, "clientcert.pem"), os.path.join(user, "clientkey.pem")
    pair = os.path.exists(cert) and os.path.exists(key)
    return TlsFiles(
        cacert if os.path.exists(cacert) else system.cacert,
        cert if pair else system.clientcert,
        key if pair else system.clientkey,
        cacrl if os.path.exists(cacrl) else system.cacrl,
    )


def _escape_value(value: str) -> str:
    """g_string_append_uri_escaped with no reserved characters allowed: all but A-Za-z0-9-._~."""
    return urllib.parse.quote(value, safe="", encoding="utf-8", errors="surrogateescape")


def _split_query(query: str) -> list[tuple[str, str, str]]:
    """(key, value, raw token) for each parameter; libvirt splits on & and ;."""
    out: list[tuple[str, str, str]] = []
    for token in query.replace(";", "&").split("&"):
        if not token:
            continue
        key, _, value = token.partition("=")
        # %XX only ("+" stays "+"), as xmlURIUnescapeString.
        out.append((urllib.parse.unquote(key), urllib.parse.unquote(value), token))
    return out


_TUNNEL_PARAMS = frozenset({"command", "keyfile", "netcat", "known_hosts", "known_hosts_verify", "sshauth"})


@dataclass(frozen=True, slots=True)
class _Syntax:
    transport: Transport
    host: str
    port: int
    driver: str
    path: str
    scheme: str
    name: str
    no_verify: bool
    mode: str
    socket: str | None
    pkipath: str | None
    no_sanity: bool
    tls_priority: str | None
    user: str | None
    no_tty: bool
    proxy: str | None
    tunnel_params: tuple[tuple[str, str], ...]  # command, keyfile, netcat, known_hosts...
    params: tuple[tuple[str, str], ...]  # every query parameter, decoded; the last of a key wins


@functools.lru_cache(maxsize=64)
def _syntax(uri: str) -> _Syntax:
    """What the URI's text alone says (no I/O, so it can be cached: programs
    open the same few URIs again and again).  Errors are not cached."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        # "test:" or "test:/path" forms carry no authority either.
        scheme, sep, rest = uri.partition(":")
        if not sep or not scheme:
            raise errfactory.uri_parse(uri)
        rest = rest if rest.startswith("/") or not rest else "/" + rest
        authority, path_etc = "", rest
    else:
        slash = len(rest)
        for ch in "/?#":
            idx = rest.find(ch)
            if idx != -1:
                slash = min(slash, idx)
        authority, path_etc = rest[:slash], rest[slash:]
    path_q, _, fragment = path_etc.partition("#")
    path, _, query = path_q.partition("?")

    user, host, port = _split_authority(uri, authority)

    driver, plus, transport_str = scheme.partition("+")
    if plus:
        tname = transport_str.lower()
        if tname not in RECOGNISED:
            raise errfactory.invalid_arg(
                "remote_open: transport in URL not recognised (should be tls|unix|ssh|ext|tcp|libssh2|libssh)"
            )
        if tname == "unix" and host:
            raise errfactory.invalid_arg(f"using unix socket and remote server '{host}' is not supported.")
        transport = Transport(tname)
    else:
        transport = Transport.TLS if host else Transport.UNIX

    params = _split_query(query)
    values = {key: value for key, value, _ in params}
    # virURIFormatParams: the name as parsed, the value URI-escaped again.
    kept = [f"{key}={_escape_value(value)}" for key, value, _ in params if key not in TRANSPORT_PARAMS]

    name = values.get("name")
    if name is None:
        if driver == "remote":
            name = ""  # let the daemon probe
        else:
            name = f"{driver}://{path}"
            if kept:
                name += "?" + "&".join(kept)
            if fragment:
                name += "#" + fragment

    no_verify = _bool_param("no_verify", values["no_verify"]) if "no_verify" in values else False
    no_sanity = _bool_param("no_sanity", values["no_sanity"]) if "no_sanity" in values else False
    mode = values.get("mode", "auto")
    if mode not in ("auto", "legacy", "direct"):
        raise errfactory.invalid_arg(f"Unknown remote mode '{mode}'")
    proxy = values.get("proxy")
    if proxy is not None and proxy not in sshcmd.PROXIES:
        raise errfactory.invalid_arg(f"Unnkown proxy type '{proxy}'")  # sic, libvirt's spelling
    if transport is Transport.EXT and "command" not in values:
        raise errfactory.invalid_arg("remote_open: for 'ext' transport, command is required")
    no_tty = _bool_param("no_tty", values["no_tty"]) if "no_tty" in values else False

    return _Syntax(
        transport,
        host,
        port,
        driver,
        path,
        scheme,
        name,
        no_verify,
        mode,
        values.get("socket"),
        values.get("pkipath"),
        no_sanity,
        values.get("tls_priority"),
        user,
        no_tty,
        proxy,
        tuple((k, v) for k, v in values.items() if k in _TUNNEL_PARAMS),
        tuple(values.items()),
    )


def query_params(uri: str) -> dict[str, str]:
    """The query parameters of an URI that parses, as libvirt decodes them (%XX
    only: a "+" stays a "+", as in xmlURIUnescapeString); the last of a key wins.
    Cached with the rest of the URI's syntax: authentication reads ?auth= and
    ?authfile= on every open."""
    return dict(_syntax(uri).params) if uri else {}


# Targets that the URI's text alone decides, by (uri, readonly): programs open
# the same URI again and again. A Target that also depends on the process (its
# uid, $XDG_RUNTIME_DIR, $HOME, which files exist: default sockets and PKI
# files, libssh's known_hosts) is built on every open, as libvirt looks again.
_TEXT_TARGETS: dict[tuple[str, bool], Target] = {}
_TEXT_TARGETS_MAX = 64


def parse(uri: str, readonly: bool = False) -> Target:
    """Parse `uri` into a Target, or raise libvirtError with libvirt's wording."""
    key = (uri, readonly)
    target = _TEXT_TARGETS.get(key)
    if target is not None:
        return target
    syn = _syntax(uri)
    target = _target(uri, syn, readonly)
    transport = syn.transport
    if (
        transport is Transport.TCP
        or transport is Transport.EXT
        or (transport is Transport.TLS and syn.pkipath)
        or ((transport is Transport.UNIX or transport is Transport.SSH) and syn.socket)
    ):
        if len(_TEXT_TARGETS) >= _TEXT_TARGETS_MAX:
            _TEXT_TARGETS.clear()
        _TEXT_TARGETS[key] = target
    return target


def _target(uri: str, syn: _Syntax, readonly: bool) -> Target:
    transport, host, port = syn.transport, syn.host, syn.port
    socket_path = ""
    tls = None
    if transport is Transport.UNIX:
        socket_path = syn.socket or default_socket(syn.driver, syn.path, syn.scheme, readonly, syn.mode)
        host, port = "", 0
    elif transport in TUNNELS:
        tunnel = _tunnel(syn, readonly)
        host = host or "localhost"
        return Target(uri, transport, host, port, "", syn.name, syn.no_verify, None, tunnel=tunnel)
    else:
        if not host:
            host = "localhost"
        if not port:
            port = TLS_PORT if transport is Transport.TLS else TCP_PORT
        if transport is Transport.TLS:
            tls = default_tls_files(syn.pkipath)
    return Target(
        uri, transport, host, port, socket_path, syn.name, syn.no_verify, tls, syn.no_sanity, syn.tls_priority
    )


def _tunnel(syn: _Syntax, readonly: bool) -> sshcmd.Tunnel:
    """The program to run for an ssh or ext URI (remote_driver.c, doRemoteOpen)."""
    params = dict(syn.tunnel_params)
    command = params.get("command")
    if syn.transport is Transport.EXT:
        assert command is not None  # checked while parsing
        return sshcmd.Tunnel((command,), secure=False)
    socket_path = syn.socket or ssh_socket(
        syn.transport, syn.driver, syn.path, syn.scheme, readonly, syn.mode
    )
    proxy = syn.proxy
    if proxy is None:
        # libvirt prefers virt-ssh-helper, except with an explicit socket (only
        # netcat can take one) or for a session daemon (the helper finds its socket).
        if syn.socket:
            proxy = sshcmd.PROXY_NETCAT
        elif _user_daemon(syn.path, syn.scheme):
            proxy = sshcmd.PROXY_NATIVE
        else:
            proxy = sshcmd.PROXY_AUTO
    remote = sshcmd.remote_command(proxy, params.get("netcat"), socket_path, syn.name, readonly)
    host = syn.host or "localhost"
    if syn.transport is Transport.SSH:
        argv = sshcmd.openssh_argv(
            command or "ssh",
            host,
            syn.port,
            syn.user,
            params.get("keyfile"),
            syn.no_tty,
            syn.no_verify,
            remote,
        )
    else:
        argv = sshcmd.libssh_argv(
            host,
            syn.port,
            syn.user,
            params.get("keyfile"),
            params.get("known_hosts"),
            params.get("known_hosts_verify"),
            params.get("sshauth"),
            remote,
        )
    return sshcmd.Tunnel(argv, secure=True)


def _user_daemon(path: str, scheme: str) -> bool:
    """remoteGetURIDaemonInfo's REMOTE_DRIVER_OPEN_USER: a session daemon."""
    return (path == "/session" or scheme.startswith("test+")) and os.geteuid() > 0


def ssh_socket(transport: Transport, driver: str, path: str, scheme: str, readonly: bool, mode: str) -> str:
    """The daemon's socket on the far side of ssh (remoteGetUNIXSocket): libvirtd's
    legacy socket, since the client cannot probe the remote host's daemons."""
    if mode == "direct":
        raise errfactory.templated(
            c.VIR_ERR_OPERATION_UNSUPPORTED,
            c.VIR_FROM_REMOTE,
            f"Cannot use direct socket mode for {transport.value} transport",
        )
    if _user_daemon(path, scheme):
        return os.path.join(_user_runtime_dir(), "libvirt-sock")
    # LOCALSTATEDIR/run, not /run: the remote host may lack /run.
    return f"/var/run/libvirt/libvirt-{'sock-ro' if readonly else 'sock'}"


def _split_authority(uri: str, authority: str) -> tuple[str | None, str, int]:
    userinfo, at, hostport = authority.rpartition("@")
    user = urllib.parse.unquote(userinfo) if at else None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end == -1:
            raise errfactory.uri_parse(uri)
        host, portpart = hostport[1:end], hostport[end + 1 :]
        if portpart and not portpart.startswith(":"):
            raise errfactory.uri_parse(uri)
        portstr = portpart[1:]
    else:
        host, _, portstr = hostport.partition(":")
    port = 0
    if portstr:
        if not portstr.isdigit() or int(portstr) > 65535:
            raise errfactory.uri_parse(uri)
        port = int(portstr)
    return user, host, port


def probe(readonly: bool = False) -> Target:
    """No URI at all: the local daemon's socket, an empty name so that the
    daemon picks its driver, and the URI learnt afterwards (CONNECT_GET_URI)."""
    path = default_socket("", "", "", readonly, "auto")
    return Target("", Transport.UNIX, "", 0, path, "", False, None)


def resolve(uri: str | None, readonly: bool = False) -> Target:
    """`uri`, else $LIBVIRT_DEFAULT_URI, else probing, as virConnectOpen(NULL) does."""
    if uri is None:
        uri = os.environ.get("LIBVIRT_DEFAULT_URI") or None
    return probe(readonly) if uri is None else parse(uri, readonly)
