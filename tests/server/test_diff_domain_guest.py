"""Guest-agent and guest-hardware calls: virtwire vs a real libvirtd's test driver.

Time, filesystems, interface addresses, disk errors, keys, NMIs, memory peeks,
passwords, resets, process signals and hostnames: results and errors (all nine
fields) compared call for call, in running and shut-off states, with bad input
and over read-only connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit.domaindiff import Side, side_pair

GUEST = (
    "<domain type='test'><name>guest</name><uuid>11111111-2222-3333-4444-555555555502</uuid>"
    "<memory>65536</memory><os><type>hvm</type></os><devices>"
    "<disk type='file' device='cdrom'><source file='/tmp/c.iso'/><target dev='hdc' bus='ide'/></disk>"
    "<disk type='file' device='disk'><source file='/tmp/a.img'/><target dev='vdb' bus='virtio'/></disk>"
    "<disk type='file' device='disk'><source file='/tmp/b.img'/><target dev='vdc' bus='virtio'/></disk>"
    "<interface type='ethernet'><mac address='52:54:00:AA:BB:01'/><target dev='tap7'/></interface>"
    "<interface type='network'><mac address='52:54:00:aa:bb:02'/><source network='default'/>"
    "<target dev='mynet3'/></interface>"
    "</devices></domain>"
)
Step = Callable[[Side], Any]


@pytest.fixture(scope="module")
def pair(
    real_libvirt: ModuleType, pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Side, Side]]:
    with side_pair(real_libvirt, pki, tmp_path_factory.mktemp("diff-guest")) as sides:
        yield sides


def _both(pair: tuple[Side, Side], steps: list[Step]) -> list[Any]:
    ours, real = pair
    mine, theirs = ours.run(steps), real.run(steps)
    assert mine == theirs
    assert ours.settle() == real.settle()
    return mine


def _test(s: Side) -> Any:
    return s.conn.lookupByName("test")


def _guest(s: Side) -> Any:
    return s.conn.lookupByName("guest")


def _inactive_and_running(pair: tuple[Side, Side], call: Step) -> list[Any]:
    """``call`` on a shut-off domain, then on the same domain running."""
    return _both(
        pair,
        [
            lambda s: s.conn.defineXML(GUEST).name(),
            call,
            lambda s: _guest(s).create(),
            call,
            lambda s: _guest(s).destroy(),
            lambda s: _guest(s).undefine(),
        ],
    )


def test_time(pair: tuple[Side, Side]) -> None:
    mine = _both(
        pair,
        [
            lambda s: _test(s).getTime(),
            lambda s: _test(s).setTime({"seconds": 1234567890, "nseconds": 42}),
            lambda s: _test(s).getTime(),
            lambda s: _test(s).setTime({"seconds": 5}, s.lv.VIR_DOMAIN_TIME_SYNC),
            lambda s: _test(s).getTime(),
            lambda s: _test(s).setTime({"seconds": 5}, 1 << 4),
            lambda s: _test(s).getTime(1),
            lambda s: _test(s).suspend(),
            lambda s: _test(s).getTime(),  # paused: the test driver refuses
            lambda s: _test(s).setTime({"seconds": 627319920, "nseconds": 0}),
            lambda s: _test(s).resume(),
            lambda s: _test(s).getTime(),
        ],
    )
    assert mine[2] == ("ok", {"seconds": 1234567890, "nseconds": 42})
    _inactive_and_running(pair, lambda s: _guest(s).getTime())
    _inactive_and_running(pair, lambda s: _guest(s).setTime({"seconds": 1}))


def test_filesystems(pair: tuple[Side, Side]) -> None:
    mine = _both(
        pair,
        [
            lambda s: _test(s).fsFreeze(),
            lambda s: _test(s).fsFreeze(),
            lambda s: _test(s).fsThaw(["/boot"]),
            lambda s: _test(s).fsFreeze(["/", "/boot", "/boot"]),
            lambda s: _test(s).fsThaw(["/", "/nope"]),
            lambda s: _test(s).fsThaw(),
            lambda s: _test(s).fsThaw(),
            lambda s: _test(s).fsFreeze(None, 1),
            lambda s: _test(s).fsThaw(None, 1),
            lambda s: _test(s).fSTrim(None, 0, 0),
            lambda s: _test(s).fSTrim("/boot", 1024, 0),
            lambda s: _test(s).fSTrim("/srv", 0, 0),
            lambda s: _test(s).fSTrim(None, 0, 1),
            lambda s: _test(s).fsInfo(),
            lambda s: _test(s).fsInfo(1),
        ],
    )
    assert mine[0] == ("ok", 2)
    assert mine[13] == ("ok", [("/", "vda1", "ext4", ["vda"]), ("/boot", "vda2", "ext4", ["vda"])])
    _inactive_and_running(pair, lambda s: (_guest(s).fsInfo(), _guest(s).fsFreeze(["/"])))
    _inactive_and_running(pair, lambda s: _guest(s).fsThaw())
    _inactive_and_running(pair, lambda s: _guest(s).fSTrim(None, 0, 0))


def test_interface_addresses_and_disk_errors(pair: tuple[Side, Side]) -> None:
    lease = 0
    _both(
        pair,
        [
            lambda s: _test(s).interfaceAddresses(lease),
            lambda s: _test(s).interfaceAddresses(s.lv.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT),
            lambda s: _test(s).interfaceAddresses(7),
            lambda s: _test(s).interfaceAddresses(lease, 1),
            lambda s: _test(s).diskErrors(),
            lambda s: _test(s).diskErrors(1),
        ],
    )
    _inactive_and_running(pair, lambda s: _guest(s).interfaceAddresses(lease))
    nowhere = GUEST.replace("network='default'", "network='nosuch'").replace("guest<", "nowhere<")
    nowhere = nowhere.replace("555555555502", "555555555506")
    _both(
        pair,
        [
            lambda s: s.conn.createXML(nowhere, 0).interfaceAddresses(lease),
            lambda s: s.conn.lookupByName("nowhere").destroy(),
        ],
    )
    _inactive_and_running(pair, lambda s: _guest(s).diskErrors())


def test_keys_nmi_peek_password_reset_signal_hostname(pair: tuple[Side, Side]) -> None:
    _both(
        pair,
        [
            lambda s: _test(s).sendKey(0, 100, [30, 48], 2, 0),
            lambda s: _test(s).sendKey(0, 100, [30], 1, 1),
            lambda s: _test(s).sendKey(42, 100, [30], 1, 0),
            lambda s: _test(s).sendKey(0, 100, list(range(1, 18)), 17, 0),
            lambda s: _test(s).injectNMI(0),
            lambda s: _test(s).injectNMI(1),
            lambda s: _test(s).memoryPeek(250, 12, s.lv.VIR_MEMORY_VIRTUAL),
            lambda s: _test(s).memoryPeek(0x1FF, 4, s.lv.VIR_MEMORY_PHYSICAL),
            lambda s: _test(s).memoryPeek(0, 4, 0),
            lambda s: _test(s).memoryPeek(0, 4, 3),
            lambda s: _test(s).memoryPeek(0, 4, 5),
            lambda s: _test(s).setUserPassword("root", "secret", 0),
            lambda s: _test(s).setUserPassword("root", "$6$x", s.lv.VIR_DOMAIN_PASSWORD_ENCRYPTED),
            lambda s: _test(s).setUserPassword("root", "secret", 2),
            lambda s: _test(s).reset(0),
            lambda s: _test(s).reset(1),
            lambda s: _test(s).state(),
            lambda s: _test(s).hostname(0),
            lambda s: _test(s).hostname(1),
        ],
    )
    for call in (
        lambda s: _guest(s).sendKey(0, 0, [30], 1, 0),
        lambda s: _guest(s).injectNMI(0),
        lambda s: _guest(s).memoryPeek(3, 3, 1),
        lambda s: _guest(s).setUserPassword("u", "p", 0),
        lambda s: _guest(s).reset(0),
        lambda s: _guest(s).hostname(0),
    ):
        _inactive_and_running(pair, call)


def test_process_signals(pair: tuple[Side, Side]) -> None:
    _both(
        pair,
        [
            lambda s: _test(s).sendProcessSignal(1, 15, 0),
            lambda s: _test(s).sendProcessSignal(1, 0, 0),
            lambda s: _test(s).sendProcessSignal(2, 15, 0),
            lambda s: _test(s).sendProcessSignal(1, 65, 0),
            lambda s: _test(s).sendProcessSignal(1, 15, 1),
            lambda s: _test(s).sendProcessSignal(-1, 15, 0),
            lambda s: s.ro.lookupByName("test").sendProcessSignal(1, 15, 0),
        ],
    )
    _inactive_and_running(pair, lambda s: _guest(s).sendProcessSignal(1, 9, 0))


def test_read_only_connection(pair: tuple[Side, Side]) -> None:
    _both(
        pair,
        [
            lambda s: s.ro.lookupByName("test").getTime(),
            lambda s: s.ro.lookupByName("test").setTime({"seconds": 1}),
            lambda s: s.ro.lookupByName("test").fsFreeze(),
            lambda s: s.ro.lookupByName("test").fsThaw(),
            lambda s: s.ro.lookupByName("test").fSTrim(None, 0, 0),
            lambda s: s.ro.lookupByName("test").fsInfo(),
            lambda s: s.ro.lookupByName("test").interfaceAddresses(0),
            lambda s: s.ro.lookupByName("test").interfaceAddresses(1),
            lambda s: s.ro.lookupByName("test").diskErrors(),
            lambda s: s.ro.lookupByName("test").sendKey(0, 0, [30], 1, 0),
            lambda s: s.ro.lookupByName("test").injectNMI(0),
            lambda s: s.ro.lookupByName("test").memoryPeek(0, 4, 1),
            lambda s: s.ro.lookupByName("test").setUserPassword("u", "p", 0),
            lambda s: s.ro.lookupByName("test").reset(0),
            lambda s: s.ro.lookupByName("test").hostname(0),
            lambda s: _test(s).fsFreeze(),
            lambda s: _test(s).fsThaw(),
        ],
    )
