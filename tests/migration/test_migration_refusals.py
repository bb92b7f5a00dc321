"""Refusals and dead peers: read-only connections on every migration call, a destination that dies."""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.remote import remote_procedure as P
from virtwire.protocol.generated.virnet import remote_error
from vwtestkit import RawRpcClient, VirtwireServer, start_server

Hosts = Any  # tests/migration/conftest.py's Hosts
TEST_UUID = uuidlib.UUID("6695eb01-f6a4-8304-79aa-97f2502e193f").bytes


def _calls() -> list[tuple[P, Any]]:
    dom = R.remote_nonnull_domain(name="test", uuid=TEST_UUID, id=1)
    return [
        (P.REMOTE_PROC_DOMAIN_MIGRATE_BEGIN3_PARAMS, R.remote_domain_migrate_begin3_params_args(dom, [], 1)),
        (
            P.REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS,
            R.remote_domain_migrate_prepare3_params_args([], b"", 1),
        ),
        (
            P.REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS,
            R.remote_domain_migrate_perform3_params_args(dom, None, [], b"", 1),
        ),
        (
            P.REMOTE_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS,
            R.remote_domain_migrate_finish3_params_args([], b"", 1, 0),
        ),
        (
            P.REMOTE_PROC_DOMAIN_MIGRATE_CONFIRM3_PARAMS,
            R.remote_domain_migrate_confirm3_params_args(dom, [], b"", 1, 0),
        ),
        (P.REMOTE_PROC_DOMAIN_MIGRATE_START_POST_COPY, R.remote_domain_migrate_start_post_copy_args(dom, 0)),
        (P.REMOTE_PROC_DOMAIN_ABORT_JOB, R.remote_domain_abort_job_args(dom)),
        (P.REMOTE_PROC_DOMAIN_ABORT_JOB_FLAGS, R.remote_domain_abort_job_flags_args(dom, 0)),
        (
            P.REMOTE_PROC_DOMAIN_MIGRATE_SET_MAX_DOWNTIME,
            R.remote_domain_migrate_set_max_downtime_args(dom, 9, 0),
        ),
        (P.REMOTE_PROC_DOMAIN_MIGRATE_SET_MAX_SPEED, R.remote_domain_migrate_set_max_speed_args(dom, 9, 0)),
        (P.REMOTE_PROC_DOMAIN_MIGRATE_GET_MAX_SPEED, R.remote_domain_migrate_get_max_speed_args(dom, 0)),
    ]


def test_read_only_socket_refuses_every_migration_procedure(hosts: Hosts) -> None:
    assert hosts.src.unix_ro_path is not None
    with RawRpcClient.unix(hosts.src.unix_ro_path) as client:
        client.open()
        for procedure, args in _calls():
            reply = client.call(procedure, args.to_bytes())
            assert reply.status == 1, procedure.name
            err = remote_error.from_bytes(reply.payload)
            api = R.PROCEDURES[procedure].api
            assert (err.code, err.domain) == (C.VIR_ERR_OPERATION_DENIED, C.VIR_FROM_DOMAIN), procedure.name
            assert err.message == f"operation forbidden: read only access prevents {api}"
        # Reading job state stays allowed.
        dom = R.remote_nonnull_domain(name="test", uuid=TEST_UUID, id=1)
        reply = client.call(
            P.REMOTE_PROC_DOMAIN_GET_JOB_STATS, R.remote_domain_get_job_stats_args(dom, 0).to_bytes()
        )
        assert reply.status == 0
        assert R.remote_domain_get_job_stats_ret.from_bytes(reply.payload).type == C.VIR_DOMAIN_JOB_NONE


@pytest.fixture
def killable_destination(pki: Path) -> Iterator[VirtwireServer]:
    """A destination this test may kill: started outside the fixture that asserts a clean exit."""
    server = start_server(pki=None, tls=False, ro=False, hostname="doomed-host")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("phase", ["precopy", "postcopy"])
def test_destination_killed_mid_migration(
    phase: str,
    hosts: Hosts,
    killable_destination: VirtwireServer,
    start_domain: Callable[..., str],
    run_virsh: Callable[..., Any],
    background: Callable[..., Any],
    wait_until: Callable[..., None],
) -> None:
    name = start_domain(
        hosts.src.tcp_uri, f"kill{phase}", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2
    )
    extra = ["--postcopy", "--postcopy-bandwidth", "1"] if phase == "postcopy" else []
    migrate = background(
        hosts.src.tcp_uri, "migrate", "--live", *extra, "--bandwidth", "2", name, killable_destination.tcp_uri
    )

    def domstate() -> str:
        return str(run_virsh(hosts.src.tcp_uri, "domstate", name, "--reason").stdout.strip())

    wait_until(lambda: "Unbounded" in run_virsh(hosts.src.tcp_uri, "domjobinfo", name).stdout, "job start")
    if phase == "postcopy":
        run_virsh(hosts.src.tcp_uri, "migrate-postcopy", name, check=True)
        wait_until(lambda: domstate() == "paused (post-copy)", "post-copy")
    killable_destination.process.kill()
    rc, _, err = migrate.finish(timeout=120)
    assert rc == 1
    assert "error: operation failed: job 'migration out' failed: Unable to write to socket" in err, err
    if phase == "precopy":
        assert domstate() == "running (booted)"
    else:
        # The guest's pages are split between a live source and a dead destination.
        assert domstate() == "paused (post-copy failed)"
        # Its job waits for a recovery that cannot come: the destination is gone.
        src = hosts.src.tcp_uri
        assert "Unbounded" in run_virsh(src, "domjobinfo", name, check=True).stdout
        dst = killable_destination.tcp_uri
        resume = run_virsh(src, "migrate", "--live", "--postcopy", "--postcopy-resume", "--p2p", name, dst)
        assert resume.returncode == 1 and "Failed to connect to remote libvirt URI" in resume.stderr
        pause = run_virsh(src, "domjobabort", "--postcopy", name)
        assert "migrate-pause is currently only supported during postcopy-active state" in pause.stderr
        assert domstate() == "paused (post-copy failed)"
        # Only destroying it ends the job (as failed).
        run_virsh(src, "destroy", name, check=True)
        assert re.search(r"Job type:\s+None", run_virsh(src, "domjobinfo", name, check=True).stdout)
        assert domstate() == "shut off (destroyed)"
    info = run_virsh(hosts.src.tcp_uri, "dominfo", name, check=True).stdout
    assert re.search(r"Persistent:\s+yes", info), info
