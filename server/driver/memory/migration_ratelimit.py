"""Bandwidth limiting for the migration stream (a token bucket in bytes)."""

from __future__ import annotations

import trio

MIB = 1024 * 1024
# libvirt reports this as the max speed of a QEMU domain nobody limited
# (QEMU_DOMAIN_MIG_BANDWIDTH_MAX, MiB/s); it means "no limit".
UNLIMITED_MIB_S = (2**63 - 1) // MIB
# A burst of 50 ms worth of data keeps the stream smooth without letting a
# rate change lag behind by more than that.
_BURST_S = 0.05


class TokenBucket:
    """Pace writes at ``rate_mib_s`` MiB/s; 0 or UNLIMITED_MIB_S means unlimited.

    The rate may be changed at any time (migrateSetMaxSpeed during a migration);
    it takes effect for the next ``consume``.
    """

    def __init__(self, rate_mib_s: int) -> None:
        self.rate_mib_s = rate_mib_s
        self._tokens = 0.0
        self._last: float | None = None

    @property
    def limited(self) -> bool:
        return 0 < self.rate_mib_s < UNLIMITED_MIB_S

    async def consume(self, nbytes: int) -> None:
        await trio.sleep(self.reserve(nbytes))

    def reserve(self, nbytes: int) -> float:
        """Take ``nbytes`` now; returns how long to wait before sending them (0: at once)."""
        if not self.limited:
            return 0.0
        rate = self.rate_mib_s * MIB
        now = trio.current_time()
        if self._last is None:
            self._last = now
        self._tokens = min(self._tokens + (now - self._last) * rate, rate * _BURST_S)
        self._last = now
        self._tokens -= nbytes
        return -self._tokens / rate if self._tokens < 0 else 0.0
