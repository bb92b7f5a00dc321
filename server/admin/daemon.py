"""The daemon as virt-admin sees it (libvirt's virNetDaemon): servers by name, logging, idle timer.

libvirtd has two servers, "libvirtd" (the hypervisor sockets) and "admin"
(the admin socket), each with its own clients, client limits and worker
pool settings.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

from ..idletimer import IdleTimer
from ..logsettings import LogSettings
from ..service import Service
from ..tls import ServerTlsFiles


@dataclass(slots=True)
class ThreadPoolSettings:
    """libvirtd's worker pool settings of one server.

    virtwire has no worker pool: a call that may wait runs as its own trio task
    and a client past its request limit is simply not read.  The settings are
    kept and checked as libvirtd does, and bound nothing.
    """

    min_workers: int
    max_workers: int
    prio_workers: int


class Daemon:
    def __init__(self, *, timeout: int = 0, log: LogSettings | None = None) -> None:
        self.servers: dict[str, Service] = {}
        self.threadpools: dict[str, ThreadPoolSettings] = {}
        self.log = log if log is not None else LogSettings()
        self.idle = IdleTimer(timeout, self.has_clients, self.inhibited)
        # The TLS listeners' context and the PKI files it was made from (srv-update-tls).
        self.tls: tuple[ssl.SSLContext, ServerTlsFiles] | None = None

    def add_server(self, service: Service, pool: ThreadPoolSettings) -> None:
        self.servers[service.name] = service
        self.threadpools[service.name] = pool
        service.on_client_count = self.idle.clients_changed

    def has_clients(self) -> bool:
        return any(service.connections for service in self.servers.values())

    def inhibited(self) -> bool:
        """Something no client holds is still running (libvirtd's shutdown inhibitions)."""
        return any(service.driver.inhibits_idle_exit() for service in self.servers.values())

    async def run_idle_timer(self, quit_daemon: Callable[[], None]) -> None:
        await self.idle.run(quit_daemon)
