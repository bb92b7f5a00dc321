"""Module-level behaviour of virtwire.libvirt against libvirt-python's."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import pytest
from virtwire.client import uri as vuri

import virtwire.libvirt as vlibvirt


def test_constants_are_all_there(real_libvirt: ModuleType) -> None:
    theirs = {n: getattr(real_libvirt, n) for n in dir(real_libvirt) if n.startswith("VIR_")}
    ours = {n: getattr(vlibvirt, n) for n in theirs if hasattr(vlibvirt, n)}
    missing = sorted(set(theirs) - set(ours))
    assert missing == []
    assert ours == theirs


def test_get_version(real_libvirt: ModuleType) -> None:
    assert vlibvirt.getVersion() == real_libvirt.getVersion()
    assert vlibvirt.getVersion("Test") == real_libvirt.getVersion("Test")


def test_error_handler_sees_every_error(real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    records: dict[str, list[Any]] = {"theirs": [], "ours": []}
    try:
        for key, lib in (("theirs", real_libvirt), ("ours", vlibvirt)):
            assert lib.registerErrorHandler(lambda ctx, err, k=key: records[k].append((ctx, err)), "ctx") == 1
            conn = lib.open(real_libvirtd.tcp_uri)
            with pytest.raises(lib.libvirtError):
                conn.lookupByName("no-such-domain")
            with pytest.raises(lib.libvirtError):
                conn.lookupByName("test").migrateStartPostCopy(0)
            conn.close()
    finally:
        real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
        vlibvirt.registerErrorHandler(None, None)
    assert records["ours"] == records["theirs"]
    assert len(records["ours"]) == 2


def test_no_uri_probes_the_local_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    target = vuri.resolve(None, readonly=True)
    assert (target.transport, target.name, target.socket_path) == (
        vuri.Transport.UNIX,
        "",
        "/var/run/libvirt/libvirt-sock-ro",
    )
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test+tcp://h:1/default")
    assert vuri.resolve(None).name == "test:///default"


def test_probed_open_learns_its_uri(fake_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """open(None) sends an empty name and asks the daemon which URI it opened."""
    from virtwire.protocol.generated import remote

    get_uri = remote.PROCEDURES_BY_NAME["CONNECT_GET_URI"].number
    daemon = fake_daemon(
        handlers={get_uri: lambda p: remote.remote_connect_get_uri_ret(uri="qemu:///system").to_bytes()}
    )
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    monkeypatch.setattr(
        vuri,
        "probe",
        lambda readonly=False: vuri.Target(
            "", vuri.Transport.TCP, "127.0.0.1", daemon.port, "", "", False, None
        ),
    )
    conn = vlibvirt.open()
    try:
        assert conn.getURI() == "qemu:///system"
        opens = [payload for proc, _, payload in daemon.calls if proc == 1]
        assert remote.remote_connect_open_args.from_bytes(opens[0]).name == ""
        assert get_uri in daemon.procedures()
    finally:
        conn.close()
