"""``virtwire serve --metrics``: /metrics read by prometheus_client's text-format parser while load runs."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import remote as R
from vwtestkit import RawRpcClient, VirtwireServer, start_server, stop_servers
from vwtestkit.metrics import Samples, metrics_url, scrape, value


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[VirtwireServer, str]]:
    server = start_server(
        "--metrics",
        "127.0.0.1:0",
        "--keepalive-interval",
        "0.2",
        "--keepalive-count",
        "1",
        pki=None,
        tls=False,
    )
    try:
        yield server, metrics_url(server)
    finally:
        stop_servers([server])


INFO = {"program": "remote", "procedure": "domain_get_info"}


def test_scraped_while_load_runs(served: tuple[VirtwireServer, str], real_libvirt: ModuleType) -> None:
    server, url = served
    before = scrape(url)
    calls, misses = 1000, 7
    failures: list[BaseException] = []

    def load(uri: str) -> None:
        try:
            conn = real_libvirt.open(uri)
            dom = conn.lookupByName("test")
            for _ in range(calls):
                dom.info()
            for _ in range(misses):
                with pytest.raises(real_libvirt.libvirtError):
                    conn.lookupByName("no-such-domain")
            conn.close()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    workers = [threading.Thread(target=load, args=(uri,)) for uri in (server.tcp_uri, server.unix_uri)]
    for worker in workers:
        worker.start()
    scrapes: list[Samples] = []
    while any(w.is_alive() for w in workers) or not scrapes:
        scrapes.append(scrape(url))  # parsed while calls are being counted
    for worker in workers:
        worker.join()
    assert not failures, failures
    after = scrape(url)

    # counters only go up from scrape to scrape
    seen = [before, *scrapes, after]
    for earlier, later in itertools.pairwise(seen):
        key = ("virtwire_calls_total", tuple(sorted({**INFO, "result": "ok"}.items())))
        assert later.get(key, 0.0) >= earlier.get(key, 0.0)

    def delta(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert delta("virtwire_calls_total", **INFO, result="ok") == 2 * calls
    assert delta("virtwire_call_duration_seconds_count", **INFO) == 2 * calls
    assert delta("virtwire_call_duration_seconds_bucket", **INFO, le="+Inf") == 2 * calls
    lookups = {"program": "remote", "procedure": "domain_lookup_by_name"}
    assert delta("virtwire_calls_total", **lookups, result="error") == 2 * misses
    assert delta("virtwire_errors_total", code="42", name="VIR_ERR_NO_DOMAIN") == 2 * misses
    assert delta("virtwire_connections_opened_total", transport="tcp", readonly="false") == 1
    assert delta("virtwire_connections_opened_total", transport="unix", readonly="false") == 1
    assert value(after, "process_resident_memory_bytes") > 0  # prometheus_client's process collector


def test_connections_by_transport_and_readonly(
    served: tuple[VirtwireServer, str], real_libvirt: ModuleType
) -> None:
    server, url = served
    assert server.unix_ro_path is not None
    ro = real_libvirt.openReadOnly(server.unix_ro_uri)
    rw = real_libvirt.open(server.tcp_uri)
    try:
        now = scrape(url)
        gauge = "virtwire_connections"
        assert value(now, gauge, server="libvirtd", transport="unix", readonly="true") == 1
        assert value(now, gauge, server="libvirtd", transport="tcp", readonly="false") == 1
    finally:
        ro.close()
        rw.close()


def test_events_and_keepalive_timeouts(served: tuple[VirtwireServer, str], real_libvirt: ModuleType) -> None:
    server, url = served
    before = scrape(url)
    args = R.remote_connect_domain_event_callback_register_any_args(
        eventID=0, dom=None
    )  # lifecycle, any domain
    with RawRpcClient.unix(server.unix_path) as listener:
        listener.open()
        register = R.remote_procedure.REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
        assert listener.call(register, args.to_bytes()).status == 0
        conn = real_libvirt.open(server.tcp_uri)
        dom = conn.lookupByName("test")
        dom.suspend()
        dom.resume()
        conn.close()
        for _ in range(2):  # both events reached the listener
            while True:
                packet = listener.recv_packet()
                if len(packet) > 28:
                    break
    # A client that asks for keepalive and never answers a ping is dropped (0.2 s, 1 ping).
    with RawRpcClient.unix(server.unix_path) as silent:
        feature = R.remote_connect_supports_feature_args(feature=DriverFeature.PROGRAM_KEEPALIVE)
        silent.call(R.remote_procedure.REMOTE_PROC_CONNECT_SUPPORTS_FEATURE, feature.to_bytes())
        pings = 0
        with pytest.raises((EOFError, ConnectionError)):
            while True:  # PINGs (unanswered) until the server hangs up
                silent.recv_packet()
                pings += 1
        assert pings == 1
    after = scrape(url)
    assert value(after, "virtwire_events_sent_total") - value(before, "virtwire_events_sent_total") == 2
    assert value(after, "virtwire_events_dropped_total") == value(before, "virtwire_events_dropped_total")
    timeouts = "virtwire_keepalive_timeouts_total"
    assert value(after, timeouts) - value(before, timeouts) == 1
