"""Node-device XML, generatively: mutated devices parsed by libvirt's test driver and by ours.

Each case takes one device of the all-capabilities node file and mutates a
few of its values, attributes or elements (seeded, so every run tries the
same cases).  libvirt-python opens the file in-process as ``test:///PATH``
(libvirt's own parser and formatter); our memory driver boots from the same
file.  Either both refuse it with the same message, or both print every
device the same.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

from virtwire.protocol.errors import libvirtError
from virtwire.server.driver.memory import nodexml
from virtwire.server.driver.memory.driver import MemoryDriver
from virtwire.server.driver.memory.nodedevs import parse_create_xml

NODE_FILE = Path(__file__).with_name("data") / "node" / "nodedev-all-caps.xml"
VALUES = [
    "",
    "x",
    "-1",
    "0x",
    "0X10",
    "99999999999",
    " 1",
    "1 ",
    "+",
    "0x1f",
    "07",
    "4294967295",
    "4294967296",
]
CASES = 300


def _mutate(device: str, rnd: random.Random) -> str:
    root = ET.fromstring(device)
    elements = list(root.iter())
    for _ in range(rnd.randint(1, 4)):
        target = rnd.choice(elements)
        roll = rnd.random()
        if roll < 0.3:
            target.text = rnd.choice(VALUES)
        elif roll < 0.6 and target.attrib:
            target.set(rnd.choice(sorted(target.attrib)), rnd.choice(VALUES))
        elif roll < 0.8:
            for parent in root.iter():
                if target in list(parent):
                    parent.remove(target)
                    break
        elif target.attrib:
            del target.attrib[rnd.choice(sorted(target.attrib))]
    return ET.tostring(root, encoding="unicode")


def _theirs(lv: ModuleType, path: Path) -> tuple[str, object]:
    try:
        conn = lv.open(f"test://{path}")
    except lv.libvirtError as exc:
        return "error", exc.get_error_message()
    try:
        return "ok", sorted(d.XMLDesc() for d in conn.listAllDevices())
    finally:
        conn.close()


def _ours(path: Path) -> tuple[str, object]:
    try:
        driver = MemoryDriver(hostname="mutations", node=nodexml.load(path))
    except (libvirtError, nodexml.NodeXMLError) as exc:
        return "error", str(exc)
    return "ok", sorted(d.format() for d in driver._devices().values())


def test_mutated_devices_parse_and_print_as_libvirt_does(tmp_path: Path, real_libvirt: ModuleType) -> None:
    real_libvirt.registerErrorHandler(lambda *_: None, None)
    devices = nodexml.load(NODE_FILE).devices
    rnd = random.Random(20260)
    outcomes = set()
    for case in range(CASES):
        path = tmp_path / f"node{case}.xml"
        mutated = _mutate(rnd.choice(devices), rnd)
        path.write_text(f"<node>{mutated}</node>")
        theirs = _theirs(real_libvirt, path)
        assert _ours(path) == theirs, mutated
        outcomes.add(theirs[0])
    assert outcomes == {"ok", "error"}  # the cases reach both sides of the parser


def _their_create(lv: ModuleType, xml: str) -> tuple[str, str]:
    conn = lv.open("test:///default")
    try:
        return "ok", str(conn.nodeDeviceCreateXML(xml).name())
    except lv.libvirtError as exc:
        return "error", str(exc.get_error_message())
    finally:
        conn.close()


def _our_create_checks(xml: str) -> tuple[str, str]:
    """What the create path checks before it looks for the parent: the XML, then the WWNs."""
    try:
        parse_create_xml(xml).fc_wwns()
    except libvirtError as exc:
        return "error", str(exc)
    return "ok", ""


def test_mutated_devices_are_refused_for_creation_as_libvirt_refuses_them(real_libvirt: ModuleType) -> None:
    real_libvirt.registerErrorHandler(lambda *_: None, None)
    devices = nodexml.load(NODE_FILE).devices
    rnd = random.Random(9)
    for _ in range(CASES):
        xml = _mutate(rnd.choice(devices), rnd)
        theirs = _their_create(real_libvirt, xml)
        ours = _our_create_checks(xml)
        if ours[0] == "ok":
            # Past the XML and WWN checks only the parent lookup can refuse it (tested elsewhere).
            assert theirs[0] == "ok" or "parent" in theirs[1] or "vport" in theirs[1], (xml, theirs)
        else:
            assert ours == theirs, xml
