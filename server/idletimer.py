"""``--timeout SECONDS``: exit when the daemon has been idle that long, as libvirtd.

libvirtd (src/rpc/virnetdaemon.c) arms its timer when no server has a client
and re-arms it for a whole period whenever the last client leaves; when it
fires while something still inhibits shutdown (a driver with work no client
holds), it waits another period.  Clients of every server count, the admin
server's too.  0 disables it; virt-admin daemon-timeout changes it at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)


class IdleTimer:
    def __init__(self, timeout: int, has_clients: Callable[[], bool], inhibited: Callable[[], bool]) -> None:
        self.timeout = timeout
        self._has_clients = has_clients
        self._inhibited = inhibited
        self._changed = trio.Event()

    def set_timeout(self, seconds: int) -> None:
        self.timeout = seconds
        self._changed.set()

    def clients_changed(self) -> None:
        """A client came or went on some server."""
        self._changed.set()

    async def run(self, quit_daemon: Callable[[], None]) -> None:
        """Call ``quit_daemon`` once the daemon has idled for ``timeout`` seconds."""
        while True:
            self._changed = trio.Event()
            if self.timeout <= 0 or self._has_clients():
                await self._changed.wait()
                continue
            with trio.move_on_after(self.timeout):
                await self._changed.wait()
                continue  # a client came (or the timeout changed): start over
            if self._inhibited():
                log.debug("idle for %ds, but the driver is still busy", self.timeout)
                continue
            log.info("no client for %d seconds: shutting down (--timeout)", self.timeout)
            quit_daemon()
            return
