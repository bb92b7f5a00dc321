"""Give freed heap memory back to the operating system.

CPython's objects above 512 bytes come from glibc's malloc, which keeps what
was freed for reuse: after a burst of large transient buffers (replies to a
client, a packet being assembled, compiling the generated codec when no .pyc
can be written) the process stays that big.  glibc's ``malloc_trim`` returns
the free pages.  It costs a walk of the heap (about 0.1 ms, as much as opening
a connection), so it runs at most every ``MIN_INTERVAL`` seconds as connections
end; when the last client leaves within that interval, the trim is put off to
its end rather than skipped, so an idle server always gives memory back.
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0  # seconds between trims while connections come and go


def _load_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


_TRIM = _load_trim()


def release_free_memory() -> None:
    """Return the heap's free pages to the OS now (glibc only)."""
    if _TRIM is not None:
        _TRIM(0)


class Trimmer:
    """Rate-limited ``release_free_memory`` for a server whose clients come and go."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = float("-inf")
        self._deferred = False  # a caller waits to trim once the interval is over

    def connection_ended(self, idle: bool) -> float | None:
        """A client left; ``idle``: it was the last one.

        Returns how long to wait before calling ``still_idle`` when the trim an
        idle server needs was put off (only one caller at a time is asked to).
        """
        now = self._clock()
        if now - self._last >= MIN_INTERVAL:
            self._last = now
            release_free_memory()
            return None
        if idle and not self._deferred:
            self._deferred = True
            return self._last + MIN_INTERVAL - now
        return None

    def still_idle(self, idle: bool) -> None:
        """The wait ``connection_ended`` asked for is over (or was cancelled)."""
        self._deferred = False
        if idle:
            self._last = self._clock()
            release_free_memory()
