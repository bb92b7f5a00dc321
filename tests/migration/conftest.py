"""Fixtures for migration scenarios between two `virtwire serve` hosts on loopback.

Both hosts start in their default state (each holds the `test` domain with the
same UUID) with test hooks enabled, so a domain's XML may ask for the link to be
cut. Scenarios define and start fresh domains with a small working set, so a
migration takes a second or two.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from vwtestkit import ServerStartError, VirtwireServer, start_server
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
    try:
        for name in ("src-host", "dst-host"):
            try:
                started.append(start_server(pki=None, tls=False, hostname=name, env=HOOKS_ENV))
            except ServerStartError as exc:
                pytest.fail(f"could not start virtwire serve: {exc}", pytrace=False)
        yield Hosts(*started)
    finally:
        failures = []
        for server in started:
            try:
                server.stop()
            except AssertionError as exc:
                failures.append(str(exc))
            finally:
                server.cleanup()
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)


def domain_xml(
    name: str,
    *,
    memory_mib: int = 256,
    working_set_mib: int = 4,
    dirty_rate: int = 2000,
    fault: str | None = None,
) -> str:
    fault_xml = ""
    if fault is not None:
        phase, pages = fault.split(":")
        fault_xml = f'<virtwire:fault xmlns:virtwire="{NS}" cut-link="{phase}" after-pages="{pages}"/>'
    return f"""<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid.uuid4()}</uuid>
  <metadata>
    <virtwire:workload xmlns:virtwire="{NS}" dirty-rate="{dirty_rate}" working-set-mib="{working_set_mib}"/>
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
