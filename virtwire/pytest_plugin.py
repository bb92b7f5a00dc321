"""pytest plugin: a real-wire libvirt hypervisor per test (installed as the ``virtwire`` plugin).

Fixtures
    virtwire_host   a fresh in-memory test:///default host for one test; ``.uri``
                    (TCP), ``.unix_uri``, ``.ro_uri`` (read-only socket), ``.hostname``.
    virtwire_hosts  a factory: ``virtwire_hosts(2)`` gives hosts named host-1, host-2,
                    ... that can migrate to each other; all stop after the test.

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


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("virtwire")
    group.addoption(
        "--virtwire-mode",
        choices=("inprocess", "subprocess"),
        default="inprocess",
        help="run virtwire hosts on a thread of the test process (default) or as subprocesses",
    )


@contextmanager
def _inprocess_host(hostname: str) -> Iterator[Host]:
    from virtwire.server.embed import ServerThread

    with ServerThread(hostname=hostname) as server:
        yield Host(server.hostname, server.uri, server.unix_uri, server.ro_uri, os.getpid())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _subprocess_host(hostname: str, startup_timeout: float = 30.0) -> Iterator[Host]:
    with tempfile.TemporaryDirectory(prefix="virtwire-") as tmp:
        rw, ro = Path(tmp, "libvirt-sock"), Path(tmp, "libvirt-sock-ro")
        port = _free_port()
        cmd = [
            sys.executable, "-m", "virtwire.server", "serve", "--hostname", hostname,
            "--tcp", f"127.0.0.1:{port}", "--unix", str(rw), "--unix-ro", str(ro),
        ]  # fmt: skip
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


def _starter(config: pytest.Config) -> Callable[[str], AbstractContextManager[Host]]:
    mode = config.getoption("--virtwire-mode", default="inprocess")
    return _subprocess_host if mode == "subprocess" else _inprocess_host


@pytest.fixture
def virtwire_host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """A fresh test:///default host for this test."""
    with _starter(request.config)("host-1") as host:
        yield host


@pytest.fixture
def virtwire_hosts(request: pytest.FixtureRequest) -> Iterator[Callable[[int], list[Host]]]:
    """A factory of hosts that migrate to each other: ``src, dst = virtwire_hosts(2)``."""
    start = _starter(request.config)
    with ExitStack() as stack:
        made = 0

        def factory(count: int = 2) -> list[Host]:
            nonlocal made
            hosts = [stack.enter_context(start(f"host-{made + i}")) for i in range(1, count + 1)]
            made += count
            return hosts

        yield factory
