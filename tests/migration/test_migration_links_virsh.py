"""Compressed, tunnelled, TLS and parallel migration between two `virtwire serve` hosts.

Stock virsh drives each mode end to end (flags, parameters, domjobinfo, libvirt's
refusals, a link cut in the middle); real libvirt-python and virtwire.libvirt
each drive a mode of their own. Both hosts have a PKI (--pki-dir) for TLS
migration; a third host without one shows libvirt's refusal.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from vwtestkit import ServerStartError, VirtwireServer, hangguard, start_server, stop_servers

Virsh = Callable[..., Any]
RawStats = Callable[[str], dict[str, Any]]
HOOKS_ENV = {"VIRTWIRE_ENABLE_TEST_HOOKS": "1"}
MIGRATE = ("migrate", "--live", "--verbose")


@dataclass
class PkiHosts:
    src: VirtwireServer
    dst: VirtwireServer
    bare: VirtwireServer  # no --pki-dir


@pytest.fixture(scope="module")
def pki_hosts(pki: Path) -> Iterator[PkiHosts]:
    started: list[VirtwireServer] = []

    def kill_all() -> None:
        for server in started:
            if server.process.poll() is None:
                server.process.kill()

    hangguard.on_abort(started, kill_all)
    try:
        for name, extra in (
            ("src-pki", ("--pki-dir", str(pki))),
            ("dst-pki", ("--pki-dir", str(pki))),
            ("bare", ()),
        ):
            try:
                started.append(start_server(*extra, pki=None, tls=False, hostname=name, env=HOOKS_ENV))
            except ServerStartError as exc:
                pytest.fail(f"could not start virtwire serve: {exc}", pytrace=False)
        yield PkiHosts(*started)
    finally:
        hangguard.forget_on_abort(started)
        stop_servers(started)


def state(run_virsh: Virsh, uri: str, name: str) -> str:
    result = run_virsh(uri, "domstate", name, "--reason")
    return str(result.stdout.strip()) if result.returncode == 0 else "absent"


def migrate(run_virsh: Virsh, src: str, dst: str, name: str, *flags: str) -> Any:
    return run_virsh(src, *MIGRATE, *flags, name, dst, timeout=120)


def completed(run_virsh: Virsh, rawstats: RawStats, uri: str, name: str) -> dict[str, Any]:
    out = run_virsh(
        uri, "domjobinfo", name, "--completed", "--keep-completed", "--rawstats", check=True
    ).stdout
    return rawstats(out)


def test_xbzrle_compression_fills_the_compression_job_stats(
    pki_hosts: PkiHosts, start_domain: Callable[..., str], run_virsh: Virsh, rawstats: RawStats
) -> None:
    src, dst = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri
    # The guest writes its whole working set slowly (a lap takes a second, pass 1 a
    # quarter): the pages it writes were sent before, so they go again as deltas. (A
    # page written again before pass 1 reached it is skipped, and crosses once, whole.)
    name = start_domain(src, "xbzrle", working_set_mib=4, dirty_rate=1000, dirty_set_mib=4)
    cache = 8 * 1024 * 1024  # the working set fits: every resent page has its previous version cached
    flags = (
        "--compressed",
        "--comp-methods",
        "xbzrle",
        "--comp-xbzrle-cache",
        str(cache),
        "--bandwidth",
        "16",
    )
    result = migrate(run_virsh, src, dst, name, *flags)
    assert result.returncode == 0, result.stderr
    assert (state(run_virsh, src, name), state(run_virsh, dst, name)) == (
        "shut off (migrated)",
        "running (migrated)",
    )
    raw = completed(run_virsh, rawstats, src, name)
    assert raw["compression_cache"] == cache
    assert raw["compression_pages"] > 0
    assert 0 < raw["compression_bytes"] < raw["compression_pages"] * 4096 / 2
    assert raw["compression_cache_misses"] >= 0 and raw["compression_overflow"] == 0
    assert raw["memory_processed"] == raw["memory_total"]
    human = run_virsh(src, "domjobinfo", name, "--completed", check=True).stdout
    assert re.search(r"Compression cache:\s+8\.000 MiB", human), human
    assert re.search(r"Compressed pages:\s+\d+", human), human


@pytest.mark.parametrize(
    "flags",
    [
        ("--compressed", "--comp-methods", "mt", "--comp-mt-level", "9", "--comp-mt-threads", "2"),
        ("--compressed", "--comp-methods", "mt,xbzrle"),
        ("--parallel", "--parallel-connections", "3", "--compressed", "--comp-methods", "zlib"),
        ("--parallel", "--compressed", "--comp-methods", "zstd"),
        ("--parallel", "--parallel-connections", "4"),
    ],
    ids=["mt", "mt+xbzrle", "parallel-zlib", "parallel-zstd", "parallel"],
)
def test_compression_and_parallel_modes_migrate(
    pki_hosts: PkiHosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    rawstats: RawStats,
    flags: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> None:
    src, dst = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri
    name = start_domain(src, f"mode-{request.node.callspec.id}", working_set_mib=4)
    result = migrate(run_virsh, src, dst, name, *flags)
    assert result.returncode == 0, result.stderr
    assert (state(run_virsh, src, name), state(run_virsh, dst, name)) == (
        "shut off (migrated)",
        "running (migrated)",
    )
    raw = completed(run_virsh, rawstats, src, name)
    assert raw["memory_remaining"] == 0 and raw["memory_normal"] > 0
    # libvirt reports compression_* for xbzrle only.
    assert ("compression_cache" in raw) == ("xbzrle" in flags[-1])


def test_tunnelled_p2p_migration_and_its_refusals(
    pki_hosts: PkiHosts, start_domain: Callable[..., str], run_virsh: Virsh, rawstats: RawStats
) -> None:
    src, dst = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri
    name = start_domain(src, "tunnel", working_set_mib=4)
    refusals = {
        (
            "--p2p",
            "--tunnelled",
            "--postcopy",
        ): "argument unsupported: post-copy is not supported with tunnelled migration",
        ("--tunnelled",): "cannot perform tunnelled migration without using peer2peer flag",
        ("--p2p", "--tunnelled", "--parallel"): (
            "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive"
        ),
    }
    for flags, message in refusals.items():
        refused = migrate(run_virsh, src, dst, name, *flags)
        assert refused.returncode != 0 and message in refused.stderr, (flags, refused.stderr)
    with_uri = run_virsh(src, *MIGRATE, "--p2p", "--tunnelled", name, dst, "tcp://127.0.0.1:1")
    assert "argument unsupported: migration URI is not supported by tunnelled migration" in with_uri.stderr
    assert state(run_virsh, src, name) == "running (booted)"

    result = migrate(run_virsh, src, dst, name, "--p2p", "--tunnelled")
    assert result.returncode == 0, result.stderr
    assert "Migration: [100 %]" in result.stdout + result.stderr
    assert (state(run_virsh, src, name), state(run_virsh, dst, name)) == (
        "shut off (migrated)",
        "running (migrated)",
    )
    raw = completed(run_virsh, rawstats, src, name)
    assert raw["memory_processed"] == raw["memory_total"] and raw["memory_normal"] >= 1024


def test_tls_migration_with_the_hosts_pki_and_libvirts_refusal_without(
    pki_hosts: PkiHosts, start_domain: Callable[..., str], run_virsh: Virsh
) -> None:
    src, dst, bare = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri, pki_hosts.bare.tcp_uri
    refusal = "Requested operation is not valid: host migration TLS directory not configured"
    # The destination has no PKI: its Prepare refuses, the guest stays where it is.
    name = start_domain(src, "tls", working_set_mib=4)
    refused = migrate(run_virsh, src, bare, name, "--tls")
    assert refused.returncode != 0 and refusal in refused.stderr, refused.stderr
    assert (state(run_virsh, src, name), state(run_virsh, bare, name)) == ("running (booted)", "absent")
    # The source has none.
    lone = start_domain(bare, "tls-bare", working_set_mib=4)
    refused = migrate(run_virsh, bare, dst, lone, "--tls")
    assert refused.returncode != 0 and refusal in refused.stderr, refused.stderr
    assert state(run_virsh, bare, lone) == "running (booted)"

    # The destination's certificate must name the host the source expects (--tls-destination).
    wrong = migrate(run_virsh, src, dst, name, "--tls", "--tls-destination", "elsewhere.example")
    assert wrong.returncode != 0 and "TLS handshake failed: " in wrong.stderr, wrong.stderr
    assert state(run_virsh, src, name) == "running (booted)"
    for flags in (
        ("--tls", "--tls-destination", "localhost"),
        ("--tls", "--p2p"),
        ("--tls", "--parallel", "--parallel-connections", "2"),
    ):
        result = migrate(run_virsh, src, dst, name, *flags)
        assert result.returncode == 0, (flags, result.stderr)
        assert state(run_virsh, dst, name) == "running (migrated)"
        src, dst = dst, src  # and back, next


@pytest.mark.parametrize(
    "flags",
    [
        ("--p2p", "--tunnelled"),
        ("--parallel", "--parallel-connections", "3"),
        ("--tls",),
        ("--compressed", "--comp-methods", "xbzrle,mt"),
        ("--parallel", "--compressed", "--comp-methods", "zstd"),
    ],
    ids=["tunnelled", "parallel", "tls", "compressed", "parallel-zstd"],
)
def test_link_cut_in_precopy_fails_as_libvirt_and_the_guest_stays_on_the_source(
    pki_hosts: PkiHosts,
    start_domain: Callable[..., str],
    run_virsh: Virsh,
    rawstats: RawStats,
    background: Callable[..., Any],
    wait_until: Callable[..., None],
    flags: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> None:
    src, dst = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri
    name = start_domain(src, f"cut-{request.node.callspec.id}", working_set_mib=4, fault="precopy:300")
    events = background(dst, "event", "--all", "--loop")
    # virsh registers its callbacks before it prints anything: poke until a probe shows up.
    wait_until(
        lambda: _probe(run_virsh, dst) or any("'test'" in line for line in events.lines), "virsh event"
    )
    result = migrate(run_virsh, src, dst, name, *flags)
    assert result.returncode != 0
    assert (
        "operation failed: job 'migration out' failed: Unable to write to socket: Connection reset by peer"
        in result.stderr
    ), result.stderr
    # libvirt's outcome of a failed pre-copy: the source guest runs on, the destination has nothing.
    assert (state(run_virsh, src, name), state(run_virsh, dst, name)) == ("running (booted)", "absent")
    raw = completed(run_virsh, rawstats, src, name)
    assert raw["type"] == 4  # VIR_DOMAIN_JOB_FAILED
    assert raw["errmsg"] == "Unable to write to socket: Connection reset by peer"
    # The destination started the incoming guest and stopped it as failed, as libvirt's events say.
    who = f"event 'lifecycle' for domain '{name}'"
    events.wait_for(f"{who}: Stopped Failed")
    mine = [line for line in events.lines if who in line]
    assert mine == [f"{who}: Started Migrated", f"{who}: Stopped Failed"], mine


def _probe(run_virsh: Virsh, uri: str) -> bool:
    run_virsh(uri, "suspend", "test", check=True)
    run_virsh(uri, "resume", "test", check=True)
    return False


@pytest.fixture(params=["libvirt-python", "virtwire.libvirt"])
def libvirt_module(request: pytest.FixtureRequest, real_libvirt: ModuleType) -> ModuleType:
    if request.param == "libvirt-python":
        return real_libvirt
    return importlib.import_module("virtwire.libvirt")


def test_python_clients_migrate_parallel_zstd_and_tunnelled(
    libvirt_module: ModuleType, pki_hosts: PkiHosts, start_domain: Callable[..., str]
) -> None:
    libvirt = libvirt_module
    src_uri, dst_uri = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri
    tag = libvirt.__name__.replace(".", "-")
    src = libvirt.open(src_uri)
    dst = libvirt.open(dst_uri)
    try:
        # Client-managed (Begin/Prepare/Perform/Finish/Confirm from the client), parallel + zstd.
        name = start_domain(src_uri, f"py-par-{tag}", working_set_mib=4)
        dom = src.lookupByName(name)
        params = {
            libvirt.VIR_MIGRATE_PARAM_COMPRESSION: ["zstd"],
            libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS: 3,
        }
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PARALLEL | libvirt.VIR_MIGRATE_COMPRESSED
        moved = dom.migrate3(dst, params, flags)
        assert moved.name() == name and moved.state() == [
            libvirt.VIR_DOMAIN_RUNNING,
            libvirt.VIR_DOMAIN_RUNNING_MIGRATED,
        ]
        # Peer-to-peer and tunnelled, as Nova's live_migration_tunnelled asks for it.
        name = start_domain(src_uri, f"py-tun-{tag}", working_set_mib=4)
        dom = src.lookupByName(name)
        tunnelled = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_TUNNELLED
        with pytest.raises(libvirt.libvirtError) as exclusive:
            dom.migrateToURI3(dst_uri, {}, tunnelled | libvirt.VIR_MIGRATE_PARALLEL)
        assert exclusive.value.get_error_code() == libvirt.VIR_ERR_INVALID_ARG
        assert "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive" in str(
            exclusive.value
        )
        assert dom.migrateToURI3(dst_uri, {}, tunnelled) == 0
        assert dst.lookupByName(name).state() == [
            libvirt.VIR_DOMAIN_RUNNING,
            libvirt.VIR_DOMAIN_RUNNING_MIGRATED,
        ]
        stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        assert stats["type"] == libvirt.VIR_DOMAIN_JOB_COMPLETED
        assert stats["memory_processed"] == stats["memory_total"]
    finally:
        src.close()
        dst.close()


def test_tls_postcopy_link_cut_then_recovery_over_tls(
    pki_hosts: PkiHosts, start_domain: Callable[..., str], run_virsh: Virsh, wait_until: Callable[..., None]
) -> None:
    src, dst = pki_hosts.src.tcp_uri, pki_hosts.dst.tcp_uri
    name = start_domain(
        src, "tls-postcopy", dirty_rate=4000, working_set_mib=2, dirty_set_mib=2, fault="postcopy:100"
    )
    postcopy = ("--tls", "--postcopy", "--postcopy-bandwidth", "1")
    cut = migrate(run_virsh, src, dst, name, *postcopy, "--postcopy-after-precopy", "--bandwidth", "2")
    assert cut.returncode != 0 and "operation failed: job 'migration out' failed" in cut.stderr, cut.stderr
    assert state(run_virsh, src, name) == "paused (post-copy failed)"
    wait_until(lambda: state(run_virsh, dst, name) == "running (post-copy failed)", "destination failed")
    # The recovery connects again, over TLS as the migration did.
    done = migrate(run_virsh, src, dst, name, *postcopy, "--postcopy-resume")
    assert done.returncode == 0, done.stderr
    assert (state(run_virsh, src, name), state(run_virsh, dst, name)) == (
        "shut off (migrated)",
        "running (migrated)",
    )
