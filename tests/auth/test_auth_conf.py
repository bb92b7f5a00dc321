"""libvirt's auth.conf lookup (virauth.c, virauthconfig.c), compared with real
libvirt-python on the same files, against the real SASL libvirtd."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.client import authconf
from virtwire.client.authconf import config_path
from virtwire.client.uri import query_params
from vwtestkit import RealLibvirtd
from vwtestkit.sasl import AUTHNAME, PASSPHRASE

import virtwire.libvirt as vwlibvirt

GOOD = "[credentials-c]\nauthname=alice\npassword=secret1\n"
BAD = "[credentials-c]\nauthname=alice\npassword=wrong\n"
PLUS_AND_SPACE = {
    "a+b.conf": GOOD + "[auth-libvirt-localhost]\ncredentials=c\n",
    "a b.conf": BAD + "[auth-libvirt-localhost]\ncredentials=c\n",
}


def _scenarios(tmp: Path) -> list[tuple[str, dict[str, str], str, str]]:
    """label, files to write (relative path -> text), env var to set (path), URI suffix."""
    return [
        ("env-file", {"env.conf": GOOD + "[auth-libvirt-localhost]\ncredentials=c\n"}, "env.conf", ""),
        ("uri-authfile", {"p.conf": GOOD + "[auth-libvirt-localhost]\ncredentials=c\n"}, "", "authfile=P"),
        # The query is %XX-decoded only: "+" names a "+", not a space (whose file has a bad password).
        ("uri-authfile-plus", PLUS_AND_SPACE, "", "authfile=C/a+b.conf"),
        ("uri-authfile-escaped-plus", PLUS_AND_SPACE, "", "authfile=C/a%2Bb.conf"),
        ("uri-authfile-escaped-space", PLUS_AND_SPACE, "", "authfile=C/a%20b.conf"),
        (
            "env-beats-authfile",
            {
                "env.conf": BAD + "[auth-libvirt-localhost]\ncredentials=c\n",
                "p.conf": GOOD + "[auth-libvirt-localhost]\ncredentials=c\n",
            },
            "env.conf",
            "authfile=P",
        ),
        ("default-group", {"env.conf": GOOD + "[auth-libvirt-default]\ncredentials=c\n"}, "env.conf", ""),
        (
            "host-group-first",
            {
                "env.conf": GOOD
                + "[credentials-bad]\nauthname=alice\npassword=no\n"
                + "[auth-libvirt-default]\ncredentials=bad\n[auth-libvirt-localhost]\ncredentials=c\n"
            },
            "env.conf",
            "",
        ),
        (
            "only-authname",
            {"env.conf": "[credentials-c]\nauthname=alice\n[auth-libvirt-localhost]\ncredentials=c\n"},
            "env.conf",
            "",
        ),
        (
            "other-host-only",
            {"env.conf": GOOD + "[auth-libvirt-example.org]\ncredentials=c\n"},
            "env.conf",
            "",
        ),
        ("no-credentials-key", {"env.conf": GOOD + "[auth-libvirt-localhost]\nfoo=c\n"}, "env.conf", ""),
        ("no-credentials-group", {"env.conf": "[auth-libvirt-localhost]\ncredentials=zz\n"}, "env.conf", ""),
    ]


def _run(lib: ModuleType, uri: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for label, files, env_file, param in _scenarios(tmp):
        case = tmp / label
        for rel, text in files.items():
            (case / rel).parent.mkdir(parents=True, exist_ok=True)
            (case / rel).write_text(text)
        # (No $XDG_CONFIG_HOME case here: GLib caches that directory on first use, so
        # the real library cannot be pointed at a new one in this process.)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp / "empty-config"))
        if env_file:
            monkeypatch.setenv("LIBVIRT_AUTH_FILE", str(case / env_file))
        else:
            monkeypatch.delenv("LIBVIRT_AUTH_FILE", raising=False)
        param = param.replace("P", str(case / "p.conf")).replace("C/", f"{case}/")
        full = uri + ("&" + param if param else "")
        asked: list[int] = []

        def callback(creds: list[list[Any]], _: Any, asked: list[int] = asked) -> int:
            for cred in creds:
                asked.append(cred[0])
                cred[4] = "alice" if cred[0] == AUTHNAME else "secret1"
            return 0

        try:
            conn = lib.openAuth(full, [[AUTHNAME, PASSPHRASE], callback, None], 0)
        except lib.libvirtError as exc:
            msg = exc.get_error_message().replace(str(case), "CASE")
            out.append((label, exc.get_error_code(), exc.get_error_domain(), msg, asked))
        else:
            conn.close()
            out.append((label, "ok", asked))
    return out


def test_auth_conf_lookup_as_libvirt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_libvirt: ModuleType, sasl_libvirtd: RealLibvirtd
) -> None:
    uri = sasl_libvirtd.unix_uri
    expected = _run(real_libvirt, uri, tmp_path / "real", monkeypatch)
    by_label = {r[0]: r for r in expected}
    assert by_label["env-file"] == ("env-file", "ok", [])  # the file answered everything
    assert by_label["only-authname"] == ("only-authname", "ok", [PASSPHRASE])
    assert by_label["other-host-only"] == ("other-host-only", "ok", [AUTHNAME, PASSPHRASE])
    assert by_label["uri-authfile-plus"] == ("uri-authfile-plus", "ok", [])
    assert by_label["uri-authfile-escaped-plus"] == ("uri-authfile-escaped-plus", "ok", [])
    assert by_label["uri-authfile-escaped-space"][1] == vwlibvirt.VIR_ERR_AUTH_FAILED
    assert by_label["no-credentials-key"][1] == vwlibvirt.VIR_ERR_CONF_SYNTAX
    assert _run(vwlibvirt, uri, tmp_path / "ours", monkeypatch) == [
        tuple(str(x).replace("/real/", "/ours/") if isinstance(x, str) else x for x in r) for r in expected
    ]


def test_auth_conf_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """virAuthGetConfigFilePathURI: env, then ?authfile=, then readable XDG, then /etc."""
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setenv("LIBVIRT_AUTH_FILE", "/from/env")
    assert config_path({"authfile": "/from/uri"}) == "/from/env"
    monkeypatch.delenv("LIBVIRT_AUTH_FILE")
    assert config_path({"authfile": "/from/uri"}) == "/from/uri"
    etc = "/etc/libvirt/auth.conf"
    fallback = etc if os.access(etc, os.R_OK) else None
    assert config_path({}) == fallback  # the XDG file does not exist yet
    (xdg / "libvirt").mkdir(parents=True)
    (xdg / "libvirt" / "auth.conf").write_text(GOOD)
    assert config_path({}) == str(xdg / "libvirt" / "auth.conf")


@pytest.mark.parametrize("home", ["{tmp}/home", "{tmp}/home/", "/", "", None])
def test_auth_conf_user_path_follows_home_each_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: str | None
) -> None:
    """Without $XDG_CONFIG_HOME the user's file is ~/.config/libvirt/auth.conf as
    GLib's g_get_home_dir reads ~ ($HOME, else the password database), read again
    on each open: the joined paths are kept per value, not per process."""
    monkeypatch.delenv("LIBVIRT_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    value = None if home is None else home.format(tmp=tmp_path)
    if value is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", value)
    expected = os.path.join(os.path.expanduser("~"), ".config", "libvirt", "auth.conf")
    if value is not None and value.startswith(str(tmp_path)):
        Path(expected).parent.mkdir(parents=True)
        Path(expected).write_text(GOOD)
    if os.access(expected, os.R_OK):
        assert config_path({}) == expected
    else:
        assert config_path({}) != expected
    # Another $HOME later in the process: its file is found, the first one's forgotten.
    other = tmp_path / "other"
    user_file = other / ".config" / "libvirt" / "auth.conf"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(GOOD)
    monkeypatch.setenv("HOME", str(other))
    assert config_path({}) == str(user_file)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path({}) != str(user_file)  # $XDG_CONFIG_HOME wins over $HOME


def test_authfile_query_is_percent_decoded_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """?authfile= as libvirt reads it (xmlURIUnescapeString): %XX decoded, "+" kept."""
    monkeypatch.delenv("LIBVIRT_AUTH_FILE", raising=False)
    base = "test+unix:///default?socket=/nowhere&authfile="
    assert config_path(query_params(base + "/etc/a+b.conf")) == "/etc/a+b.conf"
    assert config_path(query_params(base + "/etc/a%2Bb.conf")) == "/etc/a+b.conf"
    assert config_path(query_params(base + "/etc/a%20b.conf;auth=sasl")) == "/etc/a b.conf"
    assert query_params(base + "/x;auth=sasl.PLAIN")["auth"] == "sasl.PLAIN"  # ";" separates too
    assert query_params(base + "/first&authfile=/last")["authfile"] == "/last"  # the last one wins


def test_auth_conf_parsed_again_only_when_changed(tmp_path: Path) -> None:
    """Each SASL open looks credentials up: an unchanged file is not parsed again, a changed one is."""
    path = tmp_path / "auth.conf"
    path.write_text(GOOD + "[auth-libvirt-default]\ncredentials=c\n")
    first = authconf.load(str(path))
    assert authconf.load(str(path)) is first
    assert first.lookup("libvirt", None, "password") == "secret1"
    staged = tmp_path / "auth.conf.new"
    staged.write_text(BAD + "[auth-libvirt-default]\ncredentials=c\n")
    staged.replace(path)
    assert authconf.load(str(path)).lookup("libvirt", None, "password") == "wrong"
    path.unlink()
    with pytest.raises(vwlibvirt.libvirtError, match="cannot load auth file"):
        authconf.load(str(path))
