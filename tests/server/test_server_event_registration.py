"""Event registration of every family, side by side with a real libvirtd.

Network, storage pool, node device and secret callbacks, and the legacy
domain register/deregister pair, answer what libvirtd answers: callback IDs
on success, and libvirtd's errors for unknown event IDs and callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import remote_error
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer
from vwtestkit.rawrpc import MESSAGE, STATUS_OK, RawPacket, xdr_uint

P = R.remote_procedure

# (register procedure, deregister procedure, VIR_*_EVENT_ID_LAST)
FAMILY_PROCEDURES: list[tuple[int, int, int]] = [
    (
        P.REMOTE_PROC_CONNECT_NETWORK_EVENT_REGISTER_ANY,
        P.REMOTE_PROC_CONNECT_NETWORK_EVENT_DEREGISTER_ANY,
        C.VIR_NETWORK_EVENT_ID_LAST,
    ),
    (
        P.REMOTE_PROC_CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY,
        P.REMOTE_PROC_CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY,
        C.VIR_STORAGE_POOL_EVENT_ID_LAST,
    ),
    (
        P.REMOTE_PROC_CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY,
        P.REMOTE_PROC_CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY,
        C.VIR_NODE_DEVICE_EVENT_ID_LAST,
    ),
]
FAMILIES = [
    pytest.param(*procs, id=name)
    for procs, name in zip(FAMILY_PROCEDURES, ("network", "storage-pool", "node-device"), strict=True)
]


def answer(packet: RawPacket) -> tuple[object, ...]:
    """A reply as comparable data: ("ok", payload) or the error's fields."""
    if packet.status == STATUS_OK:
        return ("ok", packet.payload)
    e = remote_error.from_bytes(packet.payload)
    return ("error", e.code, e.domain, e.message, e.level, e.str1, e.int1)


@pytest.fixture
def both(
    real_libvirtd: RealLibvirtd, virtwire_host: VirtwireServer
) -> Iterator[tuple[RawRpcClient, RawRpcClient]]:
    with (
        RawRpcClient.tcp("127.0.0.1", real_libvirtd.tcp_port, timeout=10) as theirs,
        RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as ours,
    ):
        theirs.open()
        ours.open()
        yield theirs, ours


def register_args(event_id: int) -> bytes:
    return xdr_uint(event_id & 0xFFFFFFFF) + xdr_uint(0)  # eventID, no object filter


@pytest.mark.parametrize(("register", "deregister", "last"), FAMILIES)
def test_register_deregister_like_libvirtd(
    both: tuple[RawRpcClient, RawRpcClient], register: int, deregister: int, last: int
) -> None:
    theirs, ours = both
    for event_id in (0, last - 1, last, -1):
        got = [answer(c.call(register, register_args(event_id))) for c in (theirs, ours)]
        if got[0][0] == "ok":
            assert got[1][0] == "ok", (event_id, got)
            # Callback IDs come from per-daemon counters: deregister each with its own,
            # then once more, which fails the same way on both (the message names the ID).
            again = []
            for client, reply in zip((theirs, ours), got, strict=True):
                callback = reply[1]
                assert isinstance(callback, bytes)
                assert answer(client.call(deregister, callback)) == ("ok", b"")
                again.append(answer(client.call(deregister, callback)))
            assert again[0][:3] == again[1][:3] and again[0][0] == "error", again
        else:
            assert got[0] == got[1], (event_id, got)


def test_unknown_callback_id_like_libvirtd(both: tuple[RawRpcClient, RawRpcClient]) -> None:
    theirs, ours = both
    for _register, deregister, _last in FAMILY_PROCEDURES:
        got = [answer(c.call(deregister, xdr_uint(987654))) for c in (theirs, ours)]
        assert got[0] == got[1]


def test_secret_events_like_libvirtds_secret_driver(virtwire_host: VirtwireServer) -> None:
    # libvirt's test driver has no secrets (its libvirtd says NO_SUPPORT); we serve
    # them, with the errors remote_daemon_dispatch.c gives for the secret family.
    register = P.REMOTE_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY
    deregister = P.REMOTE_PROC_CONNECT_SECRET_EVENT_DEREGISTER_ANY
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as raw:
        raw.open()
        for event_id in (C.VIR_SECRET_EVENT_ID_LIFECYCLE, C.VIR_SECRET_EVENT_ID_VALUE_CHANGED):
            reply = raw.call(register, register_args(event_id))
            assert reply.status == STATUS_OK
            assert answer(raw.call(deregister, reply.payload)) == ("ok", b"")
            callback = int.from_bytes(reply.payload, "big")
            err = answer(raw.call(deregister, reply.payload))
            assert err[1:4] == (
                C.VIR_ERR_INTERNAL_ERROR,
                C.VIR_FROM_RPC,
                f"internal error: secret event callback {callback} not registered",
            )
        err = answer(raw.call(register, register_args(C.VIR_SECRET_EVENT_ID_LAST)))
        assert err[1:4] == (
            C.VIR_ERR_INTERNAL_ERROR,
            C.VIR_FROM_RPC,
            f"internal error: unsupported secret event ID {C.VIR_SECRET_EVENT_ID_LAST}",
        )


def test_legacy_domain_register_gets_lifecycle_events(virtwire_server: Callable[..., VirtwireServer]) -> None:
    server = virtwire_server(ro=False, tls=False)  # its own: suspend/resume changes test's state reason
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port, timeout=10) as raw:
        raw.open()
        reply = raw.call(P.REMOTE_PROC_CONNECT_DOMAIN_EVENT_REGISTER)
        assert answer(reply) == ("ok", xdr_uint(0))  # cb_registered, left 0 by libvirtd
        dom = raw.call(
            P.REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, R.remote_domain_lookup_by_name_args(name="test").to_bytes()
        )
        ref = R.remote_domain_lookup_by_name_ret.from_bytes(dom.payload).dom
        suspend = R.remote_domain_suspend_args(dom=ref).to_bytes()
        resume = R.remote_domain_resume_args(dom=ref).to_bytes()
        raw.send_call(P.REMOTE_PROC_DOMAIN_SUSPEND, suspend, serial=100)
        events: list[RawPacket] = []
        reply_seen = False
        while not (reply_seen and events):
            packet = RawPacket.parse(raw.recv_packet())
            if packet.type == MESSAGE:
                events.append(packet)
            elif packet.serial == 100:
                reply_seen = True
        assert events[0].procedure == P.REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE
        msg = R.remote_domain_event_lifecycle_msg.from_bytes(events[0].payload)
        assert (msg.dom.name, msg.event) == ("test", C.VIR_DOMAIN_EVENT_SUSPENDED)
        assert answer(raw.call(P.REMOTE_PROC_CONNECT_DOMAIN_EVENT_DEREGISTER)) == ("ok", xdr_uint(0))
        assert answer(raw.call(P.REMOTE_PROC_DOMAIN_RESUME, resume, serial=101)) == ("ok", b"")
        # No callback left: a second deregistration is libvirtd's error.
        err = answer(raw.call(P.REMOTE_PROC_CONNECT_DOMAIN_EVENT_DEREGISTER))
        assert err[:4] == (
            "error",
            C.VIR_ERR_INTERNAL_ERROR,
            C.VIR_FROM_RPC,
            "internal error: domain event 0 not registered",
        )
