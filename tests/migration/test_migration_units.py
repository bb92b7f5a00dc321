"""Guest model, stream records, job stats rendering: the pieces without I/O."""

from __future__ import annotations

import pytest
from virtwire.server.driver.memory import guest as guest_mod
from virtwire.server.driver.memory.guest import (
    PAGE_SIZE,
    Guest,
    WorkloadSpec,
    page_content,
    page_runs,
    parse_fault,
    parse_workload,
)
from virtwire.server.driver.memory.jobs import (
    PARAM_INT,
    PARAM_STRING,
    PARAM_ULLONG,
    Job,
    JobOperation,
    JobStatus,
    JobType,
    MigrationCounters,
    params_dict,
)
from virtwire.server.driver.memory.migration import _zero_runs
from virtwire.server.driver.memory.migration_stream import (
    Kind,
    Record,
    RecordReader,
    StreamError,
    encode,
    hello,
    page,
)

DOMAIN_XML = """<domain type='test'><name>vm</name><memory>1048576</memory>
<metadata>
<virtwire:workload xmlns:virtwire="https://virtwire.dev/xmlns/1" dirty-rate="500" working-set-mib="8"/>
<virtwire:fault xmlns:virtwire="https://virtwire.dev/xmlns/1" cut-link="postcopy" after-pages="7"/>
</metadata></domain>"""


def test_page_content_is_deterministic_and_zero_for_version_zero() -> None:
    assert page_content(5, 0) == bytes(PAGE_SIZE)
    assert page_content(5, 1) == page_content(5, 1)
    assert page_content(5, 1) != page_content(5, 2) != page_content(6, 2)
    assert len(page_content(123456789, 99)) == PAGE_SIZE


def test_workload_from_metadata_and_clamped_to_memory() -> None:
    spec = parse_workload(DOMAIN_XML, memory_pages=262144)
    assert spec == WorkloadSpec(dirty_rate=500, working_set_pages=8 * 256)
    assert spec.hot_pages == 256  # the default dirty set: 1/8 of the working set
    assert parse_workload(DOMAIN_XML, memory_pages=100).working_set_pages == 100


def test_dirty_set_from_metadata_is_clamped_to_the_working_set() -> None:
    hot = DOMAIN_XML.replace('working-set-mib="8"', 'working-set-mib="8" dirty-set-mib="2"')
    spec = parse_workload(hot, memory_pages=262144)
    assert (spec.working_set_pages, spec.dirty_set_pages, spec.hot_pages) == (2048, 512, 512)
    too_hot = DOMAIN_XML.replace('working-set-mib="8"', 'working-set-mib="8" dirty-set-mib="64"')
    assert parse_workload(too_hot, memory_pages=262144).hot_pages == 2048
    # Clamped through the working set to the guest's memory, too.
    assert parse_workload(too_hot, memory_pages=100).hot_pages == 100
    assert WorkloadSpec(dirty_rate=1, working_set_pages=5, dirty_set_pages=9).hot_pages == 5
    assert WorkloadSpec(dirty_rate=1, working_set_pages=0).hot_pages == 0
    assert WorkloadSpec(dirty_rate=1, working_set_pages=3).hot_pages == 1  # at least a page
    bad = DOMAIN_XML.replace('working-set-mib="8"', 'working-set-mib="8" dirty-set-mib="-1"')
    with pytest.raises(ValueError, match="invalid virtwire dirty-set-mib '-1'"):
        parse_workload(bad, memory_pages=1024)


def test_workload_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWIRE_DIRTY_RATE", "42")
    monkeypatch.setenv("VIRTWIRE_WORKING_SET_MIB", "2")
    spec = parse_workload("<domain><name>x</name></domain>", memory_pages=1 << 20)
    assert spec == WorkloadSpec(dirty_rate=42, working_set_pages=512)
    assert spec.hot_pages == 64
    monkeypatch.setenv("VIRTWIRE_DIRTY_SET_MIB", "1")
    spec = parse_workload("<domain><name>x</name></domain>", memory_pages=1 << 20)
    assert (spec.working_set_pages, spec.hot_pages) == (512, 256)
    # Each attribute falls back on its own: metadata's working set, the server's dirty set.
    assert parse_workload(DOMAIN_XML, memory_pages=1 << 20).hot_pages == 256


def test_bad_workload_attribute_is_a_clear_error() -> None:
    bad = DOMAIN_XML.replace('dirty-rate="500"', 'dirty-rate="fast"')
    with pytest.raises(ValueError, match="invalid virtwire dirty-rate 'fast'"):
        parse_workload(bad, memory_pages=1024)


def test_fault_hook_needs_test_hooks_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTWIRE_ENABLE_TEST_HOOKS", raising=False)
    assert parse_fault(DOMAIN_XML) is None
    monkeypatch.setenv("VIRTWIRE_ENABLE_TEST_HOOKS", "1")
    fault = parse_fault(DOMAIN_XML)
    assert fault is not None and (fault.phase, fault.after_pages) == ("postcopy", 7)
    assert guest_mod.test_hooks_enabled()


def test_workload_sweeps_the_dirty_set_at_its_rate() -> None:
    guest = Guest(1000, WorkloadSpec(dirty_rate=100, working_set_pages=50, dirty_set_pages=50))
    assert sorted(guest.memory.versions) == list(range(50))  # booted: the set is touched once
    guest.resume(10.0)
    guest.memory.start_dirty_log()
    assert guest.catch_up(10.3) == 30
    assert guest.memory.sync_dirty_log() == set(range(30))
    assert guest.catch_up(10.5) == 20  # wraps to the start of the set
    assert guest.memory.sync_dirty_log() == set(range(30, 50))
    guest.pause(10.6)
    assert guest.catch_up(20.0) == 0  # a paused guest writes nothing


def test_writes_land_on_the_hot_set_only() -> None:
    guest = Guest(1000, WorkloadSpec(dirty_rate=100, working_set_pages=80, dirty_set_pages=10))
    assert sorted(guest.memory.versions) == list(range(80))  # all of the working set is touched
    guest.resume(0.0)
    guest.memory.start_dirty_log()
    assert guest.catch_up(0.25) == 25  # two and a half laps of the hot set
    assert guest.memory.sync_dirty_log() == set(range(10))
    assert guest.cursor == 5
    assert all(guest.memory.version(p) == 1 for p in range(10, 80))
    assert [guest.memory.version(p) for p in (0, 4, 5, 9)] == [4, 4, 3, 3]


def test_dirty_set_can_sit_anywhere_in_the_working_set() -> None:
    spec = WorkloadSpec(dirty_rate=100, working_set_pages=80, dirty_set_pages=10, dirty_set_offset=50)
    assert spec.hot_start == 50
    # An offset that would push the set past the working set is pulled back inside.
    assert (
        WorkloadSpec(dirty_rate=1, working_set_pages=80, dirty_set_pages=10, dirty_set_offset=75).hot_start
        == 70
    )
    guest = Guest(1000, spec)
    guest.resume(0.0)
    guest.memory.start_dirty_log()
    assert guest.catch_up(0.15) == 15
    assert guest.memory.sync_dirty_log() == set(range(50, 60))
    assert guest.cursor == 5


def test_random_writes_stay_in_the_dirty_set_repeat_and_retry_a_faulted_page() -> None:
    spec = WorkloadSpec(
        dirty_rate=1000, working_set_pages=800, dirty_set_pages=100, dirty_set_offset=300, pattern="random"
    )
    runs = []
    for _ in range(2):
        guest = Guest(1000, spec)
        guest.resume(0.0)
        guest.memory.start_dirty_log()
        assert guest.catch_up(0.2) == 200
        runs.append(guest.memory.sync_dirty_log())
    assert runs[0] == runs[1]  # a fixed seed: runs repeat exactly
    assert runs[0] <= set(range(300, 400)) and len(runs[0]) > 50  # scattered, not a sweep of 200
    # A write that faults is retried on the same page, as a sweep's would be.
    guest = Guest(1000, spec, booted=False)
    guest.resume(0.0)
    touched: list[int] = []

    def fault(page: int) -> bool:
        touched.append(page)
        return False  # not here yet: the vCPU blocks

    def write(page: int) -> bool:
        touched.append(page)
        return True

    assert guest.catch_up(0.01, fault) == 0
    assert guest.catch_up(0.02, write) == 10
    assert touched[0] == touched[1]
    with pytest.raises(ValueError, match="unknown write pattern"):
        WorkloadSpec(dirty_rate=1, working_set_pages=1, pattern="zigzag")


def test_counters_keep_processed_plus_remaining_equal_to_total() -> None:
    c = MigrationCounters()
    c.start(100)
    assert (c.memory_total, c.memory_processed, c.memory_remaining) == (100 * PAGE_SIZE, 0, 100 * PAGE_SIZE)
    c.new_iteration(1, 100, carried_pages=100)  # pass 1: all of RAM, already in the total
    c.handled(60)
    assert (c.memory_total, c.memory_processed, c.memory_remaining) == (
        100 * PAGE_SIZE,
        60 * PAGE_SIZE,
        40 * PAGE_SIZE,
    )
    # A sync in mid-pass: the 40 unsent pages carry over, 5 written again join them.
    c.new_iteration(2, 45, carried_pages=40)
    assert (c.memory_iteration, c.memory_total, c.memory_remaining) == (2, 105 * PAGE_SIZE, 45 * PAGE_SIZE)
    c.handled(45)
    c.new_iteration(3, 7)
    c.handled(7)
    assert c.memory_processed == c.memory_total == 112 * PAGE_SIZE and c.memory_remaining == 0


def test_page_runs_and_zero_runs() -> None:
    assert list(page_runs([1, 2, 3, 7, 9, 10])) == [(1, 3), (7, 1), (9, 2)]
    assert list(page_runs([])) == []
    assert _zero_runs([0, 1, 5], 8) == [(2, 3), (6, 2)]
    assert _zero_runs([], 3) == [(0, 3)]


def test_record_reader_survives_byte_at_a_time_feeding() -> None:
    stream = b"".join(
        [
            hello(1234),
            encode(Kind.ITERATION, 1),
            encode(Kind.ZERO_RUN, 0, 10),
            page(10, 3, page_content(10, 3)),
            encode(Kind.POSTCOPY, 17),
            encode(Kind.PAGE_REQUEST, 99),
        ]
    )
    reader = RecordReader()
    records: list[Record] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        while (record := reader.next()) is not None:
            records.append(record)
    assert [r.kind for r in records] == [
        Kind.HELLO,
        Kind.ITERATION,
        Kind.ZERO_RUN,
        Kind.PAGE,
        Kind.POSTCOPY,
        Kind.PAGE_REQUEST,
    ]
    assert records[0].b == 1234
    assert (records[3].a, records[3].b, records[3].data) == (10, 3, page_content(10, 3))
    assert records[4].a == 17 and records[5].a == 99
    assert reader.pending == 0


def test_record_reader_rejects_garbage() -> None:
    reader = RecordReader()
    reader.feed(b"\xff")
    with pytest.raises(StreamError, match="unknown migration record kind 255"):
        reader.next()
    reader = RecordReader()
    reader.feed(encode(Kind.HELLO, 0xDEADBEEF << 32 | PAGE_SIZE, 1))
    with pytest.raises(StreamError, match="bad magic"):
        reader.next()


def test_job_stats_follow_the_qemu_driver_order_and_types() -> None:
    job = Job(JobOperation.MIGRATION_OUT, started=100.0)
    c = job.counters
    c.memory_total, c.memory_processed, c.memory_remaining = 8 << 30, 5000, 4096
    c.memory_constant, c.memory_normal, c.memory_bps = 100, 3, 1000
    c.memory_iteration, c.setup_time_ms = 2, 1
    params = job.to_params(now=100.25)
    names = [name for name, _, _ in params]
    assert names == [
        "operation",
        "time_elapsed",
        "setup_time",
        "data_total",
        "data_processed",
        "data_remaining",
        "memory_total",
        "memory_processed",
        "memory_remaining",
        "memory_bps",
        "memory_constant",
        "memory_normal",
        "memory_normal_bytes",
        "memory_dirty_rate",
        "memory_iteration",
        "memory_postcopy_requests",
        "memory_page_size",
        "disk_total",
        "disk_processed",
        "disk_remaining",
    ]
    types = {name: kind for name, kind, _ in params}
    assert types["operation"] == PARAM_INT
    assert all(kind == PARAM_ULLONG for name, kind in types.items() if name != "operation")
    values = params_dict(params)
    assert values["operation"] == 5 and values["time_elapsed"] == 250
    assert values["memory_normal_bytes"] == 3 * PAGE_SIZE
    assert values["data_total"] == values["memory_total"]
    assert job.status.job_type is JobType.UNBOUNDED
    assert job.to_info(100.25)[:3] == (2, 250, 0)


def test_finished_job_reports_its_final_type_and_error() -> None:
    job = Job(JobOperation.MIGRATION_OUT, started=0.0)
    job.finish(JobStatus.FAILED, 2.0, "Unable to write to socket: Connection reset by peer")
    params = job.to_params(now=50.0)
    assert params[-1] == ("errmsg", PARAM_STRING, "Unable to write to socket: Connection reset by peer")
    assert params_dict(params)["time_elapsed"] == 2000  # frozen at the end
    assert job.status.job_type is JobType.FAILED
    job.counters.downtime_ms = 12
    assert [n for n, _, _ in job.to_params(50.0)][2] == "downtime"
