"""systemd: socket activation, sd_notify READY=1/STOPPING=1, the shipped unit files.

The server is started the ways systemd starts it: by Debian's
`systemd-socket-activate` (which listens as the socket units say, and execs
the service's command on the first connection), and by a small launcher that
passes sockets under libvirtd's unit names.  A fake NOTIFY_SOCKET collects
what the server reports; stock virsh is the client.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from virtwire.server import systemd, units
from vwtestkit import free_port
from vwtestkit.activation import NotifyReceiver, spawn_serve, stop
from vwtestkit.env import unavailable

RunVirsh = Callable[..., subprocess.CompletedProcess[str]]
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


@pytest.fixture
def rundir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vw-sd-", dir="/tmp"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _unix_listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    return sock


def _tcp_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_fd_names_select_services_as_libvirtds() -> None:
    assert systemd.role_of("libvirtd.socket") == "unix"
    assert systemd.role_of("libvirtd-ro.socket") == "unix_ro"
    assert systemd.role_of("libvirtd-admin.socket") == "admin"
    assert systemd.role_of("libvirtd-tcp.socket") == "tcp"
    assert systemd.role_of("libvirtd-tls.socket") == "tls"
    assert systemd.role_of("virtwire-ro.socket") == "unix_ro"
    assert systemd.role_of("virtqemud.socket") is None
    assert systemd.role_of("libvirtd-other.socket") is None


def test_activation_environment() -> None:
    me = str(os.getpid())
    assert systemd.activated_sockets({}) is None
    assert systemd.activated_sockets({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) is None  # not for us
    env = {"LISTEN_PID": me, "LISTEN_FDS": "0", "LISTEN_FDNAMES": ""}
    assert systemd.activated_sockets(env) is None
    assert env == {}  # consumed, as sd_listen_fds(unset_environment=1)
    with pytest.raises(systemd.ActivationError, match="Missing LISTEN_FDNAMES env"):
        systemd.activated_sockets({"LISTEN_PID": me, "LISTEN_FDS": "2"})
    with pytest.raises(systemd.ActivationError, match="Expecting 2 FD names but got 1"):
        systemd.activated_sockets({"LISTEN_PID": me, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "libvirtd.socket"})
    with pytest.raises(systemd.ActivationError, match=r"unclaimed: virtqemud\.socket"):
        systemd.activated_sockets(
            {"LISTEN_PID": me, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "libvirtd.socket:virtqemud.socket"}
        )


def test_notify_plain_and_abstract_socket() -> None:
    with NotifyReceiver() as receiver:
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(receiver.path)})
        assert receiver.wait_for("READY=1") == ["READY=1"]
    abstract = f"@virtwire-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + abstract[1:])
        assert systemd.notify("STOPPING=1", {"NOTIFY_SOCKET": abstract})
        assert sock.recv(100) == b"STOPPING=1"
    assert not systemd.notify("READY=1", {})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"})


def test_passed_sockets_under_libvirtd_names(run_virsh: RunVirsh, rundir: Path) -> None:
    rw, ro, tcp = _unix_listener(rundir / "rw"), _unix_listener(rundir / "ro"), _tcp_listener()
    port = tcp.getsockname()[1]
    log = rundir / "serve.log"
    with NotifyReceiver() as notify, rw, ro, tcp:
        passed = [("libvirtd.socket", rw), ("libvirtd-ro.socket", ro), ("libvirtd-tcp.socket", tcp)]
        server = spawn_serve(
            ["--config", os.devnull], log_path=log, env={"NOTIFY_SOCKET": str(notify.path)}, passed=passed
        )
        try:
            notify.wait_for("READY=1")
            rw_uri = f"test+unix:///default?socket={rundir / 'rw'}"
            run_virsh(rw_uri, "suspend", "test", check=True)
            ro_uri = f"test+unix:///default?socket={rundir / 'ro'}"
            refused = run_virsh(ro_uri, "resume", "test")  # no -r: the socket makes it read-only
            assert refused.returncode == 1
            assert "read only access prevents virDomainResume" in refused.stderr
            out = run_virsh(f"test+tcp://127.0.0.1:{port}/default", "domstate", "test", check=True)
            assert out.stdout.strip() == "paused"
        finally:
            status = stop(server)
        assert status == 0, log.read_text()
        assert notify.wait_for("STOPPING=1") == ["READY=1", "STOPPING=1"]
    text = log.read_text()
    assert f"test+tcp://127.0.0.1:{port}/default" in text and f"socket={rundir / 'ro'}" in text
    # The socket files belong to the socket units (RemoveOnStop=): left in place.
    assert (rundir / "rw").exists() and (rundir / "ro").exists()
    # Nothing of the configured defaults was opened beside the passed sockets.
    assert "libvirt-sock" not in text


def test_activation_refusals(rundir: Path) -> None:
    log = rundir / "serve.log"
    with _unix_listener(rundir / "a") as sock:
        server = spawn_serve([], log_path=log, passed=[("virtqemud.socket", sock)])
        assert server.wait(timeout=60) == 2
    assert "Some activation file descriptors are unclaimed: virtqemud.socket" in log.read_text()
    with _unix_listener(rundir / "b") as sock:
        server = spawn_serve(["--unix", str(rundir / "c")], log_path=log, passed=[("libvirtd.socket", sock)])
        assert server.wait(timeout=60) == 2
    assert "--unix-ro are not permitted with systemd activation sockets" in log.read_text()
    empty = rundir / "pki"
    empty.mkdir()
    with _tcp_listener() as sock:
        server = spawn_serve(["--pki-dir", str(empty)], log_path=log, passed=[("libvirtd-tls.socket", sock)])
        assert server.wait(timeout=60) == 1
    assert f"virtwire serve: TLS: Cannot read CA certificate '{empty}/cacert.pem'" in log.read_text()


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


@pytest.fixture
def unit_dir(rundir: Path) -> Path:
    dest = rundir / "units"
    out = subprocess.run(
        [*shlex.split(units.this_installation())[:-1], "units", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert sorted(Path(line).name for line in out.split()) == [
        "virtwire-admin.socket",
        "virtwire-ro.socket",
        "virtwire-tcp.socket",
        "virtwire-tls.socket",
        "virtwire.service",
        "virtwire.socket",
    ]
    return dest


def test_unit_files_verify(unit_dir: Path) -> None:
    if not Path(SYSTEMD_ANALYZE).exists():
        unavailable("systemd-analyze is not installed (scripts/test.sh installs systemd)")
    files = sorted(str(p) for p in unit_dir.iterdir())
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    service = _unit(unit_dir / "virtwire.service")
    assert service["Service"]["Type"] == "notify"
    assert service["Service"]["ExecStart"].startswith(units.this_installation() + " ")


def test_started_by_systemd_socket_activate_as_the_units_say(
    run_virsh: RunVirsh, unit_dir: Path, rundir: Path
) -> None:
    """The units' ListenStream= (moved to a temporary directory and port) and ExecStart=."""
    if not Path(SOCKET_ACTIVATE).exists():
        unavailable("systemd-socket-activate is not installed (scripts/test.sh installs systemd)")
    port = free_port()
    listen: list[str] = []
    names: list[str] = []
    for name in ("virtwire.socket", "virtwire-ro.socket", "virtwire-tcp.socket"):
        stream = _unit(unit_dir / name)["Socket"]["ListenStream"]
        listen.append(stream.replace("/run/virtwire", str(rundir)).replace(":16509", f":{port}"))
        names.append(name)
    assert listen[2] == f"127.0.0.1:{port}"
    command = shlex.split(_unit(unit_dir / "virtwire.service")["Service"]["ExecStart"])
    assert command[-1] == "$VIRTWIRE_ARGS"
    command = [arg.replace("/var/lib/virtwire", str(rundir / "state")) for arg in command[:-1]]
    log = rundir / "serve.log"
    with NotifyReceiver() as notify:
        activate = [SOCKET_ACTIVATE, *(f"--listen={addr}" for addr in listen), f"--fdname={':'.join(names)}"]
        activate += [f"--setenv=NOTIFY_SOCKET={notify.path}", "--setenv=PYTHONUNBUFFERED=1", *command]
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                activate, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            for _ in range(1200):  # systemd-socket-activate binds, then waits for a first client
                if (rundir / "libvirt-sock").exists() or process.poll() is not None:
                    break
                time.sleep(0.05)
            rw_uri = f"test+unix:///default?socket={rundir / 'libvirt-sock'}"
            # This first connection starts the server; it is served once the server is up.
            listed = run_virsh(rw_uri, "list", "--all", timeout=120, check=True).stdout
            assert "test" in listed
            notify.wait_for("READY=1")
            ro_uri = f"test+unix:///default?socket={rundir / 'libvirt-sock-ro'}"
            assert run_virsh(ro_uri, "domstate", "test", ro=True, check=True).stdout.strip() == "running"
            tcp_uri = f"test+tcp://127.0.0.1:{port}/default"
            assert run_virsh(tcp_uri, "hostname", check=True).stdout.strip()
        finally:
            status = stop(process)
        assert status == 0, log.read_text()
        assert notify.wait_for("STOPPING=1")[-2:] == ["READY=1", "STOPPING=1"]
    assert "Execing" in log.read_text()  # really started by systemd-socket-activate


def test_package_ships_the_sample_config() -> None:
    text = units.sample_config()
    assert "#listen_tcp = 0" in text and "#tls_allowed_dn_list" in text
