"""from_remote_error against the real libvirt client: a tiny server built on our
codec answers libvirt-python's getHostname() with a chosen remote_error, and the
libvirtError real libvirt.so raises must equal the one from_remote_error builds."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest
from virtwire.protocol.errors import from_remote_error
from virtwire.protocol.framing import Header, MessageStatus, PacketDecoder
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote
from virtwire.protocol.generated.virnet import remote_error
from virtwire.protocol.message import Message, decode_message, encode_message

PROC = remote.remote_procedure


class OneErrorServer:
    """Serves libvirt clients on loopback, failing CONNECT_GET_HOSTNAME with `error`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.error = remote_error(1, 0, "unset", 2, None, None, None, None, 0, 0, None)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _reply(self, call: Header) -> Message:
        match call.procedure:
            case PROC.REMOTE_PROC_AUTH_LIST:
                return Message(
                    call.reply(),
                    remote.remote_auth_list_ret(types=[remote.remote_auth_type.REMOTE_AUTH_NONE]),
                )
            case PROC.REMOTE_PROC_CONNECT_SUPPORTS_FEATURE:
                return Message(call.reply(), remote.remote_connect_supports_feature_ret(supported=0))
            case PROC.REMOTE_PROC_CONNECT_OPEN | PROC.REMOTE_PROC_CONNECT_CLOSE:
                return Message(call.reply(), None)
            case _:
                return Message(call.reply(MessageStatus.VIR_NET_ERROR), self.error)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self._serve_one(conn)

    def _serve_one(self, conn: socket.socket) -> None:
        # Like libvirtd, close the socket right after answering CONNECT_CLOSE: a
        # client with an event loop registered (an earlier test may have done so in
        # this process) only drops its end when that loop runs.
        decoder = PacketDecoder()
        while data := conn.recv(65536):
            decoder.feed(data)
            for packet in decoder:
                call = decode_message(packet).header
                conn.sendall(encode_message(self._reply(call)))
                if call.procedure == PROC.REMOTE_PROC_CONNECT_CLOSE:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def server(real_libvirt: ModuleType) -> Iterator[OneErrorServer]:
    real_libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    srv = OneErrorServer()
    yield srv
    srv.close()


def _rerr(code: int, domain: int, message: str | None, **extra: object) -> remote_error:
    fields: dict[str, object] = dict(
        code=code,
        domain=domain,
        message=message,
        level=C.VIR_ERR_ERROR,
        dom=None,
        str1=None,
        str2=None,
        str3=None,
        int1=0,
        int2=0,
        net=None,
    )
    fields.update(extra)
    return remote_error(**fields)  # type: ignore[arg-type]


CASES = [
    _rerr(
        C.VIR_ERR_NO_DOMAIN,
        C.VIR_FROM_QEMU,
        "Domain not found: x",
        str1="Domain not found: %s",
        str2="x",
        int1=-1,
        int2=-1,
    ),
    _rerr(C.VIR_ERR_RPC, C.VIR_FROM_RPC, "unknown procedure: 59", str1="%s", str2="unknown procedure: 59"),
    _rerr(C.VIR_ERR_RPC, C.VIR_FROM_REMOTE, "unknown procedure: 59"),
    _rerr(C.VIR_ERR_RPC, C.VIR_FROM_QEMU, "unknown procedure: 59"),
    _rerr(C.VIR_ERR_RPC, C.VIR_FROM_RPC, "unknown procedure: 59", level=C.VIR_ERR_WARNING),
    _rerr(C.VIR_ERR_INVALID_NWFILTER, C.VIR_FROM_SECRET, "old server's secret error"),
    _rerr(C.VIR_ERR_INVALID_NWFILTER, C.VIR_FROM_NWFILTER, "a real nwfilter error"),
    _rerr(C.VIR_WAR_NO_SECRET, C.VIR_FROM_QEMU, "old server's timeout"),
    _rerr(C.VIR_ERR_INVALID_SECRET, C.VIR_FROM_XEN, "old server's persist failure"),
    _rerr(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, None),
    _rerr(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_DOMAIN, "m", str3="three", int1=7, int2=-9),
]


@pytest.mark.parametrize("wire", CASES, ids=[f"{e.code}-{e.domain}-{e.level}" for e in CASES])
def test_client_translation_matches_libvirt(
    server: OneErrorServer, real_libvirt: ModuleType, wire: remote_error
) -> None:
    server.error = wire
    conn = real_libvirt.open(f"test+tcp://127.0.0.1:{server.port}/default")
    try:
        with pytest.raises(real_libvirt.libvirtError) as caught:
            conn.getHostname()
    finally:
        conn.close()
    ours = from_remote_error(wire)
    assert ours.err == caught.value.err
    assert str(ours) == str(caught.value)
