"""Byte for byte: the packets virtwire.libvirt sends equal libvirt-python's.

Both clients run the same program against a recording fake daemon; the
recorded calls (procedure, serial, payload bytes) must be identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from virtwire.protocol.generated import remote

import virtwire.libvirt as vlibvirt

FakeDaemon = Any  # tests/client/conftest.py
P = remote.PROCEDURES_BY_NAME
DOM = remote.remote_nonnull_domain(name="vm1", uuid=bytes(range(16)), id=5)


def _ret(name: str, **fields: Any) -> Callable[[bytes], bytes]:
    codec = P[name].ret
    assert codec is not None
    body = codec(**fields).to_bytes()
    return lambda _payload: body


HANDLERS = {
    P["CONNECT_GET_TYPE"].number: _ret("CONNECT_GET_TYPE", type="TEST"),
    P["CONNECT_GET_LIB_VERSION"].number: _ret("CONNECT_GET_LIB_VERSION", lib_ver=9000000),
    P["DOMAIN_LOOKUP_BY_NAME"].number: _ret("DOMAIN_LOOKUP_BY_NAME", dom=DOM),
    P["DOMAIN_LOOKUP_BY_UUID"].number: _ret("DOMAIN_LOOKUP_BY_UUID", dom=DOM),
    P["DOMAIN_LOOKUP_BY_ID"].number: _ret("DOMAIN_LOOKUP_BY_ID", dom=DOM),
    P["DOMAIN_GET_INFO"].number: _ret("DOMAIN_GET_INFO", state=1, maxMem=2, memory=1, nrVirtCpu=1, cpuTime=7),
    P["DOMAIN_GET_STATE"].number: _ret("DOMAIN_GET_STATE", state=1, reason=1),
    P["DOMAIN_GET_XML_DESC"].number: _ret("DOMAIN_GET_XML_DESC", xml="<domain/>"),
    P["DOMAIN_SUSPEND"].number: lambda p: b"",
    P["DOMAIN_RESUME"].number: lambda p: b"",
    P["DOMAIN_DESTROY_FLAGS"].number: lambda p: b"",
    P["DOMAIN_MIGRATE_SET_MAX_SPEED"].number: lambda p: b"",
    P["DOMAIN_DEFINE_XML_FLAGS"].number: _ret("DOMAIN_DEFINE_XML_FLAGS", dom=DOM),
    P["CONNECT_LIST_ALL_DOMAINS"].number: _ret("CONNECT_LIST_ALL_DOMAINS", domains=[DOM, DOM], ret=2),
    P["CONNECT_NUM_OF_DOMAINS"].number: _ret("CONNECT_NUM_OF_DOMAINS", num=1),
    P["CONNECT_LIST_DOMAINS"].number: _ret("CONNECT_LIST_DOMAINS", ids=[5]),
    P["DOMAIN_GET_JOB_STATS"].number: _ret("DOMAIN_GET_JOB_STATS", type=0, params=[]),
    P["CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY"].number: _ret(
        "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY", callbackID=3
    ),
    P["CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY"].number: lambda p: b"",
    P["CONNECT_GET_HOSTNAME"].number: _ret("CONNECT_GET_HOSTNAME", hostname="h"),
    P["CONNECT_GET_VERSION"].number: _ret("CONNECT_GET_VERSION", hv_ver=2),
    P["CONNECT_GET_CAPABILITIES"].number: _ret("CONNECT_GET_CAPABILITIES", capabilities="<capabilities/>"),
    P["NODE_GET_INFO"].number: _ret(
        "NODE_GET_INFO",
        model=[ord(ch) for ch in "i686"] + [0] * 28,
        memory=3145728,
        cpus=16,
        mhz=1400,
        nodes=2,
        sockets=2,
        cores=2,
        threads=2,
    ),
    P["CONNECT_IS_SECURE"].number: _ret("CONNECT_IS_SECURE", secure=1),
    P["CONNECT_NUM_OF_DEFINED_DOMAINS"].number: _ret("CONNECT_NUM_OF_DEFINED_DOMAINS", num=2),
    P["CONNECT_LIST_DEFINED_DOMAINS"].number: _ret("CONNECT_LIST_DEFINED_DOMAINS", names=["a", "b"]),
    P["DOMAIN_CREATE"].number: lambda p: b"",
    P["DOMAIN_CREATE_WITH_FLAGS"].number: _ret("DOMAIN_CREATE_WITH_FLAGS", dom=DOM),
    P["DOMAIN_CREATE_XML"].number: _ret("DOMAIN_CREATE_XML", dom=DOM),
    P["DOMAIN_DEFINE_XML"].number: _ret("DOMAIN_DEFINE_XML", dom=DOM),
    P["DOMAIN_DESTROY"].number: lambda p: b"",
    P["DOMAIN_SHUTDOWN"].number: lambda p: b"",
    P["DOMAIN_REBOOT"].number: lambda p: b"",
    P["DOMAIN_UNDEFINE"].number: lambda p: b"",
    P["DOMAIN_UNDEFINE_FLAGS"].number: lambda p: b"",
    P["DOMAIN_SET_AUTOSTART"].number: lambda p: b"",
    P["DOMAIN_GET_AUTOSTART"].number: _ret("DOMAIN_GET_AUTOSTART", autostart=1),
    P["DOMAIN_GET_MAX_MEMORY"].number: _ret("DOMAIN_GET_MAX_MEMORY", memory=1024),
    P["DOMAIN_GET_OS_TYPE"].number: _ret("DOMAIN_GET_OS_TYPE", type="hvm"),
    P["DOMAIN_IS_ACTIVE"].number: _ret("DOMAIN_IS_ACTIVE", active=1),
    P["DOMAIN_IS_PERSISTENT"].number: _ret("DOMAIN_IS_PERSISTENT", persistent=1),
    P["DOMAIN_GET_JOB_INFO"].number: _ret(
        "DOMAIN_GET_JOB_INFO",
        type=2,
        timeElapsed=1,
        timeRemaining=2,
        dataTotal=3,
        dataProcessed=4,
        dataRemaining=5,
        memTotal=6,
        memProcessed=7,
        memRemaining=8,
        fileTotal=9,
        fileProcessed=10,
        fileRemaining=11,
    ),
    P["DOMAIN_ABORT_JOB"].number: lambda p: b"",
    P["DOMAIN_ABORT_JOB_FLAGS"].number: lambda p: b"",
    P["DOMAIN_MIGRATE_START_POST_COPY"].number: lambda p: b"",
    P["DOMAIN_MIGRATE_SET_MAX_DOWNTIME"].number: lambda p: b"",
    P["DOMAIN_MIGRATE_GET_MAX_DOWNTIME"].number: _ret("DOMAIN_MIGRATE_GET_MAX_DOWNTIME", downtime=300),
    P["DOMAIN_MIGRATE_GET_MAX_SPEED"].number: _ret("DOMAIN_MIGRATE_GET_MAX_SPEED", bandwidth=8),
}


def program(lib: Any, uri: str, readonly: bool) -> list[Any]:
    conn = lib.openReadOnly(uri) if readonly else lib.open(uri)
    results: list[Any] = [
        conn.getType(),
        conn.getLibVersion(),
        conn.getVersion(),
        conn.getHostname(),
        conn.getCapabilities(),
        conn.getInfo(),
        conn.isSecure(),
        conn.isEncrypted(),
        conn.isAlive(),
        conn.numOfDefinedDomains(),
        conn.listDefinedDomains(),
    ]
    dom = conn.lookupByName("vm1")
    results += [
        dom.maxMemory(),
        dom.OSType(),
        dom.isActive(),
        dom.isPersistent(),
        dom.autostart(),
        dom.jobInfo(),
        dom.migrateGetMaxDowntime(),
        dom.migrateGetMaxSpeed() if not readonly else None,
    ]
    conn.lookupByUUIDString("00010203-0405-0607-0809-0a0b0c0d0e0f")
    conn.lookupByID(5)
    dom.info()
    dom.state()
    dom.XMLDesc(2)
    conn.listAllDomains(3)
    conn.numOfDomains()
    conn.listDomainsID()
    dom.jobStats(1)
    cb = conn.domainEventRegisterAny(dom, 0, lambda *a: None, None)
    conn.domainEventDeregisterAny(cb)
    if not readonly:
        dom.suspend()
        dom.resume()
        dom.destroyFlags(0)
        dom.migrateSetMaxSpeed(100, 0)
        conn.defineXMLFlags("<domain type='test'/>", 1)
        conn.defineXML("<domain type='test'/>")
        conn.createXML("<domain type='test'/>", 0)
        for call in (
            dom.create,
            lambda: dom.createWithFlags(1),
            dom.destroy,
            # destroy() marks the handle inactive (id -1): the next call on the
            # domain alone must send that, not an encoding kept from before
            dom.info,
            dom.shutdown,
            lambda: dom.reboot(0),
            dom.undefine,
            lambda: dom.undefineFlags(2),
            lambda: dom.setAutostart(1),
            dom.abortJob,
            lambda: dom.abortJobFlags(1),
            lambda: dom.migrateStartPostCopy(0),
            lambda: dom.migrateSetMaxDowntime(50, 0),
        ):
            results.append(call())
        results.append(dom.ID())
    else:
        for refused in (dom.suspend, lambda: dom.XMLDesc(1), lambda: conn.defineXML("<x/>")):
            with contextlib.suppress(lib.libvirtError):
                refused()
    conn.close()
    return results


def test_same_bytes_as_libvirt_python(
    fake_daemon: Callable[..., FakeDaemon], real_libvirt: ModuleType
) -> None:
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    # Both with an event loop registered: both offer keepalive (feature 10).
    real_libvirt.virEventRegisterDefaultImpl()
    vlibvirt.virEventRegisterDefaultImpl()
    for readonly in (False, True):
        theirs = fake_daemon(handlers=HANDLERS)
        ours = fake_daemon(handlers=HANDLERS)
        expected = program(real_libvirt, theirs.uri, readonly)
        got = program(vlibvirt, ours.uri, readonly)
        assert got == expected
        assert [p for p, _, _ in ours.calls] == [p for p, _, _ in theirs.calls]
        assert ours.calls == theirs.calls
