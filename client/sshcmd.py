"""The command lines libvirt's remote driver runs for +ssh, +libssh, +libssh2 and +ext.

+ssh runs the OpenSSH client exactly as libvirt 9.0 does (virnetsocket.c,
virNetSocketNewConnectSSH): `ssh [-p PORT] [-l USER] [-i KEYFILE] -T -e none
[-o BatchMode=yes] [-o StrictHostKeyChecking=no] -- HOST COMMAND`, where
COMMAND is the remote shell snippet of virnetclient.c
(virNetClientSSHHelperCommand): virt-ssh-helper, the netcat script, or "try
the helper, else netcat". +libssh and +libssh2 (libvirt's in-process ssh
libraries) go through the same OpenSSH client here, with their parameters
(known_hosts, known_hosts_verify, sshauth) translated to ssh options. +ext
runs `?command=` as it is. No I/O happens here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from virtwire.client import errfactory
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

PROXY_AUTO: Final = "auto"
PROXY_NETCAT: Final = "netcat"
PROXY_NATIVE: Final = "native"
PROXIES: Final = (PROXY_AUTO, PROXY_NETCAT, PROXY_NATIVE)

# Characters after which virBufferEscapeShell quotes a string.
_SHELL_SPECIAL = frozenset("\r\t\n !\"#$&'()*;<>?[\\]^`{|}~")

# libssh's auth method names and the OpenSSH methods that do the same job.
_SSHAUTH_METHODS: Final = {
    "agent": "publickey",
    "privkey": "publickey",
    "password": "password",
    "keyboard-interactive": "keyboard-interactive",
}


@dataclass(frozen=True, slots=True)
class Tunnel:
    """A program whose stdin/stdout carry the protocol."""

    argv: tuple[str, ...]
    # libvirt's priv->is_secure: ssh yes, an arbitrary external command no.
    secure: bool


def _rpc_invalid_arg(detail: str) -> libvirtError:
    return errfactory.templated(c.VIR_ERR_INVALID_ARG, c.VIR_FROM_RPC, detail)


def escape_shell(text: str) -> str:
    """virBufferEscapeShell: quote only when the text has shell metacharacters."""
    if not text:
        return "''"
    if not any(ch in _SHELL_SPECIAL for ch in text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def double_escape_shell(text: str) -> str:
    """Twice: sshd runs the command through a shell, which runs `sh -c` again."""
    return escape_shell(escape_shell(text))


def remote_command(proxy: str, netcat: str | None, socket_path: str, driver_uri: str, readonly: bool) -> str:
    """The command the remote shell runs to reach the daemon (virNetClientSSHHelperCommand)."""
    nc = double_escape_shell(netcat if netcat is not None else "nc")
    uri = double_escape_shell(driver_uri)
    if proxy == PROXY_AUTO and netcat is not None:
        proxy = PROXY_NETCAT  # an explicit netcat means the legacy proxy
    nccmd = (
        f"if '{nc}' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then "
        "ARG=-q0;"
        "else "
        "ARG=;"
        "fi;"
        f"'{nc}' $ARG -U {socket_path}"
    )
    helpercmd = f"virt-ssh-helper{' -r ' if readonly else ' '}'{uri}'"
    if proxy == PROXY_AUTO:
        return (
            "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; "
            "if test $? = 0; then "
            f"    {helpercmd}; "
            "else"
            f"    {nccmd}; "
            "fi'"
        )
    if proxy == PROXY_NETCAT:
        return f"sh -c '{nccmd}'"
    if netcat is not None:
        raise _rpc_invalid_arg("netcat path not valid with native proxy mode")
    return f"sh -c '{helpercmd}'"


def openssh_argv(
    binary: str,
    host: str,
    port: int,
    user: str | None,
    keyfile: str | None,
    no_tty: bool,
    no_verify: bool,
    command: str,
) -> tuple[str, ...]:
    """virNetSocketNewConnectSSH's command line."""
    argv = [binary]
    if port:
        argv += ["-p", str(port)]
    if user:
        argv += ["-l", user]
    if keyfile:
        argv += ["-i", keyfile]
    argv += ["-T", "-e", "none"]
    if no_tty:
        argv += ["-o", "BatchMode=yes"]
    if no_verify:
        argv += ["-o", "StrictHostKeyChecking=no"]
    argv += ["--", host, command]
    return tuple(argv)


def _user_config_dir() -> str:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return os.path.join(xdg if xdg else os.path.join(os.path.expanduser("~"), ".config"), "libvirt")


def libssh_argv(
    host: str,
    port: int,
    user: str | None,
    keyfile: str | None,
    known_hosts: str | None,
    known_hosts_verify: str | None,
    sshauth: str | None,
    command: str,
) -> tuple[str, ...]:
    """+libssh / +libssh2 through OpenSSH, with libvirt's defaults for those transports
    (virNetClientNewLibssh: user root, port 22, known hosts in libvirt's config dir).

    Those libraries ask for passwords through virConnectAuth callbacks, never on a
    terminal: OpenSSH runs in batch mode, so only keys and the agent log in.
    """
    verify = (known_hosts_verify or "normal").lower()
    strict = {"normal": "yes", "auto": "accept-new", "ignore": "no"}.get(verify)
    if strict is None:
        raise _rpc_invalid_arg(f"Invalid host key verification method: '{known_hosts_verify}'")
    methods: list[str] = []
    for name in (sshauth or "agent,privkey,password,keyboard-interactive").split(","):
        mapped = _SSHAUTH_METHODS.get(name.lower())
        if mapped is None:
            raise _rpc_invalid_arg(f"Invalid authentication method: '{name}'")
        if mapped not in methods:
            methods.append(mapped)
    argv = ["ssh", "-p", str(port or 22), "-l", user or "root"]
    if keyfile:
        argv += ["-i", keyfile]
    known = (
        "/dev/null"
        if verify == "ignore"
        else (known_hosts or os.path.join(_user_config_dir(), "known_hosts"))
    )
    argv += ["-T", "-e", "none", "-o", "BatchMode=yes"]
    argv += ["-o", f"StrictHostKeyChecking={strict}", "-o", f"UserKnownHostsFile={known}"]
    argv += ["-o", f"PreferredAuthentications={','.join(methods)}"]
    argv += ["--", host, command]
    return tuple(argv)
