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
from .message import Message, decode_message, encode_message, lookup_procedure
from .typedparams import dict_to_params, params_to_dict

__all__ = [
    "MAX_PACKET_SIZE",
    "MIN_PACKET_SIZE",
    "Header",
    "Message",
    "MessageStatus",
    "MessageType",
    "PacketDecoder",
    "ProtocolError",
    "decode_header",
    "decode_message",
    "dict_to_params",
    "encode_header",
    "encode_message",
    "encode_packet",
    "from_remote_error",
    "libvirtError",
    "lookup_procedure",
    "make_error",
    "params_to_dict",
    "to_remote_error",
]
