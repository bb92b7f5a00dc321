"""File descriptors passed with a call (CALL_WITH_FDS, SCM_RIGHTS over the unix
socket): createXMLWithFiles and createWithFiles, which libvirtd's test driver
serves, through virtwire.libvirt and the real libvirt-python side by side."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from virtwire.client import core

import virtwire.libvirt as vlibvirt

XML = (
    "<domain type='test'><name>{name}</name><memory>65536</memory><vcpu>1</vcpu>"
    "<os><type>hvm</type></os></domain>"
)


@pytest.fixture
def pipe_fds() -> Iterator[list[int]]:
    r, w = os.pipe()
    yield [r, w]
    os.close(r)
    os.close(w)


def _error(exc: Any) -> tuple[Any, ...]:
    return (exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())


@pytest.mark.parametrize("impl", ["ours", "real"])
def test_create_xml_with_files_over_unix(
    impl: str, real_libvirtd: Any, real_libvirt: ModuleType, pipe_fds: list[int]
) -> None:
    lib = vlibvirt if impl == "ours" else real_libvirt
    conn = lib.open(real_libvirtd.unix_uri)
    try:
        name = f"fd-{impl}"
        dom = conn.createXMLWithFiles(XML.format(name=name), pipe_fds, 0)
        assert isinstance(dom, lib.virDomain)
        assert (dom.name(), dom.isActive(), dom.ID() > 0) == (name, 1, True)
        dom.destroy()
        # No descriptors: a plain CALL (libvirt sends it so too).
        dom = conn.createXMLWithFiles(XML.format(name=name), [], 0)
        dom.destroy()
        defined = conn.defineXML(XML.format(name=f"{name}-defined"))
        assert defined.ID() == -1
        assert defined.createWithFiles(pipe_fds[:1], 0) == 0
        assert defined.ID() > 0 and defined.isActive() == 1  # the running id, as libvirt's
        defined.destroy()
        defined.undefine()
    finally:
        conn.close()


def test_descriptors_refused_over_tcp_as_libvirt_does(
    real_libvirtd: Any, real_libvirt: ModuleType, pipe_fds: list[int]
) -> None:
    """Over TCP libvirt fails the call and the connection is closed afterwards."""
    outcomes = []
    for lib in (real_libvirt, vlibvirt):
        conn = lib.open(real_libvirtd.tcp_uri)
        with pytest.raises(lib.libvirtError) as got:
            conn.createXMLWithFiles(XML.format(name="fd-tcp"), pipe_fds, 0)
        with pytest.raises(lib.libvirtError) as after:
            conn.lookupByName("test")
        outcomes.append((_error(got.value), conn.isAlive(), _error(after.value)))
        conn.close()
    assert outcomes[0] == outcomes[1]


def test_too_many_descriptors_is_an_rpc_error() -> None:
    protocol: core.ClientProtocol[object] = core.ClientProtocol()
    with pytest.raises(vlibvirt.libvirtError) as got:
        protocol.start_call_with_fds(1, b"", 33, object())
    assert got.value.get_error_message() == "Too many FDs to send 33, expected 32 maximum"
    assert got.value.get_error_code() == vlibvirt.VIR_ERR_RPC


def test_read_only_refused_locally(real_libvirtd: Any, pipe_fds: list[int]) -> None:
    conn = vlibvirt.openReadOnly(real_libvirtd.unix_uri)
    try:
        with pytest.raises(vlibvirt.libvirtError) as got:
            conn.createXMLWithFiles(XML.format(name="fd-ro"), pipe_fds, 0)
        assert got.value.get_error_code() == vlibvirt.VIR_ERR_OPERATION_DENIED
    finally:
        conn.close()
