"""The async API (trio: virtwire.client; asyncio: virtwire.client.asyncio) has
every method of the facade, under libvirt-python's names, generated from the
spec (client/aio_generated.py), and each gives what libvirt-python gives.

The differential scenario is a list of steps (object, method, arguments) run
three ways: through a blocking libvirt-python-like module (real libvirt-python
against libvirtd, `virtwire.libvirt` against `virtwire serve`) and through our
async API under trio and under asyncio. Results and errors must be equal
(objects compared by class and name).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest
import trio
import virtwire.client
import virtwire.client.asyncio as vasyncio
from virtwire.client import aio_api, aio_generated, aio_handle, aio_objects
from virtwire.client.aio_api import AsyncAPI
from virtwire.client.stream_aio import AsyncStream
from virtwire.client.surface import agen, apixml, generated
from virtwire.protocol.errors import libvirtError, read_only_denial
from virtwire.protocol.generated import remote
from vwtestkit import unavailable

import virtwire.libvirt as vlibvirt


def test_generated_async_module_is_up_to_date() -> None:
    if not apixml.DEFAULT_PATH.exists():
        unavailable(f"{apixml.DEFAULT_PATH} is missing (libvirt-dev)")
    assert agen.OUT.read_text(encoding="utf-8") == agen.render(), (
        "client/aio_generated.py is stale: run python -m virtwire.client.surface.gen"
    )


def _async_classes(klass: str) -> list[type]:
    if klass == "virConnect":
        return [virtwire.client.Connection, vasyncio.Connection]
    if klass == "virStream":
        return [AsyncStream]
    return [aio_handle.ASYNC_CLASSES[klass]]  # type: ignore[list-item]


@pytest.mark.parametrize("klass", [*agen.ASYNC_NAMES, "virStream"])
def test_every_facade_method_has_an_async_counterpart(klass: str) -> None:
    """A facade method is a coroutine of the async class, its own (ASYNC_OWN) or
    listed with its reason in NOT_ASYNC; nothing else."""
    not_async = aio_generated.NOT_ASYNC.get(klass, {})
    missing = []
    for cls in _async_classes(klass):
        for name in agen.facade_methods(klass):
            if name in not_async:
                assert not hasattr(cls, name), f"{klass}.{name} is listed in NOT_ASYNC but exists"
                continue
            attr = inspect.getattr_static(cls, name, None)
            if name == "name" and isinstance(attr, property):
                continue
            if attr is None or not inspect.iscoroutinefunction(attr):
                missing.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert missing == []
    # The lists name real facade methods only.
    assert set(not_async) <= set(agen.facade_methods(klass))


# -- the differential scenario -----------------------------------------------------------------


class Ref:
    """An argument that is an object of an earlier step."""

    def __init__(self, label: str) -> None:
        self.label = label


def _args(objs: dict[str, Any], args: tuple[Any, ...]) -> list[Any]:
    return [
        [_args(objs, (v,))[0] for v in a]
        if isinstance(a, list)
        else objs[a.label]
        if isinstance(a, Ref)
        else a
        for a in args
    ]


# (result label or None, object label, method, args); "conn" is the connection.
Step = tuple[str | None, str, str, tuple[Any, ...]]
STEPS: list[Step] = [
    (None, "conn", "getType", ()),
    (None, "conn", "getVersion", ()),
    (None, "conn", "getHostname", ()),
    (None, "conn", "getInfo", ()),
    (None, "conn", "getFreeMemory", ()),
    (None, "conn", "getCellsFreeMemory", (0, 2)),
    (None, "conn", "getCPUStats", (-1, 0)),
    (None, "conn", "getMemoryStats", (-1, 0)),
    (None, "conn", "getMaxVcpus", (None,)),
    (None, "conn", "isSecure", ()),
    (None, "conn", "isAlive", ()),
    (None, "conn", "getURI", ()),
    (None, "conn", "listAllDomains", (0,)),
    (None, "conn", "listDomainsID", ()),
    (None, "conn", "listDefinedDomains", ()),
    (None, "conn", "numOfDomains", ()),
    (None, "conn", "listAllNetworks", (0,)),
    (None, "conn", "listNetworks", ()),
    (None, "conn", "listAllStoragePools", (0,)),
    (None, "conn", "listStoragePools", ()),
    (None, "conn", "listAllInterfaces", (0,)),
    (None, "conn", "listAllDevices", (0,)),
    (None, "conn", "listDevices", (None, 0)),
    (None, "conn", "listAllSecrets", (0,)),
    (None, "conn", "listAllNWFilters", (0,)),
    (None, "conn", "lookupByName", ("no-such-domain",)),
    (None, "conn", "networkLookupByUUIDString", ("not-a-uuid",)),
    ("dom", "conn", "lookupByName", ("test",)),
    (None, "dom", "info", ()),
    (None, "dom", "state", (0,)),
    (None, "dom", "ID", ()),
    (None, "dom", "UUIDString", ()),
    (None, "dom", "XMLDesc", (0,)),
    (None, "dom", "OSType", ()),
    (None, "dom", "maxMemory", ()),
    (None, "dom", "isActive", ()),
    (None, "dom", "hasCurrentSnapshot", (0,)),
    (None, "dom", "snapshotNum", (0,)),
    (None, "dom", "listAllSnapshots", (0,)),
    (None, "dom", "schedulerType", ()),
    (None, "dom", "schedulerParameters", ()),
    (None, "dom", "memoryParameters", (0,)),
    (None, "dom", "blkioParameters", (0,)),
    (None, "dom", "vcpus", ()),
    (None, "dom", "blockStats", ("no-such-disk",)),
    (None, "dom", "getCPUStats", (True, 0)),
    (None, "dom", "jobInfo", ()),
    (None, "conn", "domainListGetStats", ([Ref("dom")], 1, 0)),  # objects as arguments
    ("snap", "dom", "snapshotCreateXML", ("<domainsnapshot><name>async-api</name></domainsnapshot>", 0)),
    (None, "snap", "getName", ()),
    (None, "snap", "isCurrent", (0,)),
    (None, "snap", "getParent", (0,)),
    ("snapdom", "snap", "getDomain", ()),
    (None, "snapdom", "UUIDString", ()),
    (None, "dom", "snapshotListNames", (0,)),
    (None, "snap", "delete", (0,)),
    ("conn2", "dom", "connect", ()),
    (None, "conn2", "getType", ()),
    ("net", "conn", "networkLookupByName", ("default",)),
    (None, "net", "XMLDesc", (0,)),
    (None, "net", "isActive", ()),
    (None, "net", "bridgeName", ()),
    (None, "net", "autostart", ()),
    (None, "net", "UUIDString", ()),
    (None, "net", "DHCPLeases", (None, 0)),
    ("pool", "conn", "storagePoolLookupByName", ("default-pool",)),
    (None, "pool", "info", ()),
    (None, "pool", "numOfVolumes", ()),
    (None, "pool", "listVolumes", ()),
    (None, "pool", "listAllVolumes", (0,)),
    ("dev", "conn", "nodeDeviceLookupByName", ("computer",)),
    (None, "dev", "XMLDesc", (0,)),
    (None, "dev", "listCaps", ()),
    (None, "dev", "parent", ()),
]


# Results that carry clocks or counters: compared by shape and types only.
VOLATILE = {
    "info",
    "getCPUStats",
    "vcpus",
    "getMemoryStats",
    "getFreeMemory",
    "getCellsFreeMemory",
    "domainListGetStats",
}


def _types(shaped: Any) -> Any:
    if isinstance(shaped, tuple) and len(shaped) == 2 and isinstance(shaped[0], str):
        kind, inner = shaped
        return (kind, [_types(v) for v in inner]) if isinstance(inner, list) else (kind,)
    if isinstance(shaped, dict):
        return {k: _types(v) for k, v in shaped.items()}
    return shaped


def _result(method: str, value: Any) -> Any:
    shaped = _shape(value)
    return _types(shaped) if method in VOLATILE else shaped


def _shape(value: Any) -> Any:
    """A result as comparable data: objects by class and name, containers by type."""
    facade = getattr(value, "_FACADE", None)
    if facade == "virConnect" or type(value).__name__ == "virConnect" or isinstance(value, AsyncAPI):
        return ("virConnect",)
    if facade is not None:
        return (facade, value.name)
    if type(value).__name__.startswith("vir"):
        name = value.name() if hasattr(value, "name") else value.getName()
        return (type(value).__name__, name)
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_shape(v) for v in value])
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return (type(value).__name__, value)


def _error(exc: Any) -> tuple[Any, ...]:
    return ("error", exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())


def run_blocking(module: ModuleType, uri: str) -> list[Any]:
    conn = module.open(uri)
    objs: dict[str, Any] = {"conn": conn}
    out: list[Any] = []
    try:
        for label, target, method, args in STEPS:
            try:
                value = getattr(objs[target], method)(*_args(objs, args))
            except module.libvirtError as exc:
                out.append(_error(exc))
                continue
            if label is not None:
                objs[label] = value
            out.append(_result(method, value))
    finally:
        conn.close()
    return out


async def run_async(connect: Callable[[str], Awaitable[Any]], uri: str) -> list[Any]:
    out: list[Any] = []
    async with await connect(uri) as conn:
        objs: dict[str, Any] = {"conn": conn}
        for label, target, method, args in STEPS:
            try:
                value = await getattr(objs[target], method)(*_args(objs, args))
            except libvirtError as exc:
                out.append(_error(exc))
                continue
            if label is not None:
                objs[label] = value
            out.append(_result(method, value))
    return out


def _both_shells(uri: str) -> tuple[list[Any], list[Any]]:
    on_trio = trio.run(run_async, virtwire.client.connect, uri)
    on_asyncio = asyncio.run(run_async(vasyncio.connect, uri))
    return on_trio, on_asyncio


def test_async_api_matches_libvirt_python_on_libvirtd(real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    expected = run_blocking(real_libvirt, real_libvirtd.tcp_uri)
    on_trio, on_asyncio = _both_shells(real_libvirtd.tcp_uri)
    for step, want, got_trio, got_asyncio in zip(STEPS, expected, on_trio, on_asyncio, strict=True):
        assert (step, got_trio) == (step, want)
        assert (step, got_asyncio) == (step, want)
    # The scenario reaches both kinds of method: generated calls and the facade's shapes.
    assert sum(1 for v in expected if not (isinstance(v, tuple) and v[0] == "error")) > len(STEPS) * 3 // 4


def test_async_api_matches_the_facade_on_virtwire_serve(virtwire_host: Any) -> None:
    expected = run_blocking(vlibvirt, virtwire_host.tcp_uri)
    on_trio, on_asyncio = _both_shells(virtwire_host.tcp_uri)
    for step, want, got_trio, got_asyncio in zip(STEPS, expected, on_trio, on_asyncio, strict=True):
        assert (step, got_trio) == (step, want)
        assert (step, got_asyncio) == (step, want)


# -- read-only: refused locally, as by the facade -------------------------------------------------

_UUID = bytes(range(16))
_DOM = remote.remote_nonnull_domain(name="d", uuid=_UUID, id=1)
_NET = remote.remote_nonnull_network(name="n", uuid=_UUID)
_ASYNC_REFS: dict[str, Callable[[Any], Any]] = {
    "virDomain": lambda conn: aio_api.Domain(conn, _DOM),
    "virNetwork": lambda conn: aio_objects.Network(conn, _NET),
    "virNetworkPort": lambda conn: aio_objects.NetworkPort(
        aio_objects.Network(conn, _NET), remote.remote_nonnull_network_port(net=_NET, uuid=_UUID)
    ),
    "virInterface": lambda conn: aio_objects.Interface(
        conn, remote.remote_nonnull_interface(name="i", mac="m")
    ),
    "virStoragePool": lambda conn: aio_objects.StoragePool(
        conn, remote.remote_nonnull_storage_pool(name="p", uuid=_UUID)
    ),
    "virStorageVol": lambda conn: aio_objects.StorageVol(
        conn, remote.remote_nonnull_storage_vol(pool="p", name="v", key="k")
    ),
    "virNodeDevice": lambda conn: aio_objects.NodeDevice(conn, remote.remote_nonnull_node_device(name="nd")),
    "virSecret": lambda conn: aio_objects.Secret(
        conn, remote.remote_nonnull_secret(uuid=_UUID, usageType=0, usageID="u")
    ),
    "virNWFilter": lambda conn: aio_objects.NWFilter(
        conn, remote.remote_nonnull_nwfilter(name="f", uuid=_UUID)
    ),
    "virNWFilterBinding": lambda conn: aio_objects.NWFilterBinding(
        conn, remote.remote_nonnull_nwfilter_binding(portdev="p", filtername="f")
    ),
    "virDomainSnapshot": lambda conn: aio_objects.DomainSnapshot(
        aio_api.Domain(conn, _DOM), remote.remote_nonnull_domain_snapshot(name="s", dom=_DOM)
    ),
    "virDomainCheckpoint": lambda conn: aio_objects.DomainCheckpoint(
        aio_api.Domain(conn, _DOM), remote.remote_nonnull_domain_checkpoint(name="c", dom=_DOM)
    ),
}


def _denied() -> list[tuple[str, str, str]]:
    """(class, method, procedure) of every method generated from one procedure that
    libvirt refuses on a read-only connection (the facade's generated classes)."""
    out = []
    for klass in [*_ASYNC_REFS, "virConnect"]:
        for name, fn in vars(getattr(generated, f"{klass}Generated")).items():
            if inspect.isfunction(fn) and fn.__doc__:
                proc = fn.__doc__.split("(")[1].rstrip(").")
                if remote.PROCEDURES_BY_NAME[proc].denies(0):
                    out.append((klass, name, proc))
    return sorted(out)


def _dummy(param: inspect.Parameter, conn: Any) -> Any:
    if param.default is not inspect.Parameter.empty:
        return param.default
    ann = str(param.annotation)
    return (
        "x"
        if ann.startswith("str")
        else 0.0
        if ann == "float"
        else 0
        if ann == "int"
        else _ASYNC_REFS["virDomain"](conn)
    )


async def _refusals(connect: Callable[..., Awaitable[Any]], uri: str) -> list[Any]:
    out: list[tuple[str, str, bool | str]] = []
    async with await connect(uri, readonly=True) as conn:
        for klass, method, proc in _denied():
            target = conn if klass == "virConnect" else _ASYNC_REFS[klass](conn)
            facade_fn = getattr(generated, f"{klass}Generated").__dict__[method]
            args = [_dummy(p, conn) for p in list(inspect.signature(facade_fn).parameters.values())[1:]]
            try:
                await getattr(target, method)(*args)
            except libvirtError as exc:
                out.append((klass, method, exc.err == read_only_denial(remote.PROCEDURES_BY_NAME[proc]).err))
            else:
                out.append((klass, method, "not refused"))
    return out


def test_every_denied_method_is_refused_without_a_packet(fake_daemon: Any) -> None:
    daemon = fake_daemon()
    denied = _denied()
    assert len(denied) > 100
    expected = [(klass, method, True) for klass, method, _ in denied]
    assert trio.run(_refusals, virtwire.client.connect, daemon.uri) == expected
    assert asyncio.run(_refusals(vasyncio.connect, daemon.uri)) == expected
    sent = {proc for proc, _, _ in daemon.calls}
    assert not sent & {remote.PROCEDURES_BY_NAME[p].number for _, _, p in denied}
