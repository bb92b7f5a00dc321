"""What virt-install writes, read back as libvirt 9.0 reads it.

virt-install (Debian's virtinst) builds full definitions: ICH9 USB controller
groups, spice with its legacy port -1 syntax, virtio channels, redirdevs,
character devices of every source type, smartcards, numatune, Hyper-V features.
Each option set here is turned into XML by virt-install itself (``--print-xml``
against libvirt's in-process test:///default), defined on that test driver, and
printed back; our parser and normaliser must print the same text (the secure
view, as XMLDesc(0) gives it), or refuse it with the same error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.server.driver.memory.domsecure import hide_secrets
from virtwire.server.driver.memory.domxml import format_domain_xml, normalise, parse_domain_xml
from vwtestkit.env import unavailable

BASE = "--memory 128 --disk none --import --osinfo generic"
OPTION_SETS = [
    "--memory 128 --vcpus 1 --disk none --import --osinfo generic",
    "--memory 256 --vcpus 2 --disk path=/tmp/vw-vi-a.img,size=1 --import --osinfo generic",
    f"{BASE} --network network=default --graphics vnc",
    f"{BASE} --cpu host-model",
    "--memory 128 --disk none --boot hd --osinfo debian11",
    f"{BASE} --network bridge=br0 --channel unix,target.type=virtio,name=org.qemu.guest_agent.0",
    f"{BASE} --graphics none --console pty,target.type=virtio",
    f"{BASE} --graphics spice --video virtio --sound none",
    f"{BASE} --controller type=scsi,model=virtio-scsi --disk path=/tmp/vw-vi-b.img,bus=scsi,size=1",
    f"{BASE} --rng /dev/urandom --watchdog i6300esb --memballoon virtio",
    f"{BASE} --filesystem /src,/dst --tpm emulator --panic default",
    "--memory 128 --disk none --import --osinfo win10 --graphics vnc,listen=0.0.0.0,password=foo",
    f"{BASE} --serial tcp,host=127.0.0.1:4444 --parallel pty --input keyboard,bus=usb",
    f"{BASE} --disk device=floppy,path=/tmp/vw-vi-f.img,size=1 --disk path=/tmp/vw-vi-s.img,bus=sata,size=1",
    f"{BASE} --redirdev usb,type=tcp,server=localhost:4000 --memorybacking hugepages=on",
    f"{BASE} --network none --controller usb,model=none",
    "--memory 1024 --vcpus 4,sockets=1,cores=2,threads=2 --disk none --import --osinfo generic"
    " --numatune 0 --cputune vcpupin0.vcpu=0,vcpupin0.cpuset=1",
    f"{BASE} --serial unix,path=/tmp/s.sock,mode=bind"
    " --parallel tcp,host=127.0.0.1:5555,mode=bind,protocol.type=telnet",
    f"{BASE} --console pty,target.type=virtio --console pty,target.type=virtio --graphics none",
    f"{BASE} --channel unix,mode=bind,path=/tmp/c.sock,target.type=virtio,name=org.example.x"
    " --channel pty,target.type=guestfwd,target.address=10.0.2.1,target.port=4600",
    f"{BASE} --controller usb,model=ich9-ehci1 --controller usb,model=ich9-uhci1"
    " --controller usb,model=ich9-uhci2 --controller usb,model=piix3-uhci",
    f"{BASE} --controller virtio-serial,address.type=pci"
    " --channel spicevmc --graphics spice,port=5901,tlsport=5902",
    f"{BASE} --graphics spice,listen=none --graphics vnc,port=5910",
    f"{BASE} --redirdev usb,type=spicevmc"
    " --redirdev usb,type=tcp,server=127.0.0.1:4000 --smartcard passthrough,type=spicevmc",
    f"{BASE} --serial file,path=/tmp/serial.log"
    " --serial pty --serial udp,host=127.0.0.1:1234,bind_host=127.0.0.1:1235",
    f"{BASE} --controller scsi,index=2"
    " --disk path=/tmp/vw-vi-q.img,bus=scsi,size=1,address.type=drive,address.controller=1",
]


def _virt_install_xml(n: int, options: str) -> str:
    argv = [
        "virt-install",
        "--connect",
        "test:///default",
        "--name",
        f"vi{n}",
        "--print-xml",
        *options.split(),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    documents = re.findall(r"<domain.*?</domain>", proc.stdout, re.S)
    assert documents, proc.stdout
    final: str = documents[-1]
    return final  # with an install phase, the last document is the final definition


@pytest.fixture(scope="module")
def generated() -> dict[int, str]:
    """Every option set's XML, two virt-install processes at a time (each is a second of CPU)."""
    if shutil.which("virt-install") is None:
        unavailable("virt-install is not installed (Debian's virtinst; scripts/test.sh installs it)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {n: pool.submit(_virt_install_xml, n, options) for n, options in enumerate(OPTION_SETS)}
        return {n: future.result() for n, future in futures.items()}


def _ours(xml: str) -> str:
    parsed = parse_domain_xml(xml)
    assert parsed.uuid is not None
    return hide_secrets(format_domain_xml(normalise(parsed, parsed.uuid), domain_id=None))


@pytest.mark.parametrize(("n", "options"), list(enumerate(OPTION_SETS)))
def test_virt_install_definition_reads_back_as_libvirt_prints_it(
    real_libvirt: ModuleType, libvirt_test_driver: Any, generated: dict[int, str], n: int, options: str
) -> None:
    xml = generated[n]
    try:
        theirs = libvirt_test_driver.defineXML(xml).XMLDesc(0)
    except real_libvirt.libvirtError as exc:
        with pytest.raises(libvirtError) as ours_error:
            _ours(xml)
        assert (ours_error.value.get_error_code(), ours_error.value.get_error_domain()) == (
            exc.get_error_code(),
            exc.get_error_domain(),
        )
        assert ours_error.value.get_error_message() == exc.get_error_message()
        return
    assert _ours(xml) == theirs  # virt-install writes the MACs: no random part
