"""Save images and core dumps in the test driver's file format.

libvirt's test driver saves a domain as a small file at the path the caller
gives: the magic ``TestGuestMagic`` with its NUL (15 bytes), the length of the
XML as a native ``int``, then the domain XML.  A core dump is the magic alone.
Reading checks the same things in the same order and fails with the same
errors (a definition longer than 8192 bytes is refused on reading).

The files are written in the real filesystem by the server process, as libvirtd
does; every failure is reported as libvirt's system error with the errno.
"""

from __future__ import annotations

import errno as errnos
import os
import struct

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C

from ...errors import report

MAGIC = b"TestGuestMagic\0"
_LENGTH = struct.Struct("=i")  # a C int in the host's byte order
_MAX_XML = 8192
_MODE = 0o600


def _system(err: int, detail: str) -> Exception:
    return E.system_error(err, detail, C.VIR_FROM_TEST)


def write_image(path: str, name: str, xml: str) -> None:
    """testDomainSaveImageWrite: header and XML at ``path``; a partial file is removed."""
    data = xml.encode()
    try:
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, _MODE)
    except OSError as exc:
        raise _system(exc.errno or errnos.EIO, f"saving domain '{name}' to '{path}': open failed") from None
    try:
        try:
            for chunk in (MAGIC, _LENGTH.pack(len(data)), data):
                _write_all(fd, chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        _unlink_quietly(path)
        raise _system(exc.errno or errnos.EIO, f"saving domain '{name}' to '{path}': write failed") from None


def write_core_dump(path: str, name: str) -> None:
    """testDomainCoreDumpWithFormat's file: the magic alone."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, _MODE)
    except OSError as exc:
        raise _system(exc.errno or errnos.EIO, f"domain '{name}' coredump: failed to open {path}") from None
    try:
        _write_all(fd, MAGIC)
    except OSError as exc:
        os.close(fd)
        raise _system(
            exc.errno or errnos.EIO, f"domain '{name}' coredump: failed to write header to {path}"
        ) from None
    try:
        os.close(fd)
    except OSError as exc:
        raise _system(exc.errno or errnos.EIO, f"domain '{name}' coredump: write failed: {path}") from None


def read_image(path: str) -> str:
    """testDomainSaveImageOpen: the XML stored at ``path``, or libvirt's error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise _system(exc.errno or errnos.EIO, f"cannot read domain image '{path}'") from None
    try:
        magic = _read(fd, len(MAGIC), f"incomplete save header in '{path}'")
        if magic != MAGIC:
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_TEST, "mismatched header magic")
        raw_length = _read(fd, _LENGTH.size, f"failed to read metadata length in '{path}'")
        (length,) = _LENGTH.unpack(raw_length)
        if length < 1 or length > _MAX_XML:
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_TEST, "length of metadata out of range")
        data = _read(fd, length, f"incomplete metadata in '{path}'")
    finally:
        os.close(fd)
    # libvirt reads the XML as a C string: it ends at the first NUL.
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _read(fd: int, size: int, detail: str) -> bytes:
    """saferead: ``size`` bytes, or the system error (errno 0 on a short file, as libvirt)."""
    chunks: list[bytes] = []
    wanted = size
    try:
        while wanted:
            chunk = os.read(fd, wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
    except OSError as exc:
        raise _system(exc.errno or errnos.EIO, detail) from None
    if wanted:
        raise _system(0, detail)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return
