"""A bounded fuzz run: a few thousand mutated frames (fixed seed) leave no
traceback in the server's log, never crash it, and a bystander connection
opened before the run is still served after it.

Frames start as well-formed calls of random procedures (hostile arguments from
vwtestkit.hostile) and are then mutated: bytes flipped, cut short, extended,
header words replaced, length words lied about.  When the server hangs up (as
libvirtd does on a bad length word) the fuzzer reconnects.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import pytest
from virtwire.protocol.generated import remote as R
from vwtestkit import RawRpcClient, VirtwireServer, start_server, stop_servers
from vwtestkit.hostile import MODES, hostile_args
from vwtestkit.rawrpc import CALL, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, encode_packet

SEED = 20261202
FRAMES = 2000
PROCEDURES = sorted(R.PROCEDURES.values(), key=lambda p: p.number)
# Procedures whose success would end or reshape the session rather than test parsing.
SKIPPED = {"CONNECT_CLOSE"}


def well_formed(rng: random.Random, serial: int) -> bytes:
    proc = rng.choice([p for p in PROCEDURES if p.name not in SKIPPED])
    mode = rng.choice([m for m in MODES if m != "huge"])  # 1 MiB strings: the sweep covers them
    payload = hostile_args(proc, mode) if rng.random() < 0.8 else rng.randbytes(rng.randrange(64))
    return encode_packet(REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, proc.number, CALL, serial, 0, payload)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    match rng.randrange(6):
        case 0:  # flip bytes anywhere but the length word
            for _ in range(rng.randrange(1, 8)):
                if len(data) > 4:
                    data[rng.randrange(4, len(data))] ^= 1 << rng.randrange(8)
        case 1:  # replace a header word (program, version, procedure, type, serial, status)
            word = rng.randrange(1, 7)
            struct.pack_into(">I", data, 4 * word, rng.choice([0, 1, 2, 3, 0xFFFFFFFF, rng.getrandbits(32)]))
        case 2:  # cut the payload short, keeping the length word honest
            cut = rng.randrange(28, len(data) + 1)
            data = data[:cut]
            struct.pack_into(">I", data, 0, len(data))
        case 3:  # trailing garbage inside the packet
            data += rng.randbytes(rng.randrange(1, 256))
            struct.pack_into(">I", data, 0, len(data))
        case 4:  # a lying length word (the server hangs up or waits for more)
            struct.pack_into(">I", data, 0, rng.choice([0, 3, 27, 28, len(data) + 4, 0x7FFFFFFF]))
        case _:  # payload words replaced by extreme values
            for _ in range(rng.randrange(1, 4)):
                if len(data) >= 32:
                    pos = rng.randrange(28, len(data) - 3) & ~3
                    struct.pack_into(">I", data, pos, rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))
    return bytes(data)


@pytest.fixture(scope="module")
def server() -> Iterator[VirtwireServer]:
    srv = start_server(pki=None, ro=False, tls=False)
    try:
        yield srv
    finally:
        stop_servers([srv])


def _connect(server: VirtwireServer) -> socket.socket:
    client = RawRpcClient.tcp("127.0.0.1", server.tcp_port, timeout=30)
    client.open()
    client.sock.setblocking(False)
    return client.sock


def _drain(sock: socket.socket) -> bool:
    """Read what the server sent so far; False if it hung up."""
    while True:
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False


@pytest.mark.hang_limit(600)
def test_mutated_frames_leave_no_traceback_and_a_bystander_served(server: VirtwireServer) -> None:
    rng = random.Random(SEED)
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as bystander:
        bystander.open()
        sock = _connect(server)
        try:
            for serial in range(FRAMES):
                frame = well_formed(rng, serial)
                if rng.random() < 0.7:
                    frame = mutate(rng, frame)
                try:
                    sock.sendall(frame) if len(frame) < 1 << 16 else sock.send(frame)
                except BlockingIOError:
                    pass  # the server is not reading (a lie about a length): start over
                except OSError:
                    pass
                if not _drain(sock) or frame[:4] != struct.pack(">I", len(frame)):
                    sock.close()  # a lying length word leaves the stream unusable
                    sock = _connect(server)
        finally:
            sock.close()
        assert bystander.call(R.remote_procedure.REMOTE_PROC_CONNECT_GET_HOSTNAME).status == 0
    assert server.running()
    assert "Traceback" not in server.log, server.log[-20000:]
