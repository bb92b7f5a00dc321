"""Migration metrics on both hosts of a stock `virsh migrate` (``virtwire serve --metrics``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vwtestkit import ServerStartError, VirtwireServer, hangguard, start_server, stop_servers
from vwtestkit.metrics import metrics_url, scrape, value

Virsh = Callable[..., Any]


class MeteredHosts:
    def __init__(self, src: VirtwireServer, dst: VirtwireServer) -> None:
        self.src, self.dst = src, dst
        self.src_metrics, self.dst_metrics = metrics_url(src), metrics_url(dst)


@pytest.fixture(scope="module")
def hosts() -> Iterator[MeteredHosts]:
    """This module's own pair of hosts, each counting for --metrics."""
    started: list[VirtwireServer] = []

    def kill_all() -> None:  # an aborted session (hang guard) skips teardown
        for server in started:
            if server.process.poll() is None:
                server.process.kill()

    hangguard.on_abort(started, kill_all)
    try:
        for name in ("src-metered", "dst-metered"):
            try:
                started.append(
                    start_server("--metrics", "127.0.0.1:0", pki=None, tls=False, ro=False, hostname=name)
                )
            except ServerStartError as exc:
                pytest.fail(f"could not start virtwire serve: {exc}", pytrace=False)
        yield MeteredHosts(*started)
    finally:
        hangguard.forget_on_abort(started)
        stop_servers(started)


def test_a_migration_is_counted_on_both_sides(
    hosts: MeteredHosts, start_domain: Callable[..., str], run_virsh: Virsh
) -> None:
    name = start_domain(hosts.src.tcp_uri, "metered", working_set_mib=2, dirty_rate=200)
    before_src, before_dst = scrape(hosts.src_metrics), scrape(hosts.dst_metrics)
    result = run_virsh(hosts.src.tcp_uri, "migrate", "--live", name, hosts.dst.tcp_uri, timeout=120)
    assert result.returncode == 0, result.stderr
    src, dst = scrape(hosts.src_metrics), scrape(hosts.dst_metrics)
    for side, before, after in (("out", before_src, src), ("in", before_dst, dst)):
        done = "virtwire_migrations_total"
        assert (
            value(after, done, direction=side, result="completed")
            - value(before, done, direction=side, result="completed")
            == 1
        ), side
        assert value(after, done, direction=side, result="failed") == value(
            before, done, direction=side, result="failed"
        )
        assert value(after, "virtwire_migrations_in_progress", direction=side) == 0
        took = "virtwire_migration_duration_seconds_count"
        assert value(after, took, direction=side) - value(before, took, direction=side) == 1
    # the source sent at least the working set (2 MiB of touched pages)
    sent = value(src, "virtwire_migration_bytes_total", direction="out")
    assert sent - value(before_src, "virtwire_migration_bytes_total", direction="out") >= 2 * 1024 * 1024
    assert (
        value(
            src,
            "virtwire_calls_total",
            program="remote",
            procedure="domain_migrate_perform3_params",
            result="ok",
        )
        >= 1
    )
