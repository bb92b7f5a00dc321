"""The trio API against a real libvirtd: same answers as the sync facade."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import virtwire.client
from virtwire.protocol.errors import libvirtError

import virtwire.libvirt as vlibvirt

FakeDaemon = Any


@pytest.mark.parametrize("transport", ["tcp", "unix", "tls"])
async def test_basic_calls_match_sync_facade(real_libvirtd: Any, transport: str) -> None:
    uri = getattr(real_libvirtd, f"{transport}_uri")
    sync = vlibvirt.open(uri)
    try:
        async with await virtwire.client.connect(uri) as conn:
            assert await conn.get_type() == sync.getType()
            assert await conn.get_version() == sync.getVersion()
            assert await conn.get_hostname() == sync.getHostname()
            assert await conn.get_info() == sync.getInfo()
            assert await conn.list_domains_id() == sync.listDomainsID()
            assert [d.name for d in await conn.list_all_domains()] == [
                d.name() for d in sync.listAllDomains()
            ]
            dom = await conn.lookup_by_name("test")
            sdom = sync.lookupByName("test")
            assert (dom.name, dom.uuid_string, dom.id) == (sdom.name(), sdom.UUIDString(), sdom.ID())
            assert (await dom.info())[:4] == sdom.info()[:4]
            assert await dom.state() == sdom.state()
            assert await dom.xml_desc() == sdom.XMLDesc()
            with pytest.raises(libvirtError) as info:
                await conn.lookup_by_name("no-such-domain")
            assert info.value.get_error_code() == vlibvirt.VIR_ERR_NO_DOMAIN
    finally:
        sync.close()


async def test_many_tasks_share_one_connection(real_libvirtd: Any) -> None:
    async with await virtwire.client.connect(real_libvirtd.tcp_uri) as conn:
        dom = await conn.lookup_by_name("test")
        results: list[list[int]] = []

        async def worker() -> None:
            for _ in range(20):
                results.append((await dom.info())[:4])

        async with trio.open_nursery() as nursery:
            for _ in range(32):
                nursery.start_soon(worker)
        assert len(results) == 640
        assert all(r == results[0] for r in results)


async def test_read_only_refusal_sends_nothing(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(handlers={23: lambda p: b""})
    async with await virtwire.client.connect(daemon.uri, readonly=True) as conn:
        before = daemon.procedures()
        from virtwire.protocol.generated import remote

        dom = virtwire.client.Domain(conn, remote.remote_nonnull_domain(name="test", uuid=b"\0" * 16, id=1))
        with pytest.raises(libvirtError) as info:
            await dom.suspend()
        assert info.value.err == (
            29,
            20,
            "operation forbidden: read only access prevents virDomainSuspend",
            2,
            "operation forbidden: %s",
            "read only access prevents virDomainSuspend",
            None,
            -1,
            -1,
        )
        assert daemon.procedures() == before
    # CONNECT_OPEN asked the server for a read-only connection.
    opens = [payload for proc, _, payload in daemon.calls if proc == 1]
    assert opens[0][-4:] == b"\0\0\0\1"


def test_sync_read_only_refusal_sends_nothing(fake_daemon: Callable[..., FakeDaemon]) -> None:
    from virtwire.protocol.generated import remote

    daemon = fake_daemon(
        handlers={
            23: lambda p: remote.remote_domain_lookup_by_name_ret(
                dom=remote.remote_nonnull_domain(name="test", uuid=b"\0" * 16, id=1)
            ).to_bytes()
        }
    )
    conn = vlibvirt.openReadOnly(daemon.uri)
    dom = conn.lookupByName("test")
    before = daemon.procedures()
    for call in (
        dom.suspend,
        dom.destroy,
        lambda: dom.XMLDesc(vlibvirt.VIR_DOMAIN_XML_SECURE),
        lambda: conn.defineXML("<domain/>"),
        lambda: dom.migrateSetMaxSpeed(1),
    ):
        with pytest.raises(libvirtError) as info:
            call()
        assert info.value.get_error_code() == vlibvirt.VIR_ERR_OPERATION_DENIED
    assert daemon.procedures() == before
    conn.close()


async def test_connect_errors_are_libvirts(free_port: Callable[[], int]) -> None:
    port = free_port()
    with pytest.raises(libvirtError) as info:
        await virtwire.client.connect(f"test+tcp://127.0.0.1:{port}/default")
    assert info.value.err == (
        38,
        7,
        f"unable to connect to server at '127.0.0.1:{port}': Connection refused",
        2,
        "%s",
        f"unable to connect to server at '127.0.0.1:{port}': Connection refused",
        None,
        111,
        -1,
    )


async def test_concurrent_calls_over_tls(real_libvirtd: Any) -> None:
    """Many tasks on one TLS connection: the packets the trio shell coalesces into
    one write (several RPCs in one TLS record) are all answered."""
    async with await virtwire.client.connect(real_libvirtd.tls_uri) as conn:
        dom = await conn.lookup_by_name("test")
        results: list[list[int]] = []

        async def worker() -> None:
            for _ in range(10):
                results.append((await dom.info())[:4])

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(worker)
        assert len(results) == 80 and len({tuple(r) for r in results}) == 1
