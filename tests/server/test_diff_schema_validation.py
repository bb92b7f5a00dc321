"""The VALIDATE flags, differentially: real libvirtd's test driver vs ``virtwire serve``.

The same documents (valid ones, and invalid ones of several kinds: an unknown
element, a bad attribute value, a missing required element) go through real
libvirt-python to both daemons, with and without each family's VALIDATE flag;
results and errors (code, domain, message, libxml2's explanation included) must
be the same.  Checkpoints are validated whatever the flags, as libvirt does.
Stock virsh's ``define --validate`` is compared the same way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import run_virsh, start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import Pair

# Each family: how to create from a document with given flags (returning the new
# object's name), how to take it away again, and its VALIDATE flag's name.
Create = Callable[[Any, str, int], Any]
Remove = Callable[[Any, Any], None]


def _domain_define(c: Any, xml: str, flags: int) -> Any:
    return c.defineXMLFlags(xml, flags)


def _domain_create(c: Any, xml: str, flags: int) -> Any:
    return c.createXML(xml, flags)


def _network_define(c: Any, xml: str, flags: int) -> Any:
    return c.networkDefineXMLFlags(xml, flags)


def _network_create(c: Any, xml: str, flags: int) -> Any:
    return c.networkCreateXMLFlags(xml, flags)


def _interface_define(c: Any, xml: str, flags: int) -> Any:
    return c.interfaceDefineXML(xml, flags)


def _pool_define(c: Any, xml: str, flags: int) -> Any:
    return c.storagePoolDefineXML(xml, flags)


def _volume_create(c: Any, xml: str, flags: int) -> Any:
    return c.storagePoolLookupByName("default-pool").createXML(xml, flags)


def _volume_clone(c: Any, xml: str, flags: int) -> Any:
    pool = c.storagePoolLookupByName("default-pool")
    origin = pool.createXML("<volume><name>v1-origin</name><capacity>1024</capacity></volume>", 0)
    try:
        return pool.createXMLFrom(xml, origin, flags)
    finally:
        origin.delete(0)


def _nodedev_create(c: Any, xml: str, flags: int) -> Any:
    return c.nodeDeviceCreateXML(xml, flags)


def _snapshot_create(c: Any, xml: str, flags: int) -> Any:
    return c.lookupByName("test").snapshotCreateXML(xml, flags)


def _checkpoint_create(c: Any, xml: str, flags: int) -> Any:
    return c.lookupByName("test").checkpointCreateXML(xml, flags)


def _undefine(obj: Any) -> None:
    persistent = obj.isPersistent()  # a transient object is gone once destroyed
    if obj.isActive():
        obj.destroy()
    if persistent:
        obj.undefine()


def _undefine_interface(obj: Any) -> None:
    obj.undefine()


def _delete(obj: Any) -> None:
    obj.delete(0)


def _destroy(obj: Any) -> None:
    obj.destroy()


FAMILIES: dict[str, tuple[Create, Callable[[Any], None], str | None]] = {
    "domain-define": (_domain_define, _undefine, "VIR_DOMAIN_DEFINE_VALIDATE"),
    "domain-create": (_domain_create, _undefine, "VIR_DOMAIN_START_VALIDATE"),
    "network-define": (_network_define, _undefine, "VIR_NETWORK_DEFINE_VALIDATE"),
    "network-create": (_network_create, _undefine, "VIR_NETWORK_CREATE_VALIDATE"),
    "interface-define": (_interface_define, _undefine_interface, "VIR_INTERFACE_DEFINE_VALIDATE"),
    "pool-define": (_pool_define, _undefine, "VIR_STORAGE_POOL_DEFINE_VALIDATE"),
    "volume-create": (_volume_create, _delete, "VIR_STORAGE_VOL_CREATE_VALIDATE"),
    "volume-clone": (_volume_clone, _delete, "VIR_STORAGE_VOL_CREATE_VALIDATE"),
    "nodedev-create": (_nodedev_create, _destroy, "VIR_NODE_DEVICE_CREATE_XML_VALIDATE"),
    "snapshot-create": (_snapshot_create, _delete, "VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE"),
    "checkpoint-create": (_checkpoint_create, _delete, None),
}

DOMAIN = "<domain type='test'><name>v1dom</name><memory>1024</memory><os><type>hvm</type></os>{}</domain>"
NETWORK = "<network><name>v1net</name>{}</network>"
INTERFACE = "<interface type='ethernet' name='v1eth0'>{}</interface>"
POOL = "<pool type='dir'><name>v1pool</name>{}</pool>"
VOLUME = "<volume><name>v1vol</name>{}<target/></volume>"
NODEDEV = "<device><name>scsi_host9</name><parent>scsi_host1</parent>{}</device>"
FC_HOST = (
    "<capability type='scsi_host'><host>9</host><capability type='fc_host'>"
    "<wwnn>2000000012341234</wwnn><wwpn>1000000012341234</wwpn></capability></capability>"
)

DOCUMENTS: dict[str, list[str]] = {
    "domain": [
        DOMAIN.format(""),
        DOMAIN.format("<bogus/>"),
        DOMAIN.format("<memory unit='parsecs'>1024</memory>"),
        "<domain type='test'><memory>1024</memory><os><type>hvm</type></os></domain>",
        DOMAIN.format("<vcpu>many</vcpu>"),
        DOMAIN.format("<devices><bogus/></devices>"),
    ],
    "network": [
        NETWORK.format("<bridge name='v1br0'/>"),
        NETWORK.format("<bogus/>"),
        NETWORK.format("<forward mode='weird'/>"),
        "<network><bridge name='v1br0'/></network>",
        NETWORK.format("<ip address='192.168.200.1' netmask='255.255.255.0'><dhcp><range/></dhcp></ip>"),
    ],
    "interface": [
        INTERFACE.format("<start mode='onboot'/><mac address='52:54:00:12:34:56'/>"),
        INTERFACE.format("<bogus/>"),
        INTERFACE.format("<start mode='sometimes'/>"),
        "<interface type='bridge' name='v1br1'><start mode='onboot'/></interface>",
    ],
    "pool": [
        POOL.format("<target><path>/v1pool</path></target>"),
        POOL.format("<target><path>/v1pool</path></target><bogus/>"),
        "<pool type='wat'><name>v1pool</name><target><path>/v1pool</path></target></pool>",
        POOL.format(""),
    ],
    "volume": [
        VOLUME.format("<capacity>1024</capacity>"),
        VOLUME.format("<capacity>1024</capacity><bogus/>"),
        VOLUME.format("<capacity unit='parsecs'>1024</capacity>"),
        VOLUME.format(""),
    ],
    "nodedev": [
        NODEDEV.format(FC_HOST),
        NODEDEV.format(f"{FC_HOST}<bogus/>"),
        NODEDEV.format(FC_HOST.replace("type='fc_host'", "type='warp_drive'")),
        NODEDEV.format(FC_HOST.replace("<host>9</host>", "")),
    ],
    "snapshot": [
        "<domainsnapshot><name>v1snap</name></domainsnapshot>",
        "<domainsnapshot><name>v1snap</name><bogus/></domainsnapshot>",
        "<domainsnapshot><name>v1snap</name><memory snapshot='maybe'/></domainsnapshot>",
        "<domainsnapshot><name>v1snap</name><disks><disk/></disks></domainsnapshot>",
    ],
    "checkpoint": [
        "<domaincheckpoint><name>v1chk</name></domaincheckpoint>",
        "<domaincheckpoint><name>v1chk</name><bogus/></domaincheckpoint>",
        "<domaincheckpoint><name>v1chk</name><disks><disk name='vda' checkpoint='maybe'/></disks>"
        "</domaincheckpoint>",
        "<domaincheckpoint><name>v1chk</name><disks/></domaincheckpoint>",
    ],
}


def test_lxml_links_libvirts_libxml2() -> None:
    """Exact explanations need libvirt's libxml2: newer ones word some RelaxNG errors otherwise.

    scripts/test.sh rebuilds lxml against the system libxml2 (ensure_lxml_system_libxml2).
    """
    from lxml import etree

    system = subprocess.run(
        ["pkg-config", "--modversion", "libxml-2.0"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert ".".join(map(str, etree.LIBXML_VERSION)) == system, "run scripts/test.sh: it rebuilds lxml"


@pytest.fixture(scope="module")
def daemons(
    real_libvirt: ModuleType, tmp_path_factory: pytest.TempPathFactory, pki: Path
) -> Iterator[tuple[Pair, str, str]]:
    """Both daemons through libvirt-python, and their URIs (libvirtd's, ours) for virsh."""
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-validate"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    both = Pair(real_libvirt, daemon.tcp_uri, server.tcp_uri)
    try:
        yield both, daemon.tcp_uri, server.tcp_uri
    finally:
        both.close()
        stop_servers([server])
        stop_libvirtd(daemon)


@pytest.fixture
def pair(daemons: tuple[Pair, str, str]) -> Pair:
    return daemons[0]


def _attempt(create: Create, remove: Callable[[Any], None], xml: str, flags: int) -> Callable[[Any], str]:
    """Create from ``xml``; the new object's name, after taking it away again."""

    def run(conn: Any) -> str:
        obj = create(conn, xml, flags)
        name: str = obj.getName() if hasattr(obj, "getName") else obj.name()
        remove(obj)
        return name

    return run


CASES = [(family, index) for family in FAMILIES for index in range(len(DOCUMENTS[family.split("-")[0]]))]


@pytest.mark.parametrize(("family", "index"), CASES, ids=[f"{f}-{i}" for f, i in CASES])
def test_same_answer_with_and_without_the_flag(
    real_libvirt: ModuleType, pair: Pair, family: str, index: int
) -> None:
    create, remove, flag_name = FAMILIES[family]
    xml = DOCUMENTS[family.split("-")[0]][index]
    flag = getattr(real_libvirt, flag_name) if flag_name else 0
    with_flag = pair.same(_attempt(create, remove, xml, flag))
    without = pair.same(_attempt(create, remove, xml, 0))
    if index == 0:  # the valid document passes, and passes validation
        assert without[0] == "ok", without
        if family.startswith("volume"):
            # libvirt 9.0 hands the flag on to virStorageVolDefParseXML, which refuses it.
            assert with_flag[1:3] == (real_libvirt.VIR_ERR_INVALID_ARG, real_libvirt.VIR_FROM_STORAGE)
        else:
            assert with_flag[0] == "ok", with_flag
    elif with_flag[0] == "error" and with_flag[1] == real_libvirt.VIR_ERR_XML_INVALID_SCHEMA:
        assert with_flag[3].startswith(
            "XML document failed to validate against schema: Unable to validate doc against "
            "/usr/share/libvirt/schemas/"
        )


def test_every_family_refuses_an_unknown_element_with_the_flag(real_libvirt: ModuleType, pair: Pair) -> None:
    for family, (create, remove, flag_name) in FAMILIES.items():
        xml = DOCUMENTS[family.split("-")[0]][1]
        flag = getattr(real_libvirt, flag_name) if flag_name else 0
        answer = pair.same(_attempt(create, remove, xml, flag))
        assert answer[:3] == ("error", real_libvirt.VIR_ERR_XML_INVALID_SCHEMA, real_libvirt.VIR_FROM_XML), (
            family
        )
        assert answer[3].count("\n") >= 2, answer  # libxml2's explanation follows libvirt's line


def test_virsh_define_validate(daemons: tuple[Pair, str, str], tmp_path: Path) -> None:
    """Stock virsh's ``define --validate``: the same output and exit status from both daemons."""
    _, real_uri, ours_uri = daemons
    for index, xml in enumerate(DOCUMENTS["domain"][:3]):
        doc = tmp_path / f"dom{index}.xml"
        doc.write_text(xml)
        answers = []
        for uri in (real_uri, ours_uri):
            proc = run_virsh(uri, "define", "--validate", str(doc))
            if proc.returncode == 0:
                run_virsh(uri, "undefine", "v1dom", check=True)
            answers.append((proc.returncode, proc.stdout, proc.stderr))
        assert answers[1] == answers[0]
        assert (answers[0][0] == 0) == (index == 0), answers[0]
