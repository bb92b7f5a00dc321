"""Node procedures of test:///default beyond virNodeGetInfo: CPU map, cells, stats, sysinfo, CPU models.

The figures are the test driver's fixed answers (src/test/test_driver.c), and
the checks libvirtd's remote dispatcher adds on top of the driver are made here
too, with their wording, since our server has no separate daemon layer.
"""

from __future__ import annotations

from typing import Final

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore

# virNodeGetCPUMap: 8 CPUs present, 0, 2 and 4 online.
NODE_CPU_MAP: Final = bytes([0x15])
NODE_CPUS_PRESENT: Final = 8
NODE_CPUS_ONLINE: Final = 3

# Free memory (KiB) of the two NUMA cells of the default node.
NODE_CELL_FREE_KIB: Final = (2097152, 4194304)

# virNodeGetCPUStats answers these, whatever the CPU.
NODE_CPU_STATS: Final = (
    (C.VIR_NODE_CPU_STATS_USER, 9797400000),
    (C.VIR_NODE_CPU_STATS_KERNEL, 34678723400000),
    (C.VIR_NODE_CPU_STATS_IDLE, 87264900000),
    (C.VIR_NODE_CPU_STATS_IOWAIT, 763600000),
)

SYSINFO_XML: Final = """\
<sysinfo type='smbios'>
  <bios>
    <entry name='vendor'>LENOVO</entry>
    <entry name='version'>G4ETA1WW (2.61 )</entry>
    <entry name='date'>05/07/2014</entry>
    <entry name='release'>2.61</entry>
  </bios>
</sysinfo>
"""

# libvirt's architecture names (virArchFromString); "none" is not one a caller may give.
ARCHITECTURES: Final = frozenset(
    {
        "alpha",
        "armv6l",
        "armv7l",
        "armv7b",
        "aarch64",
        "cris",
        "i686",
        "ia64",
        "lm32",
        "m68k",
        "microblaze",
        "microblazeel",
        "mips",
        "mipsel",
        "mips64",
        "mips64el",
        "openrisc",
        "parisc",
        "parisc64",
        "ppc",
        "ppcle",
        "ppc64",
        "ppc64le",
        "ppcemb",
        "riscv32",
        "riscv64",
        "s390",
        "s390x",
        "sh4",
        "sh4eb",
        "sparc",
        "sparc64",
        "unicore32",
        "x86_64",
        "xtensa",
        "xtensaeb",
    }
)

# The arm and s390 CPU drivers exist but list no models.
_MODELLESS_ARCHES: Final = frozenset({"armv6l", "armv7b", "armv7l", "aarch64", "s390", "s390x"})


def cpu_models(arch: str) -> list[str] | None:
    """The CPU models libvirt 9.0's CPU driver for ``arch`` lists (cpu_map order); None: no driver."""
    if arch in _MODELLESS_ARCHES:
        return []
    if arch not in ("i686", "x86_64", "ppc64", "ppc64le"):
        return None
    from . import cpumap_data  # the CPU map is only read by the CPU calls

    rows = cpumap_data.X86_MODELS if arch in ("i686", "x86_64") else cpumap_data.PPC64_MODELS
    return [row[0] for row in rows]


@nonblocking
class NodeAPI(MemoryCore):
    """virNode* / virConnect* host answers of test:///default."""

    async def node_get_cpu_map(
        self, args: R.remote_node_get_cpu_map_args, ctx: ConnectionContext
    ) -> R.remote_node_get_cpu_map_ret:
        check_flags(args.flags, 0, "testNodeGetCPUMap")
        return R.remote_node_get_cpu_map_ret(
            cpumap=NODE_CPU_MAP if args.need_map else b"",
            online=NODE_CPUS_ONLINE if args.need_online else 0,
            ret=NODE_CPUS_PRESENT,
        )

    async def node_get_cells_free_memory(
        self, args: R.remote_node_get_cells_free_memory_args, ctx: ConnectionContext
    ) -> R.remote_node_get_cells_free_memory_ret:
        if args.maxcells > R.REMOTE_NODE_MAX_CELLS:
            raise report(C.VIR_ERR_RPC, C.VIR_FROM_RPC, "maxcells > REMOTE_NODE_MAX_CELLS")
        # A node file has no NUMA cells (see defaults.NODE_FILE_CAPABILITIES_XML).
        free = NODE_CELL_FREE_KIB if self.node is None else ()
        if args.startCell >= len(free):
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_TEST, "Range exceeds available cells")
        start = max(args.startCell, 0)
        cells = list(free[start : start + max(args.maxcells, 0)])
        return R.remote_node_get_cells_free_memory_ret(cells=cells)

    async def node_get_cpu_stats(
        self, args: R.remote_node_get_cpu_stats_args, ctx: ConnectionContext
    ) -> R.remote_node_get_cpu_stats_ret:
        if args.nparams > R.REMOTE_NODE_CPU_STATS_MAX:
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, "nparams too large")
        check_flags(args.flags, 0, "testNodeGetCPUStats")
        if args.nparams == 0:
            return R.remote_node_get_cpu_stats_ret(params=[], nparams=len(NODE_CPU_STATS))
        stats = [R.remote_node_get_cpu_stats(field=f, value=v) for f, v in NODE_CPU_STATS[: args.nparams]]
        return R.remote_node_get_cpu_stats_ret(params=stats, nparams=0)

    async def node_get_free_pages(
        self, args: R.remote_node_get_free_pages_args, ctx: ConnectionContext
    ) -> R.remote_node_get_free_pages_ret:
        if len(args.pages) * args.cellCount > R.REMOTE_NODE_MAX_CELLS:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, "the result won't fit into REMOTE_NODE_MAX_CELLS"
            )
        # virNodeGetFreePages' own checks (libvirtd goes through the public API).
        for name, value in (("npages", len(args.pages)), ("cellCount", args.cellCount)):
            if value == 0:
                detail = f"{name} in virNodeGetFreePages must not be zero"
                raise E.invalid_argument("virNodeGetFreePages", name, detail, C.VIR_FROM_DOMAIN)
        check_flags(args.flags, 0, "testNodeGetFreePages")
        # The test driver fills the counts but answers 0 entries, which libvirtd
        # takes for a failure that set no error.
        raise E.unset_error()

    async def connect_get_sysinfo(
        self, args: R.remote_connect_get_sysinfo_args, ctx: ConnectionContext
    ) -> R.remote_connect_get_sysinfo_ret:
        check_flags(args.flags, 0, "testConnectGetSysinfo")
        return R.remote_connect_get_sysinfo_ret(sysinfo=SYSINFO_XML)

    async def connect_baseline_cpu(
        self, args: R.remote_connect_baseline_cpu_args, ctx: ConnectionContext
    ) -> R.remote_connect_baseline_cpu_ret:
        from .cpu_baseline import baseline_cpu  # the CPU model arithmetic loads on first use

        return R.remote_connect_baseline_cpu_ret(cpu=baseline_cpu(list(args.xmlCPUs), args.flags))

    async def connect_get_cpu_model_names(
        self, args: R.remote_connect_get_cpu_model_names_args, ctx: ConnectionContext
    ) -> R.remote_connect_get_cpu_model_names_ret:
        check_flags(args.flags, 0, "testConnectGetCPUModelNames")
        if args.arch not in ARCHITECTURES:
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_TEST, f"cannot find architecture {args.arch}")
        models = cpu_models(args.arch)
        if models is None:
            detail = f"'{args.arch}' architecture is not supported by CPU driver"
            raise report(C.VIR_ERR_NO_SUPPORT, C.VIR_FROM_CPU, detail)
        return R.remote_connect_get_cpu_model_names_ret(
            models=list(models) if args.need_results else [], ret=len(models)
        )
