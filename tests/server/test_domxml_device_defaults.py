"""Device defaults of a definition, against libvirt 9.0 itself (real libvirt-python, test driver).

Each definition is defined on libvirt's in-process test:///default and read
back; our parser and normaliser must print the same XML (generated MACs are
random on both sides, so only their prefix is compared).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from virtwire.server.driver.memory.domxml import format_domain_xml, normalise, parse_domain_xml

_HEAD = (
    "<domain type='test'><name>dev{n}</name><uuid>11111111-2222-3333-4444-5555555555{n:02d}</uuid>"
    "<memory>1024</memory><os><type>{os}</type></os><devices>{body}</devices></domain>"
)
CASES = [
    ("hvm", "<disk type='file'><source file='/a'/><target dev='hdc'/></disk><disk type='file'>"
     "<source file='/b'/><target dev='hda'/></disk><disk type='file' device='floppy'>"
     "<source file='/f'/><target dev='fda'/></disk>"),
    ("hvm", "<disk type='block' device='cdrom'><source dev='/dev/sr0'/><target dev='hdb' bus='ide'/>"
     "</disk><disk type='file'><source file='/c'/><target dev='sdc'/></disk>"
     "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>"),
    ("hvm", "<disk type='file'><source file='/d'/><target dev='vda' bus='virtio'/></disk>"
     "<interface type='network'><source network='default'/><model type='virtio'/></interface>"),
    ("hvm", "<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/>"
     "<target dev='testnet0'/></interface><interface type='user'/>"),
    ("hvm", "<serial type='pty'><target port='0'/></serial><console type='pty'>"
     "<target type='serial' port='0'/></console>"),
    ("hvm", "<console type='pty'/>"),
    ("xen", "<console tty='/dev/pts/5'/>"),
    ("hvm", "<graphics type='vnc'/><input type='mouse' bus='ps2'/>"),
    ("hvm", "<graphics type='vnc' port='5904'/>"),
    ("hvm", "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>"),
    ("hvm", "<graphics type='spice' autoport='yes'/><video><model type='qxl'/></video>"),
    ("hvm", "<video><model type='vga'/></video><video><model type='qxl' primary='yes'/></video>"
     "<video><model type='xen' heads='2'/></video><video><model type='virtio'/></video>"),
    ("hvm", "<video><model type='qxl' ram='1' vgamem='8192'/><address type='pci' domain='0x0000' "
     "bus='0x00' slot='0x02' function='0x0'/></video><video/>"),
    ("hvm", "<video><driver name='qemu'/><model type='virtio'><acceleration accel3d='yes'/></model></video>"),
    ("hvm", "<disk type='file'><source file='/e'/><target dev='hda'/>"
     "<address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>"),
]  # fmt: skip


def _masked(xml: str) -> str:
    return re.sub(r"<mac address='52:54:00(:[0-9a-f]{2}){3}'/>", "<mac address='52:54:00:*'/>", xml)


@pytest.mark.parametrize(("n", "case"), list(enumerate(CASES)))
def test_definition_reads_back_as_libvirt_prints_it(
    libvirt_test_driver: Any, n: int, case: tuple[str, str]
) -> None:
    os_type, body = case
    xml = _HEAD.format(n=n, os=os_type, body=body)
    theirs = libvirt_test_driver.defineXML(xml).XMLDesc(0)
    parsed = parse_domain_xml(xml)
    assert parsed.uuid is not None
    ours = format_domain_xml(normalise(parsed, parsed.uuid), domain_id=None)
    assert _masked(ours) == _masked(theirs)
    # The printed XML defined again: libvirt's parse-time orders apply once more.
    theirs_again = libvirt_test_driver.defineXML(theirs).XMLDesc(0)
    again = parse_domain_xml(ours)
    assert _masked(format_domain_xml(normalise(again, parsed.uuid), domain_id=None)) == _masked(theirs_again)
