"""SASL both ways, differentially: every scenario gives the same result with
real libvirt-python against real libvirtd (the yardstick), real libvirt-python
against `virtwire serve`, and virtwire.libvirt against both."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer
from vwtestkit.sasl import AUTHNAME, PASSPHRASE, run_all

import virtwire.libvirt as vwlibvirt


def _normalised(results: list[tuple[Any, ...]], uri: str) -> list[tuple[Any, ...]]:
    return [tuple(str(x).replace(uri, "URI") for x in r) for r in results]


@pytest.fixture(autouse=True)
def _no_auth_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Credentials come from the callback only (auth.conf has its own tests).
    monkeypatch.delenv("LIBVIRT_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


@pytest.mark.parametrize("transport", ["unix", "tls"])
def test_same_outcomes_everywhere(
    transport: str, real_libvirt: ModuleType, sasl_libvirtd: RealLibvirtd, sasl_server: VirtwireServer
) -> None:
    real_uri = sasl_libvirtd.unix_uri if transport == "unix" else sasl_libvirtd.tls_uri
    our_uri = sasl_server.unix_uri if transport == "unix" else sasl_server.tls_uri
    yardstick = _normalised(run_all(real_libvirt, real_uri), real_uri)
    # The yardstick itself: good passwords work, the rest fail with libvirt's errors.
    verdicts = {r[0]: r[1] for r in yardstick}
    assert verdicts["good"] == verdicts["plain"] == verdicts["scram-sha-1"] == "ok", yardstick
    assert verdicts["non-ascii-password"] == verdicts["non-ascii-plain"] == "ok", yardstick
    assert verdicts["bad-password"] == verdicts["unknown-user"] == "error", yardstick
    assert _normalised(run_all(real_libvirt, our_uri), our_uri) == yardstick  # stock client, our server
    assert _normalised(run_all(vwlibvirt, real_uri), real_uri) == yardstick  # our client, real libvirtd
    assert _normalised(run_all(vwlibvirt, our_uri), our_uri) == yardstick  # ours, both ends


def test_asyncio_client_authenticates_to_libvirtd(sasl_libvirtd: RealLibvirtd) -> None:
    import asyncio

    import virtwire.client.asyncio as vasyncio

    def ask(creds: list[list[Any]], _: Any) -> int:
        for cred in creds:
            cred[4] = "bob" if cred[0] == AUTHNAME else "hunter2"
        return 0

    async def main() -> tuple[bool, bool, str]:
        conn = await vasyncio.connect(sasl_libvirtd.unix_uri, auth=[[AUTHNAME, PASSPHRASE], ask, None])
        async with conn:
            return await conn.is_secure(), await conn.is_encrypted(), await conn.get_type()

    assert asyncio.run(main()) == (True, True, "TEST")


def test_open_without_callbacks_fails_as_libvirt(
    real_libvirt: ModuleType, sasl_libvirtd: RealLibvirtd, sasl_server: VirtwireServer
) -> None:
    """virConnectOpen passes no credential callbacks: no SASL mechanism can run."""

    def outcome(lib: ModuleType, uri: str) -> tuple[int, int, str]:
        with pytest.raises(lib.libvirtError) as info:
            lib.open(uri)
        return info.value.get_error_code(), info.value.get_error_domain(), info.value.get_error_message()

    expected = outcome(real_libvirt, sasl_libvirtd.unix_uri)
    assert "No worthy mechs found" in expected[2]
    for lib, uri in (
        (vwlibvirt, sasl_libvirtd.unix_uri),
        (real_libvirt, sasl_server.unix_uri),
        (vwlibvirt, sasl_server.unix_uri),
    ):
        assert outcome(lib, uri) == expected
