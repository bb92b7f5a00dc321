"""Differential: the same read-only calls through the real libvirt-python and
through virtwire.libvirt on one real libvirtd (test driver) give the same
result, types included, or the same error (all nine fields).

The calls are generated: every method of the surface's classes that takes no
argument besides optional flags and whose procedure only reads (its name says
GET, LIST, NUM_OF, IS_, LOOKUP, ...), on one object of each class the test
driver has."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from virtwire.client.surface import generated
from virtwire.client.surface.generated import BINDINGS
from virtwire.protocol.generated import remote

import virtwire.libvirt as ours

_READS = ("_GET_", "_LIST_", "_NUM_OF_", "_IS_", "GET_", "LIST_", "NUM_OF_", "_NUM", "_HAS_", "_CURRENT")
_APIS = {p.api: p for p in remote.PROCEDURES.values() if p.api}

# The objects of test:///default to call methods on, per class.
_OBJECTS: dict[str, Callable[[Any], Any]] = {
    "virConnect": lambda conn: conn,
    "virDomain": lambda conn: conn.lookupByName("test"),
    "virNetwork": lambda conn: conn.networkLookupByName("default"),
    "virStoragePool": lambda conn: conn.storagePoolLookupByName("default-pool"),
    "virInterface": lambda conn: conn.interfaceLookupByName("eth1"),
    "virNodeDevice": lambda conn: conn.nodeDeviceLookupByName("computer"),
}


def _calls() -> list[tuple[str, str]]:
    out = []
    for cname, (klass, method) in sorted(BINDINGS.items()):
        proc = _APIS.get(cname)
        if (
            klass not in _OBJECTS
            or proc is None
            or (not proc.name.startswith(_READS, 0) and not any(r in proc.name for r in _READS))
        ):
            continue
        fn = getattr(getattr(ours, klass), method, None)
        if fn is None:
            continue
        params = list(inspect.signature(fn).parameters.values())[1:]
        if all(p.default is not inspect.Parameter.empty for p in params):
            out.append((klass, method))
    return out


CALLS = _calls()


# Results that move between two calls (CPU time): compared with every int as 0.
VOLATILE = {("virDomain", "info"), ("virDomain", "vcpus")}


def _steady(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "int":
        return ("int", 0)
    if isinstance(value, list | tuple):
        return type(value)(_steady(v) for v in value)
    return value


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        value = fn()
    except Exception as exc:  # libvirtError of either module, or a Python error
        err = getattr(exc, "err", None)
        return ("error", (type(exc).__name__ if err is None else "libvirtError", err))
    return ("value", _plain(value))


def _plain(value: Any) -> Any:
    """Objects by class name and identity; containers kept with their types."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    kind = type(value).__name__
    if kind.startswith("vir"):
        ident = value.UUIDString() if hasattr(value, "UUIDString") else value.name()
        return (kind, ident)
    return (type(value).__name__, value)


@pytest.fixture(scope="module")
def both(real_libvirtd: Any, real_libvirt: ModuleType) -> Any:
    theirs = real_libvirt.openReadOnly(real_libvirtd.unix_ro_uri)
    mine = ours.openReadOnly(real_libvirtd.unix_ro_uri)
    yield theirs, mine
    mine.close()
    theirs.close()


def test_the_generated_call_list_is_broad() -> None:
    assert len(CALLS) > 60
    assert {klass for klass, _ in CALLS} == set(_OBJECTS)


@pytest.mark.parametrize(("klass", "method"), CALLS, ids=[f"{k}.{m}" for k, m in CALLS])
def test_same_result_or_error(both: Any, klass: str, method: str) -> None:
    theirs, mine = both
    expected = _outcome(lambda: getattr(_OBJECTS[klass](theirs), method)())
    got = _outcome(lambda: getattr(_OBJECTS[klass](mine), method)())
    if (klass, method) in VOLATILE:
        expected, got = _steady(expected), _steady(got)
    assert got == expected


def test_generated_classes_cover_the_object_classes() -> None:
    for klass in _OBJECTS:
        assert issubclass(getattr(ours, klass), getattr(generated, f"{klass}Generated"))
