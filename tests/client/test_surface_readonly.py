"""Read-only policy over the whole generated surface: every method whose
procedure libvirt refuses on a read-only connection fails locally with
libvirt's error, and nothing reaches the daemon (the fake daemon records every
packet).  The policy comes from the spec's @readonly annotations through the
procedure table, the methods from the generated classes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from virtwire.client.surface import generated
from virtwire.protocol.errors import read_only_denial
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import remote

import virtwire.libvirt as libvirt

_UUID = bytes(range(16))
_DOM = remote.remote_nonnull_domain(name="d", uuid=_UUID, id=1)
_NET = remote.remote_nonnull_network(name="n", uuid=_UUID)
_POOL = remote.remote_nonnull_storage_pool(name="p", uuid=_UUID)
_REFS: dict[str, Callable[[Any], Any]] = {
    "virDomain": lambda conn: libvirt.virDomain(conn, _obj=_DOM),
    "virNetwork": lambda conn: libvirt.virNetwork(conn, _obj=_NET),
    "virNetworkPort": lambda conn: libvirt.virNetworkPort(
        libvirt.virNetwork(conn, _obj=_NET), _obj=remote.remote_nonnull_network_port(net=_NET, uuid=_UUID)
    ),
    "virInterface": lambda conn: libvirt.virInterface(
        conn, _obj=remote.remote_nonnull_interface(name="i", mac="m")
    ),
    "virStoragePool": lambda conn: libvirt.virStoragePool(conn, _obj=_POOL),
    "virStorageVol": lambda conn: libvirt.virStorageVol(
        conn, _obj=remote.remote_nonnull_storage_vol(pool="p", name="v", key="k")
    ),
    "virNodeDevice": lambda conn: libvirt.virNodeDevice(
        conn, _obj=remote.remote_nonnull_node_device(name="nd")
    ),
    "virSecret": lambda conn: libvirt.virSecret(
        conn, _obj=remote.remote_nonnull_secret(uuid=_UUID, usageType=0, usageID="u")
    ),
    "virNWFilter": lambda conn: libvirt.virNWFilter(
        conn, _obj=remote.remote_nonnull_nwfilter(name="f", uuid=_UUID)
    ),
    "virNWFilterBinding": lambda conn: libvirt.virNWFilterBinding(
        conn, _obj=remote.remote_nonnull_nwfilter_binding(portdev="p", filtername="f")
    ),
    "virDomainSnapshot": lambda conn: libvirt.virDomainSnapshot(
        libvirt.virDomain(conn, _obj=_DOM), _obj=remote.remote_nonnull_domain_snapshot(name="s", dom=_DOM)
    ),
    "virDomainCheckpoint": lambda conn: libvirt.virDomainCheckpoint(
        libvirt.virDomain(conn, _obj=_DOM), _obj=remote.remote_nonnull_domain_checkpoint(name="c", dom=_DOM)
    ),
}


def _denied_generated() -> list[tuple[str, str, str]]:
    """(class, method, procedure) of every generated method refused read-only."""
    out = []
    for klass in _REFS.keys() | {"virConnect"}:
        cls = getattr(generated, f"{klass}Generated")
        for name, fn in vars(cls).items():
            if not inspect.isfunction(fn):
                continue
            proc = fn.__doc__.split("(")[1].rstrip(").") if fn.__doc__ else ""
            if remote.PROCEDURES_BY_NAME[proc].denies(0):
                out.append((klass, name, proc))
    return sorted(out)


DENIED = _denied_generated()


def _dummy(param: inspect.Parameter, conn: Any) -> Any:
    if param.default is not inspect.Parameter.empty:
        return param.default
    ann = str(param.annotation)
    if ann.startswith("str"):
        return "x"
    if ann == "int":
        return 0
    if ann == "float":
        return 0.0
    return _REFS["virDomain"](conn)  # an object argument (snapshot, volume...): any handle


def test_the_generated_surface_has_read_only_refusals() -> None:
    # Many write procedures on every class (the list is not empty by accident).
    classes = {klass for klass, _, _ in DENIED}
    assert {"virConnect", "virDomain", "virNetwork", "virStoragePool", "virSecret"} <= classes
    assert len(DENIED) > 100


def test_every_denied_method_is_refused_without_a_packet(fake_daemon: Any) -> None:
    daemon = fake_daemon()
    conn = libvirt.openReadOnly(daemon.uri)
    try:
        before = len(daemon.calls)
        for klass, method, proc in DENIED:
            target = conn if klass == "virConnect" else _REFS[klass](conn)
            bound = getattr(target, method)
            args = [_dummy(p, conn) for p in inspect.signature(bound).parameters.values()]
            with pytest.raises(libvirt.libvirtError) as info:
                bound(*args)
            err = info.value
            assert err.get_error_code() == c.VIR_ERR_OPERATION_DENIED, (klass, method)
            # The fields of libvirt's refusal, from the protocol's one builder of it.
            assert err.err == read_only_denial(remote.PROCEDURES_BY_NAME[proc]).err, (klass, method)
        assert len(daemon.calls) == before
    finally:
        conn.close()
