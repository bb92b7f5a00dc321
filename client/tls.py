"""TLS for the client shells: libvirt's credentials as an ssl.SSLContext, the
handshake and 0x01 confirmation byte, and the thread shell's TLS socket.

Apart from transport.py because only TLS connections need ssl: importing it
costs every other client program's start. Every failure becomes the libvirtError
libvirt's client raises for the same situation (virnettlscontext.c wording).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading

from virtwire.client import errfactory
from virtwire.client.uri import Target, TlsFiles
from virtwire.protocol import tlspriority
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

TLS_CONFIRMATION = b"\x01"
# The name it had when this code lived in transport.py: logging set up for it still applies.
log = logging.getLogger("virtwire.client.transport")


class TLSSocket:
    """A TLS socket that one thread may read while others write.

    OpenSSL forbids using one SSL object from two threads at once, and the
    sync client reads on one thread while another may be sending. Every SSL
    call is made non-blocking under a lock; waiting happens outside it.
    """

    def __init__(self, tls: ssl.SSLSocket) -> None:
        tls.setblocking(False)
        self._tls = tls
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._tls.fileno()

    def pending(self) -> int:
        """Decrypted bytes already buffered (select() cannot see them)."""
        with self._lock:
            return self._tls.pending()

    def recv(self, size: int, /) -> bytes:
        while True:
            with self._lock:
                try:
                    return self._tls.recv(size)
                except ssl.SSLWantReadError:
                    want_write = False
                except ssl.SSLWantWriteError:
                    want_write = True
                except ssl.SSLZeroReturnError:
                    return b""
            self._wait(want_write)

    def sendall(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            with self._lock:
                try:
                    view = view[self._tls.send(view) :]
                    continue
                except ssl.SSLWantWriteError:
                    want_write = True
                except ssl.SSLWantReadError:
                    want_write = False
            self._wait(want_write)

    def _wait(self, want_write: bool) -> None:
        if want_write:
            select.select([], [self._tls], [])
        else:
            select.select([self._tls], [], [])

    def shutdown(self, how: int, /) -> None:
        socket.socket.shutdown(self._tls, how)

    def close(self) -> None:
        self._tls.close()


# Client TLS contexts by the identity of their files and options. Building one
# (OpenSSL's defaults, the CA, the key pair, the certificate sanity check) costs
# about 8 ms, more than the handshake, and programs open the same URI again and
# again. A file that changed (inode, size, times) makes a new key, so renewed
# credentials are read again, as libvirt reads them on every open.
_TLS_CONTEXTS: dict[tuple[object, ...], tuple[ssl.SSLContext, tuple[str, ...]]] = {}
_TLS_CONTEXTS_MAX = 16


def _file_identity(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def tls_context(target: Target, files: TlsFiles) -> ssl.SSLContext:
    """The client TLS context: libvirt's CA, client certificate, and checks."""
    key = (
        files,
        tuple(map(_file_identity, (files.cacert, files.clientcert, files.clientkey, files.cacrl))),
        target.no_sanity,
        target.no_verify,
        target.tls_priority,
    )
    cached = _TLS_CONTEXTS.get(key)
    if cached is None:
        cached = _build_tls_context(target, files)
        if len(_TLS_CONTEXTS) >= _TLS_CONTEXTS_MAX:
            _TLS_CONTEXTS.clear()
        _TLS_CONTEXTS[key] = cached
    ctx, warnings = cached
    for warning in warnings:  # on every open, as libvirt checks the files on every open
        log.warning("%s", warning)
    return ctx


def _build_tls_context(target: Target, files: TlsFiles) -> tuple[ssl.SSLContext, tuple[str, ...]]:
    if not os.path.exists(files.cacert):
        raise errfactory.system_errno(
            f"Cannot read CA certificate '{files.cacert}'", FileNotFoundError(2, "")
        )
    warnings: tuple[str, ...] = ()
    if not target.no_sanity:
        # Imported here: cryptography's x509 is 9 MiB of RSS that plain TCP and unix never need.
        from virtwire.protocol import x509check

        warnings = tuple(x509check.sanity_check_files(files.cacert, files.clientcert, is_server=False))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tlspriority.parse(target.tls_priority).apply(ctx)
    try:
        ctx.load_verify_locations(cafile=files.cacert)
        if os.path.exists(files.cacrl):
            # a revoked server certificate then fails verification like any untrusted one
            ctx.load_verify_locations(cafile=files.cacrl)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        # libvirt always presents its client certificate when it has one.
        if os.path.exists(files.clientcert) and os.path.exists(files.clientkey):
            ctx.load_cert_chain(files.clientcert, files.clientkey)
    except (ssl.SSLError, OSError) as exc:
        raise errfactory.make(
            C.VIR_ERR_SYSTEM_ERROR,
            C.VIR_FROM_RPC,
            f"Unable to load TLS credentials: {exc}",
            "%s",
            f"Unable to load TLS credentials: {exc}",
        ) from None
    if target.no_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx, warnings


def tls_handshake_error(exc: BaseException) -> libvirtError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        # An untrusted server certificate or a host name it does not cover.
        detail = "Failed to verify peer's certificate"
    else:
        detail = f"TLS handshake failed {exc}"
    return errfactory.make(
        C.VIR_ERR_AUTH_FAILED,
        C.VIR_FROM_RPC,
        f"authentication failed: {detail}",
        "authentication failed: %s",
        detail,
    )


def tls_confirmation_error(data: bytes) -> libvirtError:
    if not data:
        return errfactory.system("Unable to read TLS confirmation: Input/output error", 5)
    return errfactory.make(
        C.VIR_ERR_RPC,
        C.VIR_FROM_RPC,
        "server verification (of our certificate or IP address) failed",
        "%s",
        "server verification (of our certificate or IP address) failed",
    )


def start_tls(sock: socket.socket, target: Target, ctx: ssl.SSLContext) -> TLSSocket:
    try:
        tls = ctx.wrap_socket(sock, server_hostname=target.host)
    except ssl.SSLError as exc:
        sock.close()
        raise tls_handshake_error(exc) from None
    except OSError as exc:
        sock.close()
        raise errfactory.system_errno("Cannot recv data", exc) from None
    # The daemon checks our certificate and address, then sends one byte.
    try:
        data = tls.recv(1)
    except OSError as exc:
        tls.close()
        raise errfactory.system_errno("Unable to read TLS confirmation", exc) from None
    if data != TLS_CONFIRMATION:
        tls.close()
        raise tls_confirmation_error(data)
    return TLSSocket(tls)
