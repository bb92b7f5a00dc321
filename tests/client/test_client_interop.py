"""virtwire.libvirt against real libvirt-python, on the same daemon, call by call.

Each case runs once through the real libvirt-python 9.0 and once through
`virtwire.libvirt`, on the same server and transport, and the outcomes must be
equal: return values with their types, or every field of the error. The
matrix covers a real libvirtd (test driver) and `virtwire serve`, over tcp,
unix and tls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

import virtwire.libvirt as vlibvirt

Outcome = tuple[str, Any]

TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"
NEW_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory>65536</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>"""


def _plain(value: Any) -> Any:
    """A comparable form: domains by identity, containers by content and type."""
    if hasattr(value, "UUIDString") and hasattr(value, "ID"):
        return ("domain", value.name(), value.UUIDString(), value.ID())
    if isinstance(value, list):
        return ("list", [_plain(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", [_plain(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _plain(v) for k, v in sorted(value.items())})
    return (type(value).__name__, value)


def outcome(fn: Callable[[], Any]) -> Outcome:
    try:
        return ("ok", _plain(fn()))
    except Exception as exc:  # both libraries' libvirtError
        err = getattr(exc, "err", None)
        if err is None:
            return ("raised", type(exc).__name__)
        return ("error", tuple(err))


@pytest.fixture(params=["libvirtd", "virtwire"])
def server(request: pytest.FixtureRequest) -> Any:
    if request.param == "libvirtd":
        return request.getfixturevalue("real_libvirtd")
    return request.getfixturevalue("virtwire_host")


@pytest.fixture(params=["tcp", "unix", "tls"])
def uri(request: pytest.FixtureRequest, server: Any) -> str:
    return str(getattr(server, f"{request.param}_uri"))


@pytest.fixture
def pair(uri: str, real_libvirt: ModuleType) -> Iterator[tuple[Any, Any]]:
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    theirs = real_libvirt.open(uri)
    ours = vlibvirt.open(uri)
    yield theirs, ours
    ours.close()
    theirs.close()


@pytest.fixture
def ro_pair(uri: str, real_libvirt: ModuleType) -> Iterator[tuple[Any, Any]]:
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    theirs = real_libvirt.openReadOnly(uri)
    ours = vlibvirt.openReadOnly(uri)
    yield theirs, ours
    ours.close()
    theirs.close()


CONNECT_CASES: dict[str, Callable[[Any], Any]] = {
    "getType": lambda c: c.getType(),
    "getVersion": lambda c: c.getVersion(),
    "getLibVersion": lambda c: c.getLibVersion(),
    "getHostname": lambda c: c.getHostname(),
    "getCapabilities": lambda c: c.getCapabilities(),
    "getInfo": lambda c: c.getInfo(),
    "getURI": lambda c: c.getURI(),
    "isAlive": lambda c: c.isAlive(),
    "isSecure": lambda c: c.isSecure(),
    "isEncrypted": lambda c: c.isEncrypted(),
    "listAllDomains": lambda c: c.listAllDomains(),
    "listAllDomains_active": lambda c: c.listAllDomains(1),
    "listDomainsID": lambda c: c.listDomainsID(),
    "listDefinedDomains": lambda c: c.listDefinedDomains(),
    "numOfDomains": lambda c: c.numOfDomains(),
    "numOfDefinedDomains": lambda c: c.numOfDefinedDomains(),
    "lookupByName": lambda c: c.lookupByName("test"),
    "lookupByName_missing": lambda c: c.lookupByName("no-such-domain"),
    "lookupByID": lambda c: c.lookupByID(1),
    "lookupByID_missing": lambda c: c.lookupByID(4242),
    "lookupByUUIDString": lambda c: c.lookupByUUIDString(TEST_UUID),
    "lookupByUUIDString_bad": lambda c: c.lookupByUUIDString("not-a-uuid"),
    "lookupByUUID": lambda c: c.lookupByUUID(uuid.UUID(TEST_UUID).bytes),
    "lookupByUUID_missing": lambda c: c.lookupByUUID(b"\x01" * 16),
    "defineXML_garbage": lambda c: c.defineXML("<domain"),
}

DOMAIN_CASES: dict[str, Callable[[Any], Any]] = {
    "name": lambda d: d.name(),
    "UUID": lambda d: d.UUID(),
    "UUIDString": lambda d: d.UUIDString(),
    "ID": lambda d: d.ID(),
    "info_without_cputime": lambda d: d.info()[:4],
    "info_types": lambda d: [type(v).__name__ for v in d.info()],
    "state": lambda d: d.state(),
    "isActive": lambda d: d.isActive(),
    "isPersistent": lambda d: d.isPersistent(),
    "XMLDesc": lambda d: d.XMLDesc(0),
    "XMLDesc_inactive": lambda d: d.XMLDesc(2),
    "OSType": lambda d: d.OSType(),
    "maxMemory": lambda d: d.maxMemory(),
    "autostart": lambda d: d.autostart(),
    "resume_running": lambda d: d.resume(),
    "jobInfo": lambda d: d.jobInfo(),
    "jobStats": lambda d: d.jobStats(),
    "jobStats_completed": lambda d: d.jobStats(1),
    "abortJob": lambda d: d.abortJob(),
    "abortJobFlags": lambda d: d.abortJobFlags(0),
    "migrateStartPostCopy": lambda d: d.migrateStartPostCopy(0),
    "migrateSetMaxDowntime": lambda d: d.migrateSetMaxDowntime(100),
    "migrateGetMaxDowntime": lambda d: d.migrateGetMaxDowntime(),
    "migrateSetMaxSpeed": lambda d: d.migrateSetMaxSpeed(100),
    "migrateGetMaxSpeed": lambda d: d.migrateGetMaxSpeed(),
    "create_running": lambda d: d.create(),
}

READ_ONLY_CASES: dict[str, Callable[[Any], Any]] = {
    "suspend": lambda c: c.lookupByName("test").suspend(),
    "destroy": lambda c: c.lookupByName("test").destroy(),
    "XMLDesc_secure": lambda c: c.lookupByName("test").XMLDesc(1),
    "XMLDesc_plain": lambda c: c.lookupByName("test").XMLDesc(0),
    "info": lambda c: c.lookupByName("test").info()[:4],
    "defineXML": lambda c: c.defineXML("<domain/>"),
    "createXML": lambda c: c.createXML("<domain/>", 0),
    "setAutostart": lambda c: c.lookupByName("test").setAutostart(1),
    "migrateSetMaxSpeed": lambda c: c.lookupByName("test").migrateSetMaxSpeed(5),
    "migrateGetMaxSpeed": lambda c: c.lookupByName("test").migrateGetMaxSpeed(),
    "migrateStartPostCopy": lambda c: c.lookupByName("test").migrateStartPostCopy(0),
    "abortJobFlags": lambda c: c.lookupByName("test").abortJobFlags(0),
    "jobStats": lambda c: c.lookupByName("test").jobStats(),
    "listAllDomains": lambda c: c.listAllDomains(),
    "migrateToURI3": lambda c: c.lookupByName("test").migrateToURI3("test+tcp://h/default", {}, 2),
}


@pytest.mark.parametrize("case", sorted(CONNECT_CASES))
def test_connect_calls_match_libvirt_python(pair: tuple[Any, Any], case: str) -> None:
    theirs, ours = pair
    fn = CONNECT_CASES[case]
    assert outcome(lambda: fn(ours)) == outcome(lambda: fn(theirs))


@pytest.mark.parametrize("case", sorted(DOMAIN_CASES))
def test_domain_calls_match_libvirt_python(pair: tuple[Any, Any], case: str) -> None:
    theirs, ours = pair
    fn = DOMAIN_CASES[case]
    assert outcome(lambda: fn(ours.lookupByName("test"))) == outcome(lambda: fn(theirs.lookupByName("test")))


@pytest.mark.parametrize("case", sorted(READ_ONLY_CASES))
def test_read_only_outcomes_match_libvirt_python(ro_pair: tuple[Any, Any], case: str) -> None:
    theirs, ours = ro_pair
    fn = READ_ONLY_CASES[case]
    assert outcome(lambda: fn(ours)) == outcome(lambda: fn(theirs))


def test_migrate3_read_only_matches(ro_pair: tuple[Any, Any]) -> None:
    theirs, ours = ro_pair
    assert outcome(lambda: ours.lookupByName("test").migrate3(ours, {}, 0)) == outcome(
        lambda: theirs.lookupByName("test").migrate3(theirs, {}, 0)
    )


def test_state_changes_match(pair: tuple[Any, Any]) -> None:
    """suspend / resume / define / undefine through ours, observed by both."""
    theirs, ours = pair
    dom = ours.lookupByName("test")
    assert dom.suspend() == 0
    try:
        assert outcome(lambda: ours.lookupByName("test").state()) == outcome(
            lambda: theirs.lookupByName("test").state()
        )
        assert ours.lookupByName("test").state()[0] == vlibvirt.VIR_DOMAIN_PAUSED
        assert outcome(dom.suspend) == outcome(theirs.lookupByName("test").suspend)
    finally:
        assert dom.resume() == 0
    name = f"vw-interop-{uuid.uuid4().hex[:8]}"
    new = ours.defineXML(NEW_XML.format(name=name, uuid=uuid.uuid4()))
    try:
        assert new.ID() == -1
        assert outcome(lambda: ours.lookupByName(name)) == outcome(lambda: theirs.lookupByName(name))
        assert outcome(ours.listDefinedDomains) == outcome(theirs.listDefinedDomains)
        assert new.setAutostart(1) == 0
        assert new.autostart() == theirs.lookupByName(name).autostart() == 1
        assert new.create() == 0
        assert new.isActive() == 1
        assert outcome(lambda: ours.lookupByName(name)) == outcome(lambda: theirs.lookupByName(name))
        assert new.destroy() == 0
    finally:
        assert new.undefine() == 0
    assert outcome(lambda: ours.lookupByName(name)) == outcome(lambda: theirs.lookupByName(name))


def test_close_returns_libvirts_refcount(uri: str, real_libvirt: ModuleType) -> None:
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    results = []
    for lib in (real_libvirt, vlibvirt):
        conn = lib.open(uri)
        dom = conn.lookupByName("test")
        first = conn.close()
        info = dom.info()[:4]  # the domain keeps the connection alive
        again = outcome(conn.close)
        del dom
        results.append((first, info, again))
    assert results[0] == results[1]


def test_server_side_read_only_refusal_comes_through(server: Any, real_libvirt: ModuleType) -> None:
    """Read-write open on the read-only socket: the server refuses, fields intact."""
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    theirs = real_libvirt.open(server.unix_ro_uri)
    ours = vlibvirt.open(server.unix_ro_uri)
    try:
        assert outcome(lambda: ours.lookupByName("test").suspend()) == outcome(
            lambda: theirs.lookupByName("test").suspend()
        )
    finally:
        ours.close()
        theirs.close()
