"""Fixtures for migration scenarios between two `virtwire serve` hosts on loopback.

Both hosts start in their default state (each holds the `test` domain with the
same UUID) with test hooks enabled, so a domain's XML may ask for the link to be
cut. Scenarios define and start fresh domains with a small working set, so a
migration takes a second or two.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import ServerStartError, VirtwireServer, hangguard, start_server, stop_servers
from vwtestkit.env import VIRSH
from vwtestkit.virsh import virsh_env

HOOKS_ENV = {"VIRTWIRE_ENABLE_TEST_HOOKS": "1"}
NS = "https://virtwire.dev/xmlns/1"


@dataclass
class Hosts:
    src: VirtwireServer
    dst: VirtwireServer


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    """Two hosts shared by a module's scenarios (each scenario uses its own domain names).

    Starting a server costs seconds on a shared 2-core box; one pair per module
    keeps the suite fast. Both must still exit cleanly on SIGTERM at the end.
    """
    started: list[VirtwireServer] = []

    def kill_all() -> None:
        # An aborted session (hang guard) skips teardown: leave no server behind.
        for server in started:
            if server.process.poll() is None:
                server.process.kill()

    hangguard.on_abort(started, kill_all)
    try:
        for name in ("src-host", "dst-host"):
            try:
                started.append(start_server(pki=None, tls=False, hostname=name, env=HOOKS_ENV))
            except ServerStartError as exc:
                pytest.fail(f"could not start virtwire serve: {exc}", pytrace=False)
        yield Hosts(*started)
    finally:
        hangguard.forget_on_abort(started)
        stop_servers(started)


def domain_xml(
    name: str,
    *,
    memory_mib: int = 256,
    working_set_mib: int = 4,
    dirty_rate: int = 2000,
    dirty_set_mib: int | None = None,
    fault: str | None = None,
) -> str:
    """A test-driver domain whose workload is given in virtwire metadata.

    ``dirty_set_mib`` None leaves the hot set at the server's default fraction of
    the working set; scenarios that need pre-copy never to converge make the
    whole working set hot, so that resending it takes longer than the downtime.
    """
    dirty_set = "" if dirty_set_mib is None else f' dirty-set-mib="{dirty_set_mib}"'
    workload = (
        f'<virtwire:workload xmlns:virtwire="{NS}" dirty-rate="{dirty_rate}" '
        f'working-set-mib="{working_set_mib}"{dirty_set}/>'
    )
    fault_xml = ""
    if fault is not None:
        phase, pages = fault.split(":")
        fault_xml = f'<virtwire:fault xmlns:virtwire="{NS}" cut-link="{phase}" after-pages="{pages}"/>'
    return f"""<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid.uuid4()}</uuid>
  <metadata>
    {workload}
    {fault_xml}
  </metadata>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>
"""


@pytest.fixture
def start_domain(tmp_path: Path, run_virsh: Callable[..., Any]) -> Callable[..., str]:
    """Define and start a domain on a host with virsh; returns its name."""

    def start(uri: str, name: str, **workload: Any) -> str:
        path = tmp_path / f"{name}.xml"
        path.write_text(domain_xml(name, **workload))
        run_virsh(uri, "define", str(path), check=True)
        run_virsh(uri, "start", name, check=True)
        return name

    return start


def wait_until(predicate: Callable[[], object], what: str, deadline: float = 60.0) -> None:
    """Poll until ``predicate()`` is true; a generous deadline only turns a hang into a failure."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


class Background:
    """A virsh running in the background (a second shell); its output is collected live."""

    def __init__(self, uri: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            # Line-buffered, so that events can be watched while virsh runs.
            ["stdbuf", "-oL", "-eL", str(VIRSH), "-c", uri, *args],
            env=virsh_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self.err_lines: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err_lines), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(pipe: Any, sink: list[str]) -> None:
        for line in pipe:
            sink.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, deadline: float = 60.0) -> None:
        wait_until(
            lambda: any(text in line for line in self.lines),
            f"virsh to print {text!r}: {self.lines}",
            deadline,
        )

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return self.proc.returncode, "\n".join(self.lines), "\n".join(self.err_lines)

    def interrupt(self, timeout: float = 30) -> tuple[int, str, str]:
        """SIGINT, as Ctrl-C: virsh event ends its loop and flushes what it printed."""
        self.proc.send_signal(2)
        return self.finish(timeout)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    return wait_until


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    started: list[Background] = []

    def spawn(uri: str, *args: str) -> Background:
        job = Background(uri, *args)
        started.append(job)
        return job

    yield spawn
    for job in started:
        if job.proc.poll() is None:
            job.proc.kill()
            job.proc.communicate()


PAGE_SIZE = 4096
# virDomainGetJobInfo's list, as libvirt-python returns it.
JOB_INFO_FIELDS = (
    "type",
    "time_elapsed",
    "time_remaining",
    "data_total",
    "data_processed",
    "data_remaining",
    "memory_total",
    "memory_processed",
    "memory_remaining",
    "file_total",
    "file_processed",
    "file_remaining",
)


@dataclass
class JobStatsTrail:
    """Checks every job-stats sample of one outgoing migration, in the order taken.

    Each sample alone: processed + remaining == total (memory and data alike,
    data == memory as there are no disks), memory_normal_bytes == memory_normal
    x page size. Against the sample before: processed, the page counters and
    the iteration never go back; within one iteration total is constant and
    remaining only shrinks; a new iteration never shrinks the total.
    """

    samples: list[dict[str, int]] = field(default_factory=list)

    def add(self, stats: Mapping[str, object]) -> dict[str, int]:
        sample = {name: int(value) for name, value in stats.items() if isinstance(value, int)}
        if "memory_total" not in sample:
            return sample  # no job at this instant
        total, processed, remaining = (
            sample["memory_total"],
            sample["memory_processed"],
            sample["memory_remaining"],
        )
        assert processed + remaining == total, sample
        assert remaining >= 0, sample
        for part in ("total", "processed", "remaining"):
            assert sample[f"data_{part}"] == sample[f"memory_{part}"], sample
        if "memory_normal" in sample and "memory_normal_bytes" in sample:
            assert sample["memory_normal_bytes"] == sample["memory_normal"] * PAGE_SIZE, sample
        if self.samples:
            self._check_progress(self.samples[-1], sample)
        self.samples.append(sample)
        return sample

    def add_info(self, info: list[int] | tuple[int, ...]) -> dict[str, int]:
        """A virDomainGetJobInfo sample (no iteration in it: only the per-sample rules
        and monotonic processed are checked)."""
        sample = dict(zip(JOB_INFO_FIELDS, info, strict=True))
        if sample["type"] == 0:
            return sample
        assert sample["memory_processed"] + sample["memory_remaining"] == sample["memory_total"], sample
        for part in ("total", "processed", "remaining"):
            assert sample[f"data_{part}"] == sample[f"memory_{part}"], sample
        processed = [s["memory_processed"] for s in self.samples] + [sample["memory_processed"]]
        assert processed == sorted(processed), processed
        return sample

    @staticmethod
    def _check_progress(before: dict[str, int], now: dict[str, int]) -> None:
        for name in ("memory_processed", "memory_normal", "memory_constant", "memory_iteration"):
            if name in before and name in now:
                assert now[name] >= before[name], (name, before, now)
        same_iteration = before.get("memory_iteration") == now.get("memory_iteration")
        if same_iteration and "memory_iteration" in now:
            assert now["memory_total"] == before["memory_total"], (before, now)
            assert now["memory_remaining"] <= before["memory_remaining"], (before, now)
        else:
            assert now["memory_total"] >= before["memory_total"], (before, now)

    def completed(self, stats: Mapping[str, object], iteration_events: int) -> dict[str, int]:
        """The completed stats: the same relations, nothing left, one iteration per event."""
        sample = self.add(stats)
        assert sample["memory_remaining"] == 0, sample
        assert sample["memory_processed"] == sample["memory_total"], sample
        assert sample["memory_iteration"] == iteration_events, (sample, iteration_events)
        return sample


def rawstats(output: str) -> dict[str, int | str]:
    """``virsh domjobinfo --rawstats``: "Job type: N" and "name: value" lines."""
    stats: dict[str, int | str] = {}
    for line in output.splitlines():
        match = re.match(r"^\s*([A-Za-z_ ]+?):\s*(.*?)\s*$", line)
        if match is None:
            continue
        name, value = match.group(1), match.group(2)
        key = "type" if name == "Job type" else name
        stats[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return stats


@pytest.fixture
def stats_trail() -> Callable[[], JobStatsTrail]:
    """A fresh ``JobStatsTrail`` per migration (test modules cannot import conftest)."""
    return JobStatsTrail


@pytest.fixture(name="rawstats")
def rawstats_fixture() -> Callable[[str], dict[str, int | str]]:
    return rawstats
