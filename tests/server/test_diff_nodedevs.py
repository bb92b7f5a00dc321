"""Node devices: the same calls through real libvirt-python against a real
libvirtd's test driver and against ``virtwire serve``; results, XML, errors and
NODE_DEVICE lifecycle events compared (listings sorted: libvirt walks a hash).

Each side runs in a subprocess (this file run as a script) with libvirt's
default event loop, which must not be registered in the pytest process.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer, start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import run_scenario_script


def _vhba(parent: str = "<parent>scsi_host1</parent>", wwnn: str = "2001001b32a9da4e") -> str:
    return f"""<device>
  {parent}
  <capability type='scsi_host'>
    <capability type='fc_host'>
      <wwnn>{wwnn}</wwnn>
      <wwpn>2101001b32a90002</wwpn>
    </capability>
  </capability>
</device>"""


BAD_CREATES = [
    "<device>",
    "<node/>",
    "<device><parent>scsi_host1</parent></device>",
    "<device><capability/></device>",
    "<device><capability type='toaster'/></device>",
    "<device><capability type='scsi_host'><capability/></capability></device>",
    "<device><capability type='scsi_host'><capability type='fc_host'/></capability></device>",
    "<device><capability type='scsi_host'><capability type='fc_host'><wwnn>1</wwnn></capability>"
    "</capability></device>",
    "<device><capability type='scsi_host'><capability type='sideways'/></capability></device>",
    "<device><capability type='scsi_host'/></device>",
    _vhba("<parent>nosuch</parent>"),
    _vhba("<parent>computer</parent>"),
    _vhba("<parent>scsi_host11</parent>"),
    _vhba("<parent wwnn='2000000056785678'/>"),
    _vhba("<parent wwpn='1000000056785678'/>"),
    _vhba("<parent wwnn='2000000056785678' wwpn='0000000000000000'/>"),
    _vhba("<parent fabric_wwn='2000000000000000'/>"),
]


def _scenario(lv: ModuleType, conn: Any) -> list[Any]:
    out: list[Any] = []

    def step(label: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            value = call(*args)
        except lv.libvirtError as exc:
            message = str(exc)
            if exc.get_error_code() == lv.VIR_ERR_XML_DETAIL:
                message = message.split(": ")[0]  # libxml2's own words are not ours
            out.append([label, "error", exc.get_error_code(), exc.get_error_domain(), message])
            return None
        out.append([label, "ok", value if isinstance(value, (int, str, list, type(None))) else "<object>"])
        return value

    def describe(name: str) -> list[Any]:
        dev = conn.nodeDeviceLookupByName(name)
        return [dev.name(), dev.parent(), dev.numOfCaps(), dev.listCaps(), dev.XMLDesc(0)]

    for cap in (None, "system", "scsi_host", "fc_host", "vports", "pci", "bogus"):
        step(f"num-{cap}", lambda cap: conn.numOfDevices(cap, 0), cap)
        step(f"names-{cap}", lambda cap: sorted(conn.listDevices(cap, 0)), cap)
    step("num-bad-flags", lambda: conn.numOfDevices(None, 1))
    step("names-bad-flags", lambda: conn.listDevices(None, 1))
    for bit in [*range(23), 30, 31]:
        step(f"all-{bit}", lambda bit: sorted(d.name() for d in conn.listAllDevices(1 << bit)), bit)
    step("all-0", lambda: sorted(d.name() for d in conn.listAllDevices(0)))
    step("all-mixed", lambda: sorted(d.name() for d in conn.listAllDevices(1 | 1024)))
    for name in ("computer", "scsi_host1", "scsi_host2", "scsi_host11"):
        step(f"describe-{name}", lambda name: describe(name), name)
    step("lookup-missing", lambda: conn.nodeDeviceLookupByName("scsi_host99"))
    step("xml-bad-flags", lambda: conn.nodeDeviceLookupByName("computer").XMLDesc(1))
    step("by-wwn", lambda: conn.nodeDeviceLookupSCSIHostByWWN("2000000012341234", "1000000012341234", 0))
    for index, xml in enumerate(BAD_CREATES):
        step(f"bad-{index}", lambda xml: conn.nodeDeviceCreateXML(xml, 0), xml)
    step("create-bad-flags", lambda: conn.nodeDeviceCreateXML(_vhba(), 2))
    made = step("create", lambda: conn.nodeDeviceCreateXML(_vhba(), 0))
    step("created", lambda: [made.name(), made.parent(), describe("scsi_host12")])
    step(
        "create-by-parent-wwns",
        lambda: conn.nodeDeviceCreateXML(
            _vhba("<parent wwnn='2000000056785678' wwpn='1000000056785678'/>", "2001001b32a9da4f"), 0
        ).name(),
    )
    step(
        "create-by-fabric",
        lambda: conn.nodeDeviceCreateXML(
            _vhba("<parent fabric_wwn='2000000087658765'/>", "2001001b32a9da50"), 0
        ).name(),
    )
    step("create-any-parent", lambda: conn.nodeDeviceCreateXML(_vhba("", "2001001b32a9da51"), 0).name())
    step("replaced", lambda: describe("scsi_host12"))
    step("list-with-new", lambda: sorted(conn.listDevices(None, 0)))
    step("destroy-computer", lambda: conn.nodeDeviceLookupByName("computer").destroy())
    step("destroy-new", lambda: conn.nodeDeviceLookupByName("scsi_host12").destroy())
    step("destroy-gone", lambda: made.destroy())
    step("destroy-template", lambda: conn.nodeDeviceLookupByName("scsi_host11").destroy())
    step("create-without-template", lambda: conn.nodeDeviceCreateXML(_vhba(), 0))
    step("list-end", lambda: sorted(conn.listDevices(None, 0)))
    return out


def _run(uri: str) -> None:
    import libvirt

    libvirt.virEventRegisterDefaultImpl()

    def loop() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = libvirt.open(uri)
    events: list[Any] = []
    done = threading.Event()

    def lifecycle(_c: Any, dev: Any, event: int, detail: int, _o: Any) -> None:
        events.append([dev.name(), event, detail])

    def domain_marker(_c: Any, dom: Any, event: int, detail: int, _o: Any) -> None:
        if dom.name() == "end-marker":
            done.set()

    conn.nodeDeviceEventRegisterAny(None, libvirt.VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, lifecycle, None)
    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, domain_marker, None)
    result = _scenario(libvirt, conn)
    # Every event goes out in order on the one connection: a domain event after
    # the scenario says the node device events before it have all arrived.
    conn.createXML(
        "<domain type='test'><name>end-marker</name><memory>1024</memory><os><type>hvm</type></os></domain>",
        0,
    ).destroy()
    if not done.wait(30):
        raise SystemExit("events never arrived")
    result.append(["events", events])
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


def run_scenario(uri: str) -> list[Any]:
    return run_scenario_script(__file__, uri)


@pytest.fixture(scope="module")
def real_daemon(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[RealLibvirtd]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("nodedev-libvirtd"), pki=pki, hold=True)
    try:
        yield daemon
    finally:
        stop_libvirtd(daemon)


@pytest.fixture(scope="module")
def our_server(pki: Path) -> Iterator[VirtwireServer]:
    server = start_server(pki=pki)
    try:
        yield server
    finally:
        stop_servers([server])


@pytest.fixture(scope="module")
def both_sides(
    real_libvirt: ModuleType, real_daemon: RealLibvirtd, our_server: VirtwireServer
) -> tuple[list[Any], list[Any]]:
    return run_scenario(real_daemon.tcp_uri), run_scenario(our_server.tcp_uri)


def test_every_step_matches_the_test_driver(both_sides: tuple[list[Any], list[Any]]) -> None:
    real, ours = both_sides
    assert [s[0] for s in ours] == [s[0] for s in real]
    for mine, theirs in zip(ours[:-1], real[:-1], strict=True):
        assert mine == theirs, mine[0]


def test_node_device_events_match_the_test_driver(both_sides: tuple[list[Any], list[Any]]) -> None:
    real, ours = both_sides
    assert ours[-1] == real[-1]
    assert ["scsi_host12", 0, 0] in ours[-1][1] and ["scsi_host12", 1, 0] in ours[-1][1]


def test_read_only_connection_cannot_create(real_libvirt: ModuleType, our_server: VirtwireServer) -> None:
    conn = real_libvirt.openReadOnly(our_server.unix_ro_uri)
    try:
        with pytest.raises(real_libvirt.libvirtError) as err:
            conn.nodeDeviceCreateXML(_vhba(), 0)
        assert err.value.get_error_code() == real_libvirt.VIR_ERR_OPERATION_DENIED
        assert "computer" in conn.listDevices(None, 0)
    finally:
        conn.close()


if __name__ == "__main__":
    _run(sys.argv[1])
