"""Stock virsh against `virtwire serve` and a real libvirtd: the same output, byte for byte.

Save/restore, managed save, save images, core dumps, guest time and filesystems,
interface addresses, hostnames, disk errors, descriptions and metadata, NMIs,
keys, resets, renames, passwords and process signals.  Each script is one virsh
process (commands separated by ``;``), run against both ends; stdout, stderr and
the exit code must agree once each end's scratch directory is written <DIR>.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit.domaindiff import Side, side_pair

GUEST = (
    "<domain type='test'><name>vguest</name><uuid>11111111-2222-3333-4444-555555555505</uuid>"
    "<memory>65536</memory><os><type>hvm</type></os><devices>"
    "<disk type='file' device='disk'><source file='/tmp/a.img'/><target dev='vdb' bus='virtio'/></disk>"
    "</devices></domain>"
)


@pytest.fixture(scope="module")
def pair(
    real_libvirt: ModuleType, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Side, Side]]:
    with side_pair(real_libvirt, pki, tmp_path_factory.mktemp("virsh-domain")) as sides:
        for side in sides:
            (side.directory / "guest.xml").write_text(GUEST)
        yield sides


def _script(side: Side, run_virsh: Callable[..., Any], script: str, ro: bool = False) -> tuple[int, str, str]:
    text = script.replace("DIR", str(side.directory))
    proc = run_virsh(side.ro_uri if ro else side.uri, text, ro=ro)
    return proc.returncode, side.clean(proc.stdout), side.clean(proc.stderr)


def _same(pair: tuple[Side, Side], run_virsh: Callable[..., Any], script: str, ro: bool = False) -> str:
    ours, real = pair
    mine = _script(ours, run_virsh, script, ro)
    theirs = _script(real, run_virsh, script, ro)
    assert mine == theirs
    ours.settle()
    real.settle()
    return mine[1]


def test_save_restore_image_dumpxml(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    out = _same(
        pair,
        run_virsh,
        "define DIR/guest.xml; start vguest; save vguest DIR/vguest.sav; domstate vguest --reason;"
        " save-image-dumpxml DIR/vguest.sav; restore DIR/vguest.sav; domstate vguest --reason;"
        " save vguest DIR/nodir/x.sav; save-image-dumpxml DIR/missing.sav;"
        " destroy vguest; undefine vguest",
    )
    assert "Domain 'vguest' saved to <DIR>/vguest.sav" in out


def test_managedsave(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    _same(
        pair,
        run_virsh,
        "define DIR/guest.xml; managedsave vguest; start vguest; managedsave vguest;"
        " domstate vguest --reason; undefine vguest; managedsave-remove vguest;"
        " managedsave-remove vguest; start vguest; managedsave vguest --running; start vguest;"
        " domstate vguest --reason; destroy vguest; undefine vguest",
    )


def test_dump(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    _same(
        pair,
        run_virsh,
        "define DIR/guest.xml; dump vguest DIR/core; start vguest; dump vguest DIR/core;"
        " dump vguest DIR/core --format kdump-zlib; dump vguest DIR/core --crash;"
        " domstate vguest --reason; undefine vguest",
    )


def test_guest_agent_commands(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    out = _same(
        pair,
        run_virsh,
        "domtime test; domtime test --time 1234567890; domtime test --pretty; domtime test --sync;"
        " domtime test --time 627319920; domfsfreeze test; domfsfreeze test --mountpoint /boot;"
        " domfsthaw test --mountpoint /; domfsthaw test; domfsfreeze test --mountpoint /srv;"
        " domfsinfo test; domfstrim test; domfstrim test --mountpoint /boot --minimum 4096;"
        " domfstrim test --mountpoint /srv; domifaddr test; domifaddr test --source agent;"
        " domifaddr test --full; domhostname test; domblkerror test; inject-nmi test;"
        " send-key test KEY_A KEY_B; send-key test --codeset linux --holdtime 50 30;"
        " send-key test --codeset usb 4; reset test; set-user-password test root secret;"
        " set-user-password test root '$6$x' --encrypted; send-process-signal test 1 15;"
        " send-process-signal test 1 sigkill; send-process-signal test 2 15; domstate test --reason",
    )
    assert "Time: 627319920" in out and "Froze 2 filesystem(s)" in out


def test_guest_commands_on_a_shut_off_domain(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    _same(
        pair,
        run_virsh,
        "define DIR/guest.xml; domtime vguest; domfsfreeze vguest; domfsinfo vguest; domifaddr vguest;"
        " domhostname vguest; domblkerror vguest; inject-nmi vguest; send-key vguest KEY_A;"
        " reset vguest; set-user-password vguest root x; start vguest; domfsinfo vguest;"
        " domblkerror vguest; domhostname vguest; domifaddr vguest; destroy vguest; undefine vguest",
    )


def test_desc_metadata_rename(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    _same(
        pair,
        run_virsh,
        "define DIR/guest.xml; desc vguest; desc vguest --title 'My title'; desc vguest 'Longer words';"
        " desc vguest --title; desc vguest; desc vguest --config --new-desc other; desc vguest --live x;"
        " metadata vguest http://example.org/ --key app --set '<conf mode=\"fast\"><opt/></conf>';"
        " metadata vguest http://example.org/; metadata vguest http://example.org/ --remove;"
        " metadata vguest http://example.org/; metadata vguest http://x/ --key 1x --set '<a/>';"
        " list --all --title; domrename vguest vrenamed; list --all --name; domrename vrenamed test;"
        " domrename test other; dumpxml vrenamed; undefine vrenamed",
    )


def test_read_only(pair: tuple[Side, Side], run_virsh: Callable[..., Any]) -> None:
    _same(
        pair,
        run_virsh,
        "save test DIR/ro.sav; managedsave test; managedsave-remove test; save-image-dumpxml DIR/ro.sav;"
        " dump test DIR/ro.core; domtime test; domfsfreeze test; domfsthaw test; domfsinfo test;"
        " domfstrim test; domifaddr test; domhostname test; domblkerror test; desc test; metadata test"
        " http://example.org/; inject-nmi test; send-key test KEY_A; reset test; domrename test x;"
        " set-user-password test root x; send-process-signal test 1 15",
        ro=True,
    )
