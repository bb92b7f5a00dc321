"""+ssh end to end, through a real OpenSSH server on loopback.

Clients: stock virsh, the real libvirt-python 9.0 and virtwire.libvirt (also
the trio and asyncio shells). Daemons: `virtwire serve` (reached by our
virt-ssh-helper or by the remote netcat script) and a real libvirtd (netcat
to its socket). Every real-vs-ours pair also compares the ssh command lines
both built (the recording wrapper) and the errors both raised.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import virtwire.client
import virtwire.client.asyncio as vasyncio
from vwtestkit import RealLibvirtd, VirtwireServer
from vwtestkit.sshd import SshServer

import virtwire.libvirt as vlibvirt

BEHIND_SSH = "vw-behind-ssh"


def _error(module: Any, uri: str) -> tuple[Any, ...]:
    with pytest.raises(module.libvirtError) as info:
        module.open(uri)
    e = info.value
    return (e.get_error_code(), e.get_error_domain(), e.get_error_message(), e.get_int1())


def _last_argv(sshd: SshServer) -> list[str]:
    return sshd.recorded_argvs()[-1]


def _summary(module: Any, uri: str, readonly: bool = False) -> tuple[Any, ...]:
    conn = module.openReadOnly(uri) if readonly else module.open(uri)
    try:
        names = sorted(d.name() for d in conn.listAllDomains())
        return (conn.getHostname(), conn.isSecure(), conn.isEncrypted(), conn.getURI(), names)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("params", "readonly"),
    [
        ({"proxy": "native"}, False),  # virt-ssh-helper
        ({}, True),  # auto: the remote shell finds our virt-ssh-helper
        ({"socket": "SOCK", "proxy": "netcat", "no_tty": "1"}, False),  # netcat to an explicit socket
    ],
    ids=["native", "auto-ro", "netcat-socket"],
)
def test_real_and_ours_reach_virtwire_serve_alike(
    sshd: SshServer,
    ssh_daemon: VirtwireServer,
    real_libvirt: ModuleType,
    params: dict[str, str],
    readonly: bool,
) -> None:
    if params.get("socket") == "SOCK":
        params = {**params, "socket": str(ssh_daemon.unix_path)}
    _check_alike(sshd, real_libvirt, sshd.uri(**params), readonly)


def _check_alike(sshd: SshServer, real_libvirt: ModuleType, uri: str, readonly: bool) -> None:
    real = _summary(real_libvirt, uri, readonly)
    real_argv = _last_argv(sshd)
    ours = _summary(vlibvirt, uri, readonly)
    assert _last_argv(sshd) == real_argv
    assert ours == real
    assert real[0] == BEHIND_SSH and real[1:3] == (1, 0)  # ssh: secure, not encrypted (libvirt's view)


def test_virsh_over_netcat_and_virt_ssh_helper(
    sshd: SshServer, ssh_daemon: VirtwireServer, run_virsh: Any
) -> None:
    netcat = sshd.uri(socket=str(ssh_daemon.unix_path))
    out = run_virsh(netcat, "list", "--all", check=True).stdout
    assert "test" in out and "running" in out
    assert run_virsh(netcat, "hostname", check=True).stdout.strip() == BEHIND_SSH
    assert "nc" in _last_argv(sshd)[-1]

    native = sshd.uri(proxy="native")
    assert run_virsh(native, "hostname", check=True).stdout.strip() == BEHIND_SSH
    assert _last_argv(sshd)[-1] == "sh -c 'virt-ssh-helper 'test:///default''"
    assert run_virsh(native, "domstate", "test", ro=True, check=True).stdout.strip() == "running"
    assert _last_argv(sshd)[-1] == "sh -c 'virt-ssh-helper -r 'test:///default''"
    # The read-only socket really is read-only.
    refused = run_virsh(native, "suspend", "test", ro=True)
    assert refused.returncode != 0
    assert "read only access prevents virDomainSuspend" in refused.stderr


def test_ours_to_a_real_libvirtd_over_ssh(
    sshd: SshServer, real_libvirtd: RealLibvirtd, real_libvirt: ModuleType
) -> None:
    uri = sshd.uri(socket=str(real_libvirtd.unix_path))
    real = _summary(real_libvirt, uri)
    real_argv = _last_argv(sshd)
    ours = _summary(vlibvirt, uri)
    assert _last_argv(sshd) == real_argv
    assert ours == real
    conn = vlibvirt.open(uri)
    direct = real_libvirt.open(real_libvirtd.unix_uri)
    try:
        # state, max memory, memory, vcpus (not the cpu time, which moves)
        assert conn.lookupByName("test").info()[:4] == direct.lookupByName("test").info()[:4]
        assert conn.getLibVersion() == direct.getLibVersion()
    finally:
        conn.close()
        direct.close()


def test_trio_and_asyncio_shells_over_ssh(sshd: SshServer, ssh_daemon: VirtwireServer) -> None:
    native = sshd.uri(proxy="native")
    netcat = sshd.uri(socket=str(ssh_daemon.unix_path))

    async def with_trio() -> list[Any]:
        out = []
        for uri in (native, netcat):
            async with await virtwire.client.connect(uri) as conn:
                out.append(
                    (
                        await conn.get_hostname(),
                        await conn.is_secure(),
                        await conn.is_encrypted(),
                        [d.name for d in await conn.list_all_domains()],
                    )
                )
        return out

    async def with_asyncio() -> list[Any]:
        out = []
        for uri in (native, netcat):
            async with await vasyncio.connect(uri) as conn:
                out.append(
                    (
                        await conn.get_hostname(),
                        await conn.is_secure(),
                        await conn.is_encrypted(),
                        [d.name for d in await conn.list_all_domains()],
                    )
                )
        return out

    expected = [(BEHIND_SSH, True, False, ["test"])] * 2
    assert trio.run(with_trio) == expected
    assert asyncio.run(with_asyncio()) == expected


def test_ssh_failures_raise_libvirts_errors(
    sshd: SshServer, ssh_daemon: VirtwireServer, real_libvirt: ModuleType, tmp_path: Path
) -> None:
    """Each refusal (unknown host key, key not authorized, no daemon socket, nothing listening):
    the same error, with ssh's or nc's complaint in it, from real libvirt-python and from us."""
    base = dict(command=str(sshd.ssh_wrapper), keyfile=str(sshd.client_key), socket=str(ssh_daemon.unix_path))
    # ssh that fails fast could exit before the client's first write (then the error is
    # "Cannot write data", without ssh's complaint, for libvirt and for us): start it late.
    slow = tmp_path / "slow-ssh"
    slow.write_text(f"#!/bin/sh\nsleep 0.3\nexec '{sshd.ssh_wrapper}' \"$@\"\n")
    slow.chmod(0o755)
    port = sshd.port
    cases = {
        "host key": sshd.uri(**{**base, "command": str(sshd.ssh_wrapper_wrong_host)}),
        "wrong key": sshd.uri(**{**base, "keyfile": str(sshd.wrong_key)}),
        "no socket": sshd.uri(**{**base, "command": str(slow), "socket": str(tmp_path / "nothing-here")}),
        "refused": sshd.uri(**{**base, "command": str(slow)}).replace(f":{port}/", ":1/"),
    }
    expected_text = {
        "host key": "Host key verification failed.",
        "wrong key": "Permission denied (publickey).",
        "no socket": "No such file or directory",
        "refused": "Connection refused",
    }
    for name, uri in cases.items():
        real = _error(real_libvirt, uri)
        ours = _error(vlibvirt, uri)
        assert real[:2] == ours[:2] == (vlibvirt.VIR_ERR_SYSTEM_ERROR, vlibvirt.VIR_FROM_RPC), name
        if name in ("host key", "wrong key"):
            # ssh takes its time to refuse: the request is always written first, so the
            # close always resets the connection, for libvirt and for us.
            assert ours == real, name
        else:
            # A quick exit races the first write (libvirt's client too): the same complaint,
            # after "Cannot recv data" (reset) or "End of file while reading data".
            assert _complaint(ours[2]) == _complaint(real[2]), (name, ours, real)
        assert expected_text[name] in ours[2], (name, ours)


def _complaint(message: str) -> str:
    for prefix, suffix in (
        ("Cannot recv data: ", ": Connection reset by peer"),
        ("End of file while reading data: ", ": Input/output error"),
    ):
        if message.startswith(prefix) and message.endswith(suffix):
            return message[len(prefix) : -len(suffix)]
    return message


def test_dead_ssh_fails_calls_without_hanging(
    sshd: SshServer, ssh_daemon: VirtwireServer, real_libvirt: ModuleType
) -> None:
    """ssh killed under an open connection: the next call fails at once, as with libvirt."""
    uri = sshd.uri(proxy="native")
    errors = []
    for module in (real_libvirt, vlibvirt):
        conn = module.open(uri)
        assert conn.getHostname() == BEHIND_SSH
        os.kill(sshd.recorded_pids()[-1], signal.SIGKILL)
        with pytest.raises(module.libvirtError) as info:
            conn.getHostname()
        errors.append((info.value.get_error_code(), info.value.get_error_domain()))
        with pytest.raises(module.libvirtError):
            conn.getHostname()
        conn.close()
    # libvirt's two answers, by when its reader saw the socket close: during the call
    # ("Cannot recv data: ...") or already before it ("internal error: client socket is closed")
    either = {
        (vlibvirt.VIR_ERR_SYSTEM_ERROR, vlibvirt.VIR_FROM_RPC),
        (vlibvirt.VIR_ERR_INTERNAL_ERROR, vlibvirt.VIR_FROM_RPC),
    }
    assert set(errors) <= either, errors


def test_ext_runs_its_command(ssh_daemon: VirtwireServer, real_libvirt: ModuleType, tmp_path: Path) -> None:
    """+ext: `command` alone, no arguments; not secure (libvirt cannot vouch for it)."""
    script = tmp_path / "to-daemon"
    script.write_text(f"#!/bin/sh\nexec nc -U '{ssh_daemon.unix_path}'\n")
    script.chmod(0o755)
    uri = f"test+ext:///default?command={script}"
    real = _summary(real_libvirt, uri)
    assert real[:3] == (BEHIND_SSH, 0, 0)
    assert _summary(vlibvirt, uri) == real


def test_libssh_goes_through_openssh(sshd: SshServer, ssh_daemon: VirtwireServer) -> None:
    """+libssh / +libssh2 run OpenSSH with their own known_hosts parameter."""
    base = dict(socket=str(ssh_daemon.unix_path), keyfile=str(sshd.client_key))
    for transport in ("libssh", "libssh2"):
        uri = sshd.uri(transport=transport, command="", known_hosts=str(sshd.known_hosts), **base)
        assert _summary(vlibvirt, uri)[:3] == (BEHIND_SSH, 1, 0)
    bad = sshd.uri(transport="libssh", command="", known_hosts=str(sshd.wrong_known_hosts), **base)
    code, domain, message, _ = _error(vlibvirt, bad)
    assert (code, domain) == (vlibvirt.VIR_ERR_SYSTEM_ERROR, vlibvirt.VIR_FROM_RPC)
    assert "Host key verification failed." in message


def test_trio_and_asyncio_shells_report_ssh_failures_as_libvirt(
    sshd: SshServer, ssh_daemon: VirtwireServer, real_libvirt: ModuleType
) -> None:
    uri = sshd.uri(keyfile=str(sshd.wrong_key), socket=str(ssh_daemon.unix_path))
    expected = _error(real_libvirt, uri)

    def fields(e: Any) -> tuple[Any, ...]:
        return (e.get_error_code(), e.get_error_domain(), e.get_error_message(), e.get_int1())

    async def with_trio() -> tuple[Any, ...]:
        with pytest.raises(vlibvirt.libvirtError) as info:
            await virtwire.client.connect(uri)
        return fields(info.value)

    async def with_asyncio() -> tuple[Any, ...]:
        with pytest.raises(vlibvirt.libvirtError) as info:
            await vasyncio.connect(uri)
        return fields(info.value)

    assert trio.run(with_trio) == expected
    assert asyncio.run(with_asyncio()) == expected
