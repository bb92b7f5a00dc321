"""libvirt's sanity check of its own TLS credentials, before any connection.

Before a libvirt client connects over TLS (unless the URI says ``no_sanity=1``)
and before libvirtd listens, libvirt checks its own certificate and the CA
certificates it trusts (virNetTLSContextSanityCheckCredentials in
src/rpc/virnettlscontext.c): each must be within its validity period, have
basic constraints, key usage and key purpose fit for its role, and its own
certificate must verify against the CA list.  The errors are VIR_ERR_SYSTEM_ERROR
from VIR_FROM_RPC with libvirt's wording; the non-critical findings libvirt
only warns about come back as warnings for the caller to log.

Pure: PEM bytes in, errors or warnings out (the caller reads the files).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import errors as E
from .generated import constants as C

# gnutls_x509_crt_list_import's limit as libvirt calls it (MAX_CERTS)
MAX_CA_CERTS = 16
_ANY_PURPOSE = "2.5.29.37.0"


def _error(detail: str) -> E.libvirtError:
    return E.make_error(C.VIR_ERR_SYSTEM_ERROR, C.VIR_FROM_RPC, detail)


def _role(is_server: bool, is_ca: bool) -> str:
    return "CA" if is_ca else ("server" if is_server else "client")


def _check_times(cert: x509.Certificate, name: str, is_server: bool, is_ca: bool, now: dt.datetime) -> None:
    role = _role(is_server, is_ca)
    if cert.not_valid_after_utc < now:
        raise _error(f"The {role} certificate {name} has expired")
    if cert.not_valid_before_utc > now:
        raise _error(f"The {role} certificate {name} is not yet active")


def _check_basic_constraints(cert: x509.Certificate, name: str, is_server: bool, is_ca: bool) -> None:
    try:
        is_a_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        if is_ca:
            raise _error(f"The certificate {name} is missing basic constraints for a CA") from None
        return
    if is_a_ca and not is_ca:
        role = "server" if is_server else "client"
        raise _error(f"The certificate {name} basic constraints show a CA, but we need one for a {role}")
    if not is_a_ca and is_ca:
        raise _error(f"The certificate {name} basic constraints do not show a CA")


def _check_key_usage(cert: x509.Certificate, name: str, is_ca: bool, warnings: list[str]) -> None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return  # libvirt assumes the usage the role needs
    usage, critical = ext.value, ext.critical
    wanted = (
        [(usage.key_cert_sign, "certificate signing")]
        if is_ca
        else [(usage.digital_signature, "digital signature"), (usage.key_encipherment, "key encipherment")]
    )
    for allowed, what in wanted:
        if not allowed:
            message = f"Certificate {name} usage does not permit {what}"
            if critical:
                raise _error(message)
            warnings.append(message)


def _check_key_purpose(cert: x509.Certificate, name: str, is_server: bool, warnings: list[str]) -> None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return  # no purpose at all: any use
    allow_server = allow_client = False
    for oid in ext.value:
        if oid == ExtendedKeyUsageOID.SERVER_AUTH:
            allow_server = True
        elif oid == ExtendedKeyUsageOID.CLIENT_AUTH:
            allow_client = True
        elif oid.dotted_string != _ANY_PURPOSE:
            # libvirt's rule as written: a purpose it does not know allows both roles
            allow_server = allow_client = True
    role, allowed = ("server", allow_server) if is_server else ("client", allow_client)
    if not allowed:
        message = f"Certificate {name} purpose does not allow use for with a TLS {role}"
        if ext.critical:
            raise _error(message)
        warnings.append(message)


def _check_cert(
    cert: x509.Certificate, name: str, is_server: bool, is_ca: bool, now: dt.datetime, warnings: list[str]
) -> None:
    _check_times(cert, name, is_server, is_ca, now)
    _check_basic_constraints(cert, name, is_server, is_ca)
    _check_key_usage(cert, name, is_ca, warnings)
    if not is_ca:
        _check_key_purpose(cert, name, is_server, warnings)


def _issued_by_one_of(cert: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, Exception):  # wrong issuer, bad signature, unsupported key
            continue
        return True
    return False


def sanity_check(
    cacert_pem: bytes | None,
    cacert_file: str,
    cert_pem: bytes | None,
    cert_file: str,
    *,
    is_server: bool,
    now: dt.datetime | None = None,
) -> list[str]:
    """Check a CA list and one's own certificate as libvirt does; return its warnings.

    A ``None`` file is one that cannot be read: libvirt skips it here (loading
    the credentials reports it).  Raises libvirtError with libvirt's message.
    """
    now = now or dt.datetime.now(dt.UTC)
    warnings: list[str] = []
    cert: x509.Certificate | None = None
    if cert_pem is not None:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            role = "server" if is_server else "client"
            raise _error(f"Unable to import {role} certificate {cert_file}") from None
    cas: list[x509.Certificate] = []
    if cacert_pem is not None:
        try:
            cas = x509.load_pem_x509_certificates(cacert_pem)
        except ValueError:
            cas = []
        if not cas or len(cas) > MAX_CA_CERTS:
            raise _error(f"Unable to import CA certificate list {cacert_file}")
    if cert is not None:
        _check_cert(cert, cert_file, is_server, False, now, warnings)
    for ca in cas:
        _check_cert(ca, cacert_file, is_server, True, now, warnings)
    if cert is not None and cas and not _issued_by_one_of(cert, cas):
        raise _error(
            f"Our own certificate {cert_file} failed validation against {cacert_file}: "
            "The certificate hasn't got a known issuer."
        )
    return warnings


def _read_if_readable(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16)  # libvirt reads at most 64 KiB of a certificate file
    except OSError:
        return None


def sanity_check_files(cacert_file: str, cert_file: str, *, is_server: bool) -> list[str]:
    """``sanity_check`` of the files themselves (the one place this module reads anything)."""
    return sanity_check(
        _read_if_readable(cacert_file),
        cacert_file,
        _read_if_readable(cert_file),
        cert_file,
        is_server=is_server,
    )
