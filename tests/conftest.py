"""Shared fixtures: a real libvirtd, a test PKI, our own server, virsh, raw RPC.

The helpers live in tests/fixtures/vwtestkit (on pytest's pythonpath), so tests
may also import them: `from vwtestkit import RawRpcClient, run_virsh, free_port`.

Environment rule: with CI=true a missing libvirt/virsh/openssl/libvirt-python is
a test FAILURE; elsewhere such tests are skipped with the reason.

Fixtures (session-scoped unless noted)

pki -> Path
    Directory with cacert.pem cakey.pem servercert.pem serverkey.pem (SAN
    IP:127.0.0.1, DNS:localhost) clientcert.pem clientkey.pem, and a second
    client identity clientcert-other.pem clientkey-other.pem (O=other,CN=intruder)
    for tls_allowed_dn tests. Made by tests/fixtures/make-pki.sh (openssl CLI).
    `vwtestkit.client_pkipath(pki, "client" | "other")` gives a ?pkipath= dir
    (cacert.pem, clientcert.pem, clientkey.pem) for either identity.

real_libvirtd -> vwtestkit.RealLibvirtd
    A REAL /usr/sbin/libvirtd (test driver only) on 127.0.0.1 with auth none,
    using `pki`. Attributes: tcp_uri, tls_uri (…?pkipath=PKI), unix_uri,
    unix_ro_uri, tcp_port, tls_port, sockdir, unix_path, unix_ro_path, pkipath,
    pid, holder_pid, workdir, log(). A holder connection keeps test:///default's
    state alive for the whole session, so it is SHARED: tests that change state
    (suspend, define, ...) must put it back, or use fresh_libvirtd.

fresh_libvirtd (function) -> factory(hold=True, conf_extra=None) -> RealLibvirtd
    A new daemon per call, stopped at the end of the test. conf_extra is
    appended to its libvirtd.conf (e.g. 'max_client_requests = 1').

virtwire_server (function) -> factory(*extra_args, ro=True, tls=True,
        hostname=None, state_dir=None, env=None) -> vwtestkit.VirtwireServer
    Starts `python -m virtwire.server serve --tcp 127.0.0.1:P --unix PATH
    [--unix-ro PATH] [--tls 127.0.0.1:P --pki-dir PKI] [--hostname N]
    [--state-dir D] EXTRA...` on free ports and waits until it listens.
    Attributes: tcp_uri (test+tcp://127.0.0.1:P/default), tls_uri (with a client
    pkipath), tls_uri_with(pkipath), unix_uri, unix_ro_uri, tcp_port, tls_port,
    unix_path, unix_ro_path, pki_dir, client_pkipath, pid, log (stdout+stderr so
    far), running(), stop() (SIGTERM, wait, assert exit code 0). Every server is
    stopped at teardown, which also asserts a clean exit.

virtwire_host -> VirtwireServer
    One default server (ro, tls) for the whole session, for read-mostly tests.

run_virsh -> vwtestkit.run_virsh(uri, *args, timeout=30, ro=False, check=False)
    Runs the real /usr/bin/virsh with a HOME-independent env; returns a text
    CompletedProcess (check=True raises AssertionError with virsh's output).

real_libvirt -> module
    The real libvirt-python 9.0 (`import libvirt` in the venv).

raw_rpc -> vwtestkit.RawRpcClient (the class)
    Stdlib raw packet client: RawRpcClient.tcp(host, port) / .unix(path) /
    .tls(host, port, pkipath); send(bytes), send_call(proc, payload, serial=,
    program=, version=, mtype=, status=), recv_packet(), recv_reply(serial),
    call(proc, payload), open(uri, flags), peer_closed(timeout).

free_port -> vwtestkit.free_port (function returning a free 127.0.0.1 port)

Hang guard: each test phase (setup, call, teardown) that runs longer than 300 s
(env VIRTWIRE_TEST_HANG_LIMIT, or @pytest.mark.hang_limit(seconds)) fails with
every thread's stack on stderr, and the session goes on; if the code is stuck
in C and cannot be interrupted, the session is aborted 60 s later (exit 70)
after stopping the daemons these fixtures started (vwtestkit.hangguard).

Hypothesis: no per-example deadline (a deadline is a timed assertion, and this
suite shares 2 cores); with CI=true examples are derandomized, so a CI failure
reproduces with the same command.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import vwtestkit
from hypothesis import HealthCheck, settings
from vwtestkit import (
    RawRpcClient,
    RealLibvirtd,
    ServerStartError,
    VirtwireServer,
    hangguard,
    make_pki,
    start_libvirtd,
    start_server,
    stop_libvirtd,
    stop_servers,
    unavailable,
)

# pytester: the pytest plugin's own tests run user suites with it.
pytest_plugins = ["pytester"]

settings.register_profile(
    "virtwire", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("virtwire-ci", parent=settings.get_profile("virtwire"), derandomize=True)
settings.load_profile("virtwire-ci" if vwtestkit.in_ci() else "virtwire")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("vwtestkit.hangguard"):
        config.pluginmanager.register(hangguard, "vwtestkit.hangguard")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def _stopped_even_on_abort(key: object, cleanup: Callable[[], None]) -> Iterator[None]:
    # Normal teardown runs `cleanup`; so does the hang guard when it aborts the session.
    hangguard.on_abort(key, cleanup)
    try:
        yield
    finally:
        hangguard.forget_on_abort(key)
        cleanup()


@pytest.fixture(scope="session")
def real_libvirtd(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[RealLibvirtd]:
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd"), pki=pki, hold=True)
    with _stopped_even_on_abort(daemon, lambda: stop_libvirtd(daemon)):
        yield daemon


@pytest.fixture
def fresh_libvirtd(
    tmp_path_factory: pytest.TempPathFactory, pki: Path
) -> Iterator[Callable[..., RealLibvirtd]]:
    started: list[RealLibvirtd] = []

    def factory(*, hold: bool = True, conf_extra: str | None = None) -> RealLibvirtd:
        daemon = start_libvirtd(
            tmp_path_factory.mktemp("fresh-libvirtd"), pki=pki, hold=hold, conf_extra=conf_extra
        )
        started.append(daemon)
        return daemon

    def stop_all() -> None:
        for daemon in started:
            stop_libvirtd(daemon)

    with _stopped_even_on_abort(started, stop_all):
        yield factory


def _start_or_fail(pki: Path, *extra_args: str, **options: Any) -> VirtwireServer:
    try:
        return start_server(*extra_args, pki=pki, **options)
    except ServerStartError as exc:
        problem = str(exc)
    # Our own product: never a skip. (Failing outside `except` keeps the report to one copy.)
    pytest.fail(f"could not start {problem}", pytrace=False)


@pytest.fixture
def virtwire_server(pki: Path) -> Iterator[Callable[..., VirtwireServer]]:
    started: list[VirtwireServer] = []

    def factory(*extra_args: str, **options: Any) -> VirtwireServer:
        server = _start_or_fail(pki, *extra_args, **options)
        started.append(server)
        return server

    with _stopped_even_on_abort(started, lambda: stop_servers(started)):
        yield factory


@pytest.fixture(scope="session")
def virtwire_host(pki: Path) -> Iterator[VirtwireServer]:
    server = _start_or_fail(pki)
    with _stopped_even_on_abort(server, lambda: stop_servers([server])):
        yield server


@pytest.fixture(scope="session")
def run_virsh() -> Callable[..., Any]:
    return vwtestkit.run_virsh


@pytest.fixture(scope="session")
def real_libvirt() -> ModuleType:
    try:
        module = importlib.import_module("libvirt")
    except ImportError as exc:
        unavailable(f"libvirt-python is not importable in this venv ({exc}); scripts/test.sh installs it")
    return module


@pytest.fixture(scope="module")
def libvirt_test_driver(real_libvirt: ModuleType) -> Iterator[Any]:
    """libvirt's own test:///default, in process through real libvirt-python: the reference
    for how libvirt 9.0 parses and prints definitions."""
    conn = real_libvirt.open("test:///default")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def raw_rpc() -> type[RawRpcClient]:
    return RawRpcClient


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    return vwtestkit.free_port
