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
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trio
from virtwire.protocol import errors as E
from virtwire.protocol import tlspriority
from virtwire.protocol.generated import constants as C

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


@dataclass(frozen=True, slots=True)
class ServerTlsFiles:
    """The server's PKI files (libvirtd.conf's ca_file, cert_file, key_file, crl_file)."""

    cacert: Path
    cert: Path
    key: Path
    cacrl: Path | None  # used when it exists

    @classmethod
    def locate(cls, pki_dir: Path | None) -> ServerTlsFiles:
        """``--pki-dir`` DIR's files, or libvirtd's default locations without one."""
        if pki_dir is not None:
            return cls(pki_dir / "cacert.pem", pki_dir / "servercert.pem", pki_dir / "serverkey.pem",
                       pki_dir / "cacrl.pem")  # fmt: skip
        system = cls(
            Path("/etc/pki/CA/cacert.pem"),
            Path("/etc/pki/libvirt/servercert.pem"),
            Path("/etc/pki/libvirt/private/serverkey.pem"),
            Path("/etc/pki/CA/cacrl.pem"),
        )
        if os.geteuid() == 0:
            return system
        # an unprivileged daemon looks in ~/.pki/libvirt first (virNetTLSContextLocateCredentials)
        user = Path.home() / ".pki" / "libvirt"
        pair = (user / "servercert.pem").exists() and (user / "serverkey.pem").exists()
        return cls(
            user / "cacert.pem" if (user / "cacert.pem").exists() else system.cacert,
            user / "servercert.pem" if pair else system.cert,
            user / "serverkey.pem" if pair else system.key,
            user / "cacrl.pem" if (user / "cacrl.pem").exists() else system.cacrl,
        )


def server_context(
    files: ServerTlsFiles,
    priority: str | None = None,
    *,
    sanity_check: bool = True,
    verify_client: bool = True,
) -> ssl.SSLContext:
    """The listeners' TLS context, after libvirtd's checks of its own credentials.

    Raises libvirtError (libvirt's wording: an expired or unfit certificate, one
    the CA did not sign, a priority string GnuTLS would refuse) or OSError.
    ``sanity_check=False`` skips the credential checks (tls_no_sanity_certificate);
    ``verify_client=False`` serves clients without checking their certificate
    (tls_no_verify_certificate).
    """
    if not files.cacert.exists():
        detail = f"Cannot read CA certificate '{files.cacert}': No such file or directory"
        raise E.make_error(C.VIR_ERR_SYSTEM_ERROR, C.VIR_FROM_RPC, detail)
    if sanity_check:
        # Imported here: the certificate checks load the cryptography package (about 9 MiB
        # of a server's RSS), which a server without TLS listeners never needs.
        from virtwire.protocol import x509check

        for warning in x509check.sanity_check_files(str(files.cacert), str(files.cert), is_server=True):
            log.warning("%s", warning)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tlspriority.parse(priority).apply(ctx)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(files.cacert)
    if files.cacrl is not None and files.cacrl.exists():
        ctx.load_verify_locations(files.cacrl)  # revoked client certificates are refused
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.verify_mode = ssl.CERT_REQUIRED if verify_client else ssl.CERT_NONE
    # TLS 1.3 session tickets arrive after the handshake and make libvirt's client
    # read a ticket where it expects the 0x01 byte (EAGAIN): send none.
    ctx.num_tickets = 0
    return ctx


def _reason(exc: BaseException) -> str:
    """Why a handshake failed, in OpenSSL's words ("certificate revoked", "certificate has expired"...)."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return cause.verify_message
    if isinstance(cause, trio.TooSlowError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:g} s"
    return str(cause) or type(cause).__name__


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
        log.warning("TLS client %s refused: handshake failed: %s", peer, _reason(exc))
        await trio.aclose_forcefully(tcp_stream)
        return None
    cert = stream.getpeercert()
    subject = cert.get("subject", ()) if cert else ()
    dn = format_dn(subject)
    if not dn_allowed(dn, allowed_dn):
        log.warning(
            "TLS client %s refused: certificate DN %r: Client's Distinguished Name is not on the list of"
            " allowed clients (tls_allowed_dn_list, --tls-allowed-dn)",
            peer,
            dn,
        )
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
