"""The sans-IO core: packets, classification, errors, serials, the keepalive clock;
and the sync transport's connection errors against libvirt-python's."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.client import core
from virtwire.protocol.errors import libvirtError, make_error, to_remote_error

import virtwire.libvirt as vlibvirt

HEADER = struct.Struct(">IIIiiIi")


def test_call_packet_layout() -> None:
    packet = core.call_packet(7, 16, b"\1\2\3\4")
    assert HEADER.unpack_from(packet) == (32, 0x20008086, 1, 16, 0, 7, 0)
    assert packet[28:] == b"\1\2\3\4"


def test_keepalive_packets_match_capture() -> None:
    # vectors/h_keepalive: 0000001c 6b656570 00000001 00000001 00000002 00000000 00000000
    assert core.PING_PACKET.hex() == "0000001c6b6565700000000100000001000000020000000000000000"
    assert core.PONG_PACKET.hex() == "0000001c6b6565700000000100000002000000020000000000000000"


def test_classify() -> None:
    reply = HEADER.pack(32, 0x20008086, 1, 157, 1, 5, 0) + b"abcd"
    msg = core.classify(reply)
    assert isinstance(msg, core.Reply) and (msg.serial, msg.procedure, msg.status, msg.payload) == (
        5,
        157,
        0,
        b"abcd",
    )
    event = HEADER.pack(28, 0x20008086, 1, 318, 2, 1, 0)
    ev = core.classify(event)
    assert isinstance(ev, core.Event) and ev.procedure == 318
    assert core.classify(core.PING_PACKET) is core.PING
    assert core.classify(core.PONG_PACKET) is core.PONG
    assert isinstance(core.classify(HEADER.pack(28, 0x20008087, 1, 1, 1, 0, 0)), core.Ignored)
    assert isinstance(core.classify(HEADER.pack(28, 0x20008086, 1, 1, 3, 0, 0)), core.Ignored)


def test_unknown_procedure_becomes_no_support() -> None:
    err = make_error(39, 7, "unknown procedure: 999")
    decoded = core.decode_error(to_remote_error(err).to_bytes())
    assert decoded.err == (3, 7, "unknown procedure: 999", 2, "%s", "unknown procedure: 999", None, -1, -1)
    other = make_error(42, 12, None)
    assert core.decode_error(to_remote_error(other).to_bytes()).err == other.err
    assert core.decode_error(b"\0\0").get_error_code() == 39


def test_pending_serials_start_at_zero_and_wrap() -> None:
    pending: core.Pending[str] = core.Pending()
    assert [pending.add("a"), pending.add("b")] == [0, 1]
    assert pending.pop(0) == "a" and pending.pop(0) is None
    pending._next = 0xFFFFFFFF
    assert [pending.add("c"), pending.add("d")] == [0xFFFFFFFF, 0]
    assert sorted(pending.drain()) == ["b", "c", "d"] and pending.waiters == {}


def test_keepalive_clock() -> None:
    ka = core.KeepAlive(5, 2, now=100.0)
    assert ka.tick(104.9) is None
    assert ka.deadline() == 105.0
    assert ka.tick(105.0) == "ping"
    assert ka.tick(109.9) is None
    assert ka.tick(110.0) == "ping"
    assert ka.tick(115.0) == "dead"  # interval * (count + 1) of silence
    ka.received(112.0)
    assert ka.tick(115.0) is None
    assert core.KeepAlive(5, 0, now=0.0).tick(5.0) == "dead"  # count 0: close without pinging
    assert core.KeepAlive(0, 5, now=0.0).tick(1e9) is None


def test_packet_splitter_one_byte_at_a_time() -> None:
    splitter = core.PacketSplitter()
    stream = core.PING_PACKET + core.call_packet(1, 2, b"xyzw") + core.PONG_PACKET
    out: list[bytes] = []
    for i in range(len(stream)):
        out += splitter.feed(stream[i : i + 1])
    assert out == [core.PING_PACKET, core.call_packet(1, 2, b"xyzw"), core.PONG_PACKET]


def test_oversized_length_word_is_an_rpc_error() -> None:
    with pytest.raises(libvirtError) as info:
        core.PacketSplitter().feed(struct.pack(">I", 64 * 1024 * 1024))
    assert info.value.get_error_code() == 39


def _err(fn: Callable[[], object]) -> object:
    try:
        fn()
    except Exception as exc:
        return getattr(exc, "err", None)
    return None


@pytest.mark.parametrize(
    "uri",
    [
        "test+tcp://127.0.0.1:{port}/default",
        "test+unix:///default?socket=/nonexistent/virtwire.sock",
        "test+tls://127.0.0.1:{port}/default?pkipath=/nonexistent",
        "test+foo://h/default",
        "test+unix://host/default",
        "test+tcp://127.0.0.1:1/default?no_verify=x",
    ],
)
def test_open_errors_match_libvirt_python(
    real_libvirt: ModuleType, free_port: Callable[[], int], uri: str
) -> None:
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    uri = uri.format(port=free_port())
    theirs = _err(lambda: real_libvirt.open(uri))
    assert theirs is not None
    assert _err(lambda: vlibvirt.open(uri)) == theirs


def test_tls_open_without_client_certificate_fails_like_libvirt(
    real_libvirtd: object, tmp_path: object, real_libvirt: ModuleType
) -> None:
    import shutil
    from pathlib import Path

    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    pki = Path(str(tmp_path))
    shutil.copy(Path(str(real_libvirtd.pkipath)) / "cacert.pem", pki / "cacert.pem")  # type: ignore[attr-defined]
    uri = f"test+tls://127.0.0.1:{real_libvirtd.tls_port}/default?pkipath={pki}"  # type: ignore[attr-defined]
    assert _err(lambda: vlibvirt.open(uri)) == _err(lambda: real_libvirt.open(uri))


def test_untrusted_server_certificate(real_libvirtd: Any, tmp_path: Path, real_libvirt: ModuleType) -> None:
    """A CA that did not sign the server: refused, unless no_verify=1 (as libvirt)."""
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "ca.key"),
            "-out",
            str(tmp_path / "cacert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=foreign CA",
        ],
        check=True,
        capture_output=True,
    )
    for name in ("clientcert.pem", "clientkey.pem"):
        shutil.copy(Path(str(real_libvirtd.pkipath)) / name, tmp_path / name)
    base = f"test+tls://127.0.0.1:{real_libvirtd.tls_port}/default?pkipath={tmp_path}"
    # libvirt first checks its own certificate against the CA; no_sanity skips that.
    sanity = _err(lambda: vlibvirt.open(base))
    assert sanity == _err(lambda: real_libvirt.open(base))
    assert isinstance(sanity, tuple)
    assert sanity[2] == (
        f"Our own certificate {tmp_path}/clientcert.pem failed validation against {tmp_path}/cacert.pem:"
        " The certificate hasn't got a known issuer."
    )
    theirs = _err(lambda: real_libvirt.open(base + "&no_sanity=1"))
    assert (
        _err(lambda: vlibvirt.open(base + "&no_sanity=1"))
        == theirs
        == (
            45,
            7,
            "authentication failed: Failed to verify peer's certificate",
            2,
            "authentication failed: %s",
            "Failed to verify peer's certificate",
            None,
            -1,
            -1,
        )
    )
    conn = vlibvirt.open(base + "&no_sanity=1&no_verify=1")
    assert conn.getType() == "TEST"
    conn.close()


def test_read_only_policy_comes_from_the_procedure_table() -> None:
    from virtwire.protocol.errors import api_error_domain
    from virtwire.protocol.generated import remote
    from virtwire.protocol.xdr import ReadOnlyPolicy

    denied = allowed = 0
    for proc in remote.PROCEDURES.values():
        if proc.event is not None:
            continue
        if proc.readonly is ReadOnlyPolicy.DENY:
            with pytest.raises(libvirtError) as info:
                core.check_read_only(proc, 0)
            assert proc.api is not None
            assert info.value.err == (
                29,
                api_error_domain(proc.api),  # the defining libvirt-*.c file's VIR_FROM_THIS
                f"operation forbidden: read only access prevents {proc.api}",
                2,
                "operation forbidden: %s",
                f"read only access prevents {proc.api}",
                None,
                -1,
                -1,
            )
            denied += 1
        elif proc.readonly is ReadOnlyPolicy.ALLOW:
            core.check_read_only(proc, 0xFFFFFFFF)
            allowed += 1
    assert denied > 100 and allowed > 50
    xml = remote.PROCEDURES_BY_NAME["DOMAIN_GET_XML_DESC"]
    core.check_read_only(xml, 2)  # INACTIVE is fine
    with pytest.raises(libvirtError):
        core.check_read_only(xml, 1)  # SECURE is not


def test_call_many_sends_every_call_before_waiting() -> None:
    """call_many: both CALLs reach the daemon before either reply is needed; replies
    are matched by serial whatever their order (an ERROR reply is a reply too)."""
    import socket
    import threading

    from virtwire.client.sync import SyncConnection

    ours, theirs = socket.socketpair()
    theirs.settimeout(30)  # only a deadlock would hit this
    seen: list[tuple[int, int]] = []

    def daemon() -> None:
        try:
            answer_both()
        except OSError:
            theirs.close()  # the client then fails at once instead of waiting forever

    def answer_both() -> None:
        buf = b""
        while len(seen) < 2:
            chunk = theirs.recv(4096)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 4 and len(buf) >= struct.unpack_from(">I", buf)[0]:
                length = struct.unpack_from(">I", buf)[0]
                _, _, _, proc, _, serial, _ = HEADER.unpack_from(buf)
                seen.append((proc, serial))
                buf = buf[length:]
        (proc_a, serial_a), (proc_b, serial_b) = seen
        error = to_remote_error(make_error(3, 10, "not here")).to_bytes()
        theirs.sendall(HEADER.pack(28 + len(error), 0x20008086, 1, proc_b, 1, serial_b, 1) + error)
        theirs.sendall(HEADER.pack(32, 0x20008086, 1, proc_a, 1, serial_a, 0) + b"\0\0\0\1")

    thread = threading.Thread(target=daemon)
    thread.start()
    conn = SyncConnection(ours)
    try:
        first, second = conn.call_many([(60, b"\0\0\0\16"), (60, b"\0\0\0\17")])
    finally:
        thread.join()
        conn.shutdown()
        theirs.close()
    assert [proc for proc, _ in seen] == [60, 60]
    assert isinstance(first, core.Reply) and first.payload == b"\0\0\0\1"
    assert isinstance(second, core.Reply) and second.status == 1
    with pytest.raises(libvirtError) as info:
        core.decode_reply(ops_proc(60), second)
    assert info.value.get_error_code() == 3


def ops_proc(number: int) -> Any:
    from virtwire.protocol.generated import remote

    return remote.PROCEDURES[number]


def test_flow_together_runs_batched_or_one_by_one() -> None:
    """A flow's Together gets each result or libvirtError, in order, from a batch
    runner or, without one, from the ordinary runner call by call."""
    from virtwire.client import flows, ops

    def flow() -> flows.Flow:
        got = yield flows.Together(flows.SRC, (ops.supports_feature(14), ops.supports_feature(15)))
        return got

    failure = make_error(3, 10, "no")

    def run(op: ops.Op) -> Any:
        if op.args.feature == 15:
            raise failure
        return 1

    seen: list[tuple[int, ...]] = []

    def batch(calls: tuple[ops.Op, ...]) -> list[Any]:
        seen.append(tuple(op.args.feature for op in calls))
        return [1, failure]

    assert flows.drive(flow(), {flows.SRC: run}) == [1, failure]
    assert flows.drive(flow(), {flows.SRC: run}, {flows.SRC: batch}) == [1, failure]
    assert seen == [(14, 15)]
