"""Start-up cost: virtwire against the real libvirt, side by side, in one run.

Rows (each a fresh process per repetition, all commands of a row interleaved
ABBA-style; medians over the repetitions, and the ratio virtwire / libvirt of
each repetition's back-to-back runs, as its median [lowest-highest]):

  interpreter   `python -c pass` of each interpreter (what the rows below include)
  import        `python -c "import virtwire.libvirt"` against Debian's
                `/usr/bin/python3 -c "import libvirt"` and the venv's libvirt-python 9.0.0
  open+close    the same, then `libvirt.open(URI).close()` on one real libvirtd
                (test driver, unix socket; started with tests/fixtures' libvirtd-up.sh)
  daemon start  `virtwire serve` from launch until it answers getVersion() on its unix
                socket, against `libvirtd --listen` (test driver, the same config as
                libvirtd-up.sh writes) from launch until it answers; both listen on
                tcp, tls and unix. The probe is the same libvirt-python client for both.

Wall time is the parent's clock around each child. CPU time: for the client rows
the child's user+system time (getrusage(RUSAGE_CHILDREN) before and after); for
the daemons, the CPU every thread of the daemon had used when it answered
(/proc/PID/task/*/schedstat), not its shutdown.

The children run with PYTHONDONTWRITEBYTECODE removed from their environment
(this machine sets it to 1, which hides the .pyc cache every pip-installed
package has): each command runs once, unmeasured, to write its .pyc files. The
venv's virtwire is an editable install, whose finder runs in `site` at every
start (the `interpreter` row shows it); a wheel install has no finder.

    .venv/bin/python bench/bench_startup.py [--reps 15] [--daemon-reps 7]

A measurement, not a test: wall time depends on the load of the (shared)
machine; compare the ratios, which pair runs made at the same moments.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

VENV_PYTHON = sys.executable
DEBIAN_PYTHON = "/usr/bin/python3"
LIBVIRTD = "/usr/sbin/libvirtd"
VIRTWIRE = str(Path(sys.executable).with_name("virtwire"))  # the `virtwire` console script
DAEMON_DEADLINE = 60.0
PROBE_INTERVAL = 0.002


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBVIRT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@dataclass
class Sample:
    wall: float
    cpu: float


@dataclass
class Row:
    name: str
    samples: dict[str, list[Sample]]

    def median(self, label: str, what: str) -> float:
        values: list[float] = [getattr(s, what) for s in self.samples[label]]
        return statistics.median(values)


def run_child(argv: Sequence[str]) -> Sample:
    """One child process to its end: wall time and its own CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=child_env(), check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


def interleaved(name: str, commands: dict[str, Callable[[], Sample]], reps: int) -> Row:
    """Each command once per repetition, the order reversed every other time (ABBA)."""
    for run in commands.values():  # unmeasured: writes .pyc files, warms the page cache
        run()
    samples: dict[str, list[Sample]] = {label: [] for label in commands}
    labels = list(commands)
    for rep in range(reps):
        for label in labels if rep % 2 == 0 else reversed(labels):
            samples[label].append(commands[label]())
    return Row(name, samples)


def python_command(python: str, code: str) -> Callable[[], Sample]:
    return lambda: run_child([python, "-c", code])


# --- daemons ----------------------------------------------------------------------------------------


def thread_cpu(pid: int) -> float:
    """CPU seconds every thread of `pid` has run so far (schedstat: nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total / 1e9


def wait_answering(
    process: subprocess.Popen[bytes], argv: Sequence[str], socket_path: str, probe: Callable[[], None]
) -> None:
    """Until a connect to `socket_path` succeeds and then `probe` (an RPC) does."""
    deadline = time.monotonic() + DAEMON_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daemon exited {process.returncode} during start: {' '.join(argv)}")
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(socket_path)
            except OSError:
                time.sleep(PROBE_INTERVAL)
                continue
        try:
            probe()
            return
        except Exception:  # not accepting calls yet
            time.sleep(PROBE_INTERVAL)
    raise RuntimeError(f"daemon did not answer within {DAEMON_DEADLINE:.0f}s: {' '.join(argv)}")


def daemon_command(
    argv: Sequence[str], env: dict[str, str], socket_path: str, probe: Callable[[], None]
) -> Callable[[], Sample]:
    def run() -> Sample:
        with contextlib.suppress(FileNotFoundError):  # left by a daemon that was killed
            os.unlink(socket_path)
        start = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_answering(process, argv, socket_path, probe)
            wall = time.perf_counter() - start
            cpu = thread_cpu(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return Sample(wall, cpu)

    return run


def libvirt_probe(uri: str) -> Callable[[], None]:
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr report per failed probe

    def probe() -> None:
        conn = libvirt.open(uri)
        try:
            conn.getVersion()
        finally:
            conn.close()

    return probe


def daemon_rows(workdir: Path, reps: int) -> Row:
    """`virtwire serve` and libvirtd, each started and stopped `reps` times."""
    from vwtestkit import free_ports, start_libvirtd, stop_libvirtd

    # libvirtd-up.sh writes libvirtd.conf, the PKI and the empty driver dir; the
    # daemon it started is stopped again, and each repetition launches its own.
    daemon = start_libvirtd(workdir / "libvirtd", hold=False)
    stop_libvirtd(daemon)
    conf = daemon.workdir / "libvirtd.conf"
    pki = daemon.workdir / "pki"
    libvirtd_env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LIBVIRT_DRIVER_DIR": str(daemon.workdir / "empty-driver-dir"),
    }
    pidfile = daemon.workdir / "run" / "libvirtd.pid"
    libvirtd_argv = [LIBVIRTD, "--listen", "-f", str(conf), "-p", str(pidfile)]

    rundir = Path(tempfile.mkdtemp(prefix="vw-bench-start-", dir="/tmp"))
    tcp_port, tls_port = free_ports(2)
    vw_socket = str(rundir / "virtwire-sock")
    virtwire_argv = [VIRTWIRE, "serve", "--tcp", f"127.0.0.1:{tcp_port}", "--unix", str(vw_socket)]
    virtwire_argv += ["--unix-ro", str(rundir / "virtwire-sock-ro")]
    virtwire_argv += ["--tls", f"127.0.0.1:{tls_port}", "--pki-dir", str(pki)]

    commands = {
        "virtwire serve": daemon_command(
            virtwire_argv, child_env(), vw_socket, libvirt_probe(f"test+unix:///default?socket={vw_socket}")
        ),
        "libvirtd": daemon_command(
            libvirtd_argv, libvirtd_env, str(daemon.unix_path), libvirt_probe(daemon.unix_uri)
        ),
    }
    try:
        return interleaved("daemon start", commands, reps)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------------


def paired_ratio(row: Row, mine: str, base: str, what: str) -> str:
    """Median of the per-repetition ratios mine/base (run back to back), [lowest-highest]."""
    ratios = sorted(
        getattr(m, what) / getattr(b, what) for m, b in zip(row.samples[mine], row.samples[base], strict=True)
    )
    return f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}-{ratios[-1]:.2f}]"


def report(rows: list[Row], ours: str, theirs: Sequence[str]) -> None:
    print(f"{'row':13} {'command':30} {'wall ms':>8} {'cpu ms':>8}  {'wall ratio':>17}  {'cpu ratio':>17}")
    for row in rows:
        mine = ours if ours in row.samples else next(iter(row.samples))
        base = next((t for t in theirs if t in row.samples), None)
        for label in row.samples:
            wall, cpu = row.median(label, "wall") * 1e3, row.median(label, "cpu") * 1e3
            ratios = ""
            if label == mine and base is not None:
                ratios = (
                    f"{paired_ratio(row, mine, base, 'wall'):>17}  {paired_ratio(row, mine, base, 'cpu'):>17}"
                )
            print(f"{row.name:13} {label:30} {wall:8.1f} {cpu:8.1f}  {ratios}")
    print(
        "(medians; ratio: the first line of a row over its libvirt line, per repetition, median [low-high])"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=15, help="repetitions of each client command")
    parser.add_argument("--daemon-reps", type=int, default=7, help="starts of each daemon")
    args = parser.parse_args()

    from vwtestkit import start_libvirtd, stop_libvirtd

    workdir = Path(tempfile.mkdtemp(prefix="vw-bench-startup-"))
    daemon = start_libvirtd(workdir / "client", hold=True)
    try:
        uri = daemon.unix_uri
        open_close = f"libvirt.open({uri!r}).close()"
        debian_open = f"import libvirt; {open_close}"
        rows = [
            interleaved(
                "interpreter",
                {
                    "venv python -c pass": python_command(VENV_PYTHON, "pass"),
                    "/usr/bin/python3 -c pass": python_command(DEBIAN_PYTHON, "pass"),
                },
                args.reps,
            ),
            interleaved(
                "import",
                {
                    "virtwire.libvirt": python_command(VENV_PYTHON, "import virtwire.libvirt"),
                    "libvirt (Debian python3)": python_command(DEBIAN_PYTHON, "import libvirt"),
                    "libvirt (venv libvirt-python)": python_command(VENV_PYTHON, "import libvirt"),
                },
                args.reps,
            ),
            interleaved(
                "open+close",
                {
                    "virtwire.libvirt": python_command(
                        VENV_PYTHON, f"import virtwire.libvirt as libvirt; {open_close}"
                    ),
                    "libvirt (Debian python3)": python_command(DEBIAN_PYTHON, debian_open),
                    "libvirt (venv libvirt-python)": python_command(
                        VENV_PYTHON, f"import libvirt; {open_close}"
                    ),
                },
                args.reps,
            ),
        ]
    finally:
        stop_libvirtd(daemon)
    rows.append(daemon_rows(workdir, args.daemon_reps))
    report(rows, "virtwire.libvirt", ["libvirt (Debian python3)", "libvirtd", "/usr/bin/python3 -c pass"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
