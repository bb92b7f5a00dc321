"""Stock virsh's network and interface commands: virtwire's output is libvirtd's.

Each script runs as one virsh session (commands separated by ';') against a
private real libvirtd and a private ``virtwire serve``; stdout and stderr must
be identical once generated UUIDs are masked.  The scripts put back what they
change, so one daemon and one server serve the module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_libvirtd, start_server, stop_libvirtd, stop_servers

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DEFAULT_UUID = "dd8fe884-6c02-601e-7551-cca97df1c5df"


@pytest.fixture(scope="module")
def sides(
    tmp_path_factory: pytest.TempPathFactory, pki: Path
) -> Iterator[tuple[RealLibvirtd, VirtwireServer]]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-virsh-net"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    try:
        yield daemon, server
    finally:
        stop_servers([server])
        stop_libvirtd(daemon)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("virsh-net-files")
    (d / "n1.xml").write_text("<network><name>n1</name><bridge name='n1br'/></network>\n")
    (d / "n2.xml").write_text(
        "<network><name>n2</name><uuid>2b2b2b2b-0000-4000-8000-000000000002</uuid><forward/>"
        "<ip address='10.7.0.1' prefix='16'><dhcp><range start='10.7.0.10' end='10.7.0.20'/></dhcp></ip>"
        "</network>\n"
    )
    (d / "bad.xml").write_text("<network><name>bad</name><forward mode='nope'/></network>\n")
    (d / "host.xml").write_text("<host mac='00:16:3e:77:e2:ee' name='bar' ip='192.168.122.10'/>\n")
    (d / "if1.xml").write_text(
        "<interface type='bond' name='bond0'><bond mode='active-backup'><miimon freq='100'/>"
        "<interface type='ethernet' name='eth2'><mac address='ab:cd:ef:00:11:22'/></interface>"
        "</bond></interface>\n"
    )
    (d / "if2.xml").write_text(
        "<interface type='vlan' name='v0'><vlan tag='42'><interface name='eth0'/></vlan></interface>\n"
    )
    return d


def _compare(
    run_virsh: Callable[..., Any],
    sides: tuple[RealLibvirtd, VirtwireServer],
    script: str,
    *,
    ro: bool = False,
) -> str:
    daemon, server = sides
    real = run_virsh(daemon.tcp_uri, script, ro=ro)
    mine = run_virsh(server.tcp_uri, script, ro=ro)

    def masked(text: str) -> str:
        return UUID_RE.sub(lambda m: m.group(0) if m.group(0) == DEFAULT_UUID else "UUID", text)

    assert (mine.returncode, masked(mine.stdout), masked(mine.stderr)) == (
        real.returncode,
        masked(real.stdout),
        masked(real.stderr),
    )
    return str(mine.stdout)


def test_net_commands(
    run_virsh: Callable[..., Any], sides: tuple[RealLibvirtd, VirtwireServer], files: Path
) -> None:
    script = "; ".join(
        [
            "net-list --all",
            "net-info default",
            "net-dumpxml default",
            "net-uuid default",
            f"net-name {DEFAULT_UUID}",
            f"net-define {files / 'n1.xml'}",
            f"net-define {files / 'n2.xml'}",
            f"net-define {files / 'bad.xml'}",
            "net-list --inactive",
            "net-dumpxml n1",
            "net-dumpxml n2",
            "net-start n2",
            "net-start n2",
            "net-autostart n2",
            "net-list --all --autostart",
            "net-list --all --persistent --name",
            "net-info n2",
            "net-dumpxml --inactive n2",
            "net-undefine n2",
            "net-autostart n2 --disable",
            "net-destroy n2",
            "net-undefine n2",
            "net-undefine n1",
            "net-create " + str(files / "n1.xml"),
            "net-list --transient",
            "net-destroy n1",
            "net-list --all",
            "net-info nope",
            "net-dhcp-leases default",
            "net-port-list default",
        ]
    )
    out = _compare(run_virsh, sides, script)
    assert "Network n2 started" in out


def test_net_update_commands(
    run_virsh: Callable[..., Any], sides: tuple[RealLibvirtd, VirtwireServer], files: Path
) -> None:
    script = "; ".join(
        [
            f"net-update default add ip-dhcp-host {files / 'host.xml'} --live",
            "net-dumpxml default",
            f"net-update default add ip-dhcp-host {files / 'host.xml'} --live",
            "net-update default add dns-txt \"<txt name='a' value='b'/>\"",
            "net-dumpxml default",
            "net-update default delete dns-txt \"<txt name='a'/>\"",
            "net-update default delete ip-dhcp-host \"<host name='bar'/>\" --live",
            "net-update default modify bridge \"<bridge name='x'/>\"",
            "net-dumpxml default",
        ]
    )
    _compare(run_virsh, sides, script)


def test_read_only_net_and_iface_refusals(
    run_virsh: Callable[..., Any], sides: tuple[RealLibvirtd, VirtwireServer], files: Path
) -> None:
    daemon, server = sides
    script = "; ".join(
        [
            "net-list --all",
            f"net-define {files / 'n1.xml'}",
            "net-destroy default",
            "net-autostart default",
            "iface-list --all",
            "iface-destroy eth1",
            "iface-begin",
        ]
    )
    real = run_virsh(daemon.tcp_uri, script, ro=True)
    mine = run_virsh(server.tcp_uri, script, ro=True)
    assert (mine.returncode, mine.stdout, mine.stderr) == (real.returncode, real.stdout, real.stderr)


def test_iface_commands(
    run_virsh: Callable[..., Any], sides: tuple[RealLibvirtd, VirtwireServer], files: Path
) -> None:
    script = "; ".join(
        [
            "iface-list --all",
            "iface-dumpxml eth1",
            "iface-mac eth1",
            "iface-name aa:bb:cc:dd:ee:ff",
            f"iface-define {files / 'if1.xml'}",
            "iface-dumpxml bond0",
            "iface-name aa:bb:cc:dd:ee:ff",
            f"iface-define {files / 'if2.xml'}",
            "iface-list --all",
            "iface-begin",
            "iface-start v0",
            "iface-destroy eth1",
            "iface-list --all",
            "iface-rollback",
            "iface-list --all",
            "iface-commit",
            "iface-start eth1",
            "iface-start eth1",
            "iface-undefine v0",
            "iface-undefine bond0",
            "iface-list --inactive",
            "iface-dumpxml nope",
        ]
    )
    _compare(run_virsh, sides, script)
