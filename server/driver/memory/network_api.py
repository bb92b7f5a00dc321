"""Network procedures of the memory driver: test_driver.c's testNetworkDriver.

The test driver never swaps a network's pending definition (``new_def``) in on
destroy, so neither do we; it is what the state directory keeps.  DHCP leases
and network ports are not in the test driver's table: those procedures answer
VIR_ERR_NO_SUPPORT.
"""

from __future__ import annotations

import logging
from pathlib import Path

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore
from .network_ip import ip_prefix
from .network_state import Network, NetworkRegistry
from .network_update import update_definition
from .network_xmlio import SocketAddr, parse_addr, uuid_string
from .networks import parse_network_xml
from .nodexml import NodeDescription
from .store import ObjectStore

log = logging.getLogger(__name__)

# The test driver reports its lookups' failures under its own module.
FROM = C.VIR_FROM_TEST
# VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER (libvirt_internal.h): the test
# driver takes virNetworkUpdate's command and section in their documented order.
FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER = 16

DEFAULT_NETWORK_XML = """<network>
  <name>default</name>
  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
"""
DEFAULT_NETWORK_UUID = "dd8fe884-6c02-601e-7551-cca97df1c5df"

_LIST_FILTER_GROUPS = (
    C.VIR_CONNECT_LIST_NETWORKS_ACTIVE | C.VIR_CONNECT_LIST_NETWORKS_INACTIVE,
    C.VIR_CONNECT_LIST_NETWORKS_PERSISTENT | C.VIR_CONNECT_LIST_NETWORKS_TRANSIENT,
    C.VIR_CONNECT_LIST_NETWORKS_AUTOSTART | C.VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART,
)
_LIST_FILTERS_ALL = _LIST_FILTER_GROUPS[0] | _LIST_FILTER_GROUPS[1] | _LIST_FILTER_GROUPS[2]
_UPDATE_AFFECT = C.VIR_NETWORK_UPDATE_AFFECT_LIVE | C.VIR_NETWORK_UPDATE_AFFECT_CONFIG


@nonblocking
class NetworkAPI(MemoryCore):
    """virNetwork* and virConnect*Network* answers of test:///default."""

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__(hostname=hostname, state_dir=state_dir, seed_defaults=seed_defaults, node=node)
        self.networks = NetworkRegistry()
        self.network_store = ObjectStore(state_dir / "networks", "network") if state_dir is not None else None
        self._load_networks(seed_defaults)

    def features(self) -> frozenset[int]:
        return super().features() | {FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER}

    # --- state -----------------------------------------------------------------------------

    def _load_networks(self, seed_defaults: bool) -> None:
        store = self.network_store
        if store is not None and store.seeded:
            for stored in store.load():
                try:
                    net = self.networks.assign(parse_network_xml(stored.xml), live=False, check_live=False)
                except Exception as exc:  # one bad file must not stop the server
                    log.warning("state dir: skipping a network that no longer parses: %s", exc)
                    continue
                net.autostart = stored.autostart
        elif self.node is not None:
            # testParseNetworks: every network of a node file is defined and running.
            for xml in self.node.networks:
                net = self.networks.assign(parse_network_xml(xml), live=False, check_live=False)
                net.active = True
                self._save_network(net)
            if store is not None:
                store.mark_seeded()
        elif seed_defaults:
            net = self.networks.assign(parse_network_xml(DEFAULT_NETWORK_XML), live=False, check_live=False)
            self._save_network(net)
            if store is not None:
                store.mark_seeded()
        # test:///default boots with ``default`` running; autostart networks start too.
        for net in self.networks.sorted():
            if net.defn.uuid_string == DEFAULT_NETWORK_UUID or net.autostart:
                net.active = True

    def _save_network(self, net: Network) -> None:
        """Make a persistent network's definition and autostart flag durable (if there is a state dir)."""
        if self.network_store is not None and net.persistent:
            self.network_store.save(net.defn.uuid_string, net.persistent_def.xml(), autostart=net.autostart)

    def _forget_network(self, net: Network) -> None:
        if self.network_store is not None:
            self.network_store.delete(net.defn.uuid_string)

    def _network_by_name(self, name: str) -> Network:
        net = self.networks.by_name(name)
        if net is None:
            raise report(C.VIR_ERR_NO_NETWORK, FROM, f"no network with matching name '{name}'")
        return net

    def _network_by_uuid(self, uuid: bytes) -> Network:
        net = self.networks.by_uuid.get(bytes(uuid))
        if net is None:
            raise report(
                C.VIR_ERR_NO_NETWORK, FROM, f"no network with matching uuid '{uuid_string(bytes(uuid))}'"
            )
        return net

    def _network_lease_address(self, name: str, offset: int) -> tuple[int, str, int]:
        """(VIR_IP_ADDR_TYPE_*, address, prefix) testDomainInterfaceAddresses gives a guest NIC on ``name``.

        The test driver takes the network's first <ip>: its first DHCP range's start
        (else the address itself) plus ``offset`` (in the last byte for IPv6).
        """
        net = self._network_by_name(name)
        ip = net.defn.tree.find("ip")
        if ip is None:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"network '{name}' has no IP address")
        start = ip.find("dhcp/range")
        base = parse_addr(
            (start if start is not None else ip).get("start" if start is not None else "address", "")
        )
        assert base is not None
        if ip.get("family") == "ipv6":
            packed = bytearray(base.packed)
            packed[15] = (packed[15] + offset) & 0xFF
            return C.VIR_IP_ADDR_TYPE_IPV6, str(SocketAddr(base.family, bytes(packed))), ip_prefix(ip)
        return (
            C.VIR_IP_ADDR_TYPE_IPV4,
            str(base.with_value((base.value + offset) & 0xFFFFFFFF)),
            ip_prefix(ip),
        )

    def _emit_network(self, net: Network, event: int) -> None:
        self.network_events.lifecycle(net.ref(), event, 0)

    # --- listings --------------------------------------------------------------------------

    async def connect_num_of_networks(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_networks_ret:
        return R.remote_connect_num_of_networks_ret(num=sum(1 for n in self.networks.sorted() if n.active))

    async def connect_list_networks(
        self, args: R.remote_connect_list_networks_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_networks_ret:
        names = [n.name for n in self.networks.sorted() if n.active]
        return R.remote_connect_list_networks_ret(names=names[: max(args.maxnames, 0)])

    async def connect_num_of_defined_networks(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_defined_networks_ret:
        return R.remote_connect_num_of_defined_networks_ret(
            num=sum(1 for n in self.networks.sorted() if not n.active)
        )

    async def connect_list_defined_networks(
        self, args: R.remote_connect_list_defined_networks_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_defined_networks_ret:
        names = [n.name for n in self.networks.sorted() if not n.active]
        return R.remote_connect_list_defined_networks_ret(names=names[: max(args.maxnames, 0)])

    async def connect_list_all_networks(
        self, args: R.remote_connect_list_all_networks_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_networks_ret:
        flags = args.flags
        check_flags(flags, _LIST_FILTERS_ALL, "testConnectListAllNetworks")
        found = [
            n
            for n in self.networks.sorted()
            if all(not flags & group or flags & group & n.list_flags() for group in _LIST_FILTER_GROUPS)
        ]
        refs = [n.ref() for n in found] if args.need_results else []
        return R.remote_connect_list_all_networks_ret(nets=refs, ret=len(found))

    # --- lookups ---------------------------------------------------------------------------

    async def network_lookup_by_name(
        self, args: R.remote_network_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_network_lookup_by_name_ret:
        return R.remote_network_lookup_by_name_ret(net=self._network_by_name(args.name).ref())

    async def network_lookup_by_uuid(
        self, args: R.remote_network_lookup_by_uuid_args, ctx: ConnectionContext
    ) -> R.remote_network_lookup_by_uuid_ret:
        return R.remote_network_lookup_by_uuid_ret(net=self._network_by_uuid(args.uuid).ref())

    async def network_is_active(
        self, args: R.remote_network_is_active_args, ctx: ConnectionContext
    ) -> R.remote_network_is_active_ret:
        return R.remote_network_is_active_ret(active=int(self._network_by_uuid(args.net.uuid).active))

    async def network_is_persistent(
        self, args: R.remote_network_is_persistent_args, ctx: ConnectionContext
    ) -> R.remote_network_is_persistent_ret:
        return R.remote_network_is_persistent_ret(
            persistent=int(self._network_by_uuid(args.net.uuid).persistent)
        )

    async def network_get_xml_desc(
        self, args: R.remote_network_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_network_get_xml_desc_ret:
        check_flags(args.flags, 0, "testNetworkGetXMLDesc")
        return R.remote_network_get_xml_desc_ret(xml=self._network_by_name(args.net.name).defn.xml())

    async def network_get_bridge_name(
        self, args: R.remote_network_get_bridge_name_args, ctx: ConnectionContext
    ) -> R.remote_network_get_bridge_name_ret:
        net = self._network_by_name(args.net.name)
        bridge = net.defn.bridge
        if not bridge:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, f"network '{net.name}' does not have a bridge name.")
        return R.remote_network_get_bridge_name_ret(name=bridge)

    async def network_get_autostart(
        self, args: R.remote_network_get_autostart_args, ctx: ConnectionContext
    ) -> R.remote_network_get_autostart_ret:
        return R.remote_network_get_autostart_ret(
            autostart=int(self._network_by_name(args.net.name).autostart)
        )

    async def network_set_autostart(
        self, args: R.remote_network_set_autostart_args, ctx: ConnectionContext
    ) -> None:
        net = self._network_by_name(args.net.name)
        net.autostart = args.autostart != 0
        self._save_network(net)

    # --- definitions and life cycle ---------------------------------------------------------

    def _create_network(self, xml: str, *, validate: bool = False) -> R.remote_nonnull_network:
        net = self.networks.assign(parse_network_xml(xml, validate=validate), live=True, check_live=True)
        net.active = True
        self._emit_network(net, C.VIR_NETWORK_EVENT_STARTED)
        return net.ref()

    async def network_create_xml(
        self, args: R.remote_network_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_network_create_xml_ret:
        return R.remote_network_create_xml_ret(net=self._create_network(args.xml))

    async def network_create_xml_flags(
        self, args: R.remote_network_create_xml_flags_args, ctx: ConnectionContext
    ) -> R.remote_network_create_xml_flags_ret:
        check_flags(args.flags, C.VIR_NETWORK_CREATE_VALIDATE, "testNetworkCreateXMLFlags")
        validate = bool(args.flags & C.VIR_NETWORK_CREATE_VALIDATE)
        return R.remote_network_create_xml_flags_ret(net=self._create_network(args.xml, validate=validate))

    def _define_network(self, xml: str, *, validate: bool = False) -> R.remote_nonnull_network:
        net = self.networks.assign(parse_network_xml(xml, validate=validate), live=False, check_live=False)
        self._save_network(net)
        self._emit_network(net, C.VIR_NETWORK_EVENT_DEFINED)
        return net.ref()

    async def network_define_xml(
        self, args: R.remote_network_define_xml_args, ctx: ConnectionContext
    ) -> R.remote_network_define_xml_ret:
        return R.remote_network_define_xml_ret(net=self._define_network(args.xml))

    async def network_define_xml_flags(
        self, args: R.remote_network_define_xml_flags_args, ctx: ConnectionContext
    ) -> R.remote_network_define_xml_flags_ret:
        check_flags(args.flags, C.VIR_NETWORK_DEFINE_VALIDATE, "testNetworkDefineXMLFlags")
        validate = bool(args.flags & C.VIR_NETWORK_DEFINE_VALIDATE)
        return R.remote_network_define_xml_flags_ret(net=self._define_network(args.xml, validate=validate))

    async def network_undefine(self, args: R.remote_network_undefine_args, ctx: ConnectionContext) -> None:
        net = self._network_by_name(args.net.name)
        if net.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, f"Network '{args.net.name}' is still running")
        # The event names the network as the caller did (net->name, net->uuid).
        self.network_events.lifecycle(args.net, C.VIR_NETWORK_EVENT_UNDEFINED, 0)
        self._forget_network(net)
        self.networks.remove(net)

    async def network_create(self, args: R.remote_network_create_args, ctx: ConnectionContext) -> None:
        net = self._network_by_name(args.net.name)
        if net.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, f"Network '{args.net.name}' is already running")
        net.active = True
        self._emit_network(net, C.VIR_NETWORK_EVENT_STARTED)

    async def network_destroy(self, args: R.remote_network_destroy_args, ctx: ConnectionContext) -> None:
        # The test driver stops whatever it finds, running or not.
        net = self._network_by_name(args.net.name)
        net.active = False
        self._emit_network(net, C.VIR_NETWORK_EVENT_STOPPED)
        if not net.persistent:
            self.networks.remove(net)

    async def network_update(self, args: R.remote_network_update_args, ctx: ConnectionContext) -> None:
        flags = args.flags
        check_flags(flags, _UPDATE_AFFECT, "testNetworkUpdate")
        net = self._network_by_uuid(args.net.uuid)
        if not flags & _UPDATE_AFFECT:
            flags |= C.VIR_NETWORK_UPDATE_AFFECT_LIVE if net.active else C.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        if not net.active and flags & C.VIR_NETWORK_UPDATE_AFFECT_LIVE:
            raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_NETWORK, "network is not running")
        if flags & C.VIR_NETWORK_UPDATE_AFFECT_CONFIG and not net.persistent:
            raise report(
                C.VIR_ERR_OPERATION_INVALID,
                C.VIR_FROM_NETWORK,
                "cannot change persistent config of a transient network",
            )
        live = config = None
        if flags & C.VIR_NETWORK_UPDATE_AFFECT_LIVE:
            live = update_definition(net.defn, args.command, args.section, args.parentIndex, args.xml)
        if flags & C.VIR_NETWORK_UPDATE_AFFECT_CONFIG:
            # A running network's config is edited apart from what runs (virNetworkObjSetDefTransient).
            config = update_definition(
                net.persistent_def, args.command, args.section, args.parentIndex, args.xml
            )
        if config is not None:
            if net.active:
                net.new_def = config
            else:
                net.defn = config
            self._save_network(net)
        if live is not None:
            net.defn = live
