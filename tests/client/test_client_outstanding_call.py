"""A call the server holds back must not stall other threads' calls on the same
connection.

libvirt-python 9.0's client does stall them (a second back-to-back call waits until
the outstanding call completes), which deadlocks a program that needs one of those
calls to let the outstanding one finish (migrateStartPostCopy while migrateToURI3
runs). virtwire's client reads for whichever thread waits, so they go through.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from virtwire.protocol.framing import PacketDecoder
from virtwire.protocol.generated import remote
from virtwire.protocol.message import Message, decode_message, encode_message

import virtwire.libvirt as vlibvirt

PROC = remote.remote_procedure
QUICK_CALLS = 20
AUTH_NONE = remote.remote_auth_type.REMOTE_AUTH_NONE
HELD_REPLY = remote.remote_connect_get_hostname_ret(hostname="held")


class HoldingDaemon:
    """Answers everything at once, except CONNECT_GET_HOSTNAME: that reply is held
    until `release` is set."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.release = threading.Event()
        self.holding = threading.Event()  # the held call has arrived
        self.threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._start(self._serve, conn)

    def _send(self, conn: socket.socket, lock: threading.Lock, message: Message) -> None:
        with lock:
            conn.sendall(encode_message(message))

    def _held(self, conn: socket.socket, lock: threading.Lock, message: Message) -> None:
        self.release.wait(60)
        self._send(conn, lock, message)

    def _serve(self, conn: socket.socket) -> None:
        lock = threading.Lock()
        decoder = PacketDecoder()
        with conn:
            while data := conn.recv(65536):
                decoder.feed(data)
                for packet in decoder:
                    call = decode_message(packet).header
                    body: object = None
                    match call.procedure:
                        case PROC.REMOTE_PROC_AUTH_LIST:
                            body = remote.remote_auth_list_ret(
                                types=[remote.remote_auth_type.REMOTE_AUTH_NONE]
                            )
                        case PROC.REMOTE_PROC_CONNECT_SUPPORTS_FEATURE:
                            body = remote.remote_connect_supports_feature_ret(supported=0)
                        case PROC.REMOTE_PROC_CONNECT_GET_LIB_VERSION:
                            body = remote.remote_connect_get_lib_version_ret(lib_ver=9000000)
                        case PROC.REMOTE_PROC_CONNECT_GET_HOSTNAME:
                            held = Message(call.reply(), HELD_REPLY)
                            self._start(self._held, conn, lock, held)
                            self.holding.set()
                            continue
                    self._send(conn, lock, Message(call.reply(), body))  # type: ignore[arg-type]
                    if call.procedure == PROC.REMOTE_PROC_CONNECT_CLOSE:
                        return

    def close(self) -> None:
        self.release.set()
        self.listener.close()


@pytest.fixture
def daemon() -> Iterator[HoldingDaemon]:
    d = HoldingDaemon()
    yield d
    d.close()


def test_calls_go_through_while_another_threads_call_is_held(daemon: HoldingDaemon) -> None:
    conn = vlibvirt.open(f"test+tcp://127.0.0.1:{daemon.port}/default")
    held_result: list[str] = []
    waiter = threading.Thread(target=lambda: held_result.append(conn.getHostname()))
    waiter.start()
    try:
        assert daemon.holding.wait(30)
        # Pairs of calls with a pause between pairs, as a polling loop makes them,
        # while getHostname waits for its reply in the other thread.
        versions = []
        for _ in range(QUICK_CALLS // 2):
            versions += [conn.getLibVersion(), conn.getLibVersion()]
            time.sleep(0.02)
        assert versions == [9000000] * QUICK_CALLS
        assert waiter.is_alive() and held_result == []  # the held call is still outstanding
    finally:
        daemon.release.set()
        waiter.join(30)
    assert held_result == ["held"]
    conn.close()
