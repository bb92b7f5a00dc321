"""What each client entry point imports: a threads program does not pay for trio,
the async shells, greenlet, ssl or the SASL machinery it never uses; the same
program can still import and use them later.

Each check runs in a fresh interpreter (a subprocess): this test process has
imported everything already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from vwtestkit.server import VirtwireServer

# Modules a program that only uses virtwire.libvirt over tcp or unix never needs.
THREADS_ONLY_AVOIDS = (
    "trio",
    "asyncio",
    "greenlet",
    "ssl",
    "subprocess",
    "configparser",
    "virtwire.client.aio",
    "virtwire.client.asyncio",
    "virtwire.client.asyncio_client",
    "virtwire.client.aio_shell",
    "virtwire.client.bridge",
    "virtwire.client.tls",
    "virtwire.protocol.sasl",
)


def _run(program: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_import_virtwire_libvirt_leaves_out_trio_and_the_async_shells() -> None:
    out = _run(
        """
        import sys
        import virtwire.libvirt
        print(sorted(m for m in sys.argv[1:] if m in sys.modules))
        """,
        *THREADS_ONLY_AVOIDS,
    )
    assert out.strip() == "[]"


def test_a_threads_program_can_still_use_the_trio_and_asyncio_apis(virtwire_host: VirtwireServer) -> None:
    out = _run(
        """
        import sys
        import virtwire.libvirt as libvirt

        uri = sys.argv[1]
        conn = libvirt.open(uri)
        threads_version = conn.getLibVersion()
        name = conn.lookupByName("test").name()
        conn.close()
        # a whole tcp connection, open to close, needed none of them either
        print(sorted(m for m in sys.argv[2:] if m in sys.modules))

        import trio
        import virtwire.client

        assert "Connection" in virtwire.client.__all__
        from virtwire.client import Connection, connect
        assert connect is virtwire.client.aio.connect and Connection is virtwire.client.aio.Connection

        async def with_trio():
            async with await virtwire.client.connect(uri) as aconn:
                assert isinstance(aconn, Connection)
                dom = await aconn.lookupByName("test")
                return await aconn.getLibVersion(), dom.name

        print(trio.run(with_trio) == (threads_version, name))

        import asyncio
        import virtwire.client.asyncio

        async def with_asyncio():
            async with await virtwire.client.asyncio.connect(uri) as aconn:
                return await aconn.getLibVersion()

        print(asyncio.run(with_asyncio()) == threads_version)
        """,
        virtwire_host.tcp_uri,
        *THREADS_ONLY_AVOIDS,
    )
    assert out.split("\n") == ["[]", "True", "True", ""]


def test_import_virtwire_client_imports_trio_on_first_use_of_the_trio_api() -> None:
    out = _run(
        """
        import sys
        import virtwire.client
        print("trio" in sys.modules, "virtwire.client.aio" in sys.modules)
        virtwire.client.connect
        print("trio" in sys.modules, "virtwire.client.aio" in sys.modules)
        try:
            virtwire.client.no_such_name
        except AttributeError as exc:
            print(exc)
        """
    )
    assert out.split("\n") == [
        "False False",
        "True True",
        "module 'virtwire.client' has no attribute 'no_such_name'",
        "",
    ]


@pytest.mark.parametrize(
    ("entry", "avoids"),
    [
        # the asyncio API: neither trio nor the trio shell
        ("virtwire.client.asyncio", ("trio", "virtwire.client.aio", "virtwire.client.aio_transport")),
        # `virtwire serve` (launcher, then cli): no client shell at all
        ("virtwire.server.cli", ("virtwire.client", "virtwire.client.aio_shell", "virtwire.client.facade")),
    ],
)
def test_other_entry_points_import_only_the_shells_they_use(entry: str, avoids: tuple[str, ...]) -> None:
    out = _run(
        """
        import importlib, sys
        importlib.import_module(sys.argv[1])
        print(sorted(m for m in sys.argv[2:] if m in sys.modules))
        """,
        entry,
        *avoids,
    )
    assert out.strip() == "[]"
