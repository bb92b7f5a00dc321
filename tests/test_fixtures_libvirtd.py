"""The shared fixtures themselves: a real libvirtd reachable on every transport."""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RawRpcClient, RealLibvirtd, client_pkipath
from vwtestkit.rawrpc import PROC_CONNECT_CLOSE, REPLY, STATUS_ERROR, STATUS_OK

# virsh -r on the read-only socket; plain virsh elsewhere.
TRANSPORTS = [("tcp_uri", False), ("tls_uri", False), ("unix_uri", False), ("unix_ro_uri", True)]


@pytest.mark.parametrize(("attr", "ro"), TRANSPORTS, ids=[t[0] for t in TRANSPORTS])
def test_virsh_lists_test_domain_running(
    real_libvirtd: RealLibvirtd, run_virsh: Callable[..., Any], attr: str, ro: bool
) -> None:
    proc = run_virsh(getattr(real_libvirtd, attr), "list", "--all", ro=ro, check=True)
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["1", "test", "running"] in rows, proc.stdout


def test_read_only_socket_refuses_changes(real_libvirtd: RealLibvirtd, run_virsh: Callable[..., Any]) -> None:
    proc = run_virsh(real_libvirtd.unix_ro_uri, "suspend", "test")
    assert proc.returncode != 0
    assert "read only access prevents virDomainSuspend" in proc.stderr


def test_holder_keeps_state_between_connections(
    real_libvirtd: RealLibvirtd, run_virsh: Callable[..., Any]
) -> None:
    run_virsh(real_libvirtd.tcp_uri, "suspend", "test", check=True)
    try:
        state = run_virsh(real_libvirtd.unix_uri, "domstate", "test", check=True)
        assert state.stdout.strip() == "paused"
    finally:
        run_virsh(real_libvirtd.tcp_uri, "resume", "test", check=True)


def test_real_libvirt_python_talks_to_real_libvirtd(
    real_libvirt: ModuleType, real_libvirtd: RealLibvirtd
) -> None:
    assert real_libvirt.getVersion() == 9000000
    conn = real_libvirt.open(real_libvirtd.tcp_uri)
    try:
        assert conn.lookupByName("test").info()[0] == real_libvirt.VIR_DOMAIN_RUNNING
    finally:
        conn.close()


def test_raw_client_open_and_close_over_unix(real_libvirtd: RealLibvirtd) -> None:
    with RawRpcClient.unix(real_libvirtd.unix_path) as raw:
        raw.open()
        reply = raw.call(PROC_CONNECT_CLOSE)
        assert (reply.type, reply.status, reply.payload) == (REPLY, STATUS_OK, b"")
        assert raw.peer_closed()


def test_raw_client_tls_gets_confirmation_byte(real_libvirtd: RealLibvirtd, pki: Path) -> None:
    with RawRpcClient.tls("127.0.0.1", real_libvirtd.tls_port, client_pkipath(pki)) as raw:
        raw.open()


def test_raw_client_sees_unknown_procedure_error(real_libvirtd: RealLibvirtd) -> None:
    with RawRpcClient.tcp("127.0.0.1", real_libvirtd.tcp_port) as raw:
        raw.open()
        reply = raw.call(9999)
        assert reply.status == STATUS_ERROR
        assert b"unknown procedure: 9999" in reply.payload


def test_pki_has_both_client_identities(pki: Path) -> None:
    names = {p.name for p in pki.iterdir() if p.is_file()}
    assert {
        "cacert.pem",
        "cakey.pem",
        "servercert.pem",
        "serverkey.pem",
        "clientcert.pem",
        "clientkey.pem",
        "clientcert-other.pem",
        "clientkey-other.pem",
    } <= names
    assert oct(os.stat(pki / "clientkey.pem").st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=str(pki / "cacert.pem"))
    for identity, expected in (
        ("client", "O=virtwire-test,CN=virtwire-client"),
        ("other", "O=other,CN=intruder"),
    ):
        path = client_pkipath(pki, identity)
        ctx.load_cert_chain(str(path / "clientcert.pem"), str(path / "clientkey.pem"))  # key matches cert
        subject = subprocess.run(
            [
                "openssl",
                "x509",
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
                "-in",
                str(path / "clientcert.pem"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # RFC 2253 lists the RDNs last-first.
        assert subject == "subject=" + ",".join(reversed(expected.split(",")))


def test_fresh_libvirtd_has_its_own_state(
    fresh_libvirtd: Callable[..., RealLibvirtd], real_libvirtd: RealLibvirtd, run_virsh: Callable[..., Any]
) -> None:
    fresh = fresh_libvirtd(conf_extra="max_client_requests = 5")
    assert fresh.pid != real_libvirtd.pid
    assert "max_client_requests = 5" in (fresh.workdir / "libvirtd.conf").read_text()
    run_virsh(fresh.tcp_uri, "suspend", "test", check=True)
    assert run_virsh(fresh.unix_uri, "domstate", "test", check=True).stdout.strip() == "paused"
    assert run_virsh(real_libvirtd.tcp_uri, "domstate", "test", check=True).stdout.strip() == "running"
