"""Domain definitions libvirt's parser refuses: the same refusal from `virtwire serve`.

Each document has one fault of a kind virDomainDefParseXML or its validation
catches (a value outside an enumeration, a device missing a part it needs); real
libvirt-python sends it to a real libvirtd test driver and to `virtwire serve`,
and the errors (code, domain, message) must be equal.  The good twin of each
document is accepted by both, so the checks refuse only what libvirt refuses.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer

BASE = (
    "<domain type='{type}'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os>{extra}</domain>"
)

# case -> (faulty extra, good extra); "type:" cases replace the domain type instead
CASES = {
    "domain-type": ("type:nope", "type:test"),
    "on_crash": ("<on_crash>explode</on_crash>", "<on_crash>coredump-destroy</on_crash>"),
    "on_poweroff": ("<on_poweroff>explode</on_poweroff>", "<on_poweroff>destroy</on_poweroff>"),
    "on_reboot": ("<on_reboot>nope</on_reboot>", "<on_reboot>restart</on_reboot>"),
    "clock": ("<clock offset='nope'/>", "<clock offset='localtime'/>"),
    "feature": ("<features><nope/></features>", "<features><acpi/></features>"),
    "disk-type": (
        "<devices><disk type='weird' device='disk'><source file='/x'/><target dev='vda'/></disk></devices>",
        "<devices><disk type='file' device='disk'><source file='/x'/><target dev='vda'/></disk></devices>",
    ),
    "disk-device": (
        "<devices><disk type='file' device='weird'><source file='/x'/><target dev='vda'/></disk></devices>",
        "<devices><disk type='file' device='cdrom'><target dev='hdc'/></disk></devices>",
    ),
    "disk-source": (
        "<devices><disk type='file' device='disk'><target dev='vda'/></disk></devices>",
        "<devices><disk type='file' device='floppy'><target dev='fda'/></disk></devices>",
    ),
    "disk-target": (
        "<devices><disk type='file' device='disk'><source file='/x'/></disk></devices>",
        "<devices><disk type='block' device='disk'><source dev='/dev/x'/>"
        "<target dev='vdb'/></disk></devices>",
    ),
    "interface-type": (
        "<devices><interface type='bogus'/></devices>",
        "<devices><interface type='user'/></devices>",
    ),
    "interface-network-source": (
        "<devices><interface type='network'/></devices>",
        "<devices><interface type='network'><source network='default'/></interface></devices>",
    ),
    "interface-bridge-source": (
        "<devices><interface type='bridge'/></devices>",
        "<devices><interface type='ethernet'/></devices>",
    ),
    "controller": (
        "<devices><controller type='nope'/></devices>",
        "<devices><controller type='usb'/></devices>",
    ),
    "console": ("<devices><console type='nope'/></devices>", "<devices><console type='pty'/></devices>"),
    "serial": ("<devices><serial type='nope'/></devices>", "<devices><serial type='null'/></devices>"),
    "input": (
        "<devices><input type='nope'/></devices>",
        "<devices><input type='tablet' bus='usb'/></devices>",
    ),
    "graphics": ("<devices><graphics type='nope'/></devices>", "<devices><graphics type='vnc'/></devices>"),
    "video": (
        "<devices><video><model type='nope'/></video></devices>",
        "<devices><video><model type='virtio'/></video></devices>",
    ),
    "memballoon": (
        "<devices><memballoon model='nope'/></devices>",
        "<devices><memballoon model='none'/></devices>",
    ),
}


def _document(extra: str, name: str) -> str:
    if extra.startswith("type:"):
        return BASE.format(type=extra[5:], name=name, extra="")
    return BASE.format(type="test", name=name, extra=extra)


def _define(lib: ModuleType, uri: str, xml: str) -> object:
    conn = lib.open(uri)
    try:
        dom = conn.defineXML(xml)
        dom.undefine()
        return "defined"
    except lib.libvirtError as exc:
        return (exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())
    finally:
        conn.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_as_libvirt_refuses(
    case: str, real_libvirt: ModuleType, real_libvirtd: RealLibvirtd, virtwire_host: VirtwireServer
) -> None:
    real_libvirt.registerErrorHandler(lambda *_: None, None)
    bad, good = CASES[case]
    name = f"badxml-{case}"
    theirs = _define(real_libvirt, real_libvirtd.tcp_uri, _document(bad, name))
    assert theirs != "defined", "libvirt accepts this document: the case tests nothing"
    assert _define(real_libvirt, virtwire_host.tcp_uri, _document(bad, name)) == theirs
    assert _define(real_libvirt, real_libvirtd.tcp_uri, _document(good, name)) == "defined"
    assert _define(real_libvirt, virtwire_host.tcp_uri, _document(good, name)) == "defined"
