"""Prometheus metrics (``virtwire serve --metrics HOST:PORT``), exposed by prometheus_client.

Cheap on the call path: a call adds to plain counters and one histogram bucket
of its procedure (no label lookups, no locks); prometheus_client reads them
when ``/metrics`` is scraped, from its own HTTP thread, through a collector
that builds the metric families (the exposition format is the library's).

Metrics (all prefixed ``virtwire_``):

* ``calls_total{program,procedure,result}`` (result ``ok`` / ``error``) and
  ``call_duration_seconds{program,procedure}``, a histogram;
* ``errors_total{code,name}``: error replies by VIR_ERR_* code;
* ``connections{server,transport,readonly}``: open now, and
  ``connections_opened_total{transport,readonly}``: CONNECT_OPENs that succeeded;
* ``events_sent_total`` / ``events_dropped_total``: event messages queued to
  clients, and those lost to a client that fell behind (it is disconnected);
* ``keepalive_timeouts_total``: clients dropped for not answering pings;
* ``migrations_in_progress{direction}``, ``migrations_total{direction,result}``,
  ``migration_bytes_total{direction}`` and ``migration_duration_seconds{direction}``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from virtwire.protocol.generated import admin as A
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from .config import Endpoint
    from .service import Service

# Upper bounds of the call latency histogram, in seconds (+Inf is implied).
CALL_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
MIGRATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

_bisect = bisect.bisect_left
_PROGRAMS = {R.REMOTE_PROGRAM: ("remote", R.PROCEDURES), A.ADMIN_PROGRAM: ("admin", A.PROCEDURES)}
_LEVEL_NAMES = {"VIR_ERR_NONE", "VIR_ERR_WARNING", "VIR_ERR_ERROR"}  # error levels, not codes
ERROR_NAMES = {
    value: name
    for name, value in vars(C).items()
    if name.startswith("VIR_ERR_") and name not in _LEVEL_NAMES and isinstance(value, int)
}


class Histogram:
    """Bucket counts (not cumulative) and a sum; read by the collector."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), list(self.counts), strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class CallStats(Histogram):
    """One procedure's calls: answered ok, answered with an error, and their latency histogram."""

    __slots__ = ("errors", "ok")

    def __init__(self) -> None:
        super().__init__(CALL_BUCKETS)
        self.ok = 0
        self.errors = 0


class Metrics:
    """What the server counts; one per server process, shared by its services."""

    def __init__(self) -> None:
        self.calls: dict[tuple[int, int], CallStats] = {}
        self.errors: dict[int, int] = {}
        self.opened: dict[tuple[str, bool], int] = {}
        self.events_sent = 0
        self.events_dropped = 0
        self.keepalive_timeouts = 0
        self.migrations_started: dict[str, int] = {"in": 0, "out": 0}
        self.migrations: dict[tuple[str, str], int] = {}
        self.migration_bytes: dict[str, int] = {"in": 0, "out": 0}
        self.migration_durations = {"in": Histogram(MIGRATION_BUCKETS), "out": Histogram(MIGRATION_BUCKETS)}
        # Jobs running now by direction, keyed by identity (a job is a mutable dataclass).
        self._running: dict[str, dict[int, Any]] = {"in": {}, "out": {}}
        self.services: list[Service] = []

    # --- the call path ------------------------------------------------------------------------

    def call_done(self, program: int, procedure: int, code: int, seconds: float) -> None:
        """One answered call; ``code``: its error's VIR_ERR_* code, 0 when it succeeded.

        On every call's path: kept to a dict lookup, a bisect and three additions.
        """
        stats = self.calls.get((program, procedure))
        if stats is None:
            stats = self.calls[(program, procedure)] = CallStats()
        stats.counts[_bisect(CALL_BUCKETS, seconds)] += 1
        stats.total += seconds
        if code:
            stats.errors += 1
            self.errors[code] = self.errors.get(code, 0) + 1
        else:
            stats.ok += 1

    def connection_opened(self, transport: str, readonly: bool) -> None:
        key = (transport, readonly)
        self.opened[key] = self.opened.get(key, 0) + 1

    # --- migrations (the memory driver's jobs) -------------------------------------------------

    def migration_started(self, job: Any, direction: str) -> None:
        self._running[direction][id(job)] = job
        self.migrations_started[direction] += 1

    def migration_finished(
        self, job: Any, direction: str, result: str, data_bytes: int, seconds: float
    ) -> None:
        self._running[direction].pop(id(job), None)
        key = (direction, result)
        self.migrations[key] = self.migrations.get(key, 0) + 1
        self.migration_bytes[direction] += data_bytes
        self.migration_durations[direction].observe(seconds)

    def migrations_running(self, direction: str) -> int:
        return len(self._running[direction])


def _procedure_name(program: int, procedure: int) -> tuple[str, str]:
    name, table = _PROGRAMS.get(program, (str(program), {}))
    proc = table.get(procedure)
    return name, proc.name.lower() if proc is not None else str(procedure)


class _Collector:
    """Builds the metric families from ``Metrics`` at scrape time (prometheus_client's custom collector)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        m = self.metrics
        calls = CounterMetricFamily(
            "virtwire_calls",
            "RPC calls answered, by procedure and result",
            labels=["program", "procedure", "result"],
        )
        latency = HistogramMetricFamily(
            "virtwire_call_duration_seconds",
            "Time from a call's arrival to its reply",
            labels=["program", "procedure"],
        )
        for (program, procedure), stats in list(m.calls.items()):
            labels = list(_procedure_name(program, procedure))
            calls.add_metric([*labels, "ok"], stats.ok)
            calls.add_metric([*labels, "error"], stats.errors)
            latency.add_metric(labels, stats.buckets(), stats.total)
        yield calls
        yield latency
        errors = CounterMetricFamily(
            "virtwire_errors", "Error replies by libvirt error code", labels=["code", "name"]
        )
        for code, count in sorted(list(m.errors.items())):
            errors.add_metric([str(code), ERROR_NAMES.get(code, "")], count)
        yield errors
        current = GaugeMetricFamily(
            "virtwire_connections", "Client connections open now", labels=["server", "transport", "readonly"]
        )
        for service in list(m.services):
            counts: dict[tuple[str, bool], int] = {}
            for conn in list(service.connections):
                key = (conn.ctx.transport, conn.ctx.readonly)
                counts[key] = counts.get(key, 0) + 1
            for (transport, readonly), count in sorted(counts.items()):
                current.add_metric([service.name, transport, _flag(readonly)], count)
        yield current
        opened = CounterMetricFamily(
            "virtwire_connections_opened",
            "Connections that completed CONNECT_OPEN, by transport and read-only flag",
            labels=["transport", "readonly"],
        )
        for (transport, readonly), count in sorted(list(m.opened.items())):
            opened.add_metric([transport, _flag(readonly)], count)
        yield opened
        yield CounterMetricFamily(
            "virtwire_events_sent", "Event messages queued to clients", value=m.events_sent
        )
        yield CounterMetricFamily(
            "virtwire_events_dropped",
            "Event messages lost to a client that fell behind (the client is dropped)",
            value=m.events_dropped,
        )
        yield CounterMetricFamily(
            "virtwire_keepalive_timeouts",
            "Clients dropped for not answering pings",
            value=m.keepalive_timeouts,
        )
        yield from self._migrations()

    def _migrations(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        m = self.metrics
        running = GaugeMetricFamily(
            "virtwire_migrations_in_progress", "Migrations running", labels=["direction"]
        )
        done = CounterMetricFamily("virtwire_migrations", "Migrations ended", labels=["direction", "result"])
        data = CounterMetricFamily(
            "virtwire_migration_bytes",
            "Guest memory bytes sent or received by ended migrations",
            labels=["direction"],
        )
        took = HistogramMetricFamily(
            "virtwire_migration_duration_seconds", "Duration of ended migrations", labels=["direction"]
        )
        for direction in ("in", "out"):
            running.add_metric([direction], m.migrations_running(direction))
            for result in ("completed", "failed", "cancelled"):
                done.add_metric([direction, result], m.migrations.get((direction, result), 0))
            data.add_metric([direction], m.migration_bytes[direction])
            hist = m.migration_durations[direction]
            took.add_metric([direction], hist.buckets(), hist.total)
        return [running, done, data, took]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def registry_for(metrics: Metrics) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics))
    # The library's own: process CPU, memory and file descriptors; Python version; GC.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsServer:
    """prometheus_client's HTTP server in its own thread, serving /metrics for ``metrics``."""

    def __init__(self, metrics: Metrics, endpoint: Endpoint) -> None:
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(endpoint.port, endpoint.host, registry_for(metrics))
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def prometheus_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True
