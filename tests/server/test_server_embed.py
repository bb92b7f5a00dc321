"""The embedding API: hosts inside a trio program, and on threads for everyone else."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import virtwire.client
from virtwire.protocol.errors import libvirtError
from virtwire.server import embed


async def test_two_hosts_in_one_trio_program(tmp_path: Path) -> None:
    async with (
        embed.serve(hostname="alpha", unix=[tmp_path / "a"], unix_ro=[tmp_path / "a-ro"]) as alpha,
        embed.serve(hostname="beta") as beta,
    ):
        assert alpha.tcp and alpha.tcp[0].port != 0 and alpha.tcp[0].port != beta.tcp[0].port
        for uri, name in ((alpha.uri, "alpha"), (alpha.unix_uri, "alpha"), (beta.uri, "beta")):
            async with await virtwire.client.connect(uri) as conn:
                assert await conn.get_hostname() == name
                dom = await conn.lookup_by_name("test")
                assert (await dom.info())[0] == 1  # running, as test:///default starts it
        async with await virtwire.client.connect(alpha.ro_uri) as conn:
            dom = await conn.lookup_by_name("test")
            with pytest.raises(libvirtError) as info:
                await dom.suspend()
            assert info.value.get_error_code() == 29  # VIR_ERR_OPERATION_DENIED
    # Leaving the block removed the socket files.
    assert not (tmp_path / "a").exists() and not (tmp_path / "a-ro").exists()


def test_server_thread_serves_real_libvirt_python(real_libvirt: ModuleType) -> None:
    with embed.ServerThread(hostname="threaded") as host:
        conn = real_libvirt.open(host.uri)
        assert conn.getHostname() == "threaded"
        assert [d.name() for d in conn.listAllDomains()] == ["test"]
        conn.close()
    with pytest.raises(real_libvirt.libvirtError):
        real_libvirt.open(host.uri)  # stopped: nobody listens any more


def test_hosts_are_independent(real_libvirt: ModuleType) -> None:
    with embed.hosts(2) as (one, two):
        a, b = real_libvirt.open(one.uri), real_libvirt.open(two.uri)
        a.lookupByName("test").destroy()
        assert b.lookupByName("test").isActive() == 1
        a.close()
        b.close()
