"""The hang guard fails a hung test (trio or not) and the session goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vwtestkit import FIXTURES_DIR

HUNG_TESTS = """
import threading
import time

import pytest
import trio


async def test_trio_task_waits_forever():
    await trio.Event().wait()


def test_sync_code_blocks():
    threading.Event().wait()


@pytest.mark.hang_limit(0)
def test_limit_zero_disables_the_guard():
    time.sleep(0.1)


async def test_later_trio_tests_still_run():
    await trio.sleep(0)
"""


def test_hung_tests_fail_and_the_session_continues(tmp_path: Path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG_TESTS)
    env = {**os.environ, "PYTHONPATH": str(FIXTURES_DIR), "VIRTWIRE_TEST_HANG_LIMIT": "1"}
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "vwtestkit.hangguard",
            "-o", "trio_mode=true", "-o", "markers=hang_limit", "-rA", "test_hung.py",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert "FAILED test_hung.py::test_trio_task_waits_forever" in out, out
    assert "FAILED test_hung.py::test_sync_code_blocks" in out, out
    assert "HangLimitExceeded: test_hung.py::test_sync_code_blocks: call exceeded" in out, out
    assert "PASSED test_hung.py::test_limit_zero_disables_the_guard" in out, out
    assert "PASSED test_hung.py::test_later_trio_tests_still_run" in out, out
    assert "2 failed, 2 passed" in out, out
    assert "call exceeded the hang limit of 1s; stacks follow" in proc.stderr + out


STUCK_IN_C = """
import signal
import threading
import time

from vwtestkit import hangguard


def test_uninterruptible_wait(tmp_path_factory):
    marker = tmp_path_factory.getbasetemp() / "cleaned-up"
    hangguard.on_abort("marker", lambda: marker.write_text("yes"))
    print("MARKER", marker, flush=True)
    # Blocking SIGALRM stands in for C code that retries poll() on EINTR.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    threading.Event().wait()


def test_never_reached():
    pass
"""


def test_session_is_aborted_when_the_code_cannot_be_interrupted(tmp_path: Path) -> None:
    (tmp_path / "test_stuck.py").write_text(STUCK_IN_C)
    env = {
        **os.environ,
        "PYTHONPATH": str(FIXTURES_DIR),
        "VIRTWIRE_TEST_HANG_LIMIT": "1",
        "VIRTWIRE_TEST_HANG_GRACE": "1",
    }
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "vwtestkit.hangguard",
            "--basetemp", str(tmp_path / "base"), "test_stuck.py",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 70, proc.stdout + proc.stderr
    assert "call is still stuck 1s after its hang limit of 1s" in proc.stderr, proc.stderr
    assert "test_uninterruptible_wait" in proc.stderr  # the stack dump names the stuck test
    assert (tmp_path / "base" / "cleaned-up").read_text() == "yes"
