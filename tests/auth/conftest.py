"""Both servers with SASL, configured alike: a real libvirtd (sasldb made by
saslpasswd2, SASL_CONF_PATH pointing at its libvirt.conf) and `virtwire serve`
(users file made by `virtwire passwd`).  Same users, same mechanisms
(SCRAM-SHA-256, SCRAM-SHA-1, PLAIN), SASL on TLS, on the read-write unix
socket and (libvirtd: in a second daemon, see test_sasl_tcp_rule) on plain TCP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import (
    RealLibvirtd,
    VirtwireServer,
    hangguard,
    start_libvirtd,
    start_server,
    stop_libvirtd,
    stop_servers,
)
from vwtestkit.sasl import make_sasldb, make_users_file, write_auth_conf

USERS = {"alice": "secret1", "bob": "hunter2", "carol": "pässwörd ☃"}

# libvirtd.conf: the first value of a setting wins, so these override the fixture's
# "none" (TCP stays "none": libvirtd-up.sh checks readiness with a plain virsh over TCP).
LIBVIRTD_SASL_CONF = 'auth_unix_rw = "sasl"\nauth_tls = "sasl"\n'


@pytest.fixture(scope="module")
def sasl_libvirtd(
    tmp_path_factory: pytest.TempPathFactory, fresh_libvirtd_module: Callable[..., RealLibvirtd]
) -> RealLibvirtd:
    conf = make_sasldb(tmp_path_factory.mktemp("sasldb"), USERS)
    return fresh_libvirtd_module(hold=False, conf_extra=LIBVIRTD_SASL_CONF, sasl_conf=conf)


@pytest.fixture(scope="module")
def fresh_libvirtd_module(
    tmp_path_factory: pytest.TempPathFactory, pki: Path
) -> Iterator[Callable[..., RealLibvirtd]]:
    started: list[RealLibvirtd] = []

    def factory(**options: Any) -> RealLibvirtd:
        daemon = start_libvirtd(tmp_path_factory.mktemp("sasl-libvirtd"), pki=pki, **options)
        started.append(daemon)
        return daemon

    def stop_all() -> None:
        for daemon in started:
            stop_libvirtd(daemon)

    hangguard.on_abort(started, stop_all)
    try:
        yield factory
    finally:
        hangguard.forget_on_abort(started)
        stop_all()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_users_file(tmp_path_factory.mktemp("vw-users") / "sasl-users", USERS)


@pytest.fixture(scope="module")
def sasl_server(pki: Path, users_file: Path) -> Iterator[VirtwireServer]:
    server = start_server(
        "--auth-unix-rw", "sasl", "--auth-tls", "sasl", "--auth-tcp", "sasl",
        "--sasl-users-file", str(users_file),
        pki=pki,
    )  # fmt: skip
    hangguard.on_abort(server, lambda: stop_servers([server]))
    try:
        yield server
    finally:
        hangguard.forget_on_abort(server)
        stop_servers([server])


@pytest.fixture
def auth_conf(tmp_path: Path) -> Callable[[str, str], Path]:
    """auth.conf for localhost and 127.0.0.1 with the given user and password."""

    def make(user: str, password: str) -> Path:
        return write_auth_conf(tmp_path / f"auth-{user}.conf", ["localhost", "127.0.0.1"], user, password)

    return make
