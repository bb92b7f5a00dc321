"""Host-level procedures of the memory driver: versions, node info, listings."""

from __future__ import annotations

from urllib.parse import urlsplit

from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from . import defaults
from .core import MemoryCore, dom_ref
from .model import Domain

URI = "test:///default"
FEATURE_TYPED_PARAM_STRING = DriverFeature.TYPED_PARAM_STRING

_LIST_FILTERS_ALL = (
    C.VIR_CONNECT_LIST_DOMAINS_ACTIVE
    | C.VIR_CONNECT_LIST_DOMAINS_INACTIVE
    | C.VIR_CONNECT_LIST_DOMAINS_PERSISTENT
    | C.VIR_CONNECT_LIST_DOMAINS_TRANSIENT
    | C.VIR_CONNECT_LIST_DOMAINS_RUNNING
    | C.VIR_CONNECT_LIST_DOMAINS_PAUSED
    | C.VIR_CONNECT_LIST_DOMAINS_SHUTOFF
    | C.VIR_CONNECT_LIST_DOMAINS_OTHER
    | C.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE
    | C.VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE
    | C.VIR_CONNECT_LIST_DOMAINS_AUTOSTART
    | C.VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART
    | C.VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT
    | C.VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT
    | C.VIR_CONNECT_LIST_DOMAINS_HAS_CHECKPOINT
    | C.VIR_CONNECT_LIST_DOMAINS_NO_CHECKPOINT
)


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def chars(text: str) -> list[int]:
    """A C string for a ``char x<N>`` field: its bytes and the NUL terminator."""
    return [*text.encode(), 0]


# listAllDomains filter groups: a domain passes a group the caller used when it
# has one of the group's bits.  Within a group the flags are ORed, groups ANDed.
_LIST_GROUPS = (
    C.VIR_CONNECT_LIST_DOMAINS_ACTIVE | C.VIR_CONNECT_LIST_DOMAINS_INACTIVE,
    C.VIR_CONNECT_LIST_DOMAINS_PERSISTENT | C.VIR_CONNECT_LIST_DOMAINS_TRANSIENT,
    C.VIR_CONNECT_LIST_DOMAINS_RUNNING
    | C.VIR_CONNECT_LIST_DOMAINS_PAUSED
    | C.VIR_CONNECT_LIST_DOMAINS_SHUTOFF
    | C.VIR_CONNECT_LIST_DOMAINS_OTHER,
    C.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE | C.VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE,
    C.VIR_CONNECT_LIST_DOMAINS_AUTOSTART | C.VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART,
    C.VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT | C.VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT,
    C.VIR_CONNECT_LIST_DOMAINS_HAS_CHECKPOINT | C.VIR_CONNECT_LIST_DOMAINS_NO_CHECKPOINT,
)
_STATE_BITS = {
    C.VIR_DOMAIN_RUNNING: C.VIR_CONNECT_LIST_DOMAINS_RUNNING,
    C.VIR_DOMAIN_PAUSED: C.VIR_CONNECT_LIST_DOMAINS_PAUSED,
    C.VIR_DOMAIN_SHUTOFF: C.VIR_CONNECT_LIST_DOMAINS_SHUTOFF,
}
# Nothing here has a managed save image, a snapshot or a checkpoint.
_ALWAYS = (
    C.VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE
    | C.VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT
    | C.VIR_CONNECT_LIST_DOMAINS_NO_CHECKPOINT
)


def list_properties(dom: Domain) -> int:
    """The listAllDomains flags that describe ``dom``."""
    return (
        _ALWAYS
        | (C.VIR_CONNECT_LIST_DOMAINS_ACTIVE if dom.active else C.VIR_CONNECT_LIST_DOMAINS_INACTIVE)
        | (C.VIR_CONNECT_LIST_DOMAINS_PERSISTENT if dom.persistent else C.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)
        | _STATE_BITS.get(dom.state, C.VIR_CONNECT_LIST_DOMAINS_OTHER)
        | (C.VIR_CONNECT_LIST_DOMAINS_AUTOSTART if dom.autostart else C.VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART)
    )


def matches_list_filter(dom: Domain, flags: int) -> bool:
    """virConnectListAllDomains' filter semantics (each group ANDed, within a group ORed)."""
    props = list_properties(dom)
    return all(not flags & group or flags & group & props for group in _LIST_GROUPS)


@nonblocking
class HostAPI(MemoryCore):
    """virConnect* / virNode* answers of test:///default."""

    def features(self) -> frozenset[int]:
        """Typed parameters may carry strings (VIR_DRV_FEATURE_TYPED_PARAM_STRING), as in the test driver."""
        return super().features() | {FEATURE_TYPED_PARAM_STRING}

    def check_uri(self, name: str | None) -> None:
        """Accept ``test:///default`` (query and fragment pass through, as libvirt).

        Other ``test:///PATH`` names are files to the test driver; we load none,
        so they fail like a missing file does there.  Anything else has no driver.
        """
        if name:
            parts = urlsplit(name)
            if parts.scheme == "test" and not parts.netloc:
                if parts.path == "/default":
                    return
                raise report(
                    C.VIR_ERR_XML_ERROR, C.VIR_FROM_TEST, f"failed to parse xml document '{parts.path}'"
                )
        raise report(C.VIR_ERR_NO_CONNECT, C.VIR_FROM_NONE, name if name else "<null>")

    async def connect_get_type(self, args: None, ctx: ConnectionContext) -> R.remote_connect_get_type_ret:
        return R.remote_connect_get_type_ret(type=defaults.HYPERVISOR_TYPE)

    async def connect_get_version(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_version_ret:
        return R.remote_connect_get_version_ret(hv_ver=defaults.HYPERVISOR_VERSION)

    async def connect_get_lib_version(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_lib_version_ret:
        return R.remote_connect_get_lib_version_ret(lib_ver=defaults.LIBRARY_VERSION)

    async def connect_get_hostname(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_hostname_ret:
        return R.remote_connect_get_hostname_ret(hostname=self.hostname)

    async def connect_get_uri(self, args: None, ctx: ConnectionContext) -> R.remote_connect_get_uri_ret:
        return R.remote_connect_get_uri_ret(uri=URI)

    async def connect_get_max_vcpus(
        self, args: R.remote_connect_get_max_vcpus_args, ctx: ConnectionContext
    ) -> R.remote_connect_get_max_vcpus_ret:
        return R.remote_connect_get_max_vcpus_ret(max_vcpus=defaults.MAX_VCPUS)

    async def connect_get_capabilities(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_capabilities_ret:
        caps = defaults.CAPABILITIES_XML if self.node is None else defaults.NODE_FILE_CAPABILITIES_XML
        return R.remote_connect_get_capabilities_ret(capabilities=caps)

    async def connect_is_secure(self, args: None, ctx: ConnectionContext) -> R.remote_connect_is_secure_ret:
        # The test driver claims a secure channel; the client ANDs in its transport.
        return R.remote_connect_is_secure_ret(secure=1)

    async def node_get_info(self, args: None, ctx: ConnectionContext) -> R.remote_node_get_info_ret:
        cpu = self.node.cpu if self.node is not None else None
        # A node file overrides the defaults field by field (testParseNodeInfo); its CPU
        # count is the product of the topology, capped by <active>.
        nodes = _pick(cpu.nodes if cpu is not None else None, defaults.NODE_NUMA_NODES)
        sockets = _pick(cpu.sockets if cpu is not None else None, defaults.NODE_SOCKETS)
        cores = _pick(cpu.cores if cpu is not None else None, defaults.NODE_CORES)
        threads = _pick(cpu.threads if cpu is not None else None, defaults.NODE_THREADS)
        cpus = defaults.NODE_CPUS if cpu is None else nodes * sockets * cores * threads
        if cpu is not None and cpu.active is not None:
            cpus = min(cpus, cpu.active)
        model = (cpu.model if cpu is not None and cpu.model is not None else defaults.NODE_MODEL).encode()
        memory = self.node.memory_kib if self.node is not None else None
        return R.remote_node_get_info_ret(
            model=list(model.ljust(32, b"\0")),
            memory=_pick(memory, defaults.NODE_MEMORY_KIB),
            cpus=cpus,
            mhz=_pick(cpu.mhz if cpu is not None else None, defaults.NODE_MHZ),
            nodes=nodes,
            sockets=sockets,
            cores=cores,
            threads=threads,
        )

    async def node_get_free_memory(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_node_get_free_memory_ret:
        free = defaults.NODE_FREE_MEMORY_BYTES if self.node is None else defaults.NODE_FILE_FREE_MEMORY_BYTES
        return R.remote_node_get_free_memory_ret(freeMem=free)

    async def node_get_security_model(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_node_get_security_model_ret:
        return R.remote_node_get_security_model_ret(
            model=chars(defaults.SECURITY_MODEL), doi=chars(defaults.SECURITY_DOI)
        )

    async def connect_list_domains(
        self, args: R.remote_connect_list_domains_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_domains_ret:
        ids = sorted(d.id for d in self.domains() if d.active)
        return R.remote_connect_list_domains_ret(ids=ids[: max(args.maxids, 0)])

    async def connect_num_of_domains(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_domains_ret:
        return R.remote_connect_num_of_domains_ret(num=sum(1 for d in self.domains() if d.active))

    async def connect_list_defined_domains(
        self, args: R.remote_connect_list_defined_domains_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_defined_domains_ret:
        names = [d.name for d in self.domains() if not d.active]
        return R.remote_connect_list_defined_domains_ret(names=names[: max(args.maxnames, 0)])

    async def connect_num_of_defined_domains(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_defined_domains_ret:
        return R.remote_connect_num_of_defined_domains_ret(num=sum(1 for d in self.domains() if not d.active))

    async def connect_list_all_domains(
        self, args: R.remote_connect_list_all_domains_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_domains_ret:
        flags = args.flags
        check_flags(flags, _LIST_FILTERS_ALL, "testConnectListAllDomains")
        everyone = self.domains()
        found = [d for d in everyone if matches_list_filter(d, flags)] if flags else everyone
        refs = [dom_ref(d) for d in found] if args.need_results else []
        return R.remote_connect_list_all_domains_ret(domains=refs, ret=len(found))
