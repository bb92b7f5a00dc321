"""SASL data travels as XDR chars (libvirt's `char data<>`: one signed int each).

The client converts with memoryview/array in C; these pin the conversion to
what the per-byte definition gives, both ways, for every byte value.
"""

from __future__ import annotations

from types import SimpleNamespace

from virtwire.client import sasl_auth

EVERY_BYTE = bytes(range(256))


def test_bytes_become_signed_chars() -> None:
    assert sasl_auth._chars(EVERY_BYTE) == [b - 256 if b > 127 else b for b in EVERY_BYTE]
    assert sasl_auth._chars(None) == []
    assert sasl_auth._chars(b"") == []


def test_server_chars_become_bytes() -> None:
    reply = SimpleNamespace(nil=0, complete=1, data=sasl_auth._chars(EVERY_BYTE))
    assert sasl_auth._reply(reply) == (True, EVERY_BYTE)
    assert sasl_auth._reply(SimpleNamespace(nil=1, complete=0, data=[])) == (False, None)


def test_ints_outside_a_char_keep_their_low_byte() -> None:
    # A server is not bound to send -128..127: the low byte is what libvirt's (char) cast keeps.
    reply = SimpleNamespace(nil=0, complete=0, data=[300, -1, 255])
    assert sasl_auth._reply(reply) == (False, bytes([44, 255, 255]))
