"""Stock virsh 9.0 tuning and statistics commands: `virtwire serve` prints what a real libvirtd prints.

Each test runs one script of virsh commands against a fresh real libvirtd (test
driver) and a fresh `virtwire serve` and compares the transcripts (output, errors,
exit codes).  Figures the test driver derives from the wall clock are masked.
The last test checks that --config changes survive a restart with --state-dir.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from vwtestkit import RealLibvirtd, VirtwireServer

RunVirsh = Callable[..., subprocess.CompletedProcess[str]]

# Counters the test driver computes from the clock (domblkstat, domifstat, vcpuinfo).
_CLOCK = (
    (re.compile(r"CPU time:\s+\S+"), "CPU time: X"),
    (re.compile(r"^(\S+ (?:rd|wr|rx|tx)_\w+|\S+ errs) \d+$", re.M), r"\1 N"),
)


def _masked(text: str) -> str:
    for pattern, replacement in _CLOCK:
        text = pattern.sub(replacement, text)
    return text


def _transcript(run_virsh: RunVirsh, uri: str, script: str) -> str:
    out: list[str] = []
    for line in script.strip().splitlines():
        result = run_virsh(uri, *line.split())
        out.append(f"$ {line}\n{_masked(result.stdout)}{_masked(result.stderr)}rc={result.returncode}")
    return "\n".join(out)


@pytest.fixture
def compare(
    run_virsh: RunVirsh,
    fresh_libvirtd: Callable[..., RealLibvirtd],
    virtwire_server: Callable[..., VirtwireServer],
) -> Callable[[str], str]:
    def run(script: str) -> str:
        # Started one after the other (each picks free ports), then driven side by side.
        uris = (fresh_libvirtd().tcp_uri, virtwire_server(tls=False).tcp_uri)
        with ThreadPoolExecutor(2) as pool:
            real, ours = pool.map(lambda uri: _transcript(run_virsh, uri, script), uris)
        assert ours == real
        return ours

    return run


def test_node_commands(
    run_virsh: RunVirsh, real_libvirtd: RealLibvirtd, virtwire_host: VirtwireServer
) -> None:
    script = """
        nodeinfo
        nodecpumap
        nodecpustats
        nodecpustats --cpu 3
        nodememstats
        freecell --all
        freecell 1
        freecell 2
        freepages --all
        cpu-models i686
        cpu-models ppc64
        cpu-models aarch64
        cpu-models sparc
        cpu-models nosuch
        sysinfo
        maxvcpus
        """
    with ThreadPoolExecutor(2) as pool:
        uris = (real_libvirtd.tcp_uri, virtwire_host.tcp_uri)
        real, ours = pool.map(lambda uri: _transcript(run_virsh, uri, script), uris)
    assert ours == real
    assert "CPU map:        y-y-y---" in ours


def test_vcpu_and_iothread_commands(compare: Callable[[str], str]) -> None:
    out = compare(
        """
        vcpuinfo test
        vcpupin test 0 1,3
        vcpupin test 1 5-7
        vcpupin test
        vcpupin test --config
        vcpupin test 0 2 --config
        vcpuinfo test --pretty
        emulatorpin test 2-4
        emulatorpin test 1 --config
        emulatorpin test
        emulatorpin test --config
        setvcpus test 1
        setvcpus test 3
        setvcpus test 3 --config --maximum
        setvcpus test 3 --config
        vcpucount test
        iothreadadd test 3
        iothreadadd test 3
        iothreadadd test 1 --config
        iothreadinfo test
        iothreadinfo test --config
        iothreadpin test 3 1-2
        iothreadpin test 7 1
        iothreadset test 3 --poll-max-ns 100 --poll-grow 2
        iothreadset test 4 --poll-max-ns 100
        domstats --iothread
        iothreaddel test 3
        cpu-stats test
        cpu-stats test --total
        cpu-stats test --start 1 --count 1
        cpu-stats test --start 5
        dumpxml test
        dumpxml test --inactive
        destroy test
        vcpuinfo test
        iothreadinfo test
        dumpxml test
        """
    )
    assert "<vcpupin vcpu='0' cpuset='1,3'/>" in out
    assert "<emulatorpin cpuset='2-4'/>" in out


def test_memory_and_tuning_commands(compare: Callable[[str], str]) -> None:
    out = compare(
        """
        setmem test 1048576
        setmem test 99999999
        setmaxmem test 4194304
        setmaxmem test 4194304 --config
        setmem test 524288 --config
        dommemstat test
        dommemstat test --period 5
        memtune test --hard-limit 100000 --soft-limit 50000
        memtune test --swap-hard-limit 1000
        memtune test --swap-hard-limit 200000 --config
        memtune test
        memtune test --config
        numatune test --mode interleave
        numatune test --nodeset 0-1
        numatune test --mode preferred
        numatune test --mode interleave --nodeset 1 --config
        numatune test --config
        numatune test --nodeset 3-x
        schedinfo test
        schedinfo test --weight 100
        blkiotune test --weight 500
        blkiotune test --device-weights /dev/sda,100,/dev/sdb,200
        blkiotune test --device-weights /dev/sda,abc
        blkiotune test
        blkiotune test --weight 300 --config
        blkdeviotune test vda --total-bytes-sec 100
        blkdeviotune test vda --total-bytes-sec 100 --total-bytes-sec-max 200
        blkdeviotune test vda --read-bytes-sec 10
        blkdeviotune test vda --group-name grp --read-iops-sec 1 --read-iops-sec-max 2
        blkdeviotune test vda
        blkdeviotune test vdz
        domiftune test testnet0 --inbound 100,200,300
        domiftune test aa:bb:cc:dd:ee:ff --outbound 10,20,30
        domiftune test testnet0
        domiftune test nosuch --inbound 1
        domiftune test testnet0 --config --inbound 5,6,7,8
        perf test --enable cmt,cpu_cycles --disable instructions
        perf test
        perf test --config --enable page_faults
        dumpxml test
        dumpxml test --inactive
        """
    )
    assert "<hard_limit unit='KiB'>100000</hard_limit>" in out
    assert "<event name='page_faults' enabled='yes'/>" in out


def test_statistics_commands(compare: Callable[[str], str]) -> None:
    compare(
        """
        domstats
        domstats --state --list-inactive
        domstats --cpu-total --enforce
        domstats test
        domblkstat test vda
        domblkstat test vdz
        domifstat test testnet0
        domifstat test nosuch
        domblkinfo test vda
        domblkinfo test --all
        domblkinfo test vdb
        dommemstat test
        destroy test
        domblkstat test vda
        domifstat test testnet0
        dommemstat test
        domblkinfo test vda
        """
    )


CONFIG_CHANGES = """
setvcpus test 1 --config
emulatorpin test 1-2 --config
iothreadadd test 4 --config
iothreadpin test 4 3 --config
setmaxmem test 4194304 --config
setmem test 1048576 --config
memtune test --hard-limit 500000 --config
numatune test --mode interleave --nodeset 1 --config
blkiotune test --weight 300 --config
blkdeviotune test vda --total-iops-sec 5 --total-iops-sec-max 9 --config
domiftune test testnet0 --inbound 5,6,7 --config
perf test --enable cmt --config
dommemstat test --period 9 --config
"""


def test_config_changes_survive_a_restart_with_a_state_dir(
    run_virsh: RunVirsh,
    fresh_libvirtd: Callable[..., RealLibvirtd],
    virtwire_server: Callable[..., VirtwireServer],
    tmp_path: Path,
) -> None:
    real = fresh_libvirtd().tcp_uri
    first = virtwire_server(tls=False, state_dir=tmp_path)
    for line in CONFIG_CHANGES.strip().splitlines():
        run_virsh(real, *line.split(), check=True)
        run_virsh(first.tcp_uri, *line.split(), check=True)
    expected = run_virsh(real, "dumpxml", "test", "--inactive", check=True).stdout
    assert run_virsh(first.tcp_uri, "dumpxml", "test", "--inactive", check=True).stdout == expected
    live_before = run_virsh(first.tcp_uri, "dumpxml", "test", check=True).stdout
    assert "<iothreads>" not in live_before  # the running domain keeps its live definition
    first.stop()
    second = virtwire_server(tls=False, state_dir=tmp_path)
    assert run_virsh(second.tcp_uri, "dumpxml", "test", "--inactive", check=True).stdout == expected
    # The server boots `test` from the saved definition: live and persistent agree again.
    live = run_virsh(second.tcp_uri, "dumpxml", "test", check=True).stdout
    assert live == expected.replace("<domain type='test'>", "<domain type='test' id='1'>", 1)
    assert run_virsh(
        second.tcp_uri, "vcpucount", "test", "--live", "--current", check=True
    ).stdout.split() == ["1"]
