"""Reading a node description in libvirt's test-driver format (--node-xml)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.server.driver.memory import nodexml
from virtwire.server.driver.memory.driver import MemoryDriver
from vwtestkit import VirtwireServer

DATA = Path(__file__).with_name("data") / "node"


def test_lab_node_is_read_with_included_files() -> None:
    node = nodexml.load(DATA / "lab.xml")
    assert node.cpu == nodexml.NodeCPU(nodes=1, sockets=1, cores=4, threads=2, mhz=3000, model="x86_64")
    assert node.memory_kib == 16777216
    web, db = node.domains
    assert (web.runstate, web.transient, web.has_managed_save) == (C.VIR_DOMAIN_RUNNING, False, False)
    assert (db.runstate, db.has_managed_save) == (C.VIR_DOMAIN_SHUTOFF, True)
    assert "<name>db1</name>" in db.xml and "runstate" not in db.xml  # test: elements are taken out
    assert len(node.networks) == 1 and "labnet" in node.networks[0]
    [pool] = node.pools
    assert "lab-pool" in pool.xml and "<volume" not in pool.xml
    assert len(pool.volumes) == 1 and "web1.qcow2" in pool.volumes[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<nodes/>", "expected root element 'node'"),
        ("<node><cpu><mhz>fast</mhz></cpu></node>", "invalid node cpu mhz value"),
        ("<node><memory>-1</memory></node>", "invalid node memory value"),
        (
            "<node><auth><user password='x'> </user></auth></node>",
            "missing username in /node/auth/user field",
        ),
        ("<node><domain file='missing.xml'/></node>", "failed to read file"),
        (
            "<node><domain xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>t</name>"
            "<test:transient/><test:runstate>5</test:runstate></domain></node>",
            "transient domain cannot have runstate 'shutoff'",
        ),
        (
            "<node><domain xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>t</name>"
            "<test:runstate>99</test:runstate></domain></node>",
            "runstate '99' out of range",
        ),
        ("<node><domain>", "XML error"),
    ],
)
def test_bad_node_files_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "node.xml"
    path.write_text(body)
    with pytest.raises(nodexml.NodeXMLError, match=message):
        nodexml.load(path)


COMMANDS = [
    ["list", "--all"],
    ["nodeinfo"],
    ["net-list", "--all"],
    ["net-dumpxml", "labnet"],
    ["pool-list", "--all"],
    ["vol-list", "lab-pool"],
    ["vol-dumpxml", "--pool", "lab-pool", "web1.qcow2"],
    ["dumpxml", "web1"],
    ["domstate", "--reason", "db1"],
    ["domstate", "--reason", "web1"],
]


def _masked(text: str) -> str:
    # CPU time is the wall clock in the test driver.
    return re.sub(r"CPU time:.*", "CPU time: X", text)


def test_served_node_matches_libvirts_test_driver_on_the_same_file(
    virtwire_server: Callable[..., VirtwireServer], run_virsh: Callable[..., Any]
) -> None:
    """virsh against `virtwire serve --node-xml F` and against libvirt's own test:///F."""
    node = (DATA / "lab.xml").resolve()
    server = virtwire_server("--node-xml", str(node), ro=False, tls=False)
    for command in [*COMMANDS, ["dominfo", "db1"], ["dominfo", "web1"]]:
        ours = run_virsh(server.tcp_uri, *command)
        theirs = run_virsh(f"test://{node}", *command)
        assert (ours.returncode, _masked(ours.stdout)) == (theirs.returncode, _masked(theirs.stdout)), command


def test_a_bad_node_file_stops_the_server_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "node.xml"
    bad.write_text(
        "<node><domain><name>x</name></domain><network><name>n</name><bridge name='b'/>"
        "<forward mode='bogus'/></network></node>"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "virtwire.server", "serve", "--tcp", "127.0.0.1:0", "--node-xml", str(bad)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"--node-xml {bad}" in proc.stderr


_DOM = (
    "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>d</name>"
    "<memory>1024</memory><os><type>hvm</type></os>{}</domain>"
)


def _snap(name: str, active: str | None, parent: str | None = None) -> str:
    return (
        f"<test:domainsnapshot><name>{name}</name><state>running</state><creationTime>1</creationTime>"
        + (f"<parent><name>{parent}</name></parent>" if parent else "")
        + (f"<active>{active}</active>" if active is not None else "")
        + "</test:domainsnapshot>"
    )


# A valid PCI capability around the part under test.
_PCI = (
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>1</slot>"
    "<function>0</function><vendor id='1'/><product id='2'/>{}</capability></device>"
)
BAD_OBJECTS = [
    _DOM.format(_snap("a", "1") + _snap("b", "1")),
    _DOM.format(_snap("c", "0", parent="nowhere")),
    _DOM.format(_snap("e", None)),
    _DOM.format(_snap("a", "0") + _snap("a", "0")),
    "<device><capability type='system'><hardware/></capability></device>",
    "<device><name>y</name><capability type='system'><hardware/></capability></device>",
    "<device><name>z</name><capability type='scsi_host'></capability></device>",
    "<device><name>w</name></device>",
    "<device><name>v</name><capability type='vdpa'><chardev>/dev/v</chardev></capability></device>",
    "<device><name>t</name><capability type='mdev_types'/></device>",
    "<device><name>d</name><devnode>/dev/x</devnode>"
    "<capability type='drm'><type>render</type></capability></device>",
    "<device><name>d</name><devnode type='x'>/dev/x</devnode><capability type='drm'/></device>",
    "<device><name>d</name><capability type='drm'><type>pink</type></capability></device>",
    "<device><name>d</name><capability type='drm'/></device>",
    "<device><name>p</name><capability type='pci'><class>0x1000000</class></capability></device>",
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>-1</bus></capability></device>",
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>1</slot>"
    "<function>0</function><vendor id='0xzz'/></capability></device>",
    "<device><name>u</name><capability type='usb_device'><bus>1</bus></capability></device>",
    "<device><name>u</name><capability type='usb'><number>1</number><class>x</class></capability></device>",
    "<device><name>s</name><capability type='scsi'><host>1</host><bus>2</bus>"
    "<target>3</target></capability></device>",
    "<device><name>s</name><capability type='scsi_target'/></device>",
    "<device><name>s</name><capability type='scsi_target'><target>t</target><capability/>"
    "</capability></device>",
    "<device><name>s</name><capability type='scsi_target'><target>t</target>"
    "<capability type='iscsi'/></capability></device>",
    "<device><name>s</name><capability type='scsi_target'><target>t</target>"
    "<capability type='fc_remote_port'><rport>r</rport></capability></capability></device>",
    "<device><name>c</name><capability type='css'><cssid>0</cssid><ssid>0</ssid><devno>1</devno>"
    "<channel_dev_addr><cssid>0</cssid><ssid>z</ssid></channel_dev_addr></capability></device>",
    "<device><name>s</name><capability type='storage'/></device>",
    "<device><name>s</name><capability type='storage'><block>/dev/sda</block>"
    "<size>x</size></capability></device>",
    "<device><name>s</name><capability type='storage'><block>/dev/sr0</block>"
    "<capability type='removable'/></capability></device>",
    "<device><name>n</name><capability type='net'><address>00:11:22:33:44:55</address></capability></device>",
    "<device><name>n</name><capability type='net'><interface>e</interface><feature/></capability></device>",
    "<device><name>n</name><capability type='net'><interface>e</interface><feature name='fast'/>"
    "</capability></device>",
    "<device><name>n</name><capability type='net'><interface>e</interface><capability type='wifi'/>"
    "</capability></device>",
    "<device><name>n</name><capability type='net'><interface>e</interface><link state='sleepy'/>"
    "</capability></device>",
    "<device><name>n</name><capability type='net'><interface>e</interface><link speed='-1'/>"
    "</capability></device>",
    "<device><name>c</name><capability type='ccw'><cssid>0xfe</cssid><ssid>9x</ssid></capability></device>",
    "<device><name>c</name><capability type='css'><cssid>0</cssid><ssid>0</ssid></capability></device>",
    "<device><name>a</name><capability type='ap_card'/></device>",
    "<device><name>a</name><capability type='ap_queue'><ap-adapter>1</ap-adapter>"
    "<ap-domain>0x100</ap-domain></capability></device>",
    "<device><name>m</name><capability type='mdev'><type/></capability></device>",
    "<device><name>m</name><capability type='mdev'><type id='t'/><uuid>123</uuid></capability></device>",
    "<device><name>m</name><capability type='mdev'><type id='t'/><iommuGroup number='x'/>"
    "</capability></device>",
    "<device><name>c</name><capability type='css'><cssid>0</cssid><ssid>0</ssid><devno>1</devno>"
    "<capability type='mdev_types'><type id='a'><deviceAPI>vfio-ccw</deviceAPI></type>"
    "</capability></capability></device>",
    "<device><name>c</name><capability type='ap_matrix'>"
    "<capability type='mdev_types'><type id='a'/></capability></capability></device>",
    "<device><name>c</name><capability type='ap_matrix'>"
    "<capability type='mdev_types'><type><deviceAPI>x</deviceAPI></type></capability></capability></device>",
    "<device><name>s</name><capability type='storage'><block>/dev/sda</block>"
    "<capability type='floppy'/></capability></device>",
    "<device><name>s</name><capability type='storage'><block>/dev/sda</block>"
    "<capability/></capability></device>",
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>1</slot>"
    "<function>0</function><vendor id='1'/><product id='2'/><capability type='phys_function'/>"
    "</capability></device>",
    _PCI.format("<iommuGroup><address bus='1'/></iommuGroup>"),
    _PCI.format("<iommuGroup number='1'><address bus='0x100'/></iommuGroup>"),
    _PCI.format("<iommuGroup number='1'><address slot='32'/></iommuGroup>"),
    _PCI.format("<iommuGroup number='1'><address bus='1' function='8'/></iommuGroup>"),
    _PCI.format("<iommuGroup number='1'><address bus='x'/></iommuGroup>"),
    _PCI.format("<numa node='x'/>"),
    _PCI.format("<pci-express><link validity='cap'/></pci-express>"),
    _PCI.format("<pci-express><link validity='cap' width='4' speed='3'/></pci-express>"),
    _PCI.format("<pci-express><link validity='sta' width='4' port='p'/></pci-express>"),
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>1</slot>"
    "<function>0</function><vendor id='1'/><product id='2'/><capability type='vpd'/>"
    "</capability></device>",
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>1</slot>"
    "<function>0</function><vendor id='1'/><product id='2'/><capability type='vpd'><name>n</name>"
    "<fields access='secret'/></capability></capability></device>",
    "<device><name>p</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>1</slot>"
    "<function>0</function><vendor id='1'/><product id='2'/>"
    "<capability type='virt_functions' maxCount='x'/></capability></device>",
]


@pytest.mark.parametrize("body", BAD_OBJECTS)
def test_bad_snapshots_and_devices_are_refused_with_libvirts_message(
    tmp_path: Path, body: str, run_virsh: Callable[..., Any]
) -> None:
    """The error our driver raises for the file is the one libvirt's test driver gives virsh."""
    path = tmp_path / "node.xml"
    path.write_text(f"<node>{body}</node>")
    theirs = run_virsh(f"test://{path}", "list")
    assert theirs.returncode != 0
    message = theirs.stderr.strip().splitlines()[-1].removeprefix("error: ")
    with pytest.raises((nodexml.NodeXMLError, libvirtError)) as caught:
        MemoryDriver(hostname="node-test", node=nodexml.load(path))
    assert str(caught.value) == message


def test_node_snapshots_and_devices_survive_a_restart_with_a_state_dir(tmp_path: Path) -> None:
    node = nodexml.load(DATA / "lab-full.xml")
    for _ in range(2):  # the second boot reads the state directory, not the file's snapshots again
        driver = MemoryDriver(hostname="node-test", state_dir=tmp_path / "state", node=node)
        tree = driver._snapshots(driver.find_by_name("paused1"))
        assert sorted(tree.by_name) == ["base", "child", "from-file"]
        assert tree.current is not None and tree.current.name == "child"
        assert sorted(driver._devices()) == ["computer", "scsi_host5"]
