"""Live vectors: our codec talks to a real libvirtd 9.0 (test driver) over its
read-only socket.  Every call is encoded by encode_message, every reply must
decode into the generated struct and re-encode to libvirtd's exact bytes, and our
error builders must produce byte for byte what libvirtd sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from virtwire.protocol import errors
from virtwire.protocol.framing import Header, MessageStatus, MessageType, PacketDecoder
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote
from virtwire.protocol.generated.virnet import remote_error
from virtwire.protocol.message import Message, decode_message, encode_message
from virtwire.protocol.typedparams import params_to_dict, params_to_list
from vwtestkit import RawRpcClient, RealLibvirtd


class Peer:
    """A raw connection whose packets are all built and parsed by our codec."""

    def __init__(self, client: RawRpcClient) -> None:
        self.client = client
        self.decoder = PacketDecoder()
        self.serial = 0

    def next_packet(self) -> bytes:
        while (packet := self.decoder.next_packet()) is None:
            chunk = self.client.sock.recv(65536)
            assert chunk, "libvirtd closed the connection"
            self.decoder.feed(chunk)
        return packet

    def call(self, procedure: str, /, **fields: Any) -> Message:
        proc = remote.PROCEDURES_BY_NAME[procedure]
        body = proc.args(**fields) if proc.args is not None else None
        serial, self.serial = self.serial, self.serial + 1
        header = Header(
            remote.REMOTE_PROGRAM, 1, proc.number, MessageType.VIR_NET_CALL, serial, MessageStatus.VIR_NET_OK
        )
        self.client.send(encode_message(Message(header, body)))
        while True:
            packet = self.next_packet()
            reply = decode_message(packet)
            assert encode_message(reply) == packet, procedure
            if reply.header.type == MessageType.VIR_NET_REPLY and reply.header.serial == serial:
                assert reply.header.procedure == proc.number
                return reply

    def ok(self, procedure: str, /, **fields: Any) -> Any:
        reply = self.call(procedure, **fields)
        assert reply.header.status == MessageStatus.VIR_NET_OK, reply.body
        expected = remote.PROCEDURES_BY_NAME[procedure].ret
        if expected is None:
            assert reply.body is None
        else:
            assert isinstance(reply.body, expected)
        return reply.body

    def error(self, procedure: str, /, **fields: Any) -> remote_error:
        reply = self.call(procedure, **fields)
        assert reply.header.status == MessageStatus.VIR_NET_ERROR
        assert isinstance(reply.body, remote_error)
        return reply.body


@pytest.fixture
def peer(real_libvirtd: RealLibvirtd) -> Iterator[Peer]:
    with RawRpcClient.unix(real_libvirtd.unix_ro_path) as client:
        yield Peer(client)


def test_calls_before_open_get_libvirts_error(peer: Peer) -> None:
    err = peer.error("CONNECT_GET_HOSTNAME")
    assert err.to_bytes() == errors.to_remote_error(errors.connection_not_open()).to_bytes()


def test_read_only_session(peer: Peer) -> None:
    assert peer.ok("AUTH_LIST").types == [remote.remote_auth_type.REMOTE_AUTH_NONE]
    peer.ok("CONNECT_OPEN", name="test:///default", flags=0)

    assert peer.ok("CONNECT_GET_HOSTNAME").hostname
    assert "<capabilities>" in peer.ok("CONNECT_GET_CAPABILITIES").capabilities
    info = peer.ok("NODE_GET_INFO")
    assert bytes(c & 0xFF for c in info.model).rstrip(b"\0") == b"i686"
    assert (info.cpus, info.mhz) == (16, 1400)

    listed = peer.ok("CONNECT_LIST_ALL_DOMAINS", need_results=1, flags=0)
    assert [d.name for d in listed.domains] == ["test"]
    dom = peer.ok("DOMAIN_LOOKUP_BY_NAME", name="test").dom
    assert dom == listed.domains[0]
    dominfo = peer.ok("DOMAIN_GET_INFO", dom=dom)
    assert (dominfo.maxMem, dominfo.nrVirtCpu) == (8388608, 2)
    assert "<name>test</name>" in peer.ok("DOMAIN_GET_XML_DESC", dom=dom, flags=0).xml
    assert peer.ok("DOMAIN_GET_STATE", dom=dom, flags=0).state in (
        C.VIR_DOMAIN_RUNNING,
        C.VIR_DOMAIN_PAUSED,
    )

    # typed parameters as libvirt itself serialises them
    sched = peer.ok("DOMAIN_GET_SCHEDULER_TYPE", dom=dom)
    params = peer.ok("DOMAIN_GET_SCHEDULER_PARAMETERS", dom=dom, nparams=sched.nparams).params
    assert params_to_list(params) == [("weight", C.VIR_TYPED_PARAM_UINT, 50)]
    stats = peer.ok("CONNECT_GET_ALL_DOMAIN_STATS", doms=[], stats=0, flags=0).retStats
    assert [s.dom.name for s in stats] == ["test"]
    as_list = params_to_list(stats[0].params)
    assert [(name, type_code) for name, type_code, _ in as_list] == [
        ("state.state", C.VIR_TYPED_PARAM_INT),
        ("state.reason", C.VIR_TYPED_PARAM_INT),
    ]
    assert params_to_dict(stats[0].params)["state.state"] in (C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_PAUSED)

    # errors: byte for byte what our builders make
    denied = peer.error("DOMAIN_SUSPEND", dom=dom)
    assert denied.to_bytes() == errors.to_remote_error(errors.operation_denied("virDomainSuspend")).to_bytes()
    # the daemon adds VIR_TYPED_PARAM_STRING_OKAY, which the test driver's virCheckFlags refuses
    bad_flags = peer.error("DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS", dom=dom, nparams=1, flags=0)
    expected = errors.unsupported_flags(0x4, "testDomainGetSchedulerParametersFlags", C.VIR_FROM_TEST)
    assert bad_flags.to_bytes() == errors.to_remote_error(expected).to_bytes()
    unsupported = peer.error("DOMAIN_GET_JOB_STATS", dom=dom, flags=0)
    assert (
        unsupported.to_bytes() == errors.to_remote_error(errors.no_support("virDomainGetJobStats")).to_bytes()
    )

    peer.ok("CONNECT_CLOSE")


def test_unknown_procedure_error_is_byte_identical(peer: Peer) -> None:
    header = Header(remote.REMOTE_PROGRAM, 1, 9999, MessageType.VIR_NET_CALL, 42, MessageStatus.VIR_NET_OK)
    peer.client.send(encode_message(Message(header, b"")))
    reply = decode_message(peer.next_packet())
    assert reply.header == header.reply(MessageStatus.VIR_NET_ERROR)
    assert isinstance(reply.body, remote_error)
    assert reply.body.to_bytes() == errors.to_remote_error(errors.unknown_procedure(9999)).to_bytes()
    assert errors.from_remote_error(reply.body).get_error_code() == C.VIR_ERR_NO_SUPPORT
