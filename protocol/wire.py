"""The packet vocabulary both ends share: header layout, message types and
statuses as ints, whole-packet builders, keepalive packets, stream limits.

framing.py validates and splits incoming bytes; this module is the fast path
for building and reading packets whose header is known to be well formed.
"""

from __future__ import annotations

import struct
from typing import Final

from .generated import keepalive as _keepalive
from .generated import remote as _remote
from .generated import virnet as _virnet

# u32 length (the whole packet), then prog, vers, proc, type, serial, status.
PACKET_HEADER: Final = struct.Struct(">IIIiiIi")
HEADER_SIZE: Final = PACKET_HEADER.size  # 28, length word included

REMOTE_PROGRAM: Final = _remote.REMOTE_PROGRAM
REMOTE_VERSION: Final = _remote.REMOTE_PROTOCOL_VERSION
KEEPALIVE_PROGRAM: Final = _keepalive.KEEPALIVE_PROGRAM
KEEPALIVE_VERSION: Final = _keepalive.KEEPALIVE_PROTOCOL_VERSION
PING_PROC: Final = int(_keepalive.keepalive_procedure.KEEPALIVE_PROC_PING)
PONG_PROC: Final = int(_keepalive.keepalive_procedure.KEEPALIVE_PROC_PONG)

CALL: Final = int(_virnet.virNetMessageType.VIR_NET_CALL)
REPLY: Final = int(_virnet.virNetMessageType.VIR_NET_REPLY)
MESSAGE: Final = int(_virnet.virNetMessageType.VIR_NET_MESSAGE)
STREAM: Final = int(_virnet.virNetMessageType.VIR_NET_STREAM)
STREAM_HOLE: Final = int(_virnet.virNetMessageType.VIR_NET_STREAM_HOLE)
CALL_WITH_FDS: Final = int(_virnet.virNetMessageType.VIR_NET_CALL_WITH_FDS)
REPLY_WITH_FDS: Final = int(_virnet.virNetMessageType.VIR_NET_REPLY_WITH_FDS)
# The most descriptors one message may carry.
NUM_FDS_MAX: Final = _virnet.VIR_NET_MESSAGE_NUM_FDS_MAX
OK: Final = int(_virnet.virNetMessageStatus.VIR_NET_OK)
ERROR: Final = int(_virnet.virNetMessageStatus.VIR_NET_ERROR)
CONTINUE: Final = int(_virnet.virNetMessageStatus.VIR_NET_CONTINUE)

# The most data one stream packet carries when libvirt sends it (the daemon
# reads its streams in chunks of this size; libvirt-python's streamBufSize).
STREAM_CHUNK: Final = _virnet.VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX
# The largest payload any packet may carry.
PAYLOAD_MAX: Final = _virnet.VIR_NET_MESSAGE_PAYLOAD_MAX


def packet(program: int, version: int, procedure: int, mtype: int, serial: int, status: int,
           payload: bytes = b"") -> bytes:
    """A whole packet: length word, header, payload."""
    return PACKET_HEADER.pack(
        HEADER_SIZE + len(payload), program, version, procedure, mtype, serial, status
    ) + payload


def remote_packet(procedure: int, mtype: int, serial: int, status: int, payload: bytes = b"") -> bytes:
    """A whole packet of the remote program."""
    return PACKET_HEADER.pack(
        HEADER_SIZE + len(payload), REMOTE_PROGRAM, REMOTE_VERSION, procedure, mtype, serial, status
    ) + payload


def _keepalive_packet(procedure: int) -> bytes:
    return packet(KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, procedure, MESSAGE, 0, OK)


PING_PACKET: Final = _keepalive_packet(PING_PROC)
PONG_PACKET: Final = _keepalive_packet(PONG_PROC)
