"""The bytes of storage volumes: one sparse file per volume that was ever written.

A volume reads as its file zero-extended to its capacity; a volume never
written has no file at all (all of it is a hole).  Holes are real holes of the
file system (SEEK_DATA/SEEK_HOLE find them; a hole written by a sparse upload
punches one), so a sparse download sends the holes a sparse upload made.

With ``--state-dir`` the files live in ``<state-dir>/volumes/<pool uuid>/``
and survive a restart; without one, in a private temporary directory removed
when the driver goes away.  Files are named by the hex of the volume name, so
any name libvirt accepts is a safe file name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from pathlib import Path

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_COPY_CHUNK = 1 << 20


def _punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate ``[offset, offset+length)``; the range then reads as zeros."""
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    if _libc.fallocate(fd, mode, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise OSError(err, os.strerror(err))
        zeros = bytes(min(length, _COPY_CHUNK))
        end = offset + length
        while offset < end:
            offset += os.pwrite(fd, zeros[: end - offset], offset)


def extents(fd: int, start: int, end: int) -> list[tuple[bool, int, int]]:
    """``[(is_data, from, to)]`` covering ``[start, end)``; past the file's end is a hole."""
    size = os.fstat(fd).st_size
    found: list[tuple[bool, int, int]] = []
    position = start
    while position < end:
        if position >= size:
            found.append((False, position, end))
            break
        try:
            data_at = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            data_at = size  # only a hole up to the end of the file
        if data_at > position:
            hole_end = min(data_at, end)
            found.append((False, position, hole_end))
            position = hole_end
            continue
        hole_at = os.lseek(fd, position, os.SEEK_HOLE)
        data_end = min(hole_at, end)
        found.append((True, position, data_end))
        position = data_end
    merged: list[tuple[bool, int, int]] = []
    for item in found:
        if merged and merged[-1][0] == item[0] and merged[-1][2] == item[1]:
            merged[-1] = (item[0], merged[-1][1], item[2])
        else:
            merged.append(item)
    return merged


class VolumeFiles:
    """Where volume bytes live: a directory per pool, a file per written volume."""

    def __init__(self, state_dir: Path | None) -> None:
        self.durable = state_dir is not None
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is not None:
            self.root = state_dir / "volumes"
        else:
            self._temp = tempfile.TemporaryDirectory(prefix="virtwire-volumes-")
            self.root = Path(self._temp.name)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, pool_key: str, name: str) -> Path:
        return self.root / pool_key / f"{name.encode().hex()}.img"

    def open(self, pool_key: str, name: str, *, write: bool) -> int | None:
        """A file descriptor on the volume's bytes; None when reading one never written."""
        path = self.path(pool_key, name)
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

    def delete(self, pool_key: str, name: str) -> None:
        self.path(pool_key, name).unlink(missing_ok=True)

    def delete_pool(self, pool_key: str) -> None:
        shutil.rmtree(self.root / pool_key, ignore_errors=True)

    def wipe(self, pool_key: str, name: str) -> None:
        """Every byte reads as zero again (the file goes; holes cost nothing)."""
        self.delete(pool_key, name)

    def truncate(self, pool_key: str, name: str, size: int) -> None:
        """Shrinking a volume drops what lay beyond its new end."""
        path = self.path(pool_key, name)
        if path.exists() and path.stat().st_size > size:
            os.truncate(path, size)

    def clone(self, pool_key: str, source: str, target: str, capacity: int) -> None:
        """Copy ``source``'s first ``capacity`` bytes to ``target``, keeping holes."""
        src = self.open(pool_key, source, write=False)
        if src is None:
            return
        try:
            dst = self.open(pool_key, target, write=True)
            assert dst is not None
            try:
                for is_data, start, end in extents(src, 0, min(capacity, os.fstat(src).st_size)):
                    while is_data and start < end:
                        chunk = os.pread(src, min(_COPY_CHUNK, end - start), start)
                        if not chunk:
                            break
                        os.pwrite(dst, chunk, start)
                        start += len(chunk)
                os.ftruncate(dst, min(capacity, os.fstat(src).st_size))
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def close(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


class VolumeWriter:
    """Bytes arriving for ``[offset, offset+limit)`` of a volume (an upload)."""

    def __init__(self, fd: int, offset: int, limit: int, *, durable: bool) -> None:
        self.fd = fd
        self.durable = durable  # fsync at the end (only bytes kept in the state dir need it)
        self.position = offset
        self.end = offset + limit

    @property
    def room(self) -> int:
        return self.end - self.position

    def write(self, data: bytes | memoryview) -> None:
        os.pwrite(self.fd, data, self.position)
        self.position += len(data)

    def hole(self, length: int) -> None:
        size = os.fstat(self.fd).st_size
        if self.position < size:
            _punch_hole(self.fd, self.position, min(length, size - self.position))
        self.position += length
        if self.position > size:
            os.ftruncate(self.fd, self.position)

    def finish(self) -> None:
        if self.durable:
            os.fsync(self.fd)
        os.close(self.fd)

    def abort(self) -> None:
        os.close(self.fd)


class VolumeReader:
    """Bytes of ``[offset, end)`` of a volume, read in order (a download)."""

    def __init__(self, fd: int | None, offset: int, end: int) -> None:
        self.fd = fd
        self.position = offset
        self.end = end

    def section(self) -> tuple[bool, int]:
        """Whether the next bytes are data, and how many of them (0 at the end)."""
        if self.position >= self.end:
            return True, 0
        if self.fd is None:
            return False, self.end - self.position
        is_data, start, stop = extents(self.fd, self.position, self.end)[0]
        return is_data, stop - start

    def read(self, max_bytes: int) -> bytes:
        count = min(max_bytes, self.end - self.position)
        if count <= 0:
            return b""
        data = os.pread(self.fd, count, self.position) if self.fd is not None else b""
        if len(data) < count:
            data += bytes(count - len(data))  # past the file's end the volume reads zeros
        self.position += count
        return data

    def skip(self, length: int) -> None:
        self.position += length

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
