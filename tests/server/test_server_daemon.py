"""The daemon as a user runs it: TLS and allowed DNs, state dir, CLI defaults, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from virtwire.server.cli import build_parser, config_from_args
from virtwire.server.rundir import runtime_dir
from virtwire.server.tls import dn_allowed, format_dn
from vwtestkit import RawRpcClient, VirtwireServer, client_pkipath
from vwtestkit.rawrpc import STATUS_OK

RunVirsh = Callable[..., subprocess.CompletedProcess[str]]
MINI = "<domain type='test'><name>{}</name><memory>1024</memory><os><type>hvm</type></os></domain>"


def test_dn_format_and_match() -> None:
    subject = ((("organizationName", "virtwire-test"),), (("commonName", "virtwire-client"),))
    dn = format_dn(subject)
    assert dn == "O=virtwire-test,CN=virtwire-client"
    assert dn_allowed(dn, [])
    assert dn_allowed(dn, ["O=virtwire-test,CN=*"])
    assert not dn_allowed(dn, ["O=other,CN=*", "CN=virtwire-client"])
    assert format_dn(((("commonName", "a,b"),),)) == "CN=a\\,b"


def test_tls_with_virsh_and_raw_confirmation_byte(run_virsh: RunVirsh, virtwire_host: VirtwireServer) -> None:
    out = run_virsh(virtwire_host.tls_uri, "list", "--all", check=True).stdout
    assert "test" in out
    assert virtwire_host.tls_port is not None and virtwire_host.client_pkipath is not None
    with RawRpcClient.tls("127.0.0.1", virtwire_host.tls_port, virtwire_host.client_pkipath) as raw:
        raw.open()
        assert raw.call(157).status == STATUS_OK


def test_tls_allowed_dn(
    run_virsh: RunVirsh, virtwire_server: Callable[..., VirtwireServer], pki: Path
) -> None:
    server = virtwire_server("--tls-allowed-dn", "O=virtwire-test,CN=*", ro=False)
    assert "test" in run_virsh(server.tls_uri, "list", "--all", check=True).stdout
    intruder = run_virsh(server.tls_uri_with(client_pkipath(pki, "other")), "list", "--all", timeout=60)
    assert intruder.returncode == 1
    assert server.tls_port is not None
    # Nothing of the RPC is served: not even the confirmation byte.
    with pytest.raises((ConnectionError, OSError, EOFError)):
        RawRpcClient.tls("127.0.0.1", server.tls_port, client_pkipath(pki, "other"), timeout=10)
    assert "Client's Distinguished Name is not on the list of allowed clients" in server.log
    assert "O=other,CN=intruder" in server.log


def test_state_dir_keeps_persistent_domains(
    real_libvirt: ModuleType, virtwire_server: Callable[..., VirtwireServer], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    server = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = real_libvirt.open(server.tcp_uri)
    conn.defineXML(MINI.format("keep1")).setAutostart(1)
    conn.defineXML(MINI.format("keep2"))
    conn.createXML(MINI.format("gone"), 0)  # transient: not persisted
    conn.lookupByName("test").undefine()  # the default domain goes away for good
    conn.close()
    server.stop()
    again = virtwire_server(tls=False, ro=False, state_dir=state)
    conn = real_libvirt.open(again.tcp_uri)
    try:
        state_of = {d.name(): (d.isActive(), d.autostart()) for d in conn.listAllDomains(0)}
        assert state_of == {"keep1": (1, 1), "keep2": (0, 0)}
    finally:
        conn.close()


def test_default_mode_is_tcp_16509_plus_a_socket_pair(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("VIRTWIRE_RUNTIME_DIR", raising=False)
    config = config_from_args(build_parser().parse_args(["serve"]))
    assert [str(e) for e in config.tcp] == ["127.0.0.1:16509"]
    assert config.unix == [tmp_path / "virtwire" / "libvirt-sock"]
    assert config.unix_ro == [tmp_path / "virtwire" / "libvirt-sock-ro"]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert runtime_dir() == Path("/run/virtwire")
    # One override for the daemon and virt-ssh-helper alike.
    monkeypatch.setenv("VIRTWIRE_RUNTIME_DIR", str(tmp_path / "elsewhere"))
    assert runtime_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("VIRTWIRE_RUNTIME_DIR")
    # Any listener flag replaces the defaults.
    only_tcp = config_from_args(build_parser().parse_args(["serve", "--tcp", "127.0.0.1:1"]))
    assert (only_tcp.unix, only_tcp.unix_ro) == ([], [])


def test_no_flags_prints_uris_and_exits_zero_on_sigint(tmp_path: Path, free_port: Callable[[], int]) -> None:
    port = free_port()
    sock = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "virtwire.server", "--tcp", f"127.0.0.1:{port}", "--unix", str(sock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert f"test+tcp://127.0.0.1:{port}/default" in lines[1]
        assert f"test+unix:///default?socket={sock}" in lines[2]
        with RawRpcClient.tcp("127.0.0.1", port, timeout=10) as raw:
            raw.open()
            proc.send_signal(signal.SIGINT)
            assert raw.peer_closed(20)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert not sock.exists()  # the socket file is removed on the way out


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtwire.server", "serve", *args], capture_output=True, text=True, timeout=30
    )


def test_bad_arguments_are_explained(tmp_path: Path) -> None:
    bad = _serve("--tcp", "nonsense")
    assert bad.returncode == 2
    assert "expected HOST:PORT" in bad.stderr
    # without --pki-dir, libvirtd's default locations (absent here), with libvirtd's words
    no_pki = _serve("--tls", "127.0.0.1:0", "--pki-dir", str(tmp_path / "nowhere"))
    assert no_pki.returncode != 0
    missing = f"Cannot read CA certificate '{tmp_path}/nowhere/cacert.pem': No such file or directory"
    assert missing in no_pki.stderr


def test_port_in_use_is_a_clear_error(virtwire_host: VirtwireServer) -> None:
    busy = subprocess.run(
        [sys.executable, "-m", "virtwire.server", "serve", "--tcp", f"127.0.0.1:{virtwire_host.tcp_port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert busy.returncode != 0
    assert "address already in use" in busy.stderr


def test_workload_flags_set_the_server_wide_guest_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtwire.server.cli import workload_defaults
    from virtwire.server.driver.memory import guest

    for name in ("VIRTWIRE_DIRTY_RATE", "VIRTWIRE_WORKING_SET_MIB", "VIRTWIRE_DIRTY_SET_MIB"):
        monkeypatch.delenv(name, raising=False)
    argv = ["serve", "--dirty-rate", "300", "--working-set-mib", "16", "--dirty-set-mib", "2"]
    monkeypatch.setattr(guest, "SERVER_DEFAULTS", workload_defaults(build_parser().parse_args(argv)))
    spec = guest.WorkloadSpec.default()
    assert (spec.dirty_rate, spec.working_set_pages, spec.hot_pages) == (300, 16 * 256, 2 * 256)
    assert not guest.test_hooks_enabled()
    # Flags win over the environment; unset flags leave it in charge.
    monkeypatch.setenv("VIRTWIRE_DIRTY_RATE", "7")
    monkeypatch.setenv("VIRTWIRE_WORKING_SET_MIB", "4")
    assert guest.WorkloadSpec.default().dirty_rate == 300
    hooks_only = workload_defaults(build_parser().parse_args(["serve", "--enable-test-hooks"]))
    monkeypatch.setattr(guest, "SERVER_DEFAULTS", hooks_only)
    spec = guest.WorkloadSpec.default()
    assert (spec.dirty_rate, spec.working_set_pages) == (7, 4 * 256)
    assert guest.test_hooks_enabled()
    with pytest.raises(ValueError, match="--dirty-rate must not be negative"):
        workload_defaults(build_parser().parse_args(["serve", "--dirty-rate", "-1"]))
