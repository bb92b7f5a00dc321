"""The admin socket through the stock virt-admin (libvirt-clients 9.0), side by side with libvirtd.

virt-admin talks libvirt's ADMIN program to `virtwire serve --admin PATH`;
the same commands run against a fresh real libvirtd's libvirt-admin-sock must
print the same (where the two daemons' state agrees) and fail the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from virtwire.protocol.generated import admin as A
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated import virnet as V
from virtwire.protocol.xdr import XdrStruct
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer, start_server, stop_servers, unavailable
from vwtestkit.activation import NotifyReceiver, spawn_serve, stop


def _virt_admin_binary() -> str:
    path = shutil.which("virt-admin")
    if path is None:
        unavailable("virt-admin not found (Debian: libvirt-clients; scripts/test.sh installs it)")
    return path


def virt_admin(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    uri = f"libvirtd:///system?socket={sock}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBVIRT")}
    return subprocess.run(
        [_virt_admin_binary(), "-c", uri, *args], capture_output=True, text=True, timeout=60, env=env
    )


def ok(sock: Path, *args: str) -> str:
    result = virt_admin(sock, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def admin_dir() -> Iterator[Path]:
    # unix socket paths are limited to 107 bytes: a short directory of our own.
    path = Path(tempfile.mkdtemp(prefix="vw-adm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def served(admin_dir: Path, pki: Path) -> Iterator[tuple[VirtwireServer, Path]]:
    """One server for the module's tests; each leaves its settings as it found them."""
    sock = admin_dir / "admin-sock"
    server = start_server("--admin", str(sock), pki=pki)
    try:
        yield server, sock
    finally:
        stop_servers([server])


def libvirtd_admin_sock(daemon: RealLibvirtd) -> Path:
    return daemon.sockdir / "libvirt-admin-sock"


def clients(listing: str) -> dict[int, str]:
    """srv-clients-list's table: id -> transport."""
    rows = [line.split() for line in listing.splitlines()[2:] if line.strip()]
    return {int(row[0]): row[1] for row in rows}


def info(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines() if line)}


def test_socket_is_the_owners_only(served: tuple[VirtwireServer, Path]) -> None:
    _, sock = served
    assert sock.stat().st_mode & 0o777 == 0o700


def test_servers_clients_and_client_info(
    served: tuple[VirtwireServer, Path], real_libvirt: ModuleType
) -> None:
    server, sock = served
    assert ok(sock, "srv-list").split() == ["Id", "Name", "-" * 16, "0", "libvirtd", "1", "admin"]
    rw = real_libvirt.open(server.unix_uri)
    ro = real_libvirt.openReadOnly(server.unix_ro_uri)
    tcp = real_libvirt.open(server.tcp_uri)
    try:
        listed = clients(ok(sock, "srv-clients-list", "libvirtd"))
        assert sorted(listed.values()) == ["tcp", "unix", "unix"]
        details = {cid: info(ok(sock, "client-info", "libvirtd", str(cid))) for cid in listed}
        by_kind = {(d["transport"], d["readonly"]): d for d in details.values()}
        local = by_kind[("unix", "no")]
        assert local["unix_user_id"] == str(os.getuid())
        assert local["unix_group_id"] == str(os.getgid())
        assert local["unix_process_id"] == str(os.getpid())
        assert by_kind[("unix", "yes")]["unix_process_id"] == str(os.getpid())
        remote = by_kind[("tcp", "no")]
        assert remote["sock_addr"].startswith("127.0.0.1:")
        assert "unix_user_id" not in remote
        for cid, detail in details.items():
            assert detail["id"] == str(cid)
            assert detail["connection_time"].endswith("+0000")
        # virt-admin's own connection is the admin server's client
        assert list(clients(ok(sock, "srv-clients-list", "admin")).values()) == ["unix"]
        limits = info(ok(sock, "srv-clients-info", "libvirtd"))
        assert limits == {
            "nclients_max": "5000",
            "nclients": "3",
            "nclients_unauth_max": "20",
            "nclients_unauth": "0",
        }

        # client-disconnect drops the read-write client: its next call fails
        rw_id = next(cid for cid, d in details.items() if d is local)
        assert (
            ok(sock, "client-disconnect", "libvirtd", str(rw_id)).strip() == f"Client '{rw_id}' disconnected"
        )
        with pytest.raises(real_libvirt.libvirtError):
            rw.getHostname()
        assert rw_id not in clients(ok(sock, "srv-clients-list", "libvirtd"))
        assert tcp.getHostname()
    finally:
        for conn in (rw, ro, tcp):
            with contextlib.suppress(real_libvirt.libvirtError):
                conn.close()


# Commands whose output and exit status must be libvirtd's, in order, on a fresh daemon.
SAME_AS_LIBVIRTD: list[tuple[str, ...]] = [
    ("srv-clients-list", "nope"),
    ("srv-clients-info", "nope"),
    ("srv-threadpool-info", "nope"),
    ("client-info", "libvirtd", "99"),
    ("client-disconnect", "libvirtd", "99"),
    ("srv-clients-set", "nope", "--max-clients", "3"),
    ("srv-threadpool-set", "nope", "--min-workers", "3"),
    ("srv-clients-set", "libvirtd", "--max-clients", "3", "--max-unauth-clients", "4"),
    ("srv-threadpool-set", "libvirtd", "--min-workers", "30"),
    ("srv-threadpool-set", "libvirtd", "--max-workers", "0"),
    ("daemon-log-filters",),
    ("daemon-log-filters", "--filters", "bad"),
    ("daemon-log-filters", "--filters", "7:util"),
    ("daemon-log-filters", "--filters", "1:+"),
    ("daemon-log-filters", "--filters", "3:util 1:+rpc  4:x"),
    ("daemon-log-filters",),
    ("daemon-log-filters", "--filters", ""),
    ("daemon-log-filters",),
    ("daemon-log-outputs", "--outputs", "foo"),
    ("daemon-log-outputs", "--outputs", "0:stderr"),
    ("daemon-log-outputs", "--outputs", "1:nowhere"),
    ("daemon-log-outputs", "--outputs", "1:stderr:extra"),
    ("daemon-log-outputs", "--outputs", "1:file"),
    ("daemon-log-outputs", "--outputs", "4:stderr 2:stderr"),
    ("daemon-log-outputs",),
    ("daemon-log-outputs", "--outputs", "3:syslog:vwtest 4:stderr"),
    ("daemon-log-outputs",),
    ("daemon-timeout", "--timeout", "0"),
    ("version",),
]


def test_answers_as_libvirtd(
    served: tuple[VirtwireServer, Path], fresh_libvirtd: Callable[..., RealLibvirtd]
) -> None:
    _, ours = served
    theirs = libvirtd_admin_sock(fresh_libvirtd(hold=False))
    # libvirtd lists its servers in hash-table order: compare the names
    listed = [ok(sock, "srv-list").split()[3:] for sock in (ours, theirs)]
    assert sorted(listed[0]) == sorted(listed[1])
    for command in SAME_AS_LIBVIRTD:
        mine, real = virt_admin(ours, *command), virt_admin(theirs, *command)
        assert (mine.returncode, mine.stdout, mine.stderr) == (real.returncode, real.stdout, real.stderr), (
            command
        )


def test_client_and_pool_settings_take_effect(
    served: tuple[VirtwireServer, Path], real_libvirt: ModuleType
) -> None:
    server, sock = served
    ok(sock, "srv-clients-set", "libvirtd", "--max-clients", "1", "--max-unauth-clients", "1")
    assert info(ok(sock, "srv-clients-info", "libvirtd"))["nclients_max"] == "1"
    first = real_libvirt.open(server.unix_uri)
    try:
        # At the limit the next client waits in the listen backlog, unserved.
        with RawRpcClient.unix(server.unix_path) as waiting:
            waiting.send_call(R.remote_procedure.REMOTE_PROC_AUTH_LIST)
            assert info(ok(sock, "srv-clients-info", "libvirtd"))["nclients"] == "1"
            ok(sock, "srv-clients-set", "libvirtd", "--max-clients", "10")
            assert waiting.recv_reply().status == 0  # served once there is room
    finally:
        first.close()
    ok(
        sock,
        "srv-threadpool-set",
        "libvirtd",
        "--min-workers",
        "2",
        "--max-workers",
        "8",
        "--priority-workers",
        "1",
    )
    pool = info(ok(sock, "srv-threadpool-info", "libvirtd"))
    assert (pool["minWorkers"], pool["maxWorkers"], pool["prioWorkers"]) == ("2", "8", "1")
    assert pool["jobQueueDepth"] == "0"


def _unknown_program_error(path: Path, program: int, version: int) -> tuple[int, bytes]:
    with RawRpcClient.unix(path) as client:
        reply = client.call(1, b"\0\0\0\0", program=program, version=version)
        return reply.status, reply.payload


def test_each_socket_serves_its_own_program(
    served: tuple[VirtwireServer, Path], real_libvirtd: RealLibvirtd
) -> None:
    server, ours = served
    daemon = real_libvirtd
    remote = (R.REMOTE_PROGRAM, R.REMOTE_PROTOCOL_VERSION)
    admin = (A.ADMIN_PROGRAM, A.ADMIN_PROTOCOL_VERSION)
    # REMOTE on the admin socket, ADMIN on the hypervisor socket: libvirtd's error reply
    assert _unknown_program_error(ours, *remote) == _unknown_program_error(
        libvirtd_admin_sock(daemon), *remote
    )
    assert _unknown_program_error(server.unix_path, *admin) == _unknown_program_error(
        daemon.unix_path, *admin
    )
    status, _ = _unknown_program_error(ours, *remote)
    assert status == 1  # an error
    assert ok(ours, "srv-list")  # both sockets keep serving
    with RawRpcClient.unix(server.unix_path) as client:
        client.open()


def test_log_settings_reach_python_logging(served: tuple[VirtwireServer, Path], admin_dir: Path) -> None:
    server, sock = served
    log_file = admin_dir / "vw.log"
    ok(sock, "daemon-log-outputs", "--outputs", f"1:file:{log_file}")
    ok(sock, "daemon-log-filters", "--filters", "1:connection")
    assert ok(sock, "daemon-log-outputs").split() == ["Logging", "outputs:", f"1:file:{log_file}"]
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as client:
        client.open()
    ok(sock, "srv-list")
    text = log_file.read_text()
    # debug lines of virtwire.server.connection pass the filter; the default level (3) holds the rest
    assert "DEBUG virtwire.server.connection: client" in text
    assert "DEBUG virtwire.server.features" not in text
    ok(sock, "daemon-log-filters", "--filters", "4:connection")
    before = log_file.read_text()
    with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as client:
        client.open()
    ok(sock, "srv-list")
    assert log_file.read_text() == before
    ok(sock, "daemon-log-filters", "--filters", "")
    ok(sock, "daemon-log-outputs", "--outputs", "3:stderr")


def test_admin_refuses_other_users(served: tuple[VirtwireServer, Path]) -> None:
    """libvirtd admits only its own user to the admin socket (the socket is 0700 as well)."""
    _, sock = served
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another user")
    sock.parent.chmod(0o755)
    sock.chmod(0o777)
    pid = os.fork()
    if pid == 0:  # the child connects as nobody
        code = 1
        try:
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(sock))
                code = 0 if s.recv(1) == b"" else 2  # closed at once, nothing said
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert list(clients(ok(sock, "srv-clients-list", "admin")).values()) == ["unix"]
    sock.chmod(0o700)
    sock.parent.chmod(0o700)


def _wait_exit(server: VirtwireServer, seconds: float = 30.0) -> int:
    return server.process.wait(timeout=seconds)


def test_timeout_and_daemon_timeout(
    virtwire_server: Callable[..., VirtwireServer], admin_dir: Path, real_libvirt: ModuleType
) -> None:
    sock = admin_dir / "timeout-sock"
    server = virtwire_server("--admin", str(sock), "--timeout", "1", tls=False, ro=False)
    conn = real_libvirt.open(server.tcp_uri)
    try:
        # a client holds the server: two whole periods pass without an exit
        for _ in range(2):
            conn.getHostname()
            subprocess.run(["sleep", "1.2"], check=True)
        assert server.running()
        ok(sock, "daemon-timeout", "--timeout", "0")  # 0: never
    finally:
        conn.close()
    subprocess.run(["sleep", "1.5"], check=True)
    assert server.running()
    ok(sock, "daemon-timeout", "--timeout", "1")
    # virt-admin was the last client: a second after it leaves the daemon exits cleanly
    assert _wait_exit(server) == 0
    assert not sock.exists()


def test_hostile_admin_calls_get_errors(served: tuple[VirtwireServer, Path]) -> None:
    """Truncated payloads and strings with lone surrogates: libvirt's errors, and the server goes on."""
    _, sock = served
    weird = "\udcff\udc80name"
    crafted = [
        (
            A.admin_procedure.ADMIN_PROC_CONNECT_LOOKUP_SERVER,
            A.admin_connect_lookup_server_args(name=weird, flags=0),
        ),
        (
            A.admin_procedure.ADMIN_PROC_SERVER_LIST_CLIENTS,
            A.admin_server_list_clients_args(srv=A.admin_nonnull_server(name=weird), need_results=1, flags=0),
        ),
        (
            A.admin_procedure.ADMIN_PROC_CONNECT_SET_LOGGING_FILTERS,
            A.admin_connect_set_logging_filters_args(filters=f"1:{weird}:x 9:{weird}", flags=0),
        ),
        (
            A.admin_procedure.ADMIN_PROC_CONNECT_SET_LOGGING_OUTPUTS,
            A.admin_connect_set_logging_outputs_args(outputs=f"1:{weird}", flags=0),
        ),
        (
            A.admin_procedure.ADMIN_PROC_CONNECT_LIST_SERVERS,
            A.admin_connect_list_servers_args(need_results=1, flags=8),
        ),
    ]
    with RawRpcClient.unix(sock) as client:
        admin = {"program": A.ADMIN_PROGRAM, "version": A.ADMIN_PROTOCOL_VERSION}
        for number, proc in A.PROCEDURES.items():
            if proc.args is not None and proc.name != "CONNECT_CLOSE":
                reply = client.call(number, b"\0\0", **admin)
                assert reply.status == 1, proc.name  # "Unable to decode message payload"
        messages = []
        for number, args in crafted:
            reply = client.call(number, args.to_bytes(), **admin)
            assert reply.status == 1, number
            messages.append(V.remote_error.from_bytes(reply.payload).message)
    assert messages == [
        f"Server not found: No server named '{weird}'",
        f"Server not found: No server named '{weird}'",
        f"invalid argument: Invalid priority '9' for filter '9:{weird}'",
        f"invalid argument: Invalid log destination '{weird}' for log output '1:{weird}'",
        "unsupported flags (0x8) in function adminConnectListServers",
    ]
    # nothing was changed, and the server still answers
    assert ok(sock, "daemon-log-filters").split() == ["Logging", "filters:"]
    assert ok(sock, "daemon-log-outputs").split() == ["Logging", "outputs:", "3:stderr"]


def _raw_answers(sock: Path) -> list[tuple[int, ...] | tuple[int, int, int, str | None]]:
    client_x = A.admin_nonnull_client(srv=A.admin_nonnull_server(name="x"), id=1, timestamp=0, transport=0)
    calls: list[tuple[int, XdrStruct]] = [
        (4, A.admin_connect_list_servers_args(need_results=1, flags=8)),
        (5, A.admin_connect_lookup_server_args(name="x", flags=0)),
        (
            5,
            A.admin_connect_lookup_server_args(name="libvirtd", flags=0x40),
        ),  # flags checked against themselves
        (6, A.admin_server_get_threadpool_parameters_args(srv=A.admin_nonnull_server(name="x"), flags=0)),
        (
            9,
            A.admin_server_lookup_client_args(srv=A.admin_nonnull_server(name="libvirtd"), id=10**6, flags=0),
        ),
        (10, A.admin_client_get_info_args(clnt=client_x, flags=0)),
        (11, A.admin_client_close_args(clnt=client_x, flags=0)),
        (12, A.admin_server_get_client_limits_args(srv=A.admin_nonnull_server(name="libvirtd"), flags=2)),
        (14, A.admin_connect_get_logging_outputs_args(flags=4)),
        (19, A.admin_connect_set_daemon_timeout_args(timeout=0, flags=1)),
        (1, A.admin_connect_open_args(flags=3)),
    ]
    out: list[tuple[int, ...] | tuple[int, int, int, str | None]] = []
    with RawRpcClient.unix(sock) as client:
        for number, args in calls:
            reply = client.call(
                number, args.to_bytes(), program=A.ADMIN_PROGRAM, version=A.ADMIN_PROTOCOL_VERSION
            )
            if reply.status:
                error = V.remote_error.from_bytes(reply.payload)
                out.append((number, error.code, error.domain, error.message))
            else:
                out.append((number,))
    return out


def test_raw_admin_errors_as_libvirtd(
    served: tuple[VirtwireServer, Path], real_libvirtd: RealLibvirtd
) -> None:
    """Error code, domain and message of refused admin calls, byte for byte libvirtd's."""
    _, ours = served
    assert _raw_answers(ours) == _raw_answers(libvirtd_admin_sock(real_libvirtd))


def _tls_client_info(sock: Path) -> dict[str, str]:
    listed = clients(ok(sock, "srv-clients-list", "libvirtd"))
    tls = [cid for cid, transport in listed.items() if transport == "tls"]
    assert len(tls) == 1, listed
    return info(ok(sock, "client-info", "libvirtd", str(tls[0])))


def test_tls_client_info_as_libvirtd(
    served: tuple[VirtwireServer, Path], real_libvirtd: RealLibvirtd, real_libvirt: ModuleType
) -> None:
    """The same client certificate, described by both daemons: the DN in GnuTLS's form."""
    server, sock = served
    ours = real_libvirt.open(server.tls_uri)
    theirs = real_libvirt.open(real_libvirtd.tls_uri)
    try:
        mine, real = _tls_client_info(sock), _tls_client_info(libvirtd_admin_sock(real_libvirtd))
    finally:
        ours.close()
        theirs.close()
    assert mine.keys() == real.keys()
    assert mine["tls_x509_dname"] == real["tls_x509_dname"]
    assert (mine["transport"], mine["readonly"]) == ("tls", "no")
    assert mine["sock_addr"].startswith("127.0.0.1:")

    # srv-update-tls reloads the PKI files into the listeners' context; TLS clients still get in
    assert ok(sock, "srv-update-tls", "libvirtd").strip() == "update tls related files succeed"
    again = real_libvirt.open(server.tls_uri)
    assert again.getHostname()
    again.close()
    refused = virt_admin(sock, "srv-update-tls", "admin")
    assert refused.returncode == 1
    assert "no tls service found, unable to update tls files" in refused.stderr


def test_socket_activated_admin_socket(admin_dir: Path) -> None:
    """systemd's libvirtd-admin.socket passed in: virt-admin reaches the admin server through it."""
    rw_path, admin_path = admin_dir / "act-rw", admin_dir / "act-admin"
    listeners = []
    for path in (rw_path, admin_path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(16)
        listeners.append(sock)
    log = admin_dir / "activated.log"
    passed = [("libvirtd.socket", listeners[0]), ("libvirtd-admin.socket", listeners[1])]
    with NotifyReceiver() as notify:
        server = spawn_serve(
            ["--config", os.devnull], log_path=log, env={"NOTIFY_SOCKET": str(notify.path)}, passed=passed
        )
        try:
            notify.wait_for("READY=1")
            for sock in listeners:
                sock.close()
            assert ok(admin_path, "srv-list").split()[3:] == ["0", "libvirtd", "1", "admin"]
        finally:
            assert stop(server) == 0, log.read_text()
