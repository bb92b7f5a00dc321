"""pytest plugin: a real-wire libvirt hypervisor per test (installed as the ``virtwire`` plugin).

Fixtures
    virtwire_host   a fresh in-memory test:///default host for one test; ``.uri``
                    (TCP), ``.unix_uri``, ``.ro_uri`` (read-only socket), ``.hostname``.
    virtwire_hosts  a factory: ``virtwire_hosts(2)`` gives hosts named host-1, host-2,
                    ... that can migrate to each other; all stop after the test.
                    ``virtwire_hosts(1, node_xml="lab.xml")`` starts from a node file.

Marker ``@pytest.mark.virtwire_node("lab.xml")``: the test's hosts start from that node
description (libvirt's test-driver format, as ``virtwire serve --node-xml``) instead of
test:///default; a relative path is taken from the test file's directory.

Any client works with them: libvirt-python, virsh, ``virtwire.libvirt``, go-libvirt.

Option ``--virtwire-mode=inprocess|subprocess`` (default inprocess: the server runs
on a thread of the test process and starts in milliseconds; subprocess runs
``python -m virtwire.server serve`` per host, for tests that kill or signal it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Host", "virtwire_host", "virtwire_hosts"]


@dataclass(frozen=True, slots=True)
class Host:
    """Where a test reaches one host."""

    hostname: str
    uri: str
    unix_uri: str
    ro_uri: str
    pid: int  # the serving process (the test process itself when in-process)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "virtwire_node(path): start the test's virtwire hosts from this node XML file"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("virtwire")
    group.addoption(
        "--virtwire-mode",
        choices=("inprocess", "subprocess"),
        default="inprocess",
        help="run virtwire hosts on a thread of the test process (default) or as subprocesses",
    )


NodeXML = Path | None


@contextmanager
def _inprocess_host(hostname: str, node_xml: NodeXML = None) -> Iterator[Host]:
    from virtwire.server.embed import ServerThread

    with ServerThread(hostname=hostname, node_xml=node_xml) as server:
        yield Host(server.hostname, server.uri, server.unix_uri, server.ro_uri, os.getpid())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _subprocess_host(
    hostname: str, node_xml: NodeXML = None, startup_timeout: float = 30.0
) -> Iterator[Host]:
    with tempfile.TemporaryDirectory(prefix="virtwire-") as tmp:
        rw, ro = Path(tmp, "libvirt-sock"), Path(tmp, "libvirt-sock-ro")
        port = _free_port()
        cmd = [
            sys.executable, "-m", "virtwire.server", "serve", "--hostname", hostname,
            "--tcp", f"127.0.0.1:{port}", "--unix", str(rw), "--unix-ro", str(ro),
        ]  # fmt: skip
        if node_xml is not None:
            cmd += ["--node-xml", str(node_xml)]
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_timeout
            while not (rw.exists() and ro.exists()):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                    raise RuntimeError(f"virtwire serve did not start: {output}")
                time.sleep(0.01)
            yield Host(
                hostname,
                f"test+tcp://127.0.0.1:{port}/default",
                f"test+unix:///default?socket={rw}",
                f"test+unix:///default?socket={ro}",
                process.pid,
            )
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _starter(config: pytest.Config) -> Callable[[str, NodeXML], AbstractContextManager[Host]]:
    mode = config.getoption("--virtwire-mode", default="inprocess")
    return _subprocess_host if mode == "subprocess" else _inprocess_host


def _node_xml(request: pytest.FixtureRequest, given: str | Path | None = None) -> NodeXML:
    """The node file a test asked for (argument, else its virtwire_node marker), made absolute."""
    if given is None:
        marker = request.node.get_closest_marker("virtwire_node")
        if marker is None:
            return None
        given = marker.args[0]
    path = Path(given)
    return path if path.is_absolute() else Path(request.path).parent / path


@pytest.fixture
def virtwire_host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """A fresh test:///default host (or the marker's node) for this test."""
    with _starter(request.config)("host-1", _node_xml(request)) as host:
        yield host


@pytest.fixture
def virtwire_hosts(request: pytest.FixtureRequest) -> Iterator[Callable[..., list[Host]]]:
    """A factory of hosts that migrate to each other: ``src, dst = virtwire_hosts(2)``."""
    start = _starter(request.config)
    with ExitStack() as stack:
        made = 0

        def factory(count: int = 2, node_xml: str | Path | None = None) -> list[Host]:
            nonlocal made
            node = _node_xml(request, node_xml)
            hosts = [stack.enter_context(start(f"host-{made + i}", node)) for i in range(1, count + 1)]
            made += count
            return hosts

        yield factory
