"""The client's TLS credentials are loaded once per set of files, not once per open,
and loaded again when a file changes (libvirt reads them on every open)."""

from __future__ import annotations

import logging
import shutil
import ssl
from pathlib import Path

import pytest
from virtwire.client import tls
from virtwire.client import uri as urimod
from vwtestkit import client_pkipath


def _pkipath(pki: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "pki"
    shutil.copytree(client_pkipath(pki), copy)
    return copy


def _context(uri: str) -> ssl.SSLContext:
    target = urimod.parse(uri)
    assert target.tls is not None
    return tls.tls_context(target, target.tls)


def test_same_files_same_context(pki: Path, tmp_path: Path) -> None:
    base = f"test+tls://localhost/default?pkipath={_pkipath(pki, tmp_path)}"
    first = _context(base)
    assert _context(base) is first
    # Other options that shape the context make another one.
    assert _context(base + "&no_verify=1") is not first
    assert _context(base + "&tls_priority=NORMAL:-VERS-TLS1.3") is not first


def test_changed_files_are_loaded_again(pki: Path, tmp_path: Path) -> None:
    pkipath = _pkipath(pki, tmp_path)
    base = f"test+tls://localhost/default?pkipath={pkipath}"
    first = _context(base)
    # Renewed credentials: the other identity's pair takes the same names.
    other = client_pkipath(pki, "other")
    for name in ("clientcert.pem", "clientkey.pem"):
        staged = pkipath / (name + ".new")
        shutil.copy(other / name, staged)
        staged.replace(pkipath / name)
    second = _context(base)
    assert second is not first
    assert _context(base) is second
    # A CRL that appears is read too (any PEM file loads; its presence turns the check on).
    assert not second.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    shutil.copy(pkipath / "cacert.pem", pkipath / "cacrl.pem")
    third = _context(base)
    assert third is not second and third.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF


def test_sanity_warnings_on_every_open(
    pki: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from virtwire.protocol import x509check

    checked: list[str] = []

    def sanity(cacert: str, cert: str, *, is_server: bool) -> list[str]:
        checked.append(cert)
        return [f"warning about {Path(cert).name}"]

    monkeypatch.setattr(x509check, "sanity_check_files", sanity)
    base = f"test+tls://localhost/default?pkipath={_pkipath(pki, tmp_path)}"
    with caplog.at_level(logging.WARNING, logger=tls.log.name):
        first = _context(base)
        assert _context(base) is first
    # Checked once for these files, said on each open.
    assert len(checked) == 1
    assert [r.getMessage() for r in caplog.records] == ["warning about clientcert.pem"] * 2
