"""Stock virsh migrating between two `virtwire serve` hosts: post-copy, jobs, events, failures."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from vwtestkit import VirtwireServer

Virsh = Callable[..., Any]
Background = Any  # tests/migration/conftest.py's Background
Hosts = Any  # tests/migration/conftest.py's Hosts
Trail = Any  # tests/migration/conftest.py's JobStatsTrail
RawStats = Callable[[str], dict[str, Any]]  # tests/migration/conftest.py's rawstats


def state(run_virsh: Virsh, uri: str, name: str) -> str:
    return str(run_virsh(uri, "domstate", name, "--reason", check=True).stdout.strip())


def raw_jobinfo(run_virsh: Virsh, rawstats: RawStats, uri: str, name: str, *flags: str) -> dict[str, Any]:
    """``virsh domjobinfo --rawstats``: the exact numbers, not virsh's rounded MiB."""
    return rawstats(run_virsh(uri, "domjobinfo", name, "--rawstats", *flags, check=True).stdout)


def in_order(lines: list[str], *patterns: str) -> bool:
    """Every pattern matches some line, each after the previous one."""
    position = 0
    for pattern in patterns:
        for index in range(position, len(lines)):
            if re.search(pattern, lines[index]):
                position = index + 1
                break
        else:
            return False
    return True


def watch_events(
    background: Callable[..., Background], run_virsh: Virsh, hosts: Hosts, wait_until: Callable[..., None]
) -> tuple[Background, ...]:
    """`virsh event --all --loop` on both hosts, proven listening by a probe event."""
    watchers = []
    for server in (hosts.src, hosts.dst):
        watcher = background(server.tcp_uri, "event", "--all", "--loop")
        # virsh registers its callbacks before it prints anything: poke until a probe shows up.
        wait_until(
            lambda w=watcher, s=server: _probe(run_virsh, s) or any("'test'" in x for x in w.lines),
            "virsh event to listen",
        )
        watchers.append(watcher)
    return tuple(watchers)


def _probe(run_virsh: Virsh, server: VirtwireServer) -> bool:
    run_virsh(server.tcp_uri, "suspend", "test", check=True)
    run_virsh(server.tcp_uri, "resume", "test", check=True)
    return False


def test_postcopy_after_precopy_with_events_on_both_hosts(
    hosts: Hosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    background: Callable[..., Background],
    wait_until: Callable[..., None],
    stats_trail: Callable[[], Trail],
    rawstats: RawStats,
) -> None:
    name = start_domain(hosts.src.tcp_uri, "pcauto", dirty_rate=2000, working_set_mib=2, dirty_set_mib=2)
    src_events, dst_events = watch_events(background, run_virsh, hosts, wait_until)
    result = run_virsh(
        hosts.src.tcp_uri,
        "migrate", "--live", "--postcopy", "--postcopy-after-precopy", "--bandwidth", "2", "--verbose",
        name, hosts.dst.tcp_uri,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Migration: [100 %]" in result.stdout or "Migration: [100 %]" in result.stderr
    assert state(run_virsh, hosts.src.tcp_uri, name) == "shut off (migrated)"
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (migrated)"

    who = f"for domain '{name}'"
    src_events.wait_for(f"event 'lifecycle' {who}: Stopped Migrated")
    dst_events.wait_for(f"event 'lifecycle' {who}: Resumed Migrated")
    _, src_out, _ = src_events.interrupt()
    _, dst_out, _ = dst_events.interrupt()
    src_lines, dst_lines = src_out.splitlines(), dst_out.splitlines()
    assert in_order(
        src_lines,
        f"event 'migration-iteration' {who}: iteration: '1'",
        f"event 'migration-iteration' {who}: iteration: '2'",
        f"event 'lifecycle' {who}: Suspended Post-copy$",
        f"event 'job-completed' {who}:",
        f"event 'lifecycle' {who}: Stopped Migrated",
    ), src_out
    assert in_order(
        dst_lines,
        f"event 'lifecycle' {who}: Started Migrated",
        f"event 'lifecycle' {who}: Resumed Post-copy$",
        f"event 'lifecycle' {who}: Resumed Migrated",
    ), dst_out
    assert not any("migration-iteration" in line for line in dst_lines)
    iteration_events = [line for line in src_lines if f"event 'migration-iteration' {who}" in line]
    assert iteration_events == [
        f"event 'migration-iteration' {who}: iteration: '{n}'" for n in range(1, len(iteration_events) + 1)
    ]

    raw = raw_jobinfo(run_virsh, rawstats, hosts.src.tcp_uri, name, "--completed", "--keep-completed")
    stats_trail().completed(raw, len(iteration_events))
    assert raw["memory_postcopy_requests"] >= 0 and raw["memory_normal"] > 0
    completed = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Job type:\s+Completed", completed), completed
    assert re.search(r"Operation:\s+Outgoing migration", completed), completed
    assert re.search(r"Postcopy requests:\s+\d+", completed), completed
    # Read once, then gone (no --keep-completed).
    again = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Job type:\s+None", again), again
    # Post-copy: completed stats only on the source.
    dest = run_virsh(hosts.dst.tcp_uri, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Job type:\s+None", dest), dest


def test_migrate_postcopy_from_a_second_shell_with_domjobinfo_during_and_after(
    hosts: Hosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    background: Callable[..., Background],
    wait_until: Callable[..., None],
    stats_trail: Callable[[], Trail],
    rawstats: RawStats,
) -> None:
    name = start_domain(hosts.src.tcp_uri, "pcmanual", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2)
    # A slow post-copy push, so the running destination must fault pages in.
    migrate = background(
        hosts.src.tcp_uri,
        "migrate", "--live", "--postcopy", "--bandwidth", "2", "--postcopy-bandwidth", "2",
        name, hosts.dst.tcp_uri,
    )  # fmt: skip
    seen: list[str] = []
    trail = stats_trail()

    def running_job() -> bool:
        out = str(run_virsh(hosts.src.tcp_uri, "domjobinfo", name).stdout)
        seen.append(out)
        trail.add(raw_jobinfo(run_virsh, rawstats, hosts.src.tcp_uri, name))
        return bool(re.search(r"Job type:\s+Unbounded", out)) and bool(re.search(r"Iteration:\s+[2-9]", out))

    wait_until(running_job, "the migration to reach its second pass")
    during = seen[-1]
    assert re.search(r"Operation:\s+Outgoing migration", during), during
    assert re.search(r"Memory processed:", during) and re.search(r"Page size:\s+4096\s+bytes", during), during
    assert state(run_virsh, hosts.src.tcp_uri, name) == "running (booted)"
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "paused (migrating)"
    # The incoming side has no statistics while it runs, as with QEMU.
    dest_info = run_virsh(hosts.dst.tcp_uri, "domjobinfo", name)
    assert "migration statistics are available only on the source host" in dest_info.stderr

    run_virsh(hosts.src.tcp_uri, "migrate-postcopy", name, check=True)
    # Sampled through post-copy too, until the job is over.
    while (sample := raw_jobinfo(run_virsh, rawstats, hosts.src.tcp_uri, name))["type"] == 2:
        trail.add(sample)  # VIR_DOMAIN_JOB_UNBOUNDED
    rc, _, err = migrate.finish(timeout=120)
    assert rc == 0, err
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (migrated)"
    raw = raw_jobinfo(run_virsh, rawstats, hosts.src.tcp_uri, name, "--completed", "--keep-completed")
    trail.completed(raw, raw["memory_iteration"])  # events are checked in the test above
    assert len(trail.samples) > 2
    completed = run_virsh(
        hosts.src.tcp_uri, "domjobinfo", name, "--completed", "--keep-completed", check=True
    )
    assert re.search(r"Job type:\s+Completed", completed.stdout), completed.stdout
    requests = re.search(r"Postcopy requests:\s+(\d+)", completed.stdout)
    assert requests is not None and int(requests.group(1)) > 0, completed.stdout


def test_p2p_migration_with_persist_and_undefine_source(
    hosts: Hosts, start_domain: Callable[..., str], run_virsh: Virsh
) -> None:
    name = start_domain(hosts.src.tcp_uri, "p2p", dirty_rate=200, working_set_mib=2)
    result = run_virsh(
        hosts.src.tcp_uri,
        "migrate", "--live", "--p2p", "--persistent", "--undefinesource", name, hosts.dst.tcp_uri,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    gone = run_virsh(hosts.src.tcp_uri, "dominfo", name)
    assert gone.returncode != 0 and "failed to get domain" in gone.stderr
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (migrated)"
    info = run_virsh(hosts.dst.tcp_uri, "dominfo", name, check=True).stdout
    assert re.search(r"Persistent:\s+yes", info), info
    completed = run_virsh(hosts.dst.tcp_uri, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Operation:\s+Incoming migration", completed), completed


def test_domjobabort_in_precopy_cancels_and_leaves_the_source_untouched(
    hosts: Hosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    background: Callable[..., Background],
    wait_until: Callable[..., None],
    stats_trail: Callable[[], Trail],
    rawstats: RawStats,
) -> None:
    name = start_domain(hosts.src.tcp_uri, "abort", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2)
    migrate = background(hosts.src.tcp_uri, "migrate", "--live", "--bandwidth", "2", name, hosts.dst.tcp_uri)
    wait_until(
        lambda: "Unbounded" in run_virsh(hosts.src.tcp_uri, "domjobinfo", name).stdout,
        "the migration job to start",
    )
    run_virsh(hosts.src.tcp_uri, "domjobabort", name, check=True)
    rc, _, err = migrate.finish(timeout=60)
    assert rc == 1
    assert "operation aborted: job 'migration out' canceled by client" in err
    assert state(run_virsh, hosts.src.tcp_uri, name) == "running (booted)"
    gone = run_virsh(hosts.dst.tcp_uri, "dominfo", name)
    assert gone.returncode != 0 and "failed to get domain" in gone.stderr
    cancelled = stats_trail().add(
        raw_jobinfo(run_virsh, rawstats, hosts.src.tcp_uri, name, "--completed", "--keep-completed")
    )
    assert cancelled["type"] == 5  # VIR_DOMAIN_JOB_CANCELLED
    completed = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Job type:\s+Cancelled", completed), completed
    idle = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, check=True).stdout
    assert re.search(r"Job type:\s+None", idle), idle


def test_abort_refused_in_postcopy_and_postcopy_preconditions(
    hosts: Hosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    background: Callable[..., Background],
    wait_until: Callable[..., None],
) -> None:
    name = start_domain(hosts.src.tcp_uri, "pcabort", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2)
    not_migrating = run_virsh(hosts.src.tcp_uri, "migrate-postcopy", name)
    assert "post-copy can only be started while outgoing migration is in progress" in not_migrating.stderr
    no_job = run_virsh(hosts.src.tcp_uri, "domjobabort", name)
    assert "no job is active on the domain" in no_job.stderr

    plain = background(hosts.src.tcp_uri, "migrate", "--live", "--bandwidth", "2", name, hosts.dst.tcp_uri)
    wait_until(lambda: "Unbounded" in run_virsh(hosts.src.tcp_uri, "domjobinfo", name).stdout, "job start")
    refused = run_virsh(hosts.src.tcp_uri, "migrate-postcopy", name)
    assert (
        "Requested operation is not valid: switching to post-copy requires migration to be started "
        "with VIR_MIGRATE_POSTCOPY flag" in refused.stderr
    )
    run_virsh(hosts.src.tcp_uri, "domjobabort", name, check=True)
    assert plain.finish()[0] == 1

    migrate = background(
        hosts.src.tcp_uri,
        "migrate", "--live", "--postcopy", "--bandwidth", "2", "--postcopy-bandwidth", "1",
        name, hosts.dst.tcp_uri,
    )  # fmt: skip
    wait_until(lambda: "Unbounded" in run_virsh(hosts.src.tcp_uri, "domjobinfo", name).stdout, "job start")
    run_virsh(hosts.src.tcp_uri, "migrate-postcopy", name, check=True)
    wait_until(lambda: state(run_virsh, hosts.src.tcp_uri, name) == "paused (post-copy)", "post-copy")
    busy = run_virsh(hosts.src.tcp_uri, "domjobabort", name)
    assert "Requested operation is not valid: cannot abort migration in post-copy mode" in busy.stderr
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (post-copy)"
    rc, _, err = migrate.finish(timeout=120)
    assert rc == 0, err
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (migrated)"


def test_migrating_test_fails_because_the_destination_already_runs_it(hosts: Hosts, run_virsh: Virsh) -> None:
    result = run_virsh(hosts.src.tcp_uri, "migrate", "--live", "test", hosts.dst.tcp_uri)
    assert result.returncode == 1
    assert "error: Requested operation is not valid: domain 'test' is already active" in result.stderr
    assert state(run_virsh, hosts.src.tcp_uri, "test").startswith("running")
    idle = run_virsh(hosts.src.tcp_uri, "domjobinfo", "test", check=True).stdout
    assert re.search(r"Job type:\s+None", idle), idle


def test_link_cut_in_precopy_fails_and_source_keeps_running(
    hosts: Hosts, start_domain: Callable[..., str], run_virsh: Virsh
) -> None:
    name = start_domain(hosts.src.tcp_uri, "cutpre", dirty_rate=2000, working_set_mib=2, fault="precopy:300")
    result = run_virsh(hosts.src.tcp_uri, "migrate", "--live", name, hosts.dst.tcp_uri, timeout=120)
    assert result.returncode == 1
    assert "operation failed: job 'migration out' failed: Unable to write to socket" in result.stderr
    assert state(run_virsh, hosts.src.tcp_uri, name) == "running (booted)"
    gone = run_virsh(hosts.dst.tcp_uri, "dominfo", name)
    assert gone.returncode != 0 and "failed to get domain" in gone.stderr
    raw = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, "--completed", "--rawstats", check=True)
    completed = raw.stdout
    assert re.search(r"Job type: 4\b", completed), completed  # VIR_DOMAIN_JOB_FAILED
    assert "errmsg: Unable to write to socket: Connection reset by peer" in completed, completed


def test_link_cut_in_postcopy_then_recovery_cut_again_then_p2p_recovery_finishes(
    hosts: Hosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    background: Callable[..., Background],
    wait_until: Callable[..., None],
) -> None:
    name = start_domain(
        hosts.src.tcp_uri,
        "cutpost",
        dirty_rate=4000,
        working_set_mib=2,
        dirty_set_mib=2,
        fault="postcopy recovery:100",
    )
    src_events, dst_events = watch_events(background, run_virsh, hosts, wait_until)
    result = run_virsh(
        hosts.src.tcp_uri,
        "migrate", "--live", "--postcopy", "--postcopy-after-precopy", "--bandwidth", "2",
        "--postcopy-bandwidth", "1", name, hosts.dst.tcp_uri,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "operation failed: job 'migration out' failed" in result.stderr
    assert state(run_virsh, hosts.src.tcp_uri, name) == "paused (post-copy failed)"
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (post-copy failed)"
    who = f"for domain '{name}'"
    src_events.wait_for(f"event 'lifecycle' {who}: Suspended Post-copy Error")
    dst_events.wait_for(f"event 'lifecycle' {who}: Resumed Post-copy Error")
    _, src_out, _ = src_events.interrupt()
    _, dst_out, _ = dst_events.interrupt()
    assert in_order(
        src_out.splitlines(),
        f"{who}: Suspended Post-copy$",
        f"{who}: Suspended Post-copy Error",
    ), src_out
    assert in_order(
        dst_out.splitlines(),
        f"{who}: Resumed Post-copy$",
        f"{who}: Resumed Post-copy Error",
    ), dst_out
    # Nothing lost: the source keeps the definition, and the job waits for a recovery.
    info = run_virsh(hosts.src.tcp_uri, "dominfo", name, check=True).stdout
    assert re.search(r"Persistent:\s+yes", info), info
    waiting = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, check=True).stdout
    assert re.search(r"Job type:\s+Unbounded", waiting), waiting
    assert re.search(r"Operation:\s+Outgoing migration", waiting), waiting

    # A fresh migration is refused while this one waits (the resume refusals: test_migration_driver).
    dst = hosts.dst.tcp_uri
    fresh = run_virsh(hosts.src.tcp_uri, "migrate", "--live", "--postcopy", name, hosts.dst.tcp_uri)
    assert fresh.returncode == 1
    assert f"another migration job is already running for domain '{name}'" in fresh.stderr

    src_events, dst_events = watch_events(background, run_virsh, hosts, wait_until)
    resume = ("migrate", "--live", "--postcopy", "--postcopy-resume", "--postcopy-bandwidth", "1")
    # A recovery whose link is cut too: back to the failed states, job kept.
    again = run_virsh(hosts.src.tcp_uri, *resume, name, hosts.dst.tcp_uri, timeout=120)
    assert again.returncode == 1, again.stdout
    assert "operation failed: job 'migration out' failed" in again.stderr, again.stderr
    assert state(run_virsh, hosts.src.tcp_uri, name) == "paused (post-copy failed)"
    src_events.wait_for(f"event 'lifecycle' {who}: Suspended Post-copy Error")
    dst_events.wait_for(f"event 'lifecycle' {who}: Resumed Post-copy Error")
    wait_until(lambda: state(run_virsh, dst, name) == "running (post-copy failed)", "destination failed")
    # Peer-to-peer this time: the source drives the destination itself.
    done = run_virsh(hosts.src.tcp_uri, *resume, "--p2p", name, hosts.dst.tcp_uri, timeout=120)
    assert done.returncode == 0, done.stderr
    assert state(run_virsh, hosts.src.tcp_uri, name) == "shut off (migrated)"
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (migrated)"
    src_events.wait_for(f"event 'lifecycle' {who}: Stopped Migrated")
    dst_events.wait_for(f"event 'lifecycle' {who}: Resumed Migrated")
    _, src_out, _ = src_events.interrupt()
    _, dst_out, _ = dst_events.interrupt()
    assert in_order(
        src_out.splitlines(),
        f"{who}: Suspended Post-copy$",
        f"{who}: Suspended Post-copy Error",
        f"{who}: Suspended Post-copy$",
        f"event 'job-completed' {who}:",
        f"{who}: Stopped Migrated",
    ), src_out
    assert in_order(
        dst_out.splitlines(),
        f"{who}: Resumed Post-copy$",
        f"{who}: Resumed Post-copy Error",
        f"{who}: Resumed Post-copy$",
        f"{who}: Resumed Migrated",
    ), dst_out
    completed = run_virsh(hosts.src.tcp_uri, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Job type:\s+Completed", completed), completed


def test_read_only_connections_are_refused_every_migration_call(
    hosts: Hosts, start_domain: Callable[..., str], run_virsh: Virsh
) -> None:
    name = start_domain(hosts.src.tcp_uri, "ro", dirty_rate=100, working_set_mib=1)
    ro = hosts.src.unix_ro_uri
    for args, api in [
        (("migrate-postcopy", name), "virDomainMigrateStartPostCopy"),
        (("domjobabort", name), "virDomainAbortJob"),
        (("migrate-setmaxdowntime", name, "500"), "virDomainMigrateSetMaxDowntime"),
        (("migrate-setspeed", name, "10"), "virDomainMigrateSetMaxSpeed"),
        (("migrate", "--live", name, hosts.dst.tcp_uri), "virDomainMigrateBegin3Params"),
    ]:
        result = run_virsh(ro, *args)
        assert result.returncode == 1
        assert f"operation forbidden: read only access prevents {api}" in result.stderr, (args, result.stderr)
    # Reading job information stays allowed.
    assert re.search(r"Job type:\s+None", run_virsh(ro, "domjobinfo", name, check=True).stdout)
    assert state(run_virsh, hosts.src.tcp_uri, name) == "running (booted)"


def test_offline_migration_of_a_shut_off_domain_and_paused_arrival(
    hosts: Hosts, start_domain: Callable[..., str], run_virsh: Virsh
) -> None:
    name = start_domain(hosts.src.tcp_uri, "offline", dirty_rate=100, working_set_mib=1)
    run_virsh(hosts.src.tcp_uri, "destroy", name, check=True)
    refused = run_virsh(hosts.src.tcp_uri, "migrate", "--offline", name, hosts.dst.tcp_uri)
    assert "offline migration must be specified with the persistent flag set" in refused.stderr
    offline = ("--offline", "--persistent", "--undefinesource")
    run_virsh(hosts.src.tcp_uri, "migrate", *offline, name, hosts.dst.tcp_uri, check=True)
    assert "failed to get domain" in run_virsh(hosts.src.tcp_uri, "dominfo", name).stderr
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "shut off (unknown)"
    # Back again, live this time, arriving paused (--suspend).
    run_virsh(hosts.dst.tcp_uri, "start", name, check=True)
    run_virsh(hosts.dst.tcp_uri, "migrate", "--live", "--suspend", name, hosts.src.tcp_uri, check=True)
    assert state(run_virsh, hosts.src.tcp_uri, name) == "paused (user)"
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "shut off (migrated)"
    unsupported = run_virsh(hosts.src.tcp_uri, "migrate", "--live", "--rdma-pin-all", name, hosts.dst.tcp_uri)
    assert "unsupported flags (0x4000) in function qemuDomainMigrateBegin3Params" in unsupported.stderr
    # These hosts have no PKI (--pki-dir): TLS migration is refused as libvirt refuses it.
    no_pki = run_virsh(hosts.src.tcp_uri, "migrate", "--live", "--tls", name, hosts.dst.tcp_uri)
    assert "Requested operation is not valid: host migration TLS directory not configured" in no_pki.stderr


def test_auto_converge_with_runtime_tuning_from_a_second_shell(
    hosts: Hosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    background: Callable[..., Background],
    wait_until: Callable[..., None],
) -> None:
    # All of the working set hot and a 5 ms downtime: only throttling lets pre-copy converge.
    name = start_domain(hosts.src.tcp_uri, "autoconv", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2)
    src = hosts.src.tcp_uri
    run_virsh(src, "migrate-setmaxdowntime", name, "5", check=True)
    assert run_virsh(src, "migrate-getmaxdowntime", name, check=True).stdout.strip() == "5"
    cache = run_virsh(src, "migrate-compcache", name, "--size", str(1 << 20), check=True).stdout
    assert "Compression cache: 1.000 MiB" in cache, cache
    migrate = background(
        src,
        "migrate", "--live", "--auto-converge", "--auto-converge-initial", "60",
        "--auto-converge-increment", "20", "--bandwidth", "2", name, hosts.dst.tcp_uri,
    )  # fmt: skip
    seen: list[str] = []

    def throttled() -> bool:
        out = str(run_virsh(src, "domjobinfo", name).stdout)
        seen.append(out)
        return "Auto converge throttle:" in out

    wait_until(throttled, "the guest to be throttled")
    assert re.search(r"Auto converge throttle:\s+(60|80|99)\s", seen[-1]), seen[-1]
    # Tuning the running job: a faster link, read back at once.
    run_virsh(src, "migrate-setspeed", name, "4", check=True)
    assert run_virsh(src, "migrate-getspeed", name, check=True).stdout.strip() == "4"
    rc, _, err = migrate.finish(timeout=120)
    assert rc == 0, err
    assert state(run_virsh, hosts.dst.tcp_uri, name) == "running (migrated)"
    completed = run_virsh(src, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Job type:\s+Completed", completed), completed


def test_persistent_xml_and_dname_shape_the_arrival(
    hosts: Hosts, start_domain: Callable[..., str], run_virsh: Virsh, tmp_path: Any
) -> None:
    name = start_domain(hosts.src.tcp_uri, "persx", dirty_rate=100, working_set_mib=1)
    inactive = run_virsh(hosts.src.tcp_uri, "dumpxml", "--inactive", name, check=True).stdout
    assert "<description>" not in inactive
    persist = tmp_path / "persist.xml"
    persist.write_text(
        inactive.replace(f"<name>{name}</name>", f"<name>{name}-new</name>").replace(
            "</name>", "</name>\n  <description>kept for the next start</description>", 1
        )
    )
    run_virsh(
        hosts.src.tcp_uri,
        "migrate", "--live", "--persistent", "--persistent-xml", str(persist), "--dname", f"{name}-new",
        name, hosts.dst.tcp_uri,
        check=True, timeout=120,
    )  # fmt: skip
    moved = f"{name}-new"
    assert state(run_virsh, hosts.dst.tcp_uri, moved) == "running (migrated)"
    assert state(run_virsh, hosts.src.tcp_uri, name) == "shut off (migrated)"
    # The running definition came with the guest; the persistent one is PERSIST_XML's.
    live = run_virsh(hosts.dst.tcp_uri, "dumpxml", moved, check=True).stdout
    kept = run_virsh(hosts.dst.tcp_uri, "dumpxml", "--inactive", moved, check=True).stdout
    assert "<description>" not in live, live
    assert "<description>kept for the next start</description>" in kept, kept
    info = run_virsh(hosts.dst.tcp_uri, "dominfo", moved, check=True).stdout
    assert re.search(r"Persistent:\s+yes", info), info
