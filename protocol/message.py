"""Whole messages: a packet <-> (header, typed body).  No I/O.

The body's type follows from the header, as libvirt's dispatch code picks it:

=====================  ======  ===========================================
type                   status  body
=====================  ======  ===========================================
CALL                   any     the procedure's ``_args`` struct
REPLY                  OK      the procedure's ``_ret`` struct
REPLY                  ERROR   ``remote_error``
MESSAGE                OK      the procedure's ``_msg`` struct (events)
STREAM                 ERROR   ``remote_error`` (the peer aborted the stream)
STREAM_HOLE            any     ``virNetStreamHole``
STREAM (data/end)      other   raw ``bytes``
=====================  ======  ===========================================

``None`` stands for a void payload.  Raw ``bytes`` are used whenever there is
nothing to decode with: an unknown program or procedure, an unmodelled
procedure, the *_WITH_FDS types (their payload starts with a descriptor count
that only makes sense next to the descriptors), or a status the type does not
use.  Raw bodies re-encode byte for byte, so ``encode_message(decode_message(p))
== p`` for every packet ``decode_message`` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ProtocolError
from .framing import (
    MIN_PACKET_SIZE,
    Header,
    MessageStatus,
    MessageType,
    decode_header,
    encode_header,
)
from .generated import keepalive, remote
from .generated.virnet import remote_error, virNetStreamHole
from .xdr import Procedure, XdrError, XdrStruct

__all__ = [
    "Body",
    "Message",
    "body_codec",
    "decode_body",
    "decode_message",
    "encode_message",
    "lookup_procedure",
]


Body = XdrStruct | bytes | None

# (program, version) -> procedure table; the tables come from the spec.
_PROGRAMS: Mapping[tuple[int, int], Mapping[int, Procedure]] = {
    (remote.REMOTE_PROGRAM, remote.REMOTE_PROTOCOL_VERSION): remote.PROCEDURES,
    (keepalive.KEEPALIVE_PROGRAM, keepalive.KEEPALIVE_PROTOCOL_VERSION): keepalive.PROCEDURES,
}


@dataclass(frozen=True, slots=True)
class Message:
    """One packet: its header and its decoded body (see the module table)."""

    header: Header
    body: Body = None


def lookup_procedure(program: int, version: int, procedure: int) -> Procedure | None:
    """The spec's entry for a procedure, or None for an unknown program/version/number."""
    table = _PROGRAMS.get((program, version))
    return None if table is None else table.get(procedure)


class _Raw:
    """Marker: the body stays raw bytes."""


_RAW = _Raw()


_Codec = type[XdrStruct] | _Raw | None
# body_codec's answers for procedures the spec knows, cached: those keys are bounded
# by the spec (procedures x types x statuses); a peer's made-up numbers never enter.
_CODEC_CACHE: dict[tuple[int, int, int, int, int], _Codec] = {}


def body_codec(header: Header) -> _Codec:
    """The class the body of a packet with this header decodes to; None for void,
    ``_RAW`` (an opaque marker) when the body is kept as bytes."""
    key = (header.program, header.version, header.procedure, header.type, header.status)
    cached = _CODEC_CACHE.get(key, _RAW)
    if cached is not _RAW or key in _CODEC_CACHE:
        return cached
    codec = _find_codec(header)
    if lookup_procedure(header.program, header.version, header.procedure) is not None:
        _CODEC_CACHE[key] = codec
    return codec


def _find_codec(header: Header) -> _Codec:
    mtype, status = header.type, header.status
    if mtype == MessageType.VIR_NET_STREAM_HOLE:
        return virNetStreamHole
    error_carriers = (MessageType.VIR_NET_REPLY, MessageType.VIR_NET_STREAM)
    if status == MessageStatus.VIR_NET_ERROR and mtype in error_carriers:
        return remote_error
    proc = lookup_procedure(header.program, header.version, header.procedure)
    if proc is None or not proc.modelled:
        return _RAW
    if status != MessageStatus.VIR_NET_OK:
        return _RAW
    if mtype == MessageType.VIR_NET_CALL:
        return proc.args
    if mtype == MessageType.VIR_NET_REPLY:
        return proc.ret
    if mtype == MessageType.VIR_NET_MESSAGE:
        return proc.msg
    return _RAW


def decode_body(header: Header, payload: bytes | bytearray | memoryview, *, exact: bool = True) -> Body:
    """The body of a packet given its header and payload.

    ``exact=False`` ignores bytes after a complete payload, as libvirtd does with
    calls; a lenient decode therefore may not re-encode to the same bytes.
    Failures raise ``ProtocolError`` "Unable to decode message payload" carrying
    the raw header (the XdrError, naming the field, is its ``__cause__``).
    """
    codec = body_codec(header)
    if isinstance(codec, _Raw):
        return bytes(payload)
    if codec is None:
        if payload and exact:
            raise _payload_error(header, "void payload has trailing bytes")
        return None
    try:
        return codec.from_bytes(payload, exact=exact)
    except XdrError as exc:
        raise _payload_error(header, str(exc)) from exc


def _payload_error(header: Header, why: str) -> ProtocolError:
    raw = (header.program, header.version, header.procedure, int(header.type), header.serial,
           int(header.status))
    error = ProtocolError("Unable to decode message payload", raw)
    error.add_note(why)
    return error


def decode_message(packet: bytes | bytearray | memoryview, *, exact: bool = True) -> Message:
    """Decode one whole packet (length word included), strictly unless ``exact=False``."""
    header = decode_header(packet)
    return Message(header, decode_body(header, packet[MIN_PACKET_SIZE:], exact=exact))


def encode_message(message: Message) -> bytes:
    """The packet for a message; the body must be what ``body_codec`` names, or raw bytes."""
    body = message.body
    header = message.header
    if isinstance(body, bytes | bytearray | memoryview):
        payload = bytes(body)
    else:
        codec = body_codec(header)
        fits = isinstance(body, codec) if isinstance(codec, type) else codec is not None or body is None
        if not fits:
            expected = codec.__name__ if isinstance(codec, type) else "a void body"
            raise TypeError(
                f"a {header.type.name}/{header.status.name} packet of procedure {header.procedure} "
                f"carries {expected}, not {type(body).__name__}"
            )
        payload = b"" if body is None else body.to_bytes()
    return encode_header(header, len(payload)) + payload
