"""Who is on the other end of a connection, as far as the server knows.

One record per connection (``ConnectionContext.identity``), filled in as
libvirtd fills its virIdentity: the transport and the socket's read-only flag
at accept, the unix peer's user, group and process (SO_PEERCRED, read by
peer_identity.py), the TLS client certificate's distinguished name after the
handshake, and the SASL user name once SASL authentication succeeds.  The
access policy matches on ``attributes()``; nothing here decides anything.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import trio

from .peer_identity import identity_attributes


@dataclass(slots=True)
class Identity:
    transport: str  # "tcp", "tls" or "unix"
    readonly: bool  # came in on a read-only socket
    unix_user_id: int | None = None
    unix_group_id: int | None = None
    process_id: int | None = None
    x509_dname: str | None = None
    sasl_user_name: str | None = None
    user_name: str | None = None  # of unix_user_id, when the system knows it
    group_name: str | None = None

    def attributes(self) -> dict[str, str]:
        """libvirt's identity attributes (those the access policy matches on)."""
        attrs = {"transport": self.transport}
        for key in (
            "unix_user_id",
            "unix_group_id",
            "process_id",
            "x509_dname",
            "sasl_user_name",
            "user_name",
            "group_name",
        ):
            value = getattr(self, key)
            if value is not None:
                attrs[key] = str(value)
        return attrs


def identify(stream: trio.abc.Stream | socket.socket, transport: str, readonly: bool) -> Identity:
    """The identity of a freshly accepted (and, for TLS, handshaken) client."""
    attrs = identity_attributes(stream, transport)

    def number(key: str) -> int | None:
        return int(attrs[key]) if key in attrs else None

    return Identity(
        transport,
        readonly,
        unix_user_id=number("unix_user_id"),
        unix_group_id=number("unix_group_id"),
        process_id=number("process_id"),
        x509_dname=attrs.get("x509_dname"),
        user_name=attrs.get("user_name"),
        group_name=attrs.get("group_name"),
    )
