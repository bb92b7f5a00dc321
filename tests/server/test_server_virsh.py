"""Stock virsh 9.0 against `virtwire serve`, compared with the real libvirtd where it matters."""

from __future__ import annotations

import re
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer
from vwtestkit.env import VIRSH, unavailable
from vwtestkit.rawrpc import xdr_uint
from vwtestkit.virsh import virsh_env

EVDOM = (
    "<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory>"
    "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"
)
RunVirsh = Callable[..., subprocess.CompletedProcess[str]]


def _mask_cpu_time(text: str) -> str:
    return re.sub(r"CPU time:\s+\S+", "CPU time: X", text)


def _transports(server: VirtwireServer) -> dict[str, str]:
    return {"tcp": server.tcp_uri, "unix": server.unix_uri, "tls": server.tls_uri}


@pytest.mark.parametrize("transport", ["tcp", "unix", "tls"])
def test_list_dominfo_domstate_match_real_libvirtd(
    run_virsh: RunVirsh, virtwire_host: VirtwireServer, real_libvirtd: RealLibvirtd, transport: str
) -> None:
    ours = _transports(virtwire_host)[transport]
    for args in (("list", "--all"), ("dominfo", "test"), ("domstate", "test", "--reason"), ("nodeinfo",)):
        mine = run_virsh(ours, *args, check=True)
        real = run_virsh(real_libvirtd.tcp_uri, *args, check=True)
        assert _mask_cpu_time(mine.stdout) == _mask_cpu_time(real.stdout), args


def test_dumpxml_matches_real_libvirtd(
    run_virsh: RunVirsh, virtwire_host: VirtwireServer, real_libvirtd: RealLibvirtd
) -> None:
    for extra in ((), ("--inactive",), ("--security-info",)):
        mine = run_virsh(virtwire_host.tcp_uri, "dumpxml", "test", *extra, check=True)
        real = run_virsh(real_libvirtd.tcp_uri, "dumpxml", "test", *extra, check=True)
        assert mine.stdout == real.stdout


def test_suspend_resume_domstate(run_virsh: RunVirsh, virtwire_server: Callable[..., VirtwireServer]) -> None:
    server = virtwire_server(tls=False)
    uri = server.tcp_uri
    run_virsh(uri, "suspend", "test", check=True)
    assert run_virsh(uri, "domstate", "test", "--reason", check=True).stdout.strip() == "paused (user)"
    again = run_virsh(uri, "suspend", "test")
    assert again.returncode == 1
    assert "error: internal error: domain 'test' not running" in again.stderr
    run_virsh(uri, "resume", "test", check=True)
    assert run_virsh(uri, "domstate", "test", "--reason", check=True).stdout.strip() == "running (unpaused)"


def test_define_start_dumpxml_destroy_undefine(
    run_virsh: RunVirsh, virtwire_server: Callable[..., VirtwireServer], tmp_path: Path
) -> None:
    server = virtwire_server(tls=False)
    uri = server.unix_uri
    xml = tmp_path / "evdom.xml"
    xml.write_text(EVDOM.format(name="evdom"))
    assert "Domain 'evdom' defined" in run_virsh(uri, "define", str(xml), check=True).stdout
    assert run_virsh(uri, "domstate", "evdom", check=True).stdout.strip() == "shut off"
    run_virsh(uri, "start", "evdom", check=True)
    dumped = run_virsh(uri, "dumpxml", "evdom", check=True).stdout
    assert dumped.startswith("<domain type='test' id='2'>\n  <name>evdom</name>\n")
    assert "<memory unit='KiB'>131072</memory>" in dumped
    listing = run_virsh(uri, "list", "--all", check=True).stdout
    assert re.search(r"^\s*2\s+evdom\s+running\s*$", listing, re.M)
    run_virsh(uri, "destroy", "evdom", check=True)
    assert (
        run_virsh(uri, "domstate", "evdom", "--reason", check=True).stdout.strip() == "shut off (destroyed)"
    )
    run_virsh(uri, "undefine", "evdom", check=True)
    missing = run_virsh(uri, "dominfo", "evdom")
    assert missing.returncode == 1
    assert "error: failed to get domain 'evdom'" in missing.stderr


def test_read_only_over_tcp_is_refused(run_virsh: RunVirsh, virtwire_host: VirtwireServer) -> None:
    result = run_virsh(virtwire_host.tcp_uri, "suspend", "test", ro=True)
    assert result.returncode == 1
    assert "operation forbidden: read only access prevents virDomainSuspend" in result.stderr
    assert run_virsh(virtwire_host.tcp_uri, "list", "--all", ro=True, check=True).returncode == 0


def test_read_only_socket_refuses_without_dash_r(run_virsh: RunVirsh, virtwire_host: VirtwireServer) -> None:
    result = run_virsh(virtwire_host.unix_ro_uri, "suspend", "test")
    assert result.returncode == 1
    assert "error: operation forbidden: read only access prevents virDomainSuspend" in result.stderr
    assert "running" in run_virsh(virtwire_host.unix_ro_uri, "domstate", "test", check=True).stdout


EVDOM_UUID = "5ea1f00d-0000-4000-8000-00000000e7d0"
# What real libvirtd 9.0 (test driver) sends `virsh event --all` for these commands.
EVENT_ACTIONS = (
    ("suspend", "test"),
    ("resume", "test"),
    ("define", "{xml}"),
    ("start", "evdom"),
    ("reboot", "evdom"),  # the test driver restarts it silently: no event at all
    ("shutdown", "evdom"),
    ("create", "{xml}"),  # createXML of the defined (inactive) domain starts it
    ("undefine", "evdom"),
    ("destroy", "evdom"),
)
EXPECTED_EVENTS = [
    "event 'lifecycle' for domain 'test': Suspended Paused",
    "event 'lifecycle' for domain 'test': Resumed Unpaused",
    "event 'lifecycle' for domain 'evdom': Defined Added",
    "event 'lifecycle' for domain 'evdom': Started Booted",
    "event 'lifecycle' for domain 'evdom': Stopped Shutdown",
    "event 'lifecycle' for domain 'evdom': Started Booted",
    "event 'lifecycle' for domain 'evdom': Undefined Removed",
    "event 'lifecycle' for domain 'evdom': Stopped Destroyed",
]


def _events_seen(run_virsh: RunVirsh, uri: str, port: int, xml: Path) -> list[str]:
    if not VIRSH.exists():
        unavailable("virsh is not installed (scripts/test.sh installs libvirt-clients)")
    baseline = _probe_callback_id(port)
    listener = subprocess.Popen(
        [str(VIRSH), "-c", uri, "event", "--all", "--loop", "--timeout", "30"],
        env=virsh_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_callbacks(port, listener, baseline)
        for args in EVENT_ACTIONS:
            run_virsh(uri, *(a.format(xml=xml) for a in args), check=True)
        time.sleep(0.5)  # let the last MESSAGE reach virsh before it is stopped
    finally:
        listener.terminate()
        out, _err = listener.communicate(timeout=30)
    return [line for line in out.splitlines() if line.startswith("event ")]


def test_event_all_matches_real_libvirtd(
    run_virsh: RunVirsh,
    virtwire_server: Callable[..., VirtwireServer],
    real_libvirtd: RealLibvirtd,
    tmp_path: Path,
) -> None:
    xml = tmp_path / "evdom.xml"
    # A fixed UUID, so that `create` of the defined name starts that domain.
    xml.write_text(EVDOM.format(name="evdom").replace("</name>", f"</name><uuid>{EVDOM_UUID}</uuid>"))
    server = virtwire_server(tls=False)
    ours = _events_seen(run_virsh, server.tcp_uri, server.tcp_port, xml)
    real = _events_seen(run_virsh, real_libvirtd.tcp_uri, real_libvirtd.tcp_port, xml)
    assert real == EXPECTED_EVENTS
    assert ours == EXPECTED_EVENTS


def _wait_for_callbacks(port: int, listener: subprocess.Popen[str], baseline: int) -> None:
    """virsh prints nothing once registered: watch the daemon-wide callback counter.

    virsh registers 27 callbacks (one per event ID); a registration made after
    them gets an ID at least 28 above one made before virsh started.
    """
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert listener.poll() is None, listener.communicate()
        if _probe_callback_id(port) >= baseline + 28:
            return
        time.sleep(0.1)
    pytest.fail("virsh event did not register its callbacks in time")


def _probe_callback_id(port: int) -> int:
    with RawRpcClient.tcp("127.0.0.1", port, timeout=10) as raw:
        raw.open()
        reply = raw.call(316, xdr_uint(0) + xdr_uint(0))
        (callback_id,) = struct.unpack(">i", reply.payload[:4])
        return int(callback_id)


def test_hostname_is_configurable(
    run_virsh: RunVirsh, virtwire_server: Callable[..., VirtwireServer]
) -> None:
    server = virtwire_server(tls=False, hostname="vw-host-1")
    assert run_virsh(server.tcp_uri, "hostname", check=True).stdout.strip() == "vw-host-1"


def test_keepalive_both_ways_with_virsh(
    run_virsh: RunVirsh, virtwire_server: Callable[..., VirtwireServer]
) -> None:
    # Both sides ping every second and give up after two missed answers: an idle
    # 5 s session survives only if each side answers the other's PINGs.
    server = virtwire_server("--keepalive-interval", "1", "--keepalive-count", "2", tls=False, ro=False)
    result = run_virsh(server.tcp_uri, "-k", "1", "-K", "2", "event", "--all", "--timeout", "5")
    # virsh exits 1 on an event-loop timeout, against libvirtd too; a keepalive
    # failure would print an error instead of the timeout message.
    assert result.stdout.startswith("event loop timed out\nevents received: 0"), result
    assert result.stderr == ""
    assert "keepalive timeout" not in server.log
