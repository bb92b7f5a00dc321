"""The virtwire_server / virtwire_host fixtures: our server reachable on every transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from vwtestkit import RawRpcClient, VirtwireServer
from vwtestkit.rawrpc import PROC_CONNECT_CLOSE, STATUS_OK

TRANSPORTS = [("tcp_uri", False), ("tls_uri", False), ("unix_uri", False), ("unix_ro_uri", True)]


@pytest.mark.parametrize(("attr", "ro"), TRANSPORTS, ids=[t[0] for t in TRANSPORTS])
def test_virsh_lists_test_domain_on_virtwire(
    virtwire_host: VirtwireServer, run_virsh: Callable[..., Any], attr: str, ro: bool
) -> None:
    proc = run_virsh(getattr(virtwire_host, attr), "list", "--all", ro=ro, check=True)
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["1", "test", "running"] in rows, proc.stdout + virtwire_host.log


def test_raw_client_open_close_on_virtwire(virtwire_host: VirtwireServer) -> None:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port) as raw:
        raw.open()
        assert raw.call(PROC_CONNECT_CLOSE).status == STATUS_OK
        assert raw.peer_closed()


def test_factory_options_and_clean_stop(virtwire_server: Callable[..., VirtwireServer]) -> None:
    server = virtwire_server(tls=False, ro=False)
    assert server.running()
    assert server.tls_port is None
    with pytest.raises(AttributeError):
        _ = server.tls_uri
    with pytest.raises(AttributeError):
        _ = server.unix_ro_uri
    assert "--tls" not in server.argv and "--unix-ro" not in server.argv
    assert server.stop() == 0
    assert not server.running()
