"""At max_clients, libvirtd stops accepting: the next client waits in the listen
backlog and is served as soon as a slot frees.  Same here, over TCP, TLS and
unix, checked side by side with a real libvirtd started with the same limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer
from vwtestkit.rawrpc import PROC_AUTH_LIST

MAX_CLIENTS = 2
# How long the waiting client is watched for a (wrong) early answer.  Not a
# timed assertion on our speed: only "nothing happens while the server is full".
QUIET_PERIOD = 1.0


@dataclass
class Endpoints:
    tcp_port: int
    unix_path: str
    tls_port: int
    pkipath: str

    def connector(self, transport: str) -> Callable[[], RawRpcClient]:
        match transport:
            case "tcp":
                return lambda: RawRpcClient.tcp("127.0.0.1", self.tcp_port)
            case "unix":
                return lambda: RawRpcClient.unix(self.unix_path)
        return lambda: RawRpcClient.tls("127.0.0.1", self.tls_port, self.pkipath)


def ours(factory: Callable[..., VirtwireServer]) -> Endpoints:
    srv = factory(
        "--max-clients", str(MAX_CLIENTS), "--max-anonymous-clients", str(MAX_CLIENTS), ro=False, tls=True
    )
    assert srv.tls_port is not None
    return Endpoints(srv.tcp_port, str(srv.unix_path), srv.tls_port, str(srv.client_pkipath))


def theirs(factory: Callable[..., RealLibvirtd]) -> Endpoints:
    conf = f"max_clients = {MAX_CLIENTS}\nmax_anonymous_clients = {MAX_CLIENTS}\n"
    d = factory(hold=False, conf_extra=conf)  # a holder connection would take a slot
    return Endpoints(d.tcp_port, str(d.unix_path), d.tls_port, str(d.pkipath))


def waits_then_served(connect: Callable[[], RawRpcClient]) -> None:
    holders = [connect() for _ in range(MAX_CLIENTS)]
    for holder in holders:
        holder.open()
    outcome: list[object] = []

    def late_client() -> None:
        try:
            with connect() as late:  # TLS: the handshake itself waits for the accept
                outcome.append(late.call(PROC_AUTH_LIST).status)
        except Exception as exc:  # reported by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=late_client)
    thread.start()
    try:
        thread.join(QUIET_PERIOD)
        assert outcome == [], "a client past max_clients was answered or dropped at once"
        holders.pop().close()  # a slot frees: the waiting client is accepted and served
        thread.join(60)
        assert outcome == [0]
    finally:
        for holder in holders:
            holder.close()
        thread.join(60)


@pytest.mark.parametrize("transport", ["tcp", "unix", "tls"])
def test_a_client_past_max_clients_waits_and_is_served_when_a_slot_frees(
    transport: str,
    virtwire_server: Callable[..., VirtwireServer],
    fresh_libvirtd: Callable[..., RealLibvirtd],
) -> None:
    waits_then_served(theirs(fresh_libvirtd).connector(transport))
    waits_then_served(ours(virtwire_server).connector(transport))
