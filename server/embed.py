"""Run `virtwire serve` inside another program: a trio context manager and a thread.

    async with virtwire.server.embed.serve(tcp=["127.0.0.1:0"]) as host:
        conn = libvirt.open(host.uri)          # any client, any thread
        ...

    with virtwire.server.embed.ServerThread() as host:   # for programs without trio
        ...

A host listens like `virtwire serve` (TCP, unix read-write and read-only, TLS)
and serves a driver (by default a fresh in-memory test:///default hypervisor);
several hosts may run in one process, and hosts with different host names
migrate to each other.  Leaving the block closes the listeners, drops the
clients and stops whatever the driver still runs (migrations, streams).
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from .config import Endpoint, ServerConfig
from .daemon import Listeners, accept_loop
from .driver.base import Driver
from .driver.memory import nodexml
from .driver.memory.driver import MemoryDriver
from .service import Service


def _endpoint(text: str | Endpoint) -> Endpoint:
    if isinstance(text, Endpoint):
        return text
    host, _, port = text.rpartition(":")
    return Endpoint(host.strip("[]") or "127.0.0.1", int(port))


@dataclass(slots=True)
class EmbeddedServer:
    """A running host: where to reach it and what it serves."""

    hostname: str
    driver: Driver
    service: Service
    tcp: list[Endpoint] = field(default_factory=list)  # with the ports really bound
    tls: list[Endpoint] = field(default_factory=list)
    unix: list[Path] = field(default_factory=list)
    unix_ro: list[Path] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """A read-write URI: the first TCP endpoint, else the first unix socket."""
        if self.tcp:
            return f"test+tcp://{self.tcp[0]}/default"
        if self.unix:
            return self.unix_uri
        raise LookupError("this host has neither a TCP listener nor a read-write unix socket")

    @property
    def unix_uri(self) -> str:
        return f"test+unix:///default?socket={self.unix[0]}"

    @property
    def ro_uri(self) -> str:
        """The read-only socket's URI (libvirt then opens read-only whatever the client asks)."""
        return f"test+unix:///default?socket={self.unix_ro[0]}"

    @property
    def tls_uri(self) -> str:
        return f"test+tls://{self.tls[0]}/default"


def _bound(listeners: Listeners, tls: bool) -> list[Endpoint]:
    """The TCP (or TLS) endpoints really listened on, ports included."""
    found: list[Endpoint] = []
    for sock, handler in listeners.entries:
        serves_tls = getattr(handler, "func", None) is Listeners._serve_tls
        if sock.family in (socket.AF_INET, socket.AF_INET6) and serves_tls == tls:
            host, port = sock.getsockname()[:2]
            found.append(Endpoint(host, port))
    return found


@contextlib.asynccontextmanager
async def serve(
    *,
    driver: Driver | None = None,
    tcp: Sequence[str | Endpoint] = ("127.0.0.1:0",),
    tls: Sequence[str | Endpoint] = (),
    unix: Sequence[str | Path] = (),
    unix_ro: Sequence[str | Path] = (),
    pki_dir: Path | None = None,
    hostname: str | None = None,
    state_dir: Path | None = None,
    node_xml: str | Path | None = None,
    config: ServerConfig | None = None,
) -> AsyncIterator[EmbeddedServer]:
    """Serve until the block ends.  Port 0 picks a free port; ``EmbeddedServer.tcp`` tells which.

    ``node_xml``: start from that node description (libvirt's test-driver format, as
    ``virtwire serve --node-xml``) instead of test:///default.  ``config`` (a full
    ``ServerConfig``) overrides the listener arguments.
    """
    if config is None:
        config = ServerConfig(
            tcp=[_endpoint(e) for e in tcp],
            tls=[_endpoint(e) for e in tls],
            unix=[Path(p) for p in unix],
            unix_ro=[Path(p) for p in unix_ro],
            pki_dir=pki_dir,
            state_dir=state_dir,
            hostname=hostname or socket.gethostname(),
        )
    if driver is None:
        node = nodexml.load(Path(node_xml)) if node_xml is not None else None
        driver = MemoryDriver(hostname=config.hostname, state_dir=config.state_dir, node=node)
    elif node_xml is not None:
        raise ValueError("node_xml describes the built-in driver's host: give it or a driver, not both")
        driver.migration_pki_dir = config.pki_dir  # TLS migration uses the host's PKI
    service = Service(config, driver)
    listeners = Listeners()
    try:
        await listeners.open(config, service)
        server = EmbeddedServer(
            hostname=config.hostname,
            driver=driver,
            service=service,
            tcp=_bound(listeners, tls=False),
            tls=_bound(listeners, tls=True),
            unix=list(config.unix),
            unix_ro=list(config.unix_ro),
        )
        async with trio.open_nursery() as background:
            driver.nursery = background
            try:
                async with trio.open_nursery() as connections:
                    async with trio.open_nursery() as accepting:
                        for listening, handler in listeners.entries:
                            accept = partial(accept_loop, listening, handler, connections, service)
                            accepting.start_soon(accept)
                        try:
                            yield server
                        finally:
                            accepting.cancel_scope.cancel()
                    listeners.close()
                    service.begin_shutdown()
                    service.abort_all("server shutting down")
            finally:
                background.cancel_scope.cancel()
                driver.nursery = None
    finally:
        listeners.close()
        listeners.remove_socket_files()


class ServerThread:
    """An embedded host on a thread of its own, for programs that do not run trio.

    Use as a context manager (or ``start()``/``stop()``).  With ``unix=True`` it also
    listens on read-write and read-only unix sockets in a private directory.
    """

    def __init__(self, *, unix: bool = True, **kwargs: object) -> None:
        self._unix = unix
        self._kwargs = kwargs
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.server: EmbeddedServer | None = None

    def start(self) -> EmbeddedServer:
        kwargs = dict(self._kwargs)
        if self._unix and "unix" not in kwargs:
            self._tmp = tempfile.TemporaryDirectory(prefix="virtwire-")
            kwargs["unix"] = [Path(self._tmp.name, "libvirt-sock")]
            kwargs["unix_ro"] = [Path(self._tmp.name, "libvirt-sock-ro")]
        self._thread = threading.Thread(target=self._run, args=(kwargs,), name="virtwire-host", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"virtwire host did not start: {self._error}") from self._error
        assert self.server is not None
        return self.server

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()
        self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, kwargs: dict[str, object]) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with serve(**kwargs) as server:  # type: ignore[arg-type]
                self.server = server
                self._ready.set()
                await self._stop.wait()

        try:
            trio.run(main)
        except BaseException as exc:  # reported to start(); the thread ends either way
            self._error = exc
        finally:
            self._ready.set()


@contextlib.contextmanager
def hosts(count: int, *, unix: bool = True) -> Iterator[list[EmbeddedServer]]:
    """``count`` hosts on threads, named host-1 ... host-N so that they can migrate to each other."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(ServerThread(unix=unix, hostname=f"host-{i}")) for i in range(1, count + 1)
        ]
