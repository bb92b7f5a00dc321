"""The migration engine over each kind of link, in one process: compression, parallel, TLS.

Every run checks that the destination ends with exactly the source's memory (each
page is checked against its (page, version) content on arrival) and what crossed
the wire, so a codec that does not really compress, or a parallel link that does
not really spread the pages, fails here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from virtwire.server.driver.memory.guest import PAGE_SIZE, FaultSpec, Guest, WorkloadSpec
from virtwire.server.driver.memory.jobs import Job, JobOperation
from virtwire.server.driver.memory.migration import MigrationFailed, MigrationSettings, OutgoingMigration
from virtwire.server.driver.memory.migration_codec import CompressionSpec
from virtwire.server.driver.memory.migration_connect import LinkPlan, accept_incoming, open_outgoing
from virtwire.server.driver.memory.migration_incoming import IncomingMigration
from virtwire.server.driver.memory.migration_parallel import ParallelSourceLink
from virtwire.server.driver.memory.migration_tls import destination_tls, source_tls
from vwtestkit.pki import make_pki

MIB_PAGES = 1024 * 1024 // PAGE_SIZE


@dataclass
class Run:
    source: OutgoingMigration
    destination: IncomingMigration
    wire_bytes: int
    channel_bytes: list[int]
    source_error: MigrationFailed | None = None
    destination_error: MigrationFailed | None = None


def make_guest(ws_mib: int = 2, rate: int = 2000, ds_mib: int = 1) -> Guest:
    workload = WorkloadSpec(
        dirty_rate=rate, working_set_pages=ws_mib * MIB_PAGES, dirty_set_pages=ds_mib * MIB_PAGES
    )
    guest = Guest(16 * MIB_PAGES, workload)
    guest.resume(trio.current_time())
    return guest


async def migrate(guest: Guest, settings: MigrationSettings, source: LinkPlan, destination: LinkPlan) -> Run:
    dest_guest = Guest.empty(guest.memory.total_pages, guest.workload)
    now = trio.current_time()
    out = OutgoingMigration(guest, Job(JobOperation.MIGRATION_OUT, now), settings)
    inc = IncomingMigration(dest_guest, Job(JobOperation.MIGRATION_IN, now))
    run = Run(out, inc, 0, [])
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]

    async def receive() -> None:
        try:
            async with accept_incoming(listener, destination) as link:
                await listener.aclose()
                await inc.run(link)
        except MigrationFailed as exc:
            run.destination_error = exc

    async def send() -> None:
        async with open_outgoing("127.0.0.1", port, source) as link:
            try:
                await out.run(link)
            finally:
                run.wire_bytes = link.sent
                if isinstance(link, ParallelSourceLink):
                    run.channel_bytes = link.channel_sent

    # A generous deadline only turns a hang into a failure.
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            try:
                await send()
            except MigrationFailed as exc:
                run.source_error = exc
                nursery.cancel_scope.cancel()
    return run


def assert_arrived(run: Run, guest: Guest) -> None:
    assert run.source_error is None and run.destination_error is None, (
        run.source_error,
        run.destination_error,
    )
    assert run.destination.guest.memory.versions == guest.memory.versions


async def test_plain_link_sends_pages_whole() -> None:
    guest = make_guest()
    run = await migrate(guest, MigrationSettings(), LinkPlan(), LinkPlan())
    assert_arrived(run, guest)
    counters = run.source.job.counters
    assert counters.compression is None
    assert run.wire_bytes > counters.memory_normal * PAGE_SIZE


@pytest.mark.parametrize("method", ["mt", "zlib", "zstd"])
async def test_compression_really_shrinks_the_stream(method: str) -> None:
    guest = make_guest()
    spec = CompressionSpec((method,), mt_level=6)
    channels = 2 if method != "mt" else 0
    plan = LinkPlan(channels=channels, multifd=spec.multifd)
    run = await migrate(guest, MigrationSettings(compression=spec), plan, plan)
    assert_arrived(run, guest)
    counters = run.source.job.counters
    # The guest's pages are repetitive: whole, they would need a page each.
    assert counters.memory_normal >= 2 * MIB_PAGES
    assert run.wire_bytes * 8 < counters.memory_normal * PAGE_SIZE, (run.wire_bytes, counters.memory_normal)


async def test_xbzrle_sends_deltas_from_its_cache_and_counts_misses() -> None:
    # The guest laps its hot set in 256 ms, twice as long as pass 1 takes: most hot
    # pages cross in pass 1 (into the cache) before they are written again. (A guest
    # that rewrote them all before their turn would have them skipped in pass 1, and
    # each would cross once only, whole.)
    guest = make_guest(ws_mib=2, rate=1000, ds_mib=1)
    settings = MigrationSettings(bandwidth_mib_s=16, compression=CompressionSpec(("xbzrle",)))
    settings.compression_cache_bytes = 384 * PAGE_SIZE  # smaller than the working set: some pages miss
    run = await migrate(guest, settings, LinkPlan(), LinkPlan())
    assert_arrived(run, guest)
    stats = run.source.job.counters.compression
    assert stats is not None and stats.cache_bytes == 384 * PAGE_SIZE
    assert stats.pages > 0
    assert stats.bytes < stats.pages * PAGE_SIZE / 2  # a delta of a page write is small
    assert stats.cache_misses > 0  # pass 1 overwrote slots that hot pages need
    # Deltas are not whole pages: they are counted apart, as QEMU counts them.
    counters = run.source.job.counters
    assert counters.memory_normal + stats.pages + counters.memory_constant >= 16 * MIB_PAGES


@pytest.mark.parametrize("channels", [1, 4])
async def test_parallel_link_spreads_batches_over_every_connection(channels: int) -> None:
    guest = make_guest(ws_mib=4)
    plan = LinkPlan(channels=channels)
    run = await migrate(guest, MigrationSettings(), plan, plan)
    assert_arrived(run, guest)
    assert len(run.channel_bytes) == channels
    total = sum(run.channel_bytes)
    assert total >= 4 * MIB_PAGES * PAGE_SIZE
    # Round robin: every connection carries its share of the pages.
    assert min(run.channel_bytes) * channels > total / 2, run.channel_bytes


async def test_parallel_link_cut_fails_both_sides_and_the_source_keeps_its_guest() -> None:
    guest = make_guest(ws_mib=4)
    before = dict(guest.memory.versions)
    settings = MigrationSettings(fault=FaultSpec("precopy", 300))
    plan = LinkPlan(channels=3)
    run = await migrate(guest, settings, plan, plan)
    assert run.source_error is not None
    assert run.source_error.reason == "Unable to write to socket: Connection reset by peer"
    # Nothing lost: every page the guest wrote is still here (and newer writes on top).
    assert all(guest.memory.versions[page] >= version for page, version in before.items())


@pytest.fixture(scope="module")
def two_pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pki(tmp_path_factory.mktemp("pki-a")), make_pki(tmp_path_factory.mktemp("pki-b"))


async def test_tls_link_with_the_hosts_certificates(two_pkis: tuple[Path, Path]) -> None:
    pki, _ = two_pkis
    guest = make_guest()
    source = LinkPlan(source_tls=source_tls(pki, "127.0.0.1"))
    destination = LinkPlan(destination_tls=destination_tls(pki))
    run = await migrate(guest, MigrationSettings(), source, destination)
    assert_arrived(run, guest)


async def test_tls_parallel_link_every_connection_is_tls(two_pkis: tuple[Path, Path]) -> None:
    pki, _ = two_pkis
    guest = make_guest()
    source = LinkPlan(channels=2, source_tls=source_tls(pki, "127.0.0.1"))
    destination = LinkPlan(channels=2, destination_tls=destination_tls(pki))
    run = await migrate(guest, MigrationSettings(), source, destination)
    assert_arrived(run, guest)


async def test_tls_link_refuses_a_destination_of_another_ca(
    two_pkis: tuple[Path, Path], tmp_path: Path
) -> None:
    pki, other = two_pkis
    guest = make_guest()
    source = LinkPlan(source_tls=source_tls(pki, "127.0.0.1"))
    destination = LinkPlan(destination_tls=destination_tls(other))
    run = await migrate(guest, MigrationSettings(), source, destination)
    assert run.source_error is not None
    assert run.source_error.reason.startswith("TLS handshake failed: "), run.source_error.reason
    assert guest.memory.versions  # the source still holds its guest


def test_tls_credentials_are_checked_as_libvirt_checks_them(
    tmp_path: Path, two_pkis: tuple[Path, Path]
) -> None:
    from virtwire.protocol.errors import libvirtError

    with pytest.raises(libvirtError) as none:
        source_tls(None, "127.0.0.1")
    assert (
        none.value.get_error_message()
        == "Requested operation is not valid: host migration TLS directory not configured"
    )
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(two_pkis[0] / "cacert.pem", partial)
    with pytest.raises(libvirtError) as missing:
        destination_tls(partial)
    assert missing.value.get_error_message() == (
        "internal error: unable to execute QEMU command 'object-add': "
        f"Unable to access credentials {partial}/servercert.pem: No such file or directory"
    )


async def test_compressed_pages_count_at_their_wire_cost_in_the_downtime_estimate() -> None:
    # The guest rewrites its whole 1 MiB working set every few ms; deflated, a page
    # costs a few dozen bytes on the wire, and the downtime estimate must count that.
    guest = make_guest(ws_mib=1, rate=20000, ds_mib=1)
    settings = MigrationSettings(bandwidth_mib_s=1, compression=CompressionSpec(("mt",)))
    run = await migrate(guest, settings, LinkPlan(), LinkPlan())
    assert_arrived(run, guest)
    assert run.wire_bytes < run.source.job.counters.memory_normal * PAGE_SIZE / 8
    # Pass 1, then the stop-and-copy: counted at a whole page each, the dirty set would
    # look like seconds of downtime and pre-copy would go round (hundreds of passes).
    assert run.source.job.counters.memory_iteration <= 3
