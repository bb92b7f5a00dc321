"""libvirt's per-thread last error (virGetLastError and friends).

Every error a call reports is also kept here for the calling thread, as
libvirt's virterror does; virResetLastError forgets it.
"""

from __future__ import annotations

import threading
from typing import Any

_local = threading.local()
# The per-thread holder itself, for the call path that resets it once per call
# (`state.err = None` is reset() without a function call).
state = _local


def record(err: tuple[Any, ...] | None) -> None:
    _local.err = err


def get() -> tuple[Any, ...] | None:
    err: tuple[Any, ...] | None = getattr(_local, "err", None)
    return err


def reset() -> None:
    _local.err = None
