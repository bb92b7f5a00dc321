"""Golden replay: the client side of real virsh sessions against our server, byte for byte.

Each capture in tests/vectors (virsh 9.0 talking to a real libvirtd 9.0) is
replayed against a fresh `virtwire serve`: every CALL the client sent is sent
again, on the same kind of socket, and our REPLY must equal the recorded one
byte for byte; event MESSAGEs pushed to a connection must equal the recorded
ones too.  Masked, because they vary run to run on libvirtd as well: cpuTime,
callback IDs and the UUID of domains created during the session.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from vwtestkit import RawRpcClient, VirtwireServer
from vwtestkit.rawrpc import CALL, MESSAGE, REMOTE_PROGRAM, xdr_string

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SESSIONS = [
    "a_list",
    "a_list_unix",
    "b_dominfo",
    "c_suspend_resume",
    "d2_readonly_rosock_virsh",
    "e_migrate_postcopy",
    "f_events",
    "h_keepalive",
]
# Procedures whose answer is ours by design, not the test driver's: migration is
# implemented here, the test driver answers NO_SUPPORT.
NOT_COMPARED = {364}
NEW_DOMAINS = ("evdom",)
PROC_GET_INFO, PROC_REGISTER, PROC_DEREGISTER, HEADER = 16, 316, 317, 28


def _mask(packet: bytes) -> bytes:
    data = bytearray(packet)
    program, _, procedure, mtype, _, status = struct.unpack_from(">IIiiIi", data, 4)
    if program == REMOTE_PROGRAM and status == 0:
        if procedure == PROC_GET_INFO and mtype != MESSAGE and len(data) >= HEADER + 8:
            data[-8:] = bytes(8)  # cpuTime: the wall clock on the test driver
        if procedure == PROC_REGISTER or mtype == MESSAGE:
            data[HEADER : HEADER + 4] = bytes(4)  # callbackID: a daemon-wide counter
    for name in NEW_DOMAINS:
        marker = xdr_string(name)
        start = data.find(marker)
        while start >= 0:
            uuid_at = start + len(marker)
            data[uuid_at : uuid_at + 16] = bytes(16)  # a generated UUID
            start = data.find(marker, uuid_at)
    return bytes(data)


def _packet(record: dict[str, object]) -> bytes:
    return bytes.fromhex(str(record["header_hex"]) + str(record["payload_hex"]))


def _client(server: VirtwireServer, upstream: str) -> RawRpcClient:
    if upstream.endswith("libvirt-sock-ro"):
        assert server.unix_ro_path is not None
        return RawRpcClient.unix(server.unix_ro_path, timeout=10)
    if upstream.endswith("libvirt-sock"):
        return RawRpcClient.unix(server.unix_path, timeout=10)
    return RawRpcClient.tcp("127.0.0.1", server.tcp_port, timeout=10)


class Translation:
    """What the recorded client refers to that differs here: callback IDs, new UUIDs."""

    def __init__(self) -> None:
        self.callback_ids: dict[bytes, bytes] = {}
        self.uuids: dict[bytes, bytes] = {}

    def learn(self, recorded_reply: bytes, our_payload: bytes) -> None:
        procedure = struct.unpack_from(">i", recorded_reply, 12)[0]
        recorded = recorded_reply[HEADER:]
        if procedure == PROC_REGISTER and len(recorded) == 4 == len(our_payload):
            self.callback_ids[recorded] = our_payload
        for name in NEW_DOMAINS:
            marker = xdr_string(name)
            at, ours_at = recorded.find(marker), our_payload.find(marker)
            if at >= 0 and ours_at >= 0:
                end, ours_end = at + len(marker), ours_at + len(marker)
                self.uuids[recorded[end : end + 16]] = our_payload[ours_end : ours_end + 16]

    def apply(self, packet: bytes) -> bytes:
        procedure = struct.unpack_from(">i", packet, 12)[0]
        if procedure == PROC_DEREGISTER and packet[HEADER:] in self.callback_ids:
            return packet[:HEADER] + self.callback_ids[packet[HEADER:]]
        for recorded, ours in self.uuids.items():
            packet = packet.replace(recorded, ours)
        return packet


@pytest.mark.parametrize("session", SESSIONS)
def test_replay_matches_libvirtd(session: str, virtwire_server: Callable[..., VirtwireServer]) -> None:
    records = [json.loads(line) for line in (VECTORS / f"{session}.jsonl").read_text().splitlines() if line]
    server = virtwire_server(tls=False)
    replies: dict[tuple[int, int], bytes] = {}
    events: dict[int, list[bytes]] = {}
    for r in records:
        if r.get("dir") == "s2c" and int(str(r["program"]), 16) == REMOTE_PROGRAM:
            if r["type"] == MESSAGE:
                events.setdefault(int(r["conn"]), []).append(_packet(r))
            else:
                replies[(int(r["conn"]), int(r["serial"]))] = _packet(r)
    clients: dict[int, RawRpcClient] = {}
    translate = Translation()
    compared = 0
    try:
        for r in records:
            conn = int(r["conn"])
            if r.get("event") == "connect":
                clients[conn] = _client(server, str(r["upstream"]))
                continue
            if r.get("dir") != "c2s" or int(str(r["program"]), 16) != REMOTE_PROGRAM:
                continue  # tap markers, server packets, keepalive (timing varies)
            client = clients[conn]
            client.send(translate.apply(_packet(r)))
            if r["type"] != CALL:
                continue
            got = client.recv_reply(int(r["serial"]))
            translate.learn(replies[(conn, int(r["serial"]))], got.payload)
            if r["procedure"] in NOT_COMPARED:
                continue
            raw_got = (
                struct.pack(
                    ">IIIiiIi",
                    HEADER + len(got.payload),
                    got.program,
                    got.version,
                    got.procedure,
                    got.type,
                    got.serial,
                    got.status,
                )
                + got.payload
            )
            expected = replies[(conn, int(r["serial"]))]
            assert _mask(raw_got) == _mask(expected), (session, r["procedure_name"], r["serial"])
            compared += 1
        for conn, expected_events in events.items():
            got_events = [p for p in clients[conn].unsolicited if p.program == REMOTE_PROGRAM]
            raw = [
                struct.pack(
                    ">IIIiiIi",
                    HEADER + len(p.payload),
                    p.program,
                    p.version,
                    p.procedure,
                    p.type,
                    p.serial,
                    p.status,
                )
                + p.payload
                for p in got_events
            ]
            assert [_mask(p) for p in raw] == [_mask(p) for p in expected_events], session
    finally:
        for client in clients.values():
            client.close()
    assert compared >= 5
