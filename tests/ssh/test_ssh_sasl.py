"""SASL through an ssh tunnel: the daemon sees a unix client (auth_unix_rw), the
client counts ssh as secure (no SASL security layer needed) and the SASL session
as encryption, and auth.conf is looked up under the ssh host's name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import VirtwireServer, hangguard, start_server, stop_servers
from vwtestkit.sasl import AUTHNAME, PASSPHRASE, make_users_file, write_auth_conf
from vwtestkit.sshd import SshServer

import virtwire.libvirt as vwlibvirt


@pytest.fixture(scope="module")
def sasl_unix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtwireServer]:
    users = make_users_file(tmp_path_factory.mktemp("ssh-sasl") / "users", {"alice": "secret1"})
    server = start_server("--auth-unix-rw", "sasl", "--sasl-users-file", str(users), pki=None, tls=False)
    hangguard.on_abort(server, server.cleanup)
    try:
        yield server
    finally:
        hangguard.forget_on_abort(server)
        stop_servers([server])


def _outcome(lib: ModuleType, uri: str, password: str, callback_ok: bool = True) -> tuple[Any, ...]:
    asked: list[int] = []

    def ask(creds: list[list[Any]], _: Any) -> int:
        for cred in creds:
            asked.append(cred[0])
            cred[4] = "alice" if cred[0] == AUTHNAME else password
        return 0 if callback_ok else -1

    try:
        conn = lib.openAuth(uri, [[AUTHNAME, PASSPHRASE], ask, None], 0)
    except lib.libvirtError as exc:
        return ("error", exc.get_error_code(), exc.get_error_domain(), exc.get_error_message(), asked)
    try:
        return ("ok", conn.isSecure(), conn.isEncrypted(), conn.getHostname() != "", asked)
    finally:
        conn.close()


def test_sasl_over_ssh_as_libvirt(
    sshd: SshServer,
    sasl_unix_server: VirtwireServer,
    real_libvirt: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = sshd.uri(socket=str(sasl_unix_server.unix_path))
    monkeypatch.delenv("LIBVIRT_AUTH_FILE", raising=False)
    good = _outcome(real_libvirt, uri, "secret1")
    assert good == ("ok", 1, 1, True, [AUTHNAME, PASSPHRASE])
    assert _outcome(vwlibvirt, uri, "secret1") == good
    bad = _outcome(real_libvirt, uri, "wrong")
    assert bad[:4] == (
        "error",
        vwlibvirt.VIR_ERR_AUTH_FAILED,
        vwlibvirt.VIR_FROM_RPC,
        "authentication failed: authentication failed",
    )
    assert _outcome(vwlibvirt, uri, "wrong") == bad
    # auth.conf answers for the ssh host ("127.0.0.1"): no callback needed.
    monkeypatch.setenv(
        "LIBVIRT_AUTH_FILE", str(write_auth_conf(tmp_path / "auth.conf", ["127.0.0.1"], "alice", "secret1"))
    )
    from_file = _outcome(real_libvirt, uri, "ignored", callback_ok=False)
    assert from_file == ("ok", 1, 1, True, [])
    assert _outcome(vwlibvirt, uri, "ignored", callback_ok=False) == from_file
