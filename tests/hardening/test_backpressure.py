"""A client that never reads its replies cannot take the server's memory, and a
client's burst of large replies does not keep others from being served.

Large replies: DOMAIN_GET_XML_DESC of a domain whose <description> is 256 KiB.
Memory is measured as the server's RSS (bytes, generous bounds), never time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from virtwire.protocol.generated import remote as R
from vwtestkit import RawRpcClient, VirtwireServer, start_server, stop_servers
from vwtestkit.bigdomain import define_big, xml_desc_calls

P = R.remote_procedure
MiB = 1 << 20


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server() -> Iterator[VirtwireServer]:
    srv = start_server(pki=None, ro=False, tls=False)
    try:
        define_big(srv.tcp_port)
        yield srv
    finally:
        stop_servers([srv])


def big_domain_ref(client: RawRpcClient) -> R.remote_nonnull_domain:
    reply = client.call(
        P.REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, R.remote_domain_lookup_by_name_args("big").to_bytes()
    )
    assert reply.status == 0
    return R.remote_domain_lookup_by_name_ret.from_bytes(reply.payload).dom


def bystander_served(server: VirtwireServer) -> bool:
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as c:
        c.open()
        return c.call(P.REMOTE_PROC_CONNECT_GET_HOSTNAME).status == 0


def test_a_client_that_never_reads_is_held_back_not_buffered(server: VirtwireServer) -> None:
    calls = 3000  # 3000 replies of 256 KiB: 750 MiB if the server kept them all
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as hog:
        hog.open()
        dom = big_domain_ref(hog)
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        before = rss_bytes(server.pid)
        data = xml_desc_calls(dom, calls, 1000, pad=16 * 1024)
        sent_all = threading.Event()

        def send_everything() -> None:
            # blocks for as long as the server does not read (the point of the test)
            with contextlib.suppress(OSError):
                hog.sock.sendall(data)
                sent_all.set()

        sender = threading.Thread(target=send_everything)
        sender.start()
        try:
            # Bystanders in turn while the hog pushes: each one is served, and
            # the server's memory stays bounded however far the hog got.
            peak = 0
            for _ in range(40):
                assert bystander_served(server)
                peak = max(peak, rss_bytes(server.pid))
            assert not sent_all.is_set(), "the server read every call while owing all their replies"
            assert peak - before < 64 * MiB, f"server RSS grew by {(peak - before) / MiB:.0f} MiB"
        finally:
            hog.sock.shutdown(socket.SHUT_RDWR)  # ends the blocked sendall
            sender.join(60)
    # What the hog's connection held is given back once it is gone (the server trims
    # when it goes idle, at most once a second: look again for a while).
    assert bystander_served(server)
    after = rss_bytes(server.pid)
    for _ in range(50):
        if after - before < 32 * MiB:
            break
        time.sleep(0.2)
        after = rss_bytes(server.pid)
    assert after - before < 32 * MiB, f"{(after - before) / MiB:.0f} MiB stayed after the hog left"


def test_a_burst_of_large_replies_does_not_stall_a_bystander(server: VirtwireServer) -> None:
    calls = 400
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as burster:
        burster.open()
        dom = big_domain_ref(burster)
        received = 0
        first_reply = threading.Event()

        def read_all() -> None:
            nonlocal received
            for _ in range(calls):
                burster.recv_reply()
                received += 1
                first_reply.set()

        reader = threading.Thread(target=read_all)
        reader.start()
        try:
            burster.send(xml_desc_calls(dom, calls, 1000))
            assert first_reply.wait(60)
            assert bystander_served(server)
            served_while = received  # the burster's replies when the bystander got its answer
        finally:
            reader.join(120)
        assert received == calls
        assert served_while < calls, "the bystander waited for the whole burst"
