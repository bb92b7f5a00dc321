"""The TLS refusal matrix, both ways, against real libvirt's own answers.

Client side: virtwire.libvirt checks its own credentials before it connects
(expired, not yet active, signed by another CA, a CA that is no CA, a purpose
that forbids a client) with the very message real libvirt-python gives for the
same files; ``no_sanity=1`` skips that; the server's certificate must match the
host name (``no_verify=1`` skips that) and must not be revoked (cacrl.pem).
Server side: `virtwire serve` refuses revoked, expired and foreign client
certificates, refuses to start with credentials libvirtd would refuse, and
honours a GnuTLS-style priority string.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from vwtestkit import VirtwireServer, start_server
from vwtestkit.badpki import DAY, NOW, Authority, write_pki

import virtwire.libvirt as vlibvirt

SYSTEM_ERROR, FROM_RPC, AUTH_FAILED = 38, 7, 45


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority.make()


@pytest.fixture(scope="module")
def server(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtwireServer]:
    revoked_client = ca.issue(server=False, cn="revoked-client")
    ca.revoked.append(revoked_client[0].serial_number)
    pki = write_pki(
        tmp_path_factory.mktemp("srvpki"),
        ca,
        server=ca.issue(server=True, cn="127.0.0.1"),
        client=ca.issue(server=False, cn="good-client"),
        with_crl=True,
    )
    srv = start_server(pki=pki)
    srv.revoked_client = revoked_client  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


def _uri(server: VirtwireServer, pkipath: Path, extra: str = "") -> str:
    return server.tls_uri_with(pkipath) + extra


def _error(lib: ModuleType, uri: str) -> tuple[int, int, str]:
    with pytest.raises(lib.libvirtError) as info:
        lib.open(uri).close()
    err = info.value
    return err.get_error_code(), err.get_error_domain(), err.get_error_message()


def _both(real_libvirt: ModuleType, uri: str) -> tuple[int, int, str]:
    ours, theirs = _error(vlibvirt, uri), _error(real_libvirt, uri)
    assert ours == theirs, f"virtwire.libvirt {ours} != libvirt-python {theirs}"
    return ours


def test_good_credentials_connect(
    server: VirtwireServer, ca: Authority, tmp_path: Path, real_libvirt: Any
) -> None:
    pki = write_pki(tmp_path, ca, client=ca.issue(server=False, cn="good-client"))
    for lib in (vlibvirt, real_libvirt):
        conn = lib.open(_uri(server, pki))
        assert conn.getType() == "TEST"
        assert conn.isSecure() == 1 and conn.isEncrypted() == 1
        conn.close()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", "The client certificate {cert} has expired"),
        ("not-yet-active", "The client certificate {cert} is not yet active"),
        (
            "foreign",
            "Our own certificate {cert} failed validation against {ca}:"
            " The certificate hasn't got a known issuer.",
        ),
        ("server-only", "Certificate {cert} purpose does not allow use for with a TLS client"),
        ("ca-not-a-ca", "The certificate {ca} basic constraints do not show a CA"),
    ],
)
def test_own_credentials_are_checked_before_connecting(
    case: str, expected: str, server: VirtwireServer, ca: Authority, tmp_path: Path, real_libvirt: Any
) -> None:
    trusted = ca
    if case == "expired":
        client = ca.issue(server=False, cn="c", valid_from=NOW - 10 * DAY, valid_to=NOW - DAY)
    elif case == "not-yet-active":
        client = ca.issue(server=False, cn="c", valid_from=NOW + DAY, valid_to=NOW + 10 * DAY)
    elif case == "foreign":
        client = Authority.make("another-ca").issue(server=False, cn="c")
    elif case == "server-only":
        client = ca.issue(
            server=False, cn="c", purposes=[ExtendedKeyUsageOID.SERVER_AUTH], purpose_critical=True
        )
    else:
        trusted = Authority.make("not-a-ca", ca_constraint=False)
        client = trusted.issue(server=False, cn="c")
    pki = write_pki(tmp_path, ca, client=client, trusted=trusted)
    message = expected.format(cert=pki / "clientcert.pem", ca=pki / "cacert.pem")
    assert _both(real_libvirt, _uri(server, pki)) == (SYSTEM_ERROR, FROM_RPC, message)


def test_no_sanity_skips_the_own_check_and_the_server_refuses(
    server: VirtwireServer, ca: Authority, tmp_path: Path, real_libvirt: Any
) -> None:
    expired = ca.issue(server=False, cn="c", valid_from=NOW - 10 * DAY, valid_to=NOW - DAY)
    pki = write_pki(tmp_path, ca, client=expired)
    uri = _uri(server, pki, "&no_sanity=1")
    for lib in (vlibvirt, real_libvirt):
        _, _, message = _error(lib, uri)
        assert "expired" not in message  # not our own check: the server's refusal
    assert "refused" in server.log


def test_server_refuses_a_revoked_client(server: VirtwireServer, ca: Authority, tmp_path: Path) -> None:
    # the CA signed it, it is in date, but the server's cacrl.pem lists it
    pki = write_pki(tmp_path, ca, client=server.revoked_client)  # type: ignore[attr-defined]
    with pytest.raises(vlibvirt.libvirtError):
        vlibvirt.open(_uri(server, pki)).close()
    assert "certificate revoked" in server.log


def test_server_identity_is_checked(
    ca: Authority, tmp_path_factory: pytest.TempPathFactory, real_libvirt: Any
) -> None:
    """A server certificate for another host name, or one the client's CRL revokes."""
    wrong_name = ca.issue(server=True, cn="elsewhere.example")
    serial = wrong_name[0].serial_number
    srv_pki = write_pki(tmp_path_factory.mktemp("wrongname"), ca, server=wrong_name,
                        client=ca.issue(server=False, cn="c"))  # fmt: skip
    srv = start_server(pki=srv_pki)
    try:
        client_pki = write_pki(tmp_path_factory.mktemp("cli"), ca, client=ca.issue(server=False, cn="c"))
        uri = _uri(srv, client_pki)
        assert _both(real_libvirt, uri) == (
            AUTH_FAILED,
            FROM_RPC,
            "authentication failed: Failed to verify peer's certificate",
        )
        for lib in (vlibvirt, real_libvirt):
            lib.open(uri + "&no_verify=1").close()  # the user said not to check it
        ca.revoked.append(serial)
        revoking = write_pki(
            tmp_path_factory.mktemp("crl"), ca, client=ca.issue(server=False, cn="c"), with_crl=True
        )
        with pytest.raises(vlibvirt.libvirtError) as info:
            vlibvirt.open(_uri(srv, revoking, "&no_verify=0")).close()
        assert info.value.get_error_code() == AUTH_FAILED
    finally:
        if serial in ca.revoked:
            ca.revoked.remove(serial)
        srv.stop()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("expired", "The server certificate {cert} has expired"),
        ("client-cert", "Certificate {cert} purpose does not allow use for with a TLS server"),
    ],
)
def test_serve_refuses_credentials_libvirtd_would_refuse(
    case: str, message: str, ca: Authority, tmp_path: Path
) -> None:
    if case == "expired":
        cert = ca.issue(server=True, cn="127.0.0.1", valid_from=NOW - 10 * DAY, valid_to=NOW - DAY)
    else:
        cert = ca.issue(
            server=True, cn="127.0.0.1", purposes=[ExtendedKeyUsageOID.CLIENT_AUTH], purpose_critical=True
        )
    pki = write_pki(tmp_path, ca, server=cert)
    proc = subprocess.run(
        [sys.executable, "-m", "virtwire.server", "serve", "--tls", "127.0.0.1:0", "--pki-dir", str(pki)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert message.format(cert=pki / "servercert.pem") in proc.stderr


def test_tls_priority_both_ends(
    ca: Authority, tmp_path_factory: pytest.TempPathFactory, real_libvirt: Any
) -> None:
    pki = write_pki(tmp_path_factory.mktemp("prio"), ca, server=ca.issue(server=True, cn="127.0.0.1"),
                    client=ca.issue(server=False, cn="c"))  # fmt: skip
    srv = start_server("--tls-priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2", pki=pki)
    try:
        for lib in (vlibvirt, real_libvirt):
            lib.open(_uri(srv, pki, "&tls_priority=NORMAL")).close()  # 1.2 is common ground
            with pytest.raises(lib.libvirtError):  # a client that will only speak TLS 1.3
                lib.open(_uri(srv, pki, "&tls_priority=NORMAL:-VERS-TLS1.2")).close()
        code, domain, message = _error(vlibvirt, _uri(srv, pki, "&tls_priority=BOGUS"))
        assert (code, domain) == (SYSTEM_ERROR, FROM_RPC)
        assert message == "Failed to set TLS session priority to BOGUS: The request is invalid."
        assert _error(real_libvirt, _uri(srv, pki, "&tls_priority=BOGUS"))[2].startswith(
            "Failed to set TLS session priority to BOGUS"
        )
    finally:
        srv.stop()
