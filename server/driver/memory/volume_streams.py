"""Volume upload and download: the STORAGE_VOL_UPLOAD/DOWNLOAD procedures and their streams.

libvirt's test driver has neither; these follow libvirt's storage driver
(storage_driver.c storageVolUpload/Download over virFDStreamOpenBlockDevice):
``offset`` is where the stream starts, ``length`` how many bytes it carries at
most (0: up to the end).  The volume is treated as a device of its capacity:
a download ends at the capacity, an upload that goes past it fails with
virfdstream's ENOSPC error, a hole that goes past it is cut at the end.
With the SPARSE_STREAM flag holes travel as STREAM_HOLE packets both ways.
"""

from __future__ import annotations

import os

from virtwire.protocol.errors import make_error
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ... import streams
from ...errors import unsupported_flags
from ..base import ConnectionContext, nonblocking
from .storage import StorageState
from .volume_data import VolumeReader, VolumeWriter


def _no_space() -> Exception:
    return make_error(
        C.VIR_ERR_SYSTEM_ERROR, C.VIR_FROM_STREAMS, f"cannot write to stream: {os.strerror(28)}"
    )  # ENOSPC


class UploadSink(streams.StreamSink):
    """Bytes from the client into a volume."""

    def __init__(self, writer: VolumeWriter, sparse: bool) -> None:
        self.writer = writer
        self.sparse = sparse
        self.done = False

    async def write(self, data: memoryview) -> None:
        room = self.writer.room
        if room <= 0:
            raise _no_space()
        self.writer.write(data[:room])
        if len(data) > room:
            raise _no_space()

    async def hole(self, length: int) -> None:
        self.writer.hole(min(length, max(self.writer.room, 0)))

    async def finish(self) -> None:
        if not self.done:
            self.done = True
            self.writer.finish()

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self.writer.abort()


class DownloadSource(streams.StreamSource):
    """Bytes of a volume to the client."""

    def __init__(self, reader: VolumeReader, sparse: bool) -> None:
        self.reader = reader
        self.sparse = sparse

    async def section(self) -> tuple[bool, int]:
        return self.reader.section()

    async def read(self, max_bytes: int) -> bytes:
        return self.reader.read(max_bytes)

    async def skip(self, length: int) -> None:
        self.reader.skip(length)

    async def finish(self) -> None:
        self.reader.close()

    def abort(self) -> None:
        self.reader.close()


@nonblocking
class VolumeStreamAPI(StorageState):
    """STORAGE_VOL_UPLOAD and STORAGE_VOL_DOWNLOAD (answered at once; the data follows as a stream)."""

    async def storage_vol_upload(
        self, args: R.remote_storage_vol_upload_args, ctx: ConnectionContext
    ) -> None:
        allowed = C.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM
        if args.flags & ~allowed:
            raise unsupported_flags(args.flags & ~allowed, "storageVolUpload", C.VIR_FROM_STORAGE)
        vol = self.volume(args.vol)
        capacity = vol.vdef.capacity
        room = max(capacity - args.offset, 0)
        if args.length:
            room = min(room, args.length)
        fd = self.volume_files.open(vol.pool.uuid_string, vol.name, write=True)
        assert fd is not None
        sparse = bool(args.flags & C.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        writer = VolumeWriter(fd, args.offset, room, durable=self.volume_files.durable)
        streams.attach(UploadSink(writer, sparse))

    async def storage_vol_download(
        self, args: R.remote_storage_vol_download_args, ctx: ConnectionContext
    ) -> None:
        allowed = C.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM
        if args.flags & ~allowed:
            raise unsupported_flags(args.flags & ~allowed, "storageVolDownload", C.VIR_FROM_STORAGE)
        vol = self.volume(args.vol)
        end = vol.vdef.capacity
        if args.length:
            end = min(end, args.offset + args.length)
        fd = self.volume_files.open(vol.pool.uuid_string, vol.name, write=False)
        sparse = bool(args.flags & C.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        streams.attach(DownloadSource(VolumeReader(fd, args.offset, max(end, args.offset)), sparse))
