"""virConnectBaselineCPU, differentially: real libvirtd's test driver vs ``virtwire serve``.

The same libvirt-python calls go to both: baselines of x86 models (alone, in
pairs and triples, with vendors and extra features, expanded or not), ppc64,
arm and s390 CPUs, and malformed definitions; results and errors must be the
same (for XML that does not parse, code and domain: the parser's wording is
libxml2's).  CPU comparison stays unsupported, as in the test driver.  Stock
virsh's cpu-baseline over a capabilities-like file agrees too.  Last, the
committed CPU map data is what Debian's libvirt ships.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.server.driver.memory import cpumap_data, cpumap_gen
from vwtestkit import run_virsh, start_libvirtd, start_server, stop_libvirtd, stop_servers
from vwtestkit.differential import Pair

X86_MODELS = [row[0] for row in cpumap_data.X86_MODELS]
X86_FEATURES = [row[0] for row in cpumap_data.X86_FEATURES]


@pytest.fixture(scope="module")
def uris(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[tuple[str, str]]:
    """(libvirtd's URI, ours): one private daemon and one private server for the module."""
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd-cpu"), pki=pki, hold=True)
    server = start_server(pki=pki, tls=False)
    try:
        yield daemon.tcp_uri, server.tcp_uri
    finally:
        stop_servers([server])
        stop_libvirtd(daemon)


@pytest.fixture(scope="module")
def pair(real_libvirt: ModuleType, uris: tuple[str, str]) -> Iterator[Pair]:
    both = Pair(real_libvirt, *uris)
    try:
        yield both
    finally:
        both.close()


def host_cpu(arch: str, model: str, vendor: str | None = None, features: tuple[str, ...] = ()) -> str:
    return (
        f"<cpu><arch>{arch}</arch><model>{model}</model>"
        + (f"<vendor>{vendor}</vendor>" if vendor else "")
        + "".join(f"<feature name='{f}'/>" for f in features)
        + "</cpu>"
    )


def same_baseline(pair: Pair, cpus: list[str], flags: int = 0) -> tuple[Any, ...]:
    real, ours = pair.both(lambda c: c.baselineCPU(cpus, flags))
    if real[0] == "error" and real[1] == pair.lv.VIR_ERR_XML_DETAIL:
        assert ours[:3] == real[:3], (cpus, ours, real)
    else:
        assert ours == real, (cpus, flags)
    return ours


def test_every_x86_model_alone_plain_and_expanded(pair: Pair) -> None:
    for model in X86_MODELS:
        for flags in (0, pair.lv.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES):
            result = same_baseline(pair, [host_cpu("x86_64", model)], flags)
            assert result[0] == "ok" and "<model fallback=" in result[1]


def test_x86_mixtures_of_models_vendors_and_features(pair: Pair) -> None:
    rnd = random.Random(9)
    vendors = [None, "Intel", "AMD", "Hygon", "Zilog"]
    answers = set()
    for _ in range(120):
        cpus = [
            host_cpu(
                rnd.choice(["x86_64", "i686"]),
                rnd.choice(X86_MODELS),
                rnd.choice(vendors),
                tuple(rnd.sample(X86_FEATURES, rnd.choice([0, 0, 1, 4, 12]))),
            )
            for _ in range(rnd.randint(1, 3))
        ]
        answers.add(same_baseline(pair, cpus, rnd.choice([0, 1]))[0])
    assert answers == {"ok", "error"}  # both kinds of answer were compared


def test_other_architectures(pair: Pair) -> None:
    for arch in ("ppc64", "ppc64le", "aarch64", "armv7l", "s390x", "mips64", "sparc"):
        for model, vendor in (
            ("POWER9", None),
            ("POWER8", "IBM"),
            ("POWERPC_e5500", "IBM"),
            ("cortex-a57", None),
        ):
            same_baseline(pair, [host_cpu(arch, model, vendor)])
            same_baseline(pair, [host_cpu(arch, model, vendor), host_cpu(arch, "POWER9", "Freescale")], 1)


BAD = [
    "not xml",
    "<cpu><model>Haswell</model></cpu>",
    "<cpu/>",
    "<host><cpu/></host>",
    "<cpu><arch>x86_64</arch></cpu>",
    "<cpu><arch>nonesuch</arch><model>Haswell</model></cpu>",
    "<cpu mode='custom'><arch>x86_64</arch><model>Haswell</model></cpu>",
    "<cpu migratable='on'><arch>x86_64</arch><model>Haswell</model></cpu>",
    "<cpu><arch>x86_64</arch><model>NoSuchModel</model></cpu>",
    "<cpu><arch>x86_64</arch><model>Haswell</model><feature name='nosuch'/></cpu>",
    "<cpu><arch>x86_64</arch><model>Haswell</model><feature name='aes'/><feature name='aes'/></cpu>",
    "<cpu><arch>x86_64</arch><model>Haswell</model><feature/></cpu>",
    "<cpu><arch>x86_64</arch><model>Haswell</model><topology sockets='0' cores='1' threads='1'/></cpu>",
    "<cpu><arch>x86_64</arch><model>Haswell</model><vendor>Nobody</vendor></cpu>",
]


def test_bad_definitions_and_flags_get_libvirts_errors(pair: Pair) -> None:
    good = host_cpu("x86_64", "Haswell", "Intel")
    for bad in BAD:
        assert same_baseline(pair, [bad])[0] == "error"
        same_baseline(pair, [good, bad])
    assert same_baseline(pair, [])[0] == "error"  # "no CPUs given"
    for flags in (pair.lv.VIR_CONNECT_BASELINE_CPU_MIGRATABLE, 4):
        assert same_baseline(pair, [good], flags)[0] == "error"
    pair.same(lambda c: c.baselineCPU([good], 0), readonly=True)


def test_cpu_comparison_stays_unsupported(pair: Pair) -> None:
    cpu = host_cpu("x86_64", "Haswell")
    assert pair.same(lambda c: c.compareCPU(cpu))[0] == "error"
    pair.same(lambda c: c.compareHypervisorCPU(None, "x86_64", None, None, cpu))
    pair.same(lambda c: c.baselineHypervisorCPU(None, "x86_64", None, None, [cpu]))


def test_virsh_cpu_baseline_of_a_capabilities_file(uris: tuple[str, str], tmp_path: Path) -> None:
    caps = tmp_path / "hosts.xml"
    caps.write_text(  # host capabilities documents one after another, as virsh reads them
        "".join(
            f"<capabilities><host>{host_cpu('x86_64', m, 'Intel', f)}</host></capabilities>\n"
            for m, f in (
                ("Skylake-Client", ("vmx", "pdpe1gb")),
                ("Haswell-noTSX", ("vmx",)),
                ("Broadwell", ()),
            )
        )
    )
    real_uri, ours_uri = uris
    for extra in ([], ["--features"]):
        real = run_virsh(real_uri, "cpu-baseline", str(caps), *extra)
        ours = run_virsh(ours_uri, "cpu-baseline", str(caps), *extra)
        assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout)
        assert real.returncode == 0 and "<model fallback='allow'>Haswell-noTSX</model>" in real.stdout


def test_committed_cpu_map_is_debians() -> None:
    if not cpumap_gen.DEFAULT_MAP.exists():
        pytest.fail(f"{cpumap_gen.DEFAULT_MAP} missing (scripts/test.sh installs libvirt0)")
    assert cpumap_gen.render(cpumap_gen.DEFAULT_MAP) == cpumap_gen.OUTPUT.read_text(), (
        "regenerate with python -m virtwire.server.driver.memory.cpumap_gen"
    )
