"""The methods that hand a virStream to a call: virDomain.screenshot,
openConsole, openChannel and virStorageVol.download, upload.

virStream itself, conn.newStream() and the binding of a stream to its call
are the client core's (client/stream.py: `start`, `storage_vol_download`,
...).  This module is the import point: while that module is not there (this
branch before the client-core merge) the classes have no stream methods at
all rather than methods that cannot work; once it is, they have libvirt-python's.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from virtwire.client import ops
from virtwire.client.surface.base import Handle


def _stream_module() -> ModuleType | None:
    try:
        return importlib.import_module("virtwire.client.stream")
    except ModuleNotFoundError:
        return None


# The client core's stream module, or None before it is merged.
STREAM: Any = _stream_module()


def _open(h: Any, stream: Any, op: ops.Op) -> Any:
    """Bind `stream` to the call `op` opens (the client core's start)."""
    conn = h._conn
    return STREAM.start(stream, conn._sock, conn._readonly, op, False)


if STREAM is not None:

    class DomainStreams(Handle):
        def screenshot(self, stream: Any, screen: int, flags: int = 0) -> str:
            conn = self._conn
            return str(STREAM.domain_screenshot(stream, conn._sock, conn._readonly, self._ref, screen, flags))

        def openConsole(self, dev_name: str | None, st: Any, flags: int = 0) -> int:
            _open(self, st, ops.call("DOMAIN_OPEN_CONSOLE", dom=self._ref, dev_name=dev_name, flags=flags))
            return 0

        def openChannel(self, name: str | None, st: Any, flags: int = 0) -> int:
            _open(self, st, ops.call("DOMAIN_OPEN_CHANNEL", dom=self._ref, name=name, flags=flags))
            return 0

    class StorageVolStreams(Handle):
        # libvirt-python's chunk size for the stream's *All helpers.
        streamBufSize = 262120

        def download(self, stream: Any, offset: int, length: int, flags: int = 0) -> int:
            conn = self._conn
            return int(
                STREAM.storage_vol_download(
                    stream, conn._sock, conn._readonly, self._ref, offset, length, flags
                )
            )

        def upload(self, stream: Any, offset: int, length: int, flags: int = 0) -> int:
            conn = self._conn
            return int(
                STREAM.storage_vol_upload(
                    stream, conn._sock, conn._readonly, self._ref, offset, length, flags
                )
            )

else:

    class DomainStreams(Handle):  # type: ignore[no-redef]
        """No stream methods until client/stream.py is there."""

    class StorageVolStreams(Handle):  # type: ignore[no-redef]
        """No stream methods until client/stream.py is there."""
