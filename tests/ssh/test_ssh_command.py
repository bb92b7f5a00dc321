"""The ssh command line and remote shell snippet, compared with real libvirt-python's.

No sshd here: `?command=` names a recorder that writes its arguments and
exits, so both clients fail to open, after spawning the exact program libvirt
would. Parameter errors that stop libvirt before it spawns anything must be
the same errors, field for field.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.client import sshcmd
from virtwire.client import uri as vuri

import virtwire.libvirt as vlibvirt


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    out = tmp_path / "argv"
    out.mkdir()
    script = tmp_path / "record-ssh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" > '{out}'/argv.$$\nexit 1\n")
    script.chmod(0o755)
    return script


def _recorded(recorder: Path) -> list[list[str]]:
    files = sorted((recorder.parent / "argv").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    out = [[a.decode() for a in p.read_bytes().split(b"\0")[:-1]] for p in files]
    for p in files:
        p.unlink()
    return out


def _open_fails(module: Any, uri: str, readonly: bool) -> tuple[int, int]:
    with pytest.raises(module.libvirtError) as info:
        module.openReadOnly(uri) if readonly else module.open(uri)
    return info.value.get_error_code(), info.value.get_error_domain()


CASES = [
    ("test+ssh://h/default?command=CMD", False),
    ("test+ssh://h/default?command=CMD", True),
    ("test+ssh://ann@h:2222/default?command=CMD&keyfile=/k/id%20key&no_tty=1&no_verify=1", False),
    ("test+ssh://h/default?command=CMD&netcat=/opt/my%20nc&socket=/run/x/sock", False),
    ("test+ssh://h/default?command=CMD&netcat=/bin/nc", True),
    ("test+ssh://h/default?command=CMD&proxy=native", True),
    ("test+ssh://h/default?command=CMD&proxy=netcat&mode=legacy", False),
    ("test+ssh://h/default?command=CMD&extra=it's&known_hosts=/kh&sshauth=agent", False),
    ("qemu+ssh://root@[::1]:22/system?command=CMD", False),
    ("remote+ssh://h/?command=CMD", False),
    ("test+ext:///default?command=CMD", False),
]


@pytest.mark.parametrize(("uri", "readonly"), CASES)
def test_same_program_and_arguments_as_libvirt(
    real_libvirt: ModuleType, recorder: Path, uri: str, readonly: bool
) -> None:
    uri = uri.replace("CMD", str(recorder))
    real_error = _open_fails(real_libvirt, uri, readonly)
    real = _recorded(recorder)
    ours_error = _open_fails(vlibvirt, uri, readonly)
    ours = _recorded(recorder)
    assert len(real) == 1 and ours == real
    assert real_error[1] == ours_error[1] == vlibvirt.VIR_FROM_RPC  # the program's early exit
    # What the target says matches what was run.
    assert vuri.parse(uri, readonly).tunnel == sshcmd.Tunnel(tuple(real[0]), secure="+ext" not in uri)


def _fields(e: Any) -> tuple[Any, ...]:
    names = ("code", "domain", "message", "level", "str1", "str2", "str3", "int1", "int2")
    return tuple(
        getattr(e, f"get_error_{n}" if n in ("code", "domain", "message", "level") else f"get_{n}")()
        for n in names
    )


@pytest.mark.parametrize(
    "params",
    [
        "proxy=bogus",
        "mode=direct",
        "mode=sideways",
        "proxy=native&netcat=nc",
        "no_tty=maybe",
    ],
)
def test_parameter_errors_match_libvirt(real_libvirt: ModuleType, recorder: Path, params: str) -> None:
    uri = f"test+ssh://h/default?command={recorder}&{params}"
    errors = []
    for module in (real_libvirt, vlibvirt):
        with pytest.raises(module.libvirtError) as info:
            module.open(uri)
        errors.append(_fields(info.value))
    assert errors[0] == errors[1]
    assert _recorded(recorder) == []  # refused before anything ran


def test_ext_needs_a_command(real_libvirt: ModuleType) -> None:
    uri = "test+ext:///default"
    errors = []
    for module in (real_libvirt, vlibvirt):
        with pytest.raises(module.libvirtError) as info:
            module.open(uri)
        errors.append(
            (info.value.get_error_code(), info.value.get_error_domain(), info.value.get_error_message())
        )
    assert errors[0] == errors[1]
    assert "for 'ext' transport, command is required" in errors[0][2]


def test_missing_program_reads_as_libvirts_failed_exec(real_libvirt: ModuleType, tmp_path: Path) -> None:
    uri = f"test+ssh://h/default?command={tmp_path / 'no-such-ssh'}"
    errors = []
    for module in (real_libvirt, vlibvirt):
        with pytest.raises(module.libvirtError) as info:
            module.open(uri)
        errors.append((info.value.get_error_code(), info.value.get_error_message(), info.value.get_int1()))
    assert errors[0] == errors[1]


def test_shell_escaping_is_libvirts() -> None:
    assert sshcmd.escape_shell("") == "''"
    assert sshcmd.escape_shell("/usr/bin/nc") == "/usr/bin/nc"
    assert sshcmd.escape_shell("a b") == "'a b'"
    assert sshcmd.escape_shell("it's") == "'it'\\''s'"
    assert sshcmd.double_escape_shell("a b") == "''\\''a b'\\'''"


def test_session_uri_as_a_user_takes_the_helper_and_the_session_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """remoteGetURIDaemonInfo: /session (or test+...) as non-root is a session daemon: no
    explicit socket means virt-ssh-helper, and the netcat socket is the user's runtime one."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    vuri._syntax.cache_clear()
    native = vuri.parse("qemu+ssh://h/session")
    assert native.tunnel is not None and native.tunnel.argv[-1] == "sh -c 'virt-ssh-helper 'qemu:///session''"
    netcat = vuri.parse("qemu+ssh://h/session?proxy=netcat")
    assert netcat.tunnel is not None and netcat.tunnel.argv[-1].endswith(
        "-U /run/user/1000/libvirt/libvirt-sock'"
    )


def test_libssh_parameters_become_openssh_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    target = vuri.parse("test+libssh2://h/default?socket=/s&known_hosts_verify=auto&sshauth=privkey,password")
    assert target.tunnel is not None
    assert target.tunnel.argv[:-1] == (
        "ssh",
        "-p",
        "22",
        "-l",
        "root",
        "-T",
        "-e",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={tmp_path}/libvirt/known_hosts",
        "-o",
        "PreferredAuthentications=publickey,password",
        "--",
        "h",
    )
    for bad, message in (
        ("known_hosts_verify=sometimes", "Invalid host key verification method: 'sometimes'"),
        ("sshauth=magic", "Invalid authentication method: 'magic'"),
    ):
        with pytest.raises(vlibvirt.libvirtError) as info:
            vuri.parse(f"test+libssh://h/default?{bad}")
        assert info.value.get_error_message() == f"invalid argument: {message}"
