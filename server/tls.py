"""TLS for ``--tls`` listeners: the server context, the client DN check, the 0x01 byte.

libvirt's TLS handshake is plain TLS with a mandatory client certificate signed
by the CA, then one extra step: once the server has checked the client, it
writes a single byte 0x01 inside TLS; the client waits for it before its first
RPC.  A client whose certificate DN matches none of ``--tls-allowed-dn`` is
logged and disconnected before that byte, so nothing of the RPC is served.
"""

from __future__ import annotations

import fnmatch
import logging
import ssl
from pathlib import Path

import trio

log = logging.getLogger(__name__)

CONFIRMATION = b"\x01"
HANDSHAKE_TIMEOUT = 30.0

# OpenSSL attribute names → the short names GnuTLS prints in a DN (libvirt's format).
_DN_NAMES = {
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "commonName": "CN",
    "emailAddress": "EMAIL",
    "domainComponent": "DC",
    "userId": "UID",
}
_DN_SPECIALS = ',+"\\<>;'


def server_context(pki_dir: Path) -> ssl.SSLContext:
    """cacert.pem, servercert.pem and serverkey.pem from ``pki_dir``; client certs required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki_dir / "servercert.pem", pki_dir / "serverkey.pem")
    ctx.load_verify_locations(pki_dir / "cacert.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    # TLS 1.3 session tickets arrive after the handshake and make libvirt's client
    # read a ticket where it expects the 0x01 byte (EAGAIN): send none.
    ctx.num_tickets = 0
    return ctx


def _escape(value: str) -> str:
    return "".join(f"\\{c}" if c in _DN_SPECIALS else c for c in value)


def format_dn(subject: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    """A certificate subject as libvirt matches it: ``O=virtwire-test,CN=client``.

    Attributes in certificate order, comma-separated (gnutls_x509_crt_get_dn).
    """
    parts = []
    for rdn in subject:
        parts.append("+".join(f"{_DN_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn))
    return ",".join(parts)


def dn_allowed(dn: str, patterns: list[str]) -> bool:
    """No patterns: every CA-signed client is allowed; else any fnmatch match."""
    return not patterns or any(fnmatch.fnmatchcase(dn, pattern) for pattern in patterns)


async def accept_tls(
    tcp_stream: trio.abc.Stream, ctx: ssl.SSLContext, allowed_dn: list[str], peer: str
) -> trio.SSLStream[trio.abc.Stream] | None:
    """Handshake, check the client, send the confirmation; None if the client is refused."""
    stream = trio.SSLStream(tcp_stream, ctx, server_side=True)
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            await stream.do_handshake()
    except (trio.BrokenResourceError, trio.TooSlowError, ssl.SSLError, OSError) as exc:
        log.warning("TLS client %s refused: handshake failed: %s", peer, exc)
        await trio.aclose_forcefully(tcp_stream)
        return None
    cert = stream.getpeercert()
    subject = cert.get("subject", ()) if cert else ()
    dn = format_dn(subject)
    if not dn_allowed(dn, allowed_dn):
        log.warning("TLS client %s refused: certificate DN %r matches no --tls-allowed-dn", peer, dn)
        await trio.aclose_forcefully(stream)
        return None
    try:
        await stream.send_all(CONFIRMATION)
    except (trio.BrokenResourceError, OSError) as exc:
        log.info("TLS client %s went away before the confirmation: %s", peer, exc)
        await trio.aclose_forcefully(stream)
        return None
    log.debug("TLS client %s accepted, DN %r", peer, dn)
    return stream
