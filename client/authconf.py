"""libvirt's client credentials file, auth.conf (src/util/virauth.c, virauthconfig.c).

Where: $LIBVIRT_AUTH_FILE, else the URI's ``?authfile=``, else
$XDG_CONFIG_HOME/libvirt/auth.conf (~/.config/...), else /etc/libvirt/auth.conf,
the first two as given, the last two only when readable.  Format (a GLib key file)::

    [credentials-test]
    authname=alice
    password=secret

    [auth-libvirt-HOSTNAME]        # or auth-libvirt-default
    credentials=test

A lookup for HOSTNAME ("localhost" when the URI names none) takes group
``auth-libvirt-HOSTNAME``, else ``auth-libvirt-default``, follows its
``credentials`` key to ``credentials-NAME`` and reads the wanted key there
(``username``, ``authname``, ``password``, ``realm``).
"""

from __future__ import annotations

import configparser
import functools
import os
from collections.abc import Mapping

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as c


def config_path(uri_params: Mapping[str, str]) -> str | None:
    """virAuthGetConfigFilePathURI."""
    environ = os.environ
    env = environ.get("LIBVIRT_AUTH_FILE")
    if env:
        return env
    authfile = uri_params.get("authfile")
    if authfile:
        return authfile
    config_home = environ.get("XDG_CONFIG_HOME") or ""
    # The paths are joined once per ($XDG_CONFIG_HOME, $HOME): every SASL open asks.
    home = environ.get("HOME") if not config_home else None
    for path in _candidates(config_home, home):
        if os.access(path, os.R_OK):
            return path
    return None


@functools.lru_cache(maxsize=8)
def _candidates(config_home: str, home: str | None) -> tuple[str, str]:
    """The user's then the system's auth.conf, for $XDG_CONFIG_HOME (else $HOME,
    else the password database's home: expanduser("~"), read once per value)."""
    if not config_home:
        base = os.path.expanduser("~") if home is None else home.rstrip("/") or "/"
        config_home = os.path.join(base, ".config")
    return os.path.join(config_home, "libvirt", "auth.conf"), "/etc/libvirt/auth.conf"


# Loaded files by path and identity: every SASL open looks its credentials up,
# and parsing the file again each time is what a changed file needs, not an unchanged one.
_LOADED: dict[str, tuple[tuple[int, ...], AuthConfig]] = {}
_LOADED_MAX = 16


def load(path: str) -> AuthConfig:
    """The AuthConfig of `path`, parsed again only when the file changed (inode, size, times)."""
    try:
        st = os.stat(path)
    except OSError:
        return AuthConfig(path)  # fails as libvirt's open fails
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == identity:
        return cached[1]
    config = AuthConfig(path)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.clear()
    _LOADED[path] = (identity, config)
    return config


class AuthConfig:
    """One loaded auth.conf."""

    def __init__(self, path: str) -> None:
        self.path = path
        parser = configparser.RawConfigParser(
            delimiters=("=",), comment_prefixes=("#",), inline_comment_prefixes=None, strict=False
        )
        parser.optionxform = str  # type: ignore[assignment,method-assign] # keys are case-sensitive
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            # libvirt fails the open without saying why (virAuthConfigNew); we say it.
            raise E.make_error(
                c.VIR_ERR_CONF_SYNTAX, c.VIR_FROM_NONE, f"cannot load auth file '{path}': {exc}"
            ) from None
        self._parser = parser

    def lookup(self, service: str, hostname: str | None, credname: str) -> str | None:
        """virAuthConfigLookup."""
        p = self._parser
        group = f"auth-{service}-{hostname or 'localhost'}"
        if not p.has_section(group):
            group = f"auth-{service}-default"
            if not p.has_section(group):
                return None
        cred = p.get(group, "credentials", fallback=None)
        if cred is None:
            raise E.make_error(
                c.VIR_ERR_CONF_SYNTAX,
                c.VIR_FROM_NONE,
                f"Missing item 'credentials' in group '{group}' in '{self.path}'",
            )
        credgroup = f"credentials-{cred}"
        if not p.has_section(credgroup):
            raise E.make_error(
                c.VIR_ERR_CONF_SYNTAX,
                c.VIR_FROM_NONE,
                f"Missing group 'credentials-{cred}' referenced from group '{group}' in '{self.path}'",
            )
        return p.get(credgroup, credname, fallback=None)
