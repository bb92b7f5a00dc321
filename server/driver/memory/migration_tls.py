"""TLS on the migration link (VIR_MIGRATE_TLS), with the host's own certificates.

libvirt gives QEMU the host's migration PKI (migrate_tls_x509_cert_dir); a
virtwire host uses its ``--pki-dir``: the destination listens with
servercert.pem / serverkey.pem and requires a client certificate signed by
cacert.pem; the source presents clientcert.pem / clientkey.pem and checks the
destination's certificate against the host it connects to (or
``tls.destination``). Every connection of the link is TLS, each data
connection of a parallel link included.

The refusals are libvirt's: no PKI at all is "host migration TLS directory not
configured" (qemuMigrationParamsEnableTLS); a PKI that lacks a file fails as
QEMU's tls-creds-x509 object fails, relayed by libvirt.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trio
from virtwire.protocol.generated import constants as C

from ...errors import report
from ...tls import ServerTlsFiles, server_context
from .core import FROM

_SOURCE_FILES = ("cacert.pem", "clientcert.pem", "clientkey.pem")
_DESTINATION_FILES = ("cacert.pem", "servercert.pem", "serverkey.pem")


def _credentials(pki_dir: Path | None, files: tuple[str, ...]) -> Path:
    if pki_dir is None:
        raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "host migration TLS directory not configured")
    for name in files:
        path = pki_dir / name
        if not path.is_file():
            raise report(
                C.VIR_ERR_INTERNAL_ERROR,
                FROM,
                f"unable to execute QEMU command 'object-add': "
                f"Unable to access credentials {path}: No such file or directory",
            )
    return pki_dir


@dataclass(frozen=True, slots=True)
class SourceTLS:
    """The source's TLS: its client identity and the name the destination must prove."""

    context: ssl.SSLContext
    hostname: str

    async def wrap(self, stream: trio.abc.Stream) -> trio.SSLStream[trio.abc.Stream]:
        tls = trio.SSLStream(stream, self.context, server_hostname=self.hostname)
        await tls.do_handshake()
        return tls


@dataclass(frozen=True, slots=True)
class DestinationTLS:
    context: ssl.SSLContext

    async def wrap(self, stream: trio.abc.Stream) -> trio.SSLStream[trio.abc.Stream]:
        tls = trio.SSLStream(stream, self.context, server_side=True)
        await tls.do_handshake()
        return tls


def source_tls(pki_dir: Path | None, hostname: str) -> SourceTLS:
    pki = _credentials(pki_dir, _SOURCE_FILES)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "cacert.pem"))
    context.load_cert_chain(pki / "clientcert.pem", pki / "clientkey.pem")
    return SourceTLS(context, hostname)


def destination_tls(pki_dir: Path | None) -> DestinationTLS:
    return DestinationTLS(server_context(ServerTlsFiles.locate(_credentials(pki_dir, _DESTINATION_FILES))))


def handshake_error(exc: BaseException) -> str:
    """A failed handshake, worded as QEMU's migration error."""
    detail = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return f"TLS handshake failed: {detail}"
