"""Wire layer: XDR codec, framing, errors, typed params.  No I/O anywhere in here.

Bytes in, messages out (like h11): ``PacketDecoder`` splits a byte stream into
packets, ``decode_message`` / ``encode_message`` turn packets into typed
messages and back, ``libvirtError`` and the builders in ``errors`` speak
libvirt's error language.
"""

from .errors import ProtocolError, from_remote_error, libvirtError, make_error, to_remote_error
from .framing import (
    MAX_PACKET_SIZE,
    MIN_PACKET_SIZE,
    Header,
    MessageStatus,
    MessageType,
    PacketDecoder,
    decode_header,
    encode_header,
    encode_packet,
)

__all__ = [
    "MAX_PACKET_SIZE",
    "MIN_PACKET_SIZE",
    "Header",
    "MessageStatus",
    "MessageType",
    "PacketDecoder",
    "ProtocolError",
    "decode_header",
    "encode_header",
    "encode_packet",
    "from_remote_error",
    "libvirtError",
    "make_error",
    "to_remote_error",
]
