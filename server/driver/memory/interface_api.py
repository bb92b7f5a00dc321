"""Host interface procedures of the memory driver: test_driver.c's testInterfaceDriver.

Interfaces are keyed by name.  The change transactions copy the list the way
virInterfaceObjListClone does (each definition printed and parsed again, every
copy inactive), so a rollback leaves every interface inactive, as in libvirt.
A lookup by MAC counts interfaces without a MAC as matches (libvirt compares
with g_ascii_strcasecmp, which answers "equal" for a NULL string).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore
from .interfaces import InterfaceDef, parse_interface_xml
from .nodexml import NodeDescription
from .store import ObjectStore

log = logging.getLogger(__name__)

FROM = C.VIR_FROM_TEST

DEFAULT_INTERFACE_XML = """<interface type="ethernet" name="eth1">
  <start mode="onboot"/>
  <mac address="aa:bb:cc:dd:ee:ff"/>
  <mtu size="1492"/>
  <protocol family="ipv4">
    <ip address="192.168.0.5" prefix="24"/>
    <route gateway="192.168.0.1"/>
  </protocol>
</interface>
"""

_LIST_FILTERS_ACTIVE = C.VIR_CONNECT_LIST_INTERFACES_ACTIVE | C.VIR_CONNECT_LIST_INTERFACES_INACTIVE


@dataclass(slots=True, eq=False)
class HostInterface:
    defn: InterfaceDef
    active: bool = False

    @property
    def name(self) -> str:
        return self.defn.name

    def ref(self, mac: str | None = None) -> R.remote_nonnull_interface:
        """The wire form; virGetInterface turns a missing MAC into ""."""
        return R.remote_nonnull_interface(name=self.name, mac=mac if mac is not None else self.defn.mac or "")


def _store_key(name: str) -> str:
    """A file name for an interface name (which may hold '/' or start with '.')."""
    return quote(name, safe="").replace(".", "%2E")


@nonblocking
class InterfaceAPI(MemoryCore):
    """virInterface* and virConnect*Interface* answers of test:///default."""

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__(hostname=hostname, state_dir=state_dir, seed_defaults=seed_defaults, node=node)
        self.interfaces: dict[str, HostInterface] = {}
        self._interface_backup: dict[str, HostInterface] | None = None
        self.interface_store = (
            ObjectStore(state_dir / "interfaces", "interface") if state_dir is not None else None
        )
        self._load_interfaces(seed_defaults)

    # --- state -----------------------------------------------------------------------------

    def _load_interfaces(self, seed_defaults: bool) -> None:
        store = self.interface_store
        if store is not None and store.seeded:
            for stored in store.load():
                try:
                    defn = parse_interface_xml(stored.xml)
                except Exception as exc:  # one bad file must not stop the server
                    log.warning("state dir: skipping an interface that no longer parses: %s", exc)
                    continue
                self.interfaces[defn.name] = HostInterface(defn, active=stored.attrs.get("active") == "1")
        elif self.node is not None:
            # testParseInterfaces: every interface of a node file is defined and up.
            for xml in self.node.interfaces:
                iface = HostInterface(parse_interface_xml(xml), active=True)
                self.interfaces[iface.name] = iface
                self._save_interface(iface)
            if store is not None:
                store.mark_seeded()
        elif seed_defaults:
            # test:///default's eth1 is up from the start.
            iface = HostInterface(parse_interface_xml(DEFAULT_INTERFACE_XML), active=True)
            self.interfaces[iface.name] = iface
            self._save_interface(iface)
            if store is not None:
                store.mark_seeded()

    def _save_interface(self, iface: HostInterface) -> None:
        if self.interface_store is not None:
            self.interface_store.save(_store_key(iface.name), iface.defn.xml(), active=iface.active)

    def _interface_by_name(self, name: str) -> HostInterface:
        iface = self.interfaces.get(name)
        if iface is None:
            raise report(C.VIR_ERR_NO_INTERFACE, FROM, f"no interface with matching name '{name}'")
        return iface

    def _sorted_interfaces(self) -> list[HostInterface]:
        return sorted(self.interfaces.values(), key=lambda i: i.name)

    # --- listings ----------------------------------------------------------------------

    async def connect_num_of_interfaces(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_interfaces_ret:
        return R.remote_connect_num_of_interfaces_ret(
            num=sum(1 for i in self.interfaces.values() if i.active)
        )

    async def connect_list_interfaces(
        self, args: R.remote_connect_list_interfaces_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_interfaces_ret:
        names = [i.name for i in self._sorted_interfaces() if i.active]
        return R.remote_connect_list_interfaces_ret(names=names[: max(args.maxnames, 0)])

    async def connect_num_of_defined_interfaces(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_defined_interfaces_ret:
        return R.remote_connect_num_of_defined_interfaces_ret(
            num=sum(1 for i in self.interfaces.values() if not i.active)
        )

    async def connect_list_defined_interfaces(
        self, args: R.remote_connect_list_defined_interfaces_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_defined_interfaces_ret:
        names = [i.name for i in self._sorted_interfaces() if not i.active]
        return R.remote_connect_list_defined_interfaces_ret(names=names[: max(args.maxnames, 0)])

    async def connect_list_all_interfaces(
        self, args: R.remote_connect_list_all_interfaces_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_interfaces_ret:
        flags = args.flags
        check_flags(flags, _LIST_FILTERS_ACTIVE, "testConnectListAllInterfaces")
        found = [
            i
            for i in self._sorted_interfaces()
            if not flags & _LIST_FILTERS_ACTIVE
            or (flags & C.VIR_CONNECT_LIST_INTERFACES_ACTIVE and i.active)
            or (flags & C.VIR_CONNECT_LIST_INTERFACES_INACTIVE and not i.active)
        ]
        refs = [i.ref() for i in found] if args.need_results else []
        return R.remote_connect_list_all_interfaces_ret(ifaces=refs, ret=len(found))

    # --- lookups -----------------------------------------------------------------------

    async def interface_lookup_by_name(
        self, args: R.remote_interface_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_interface_lookup_by_name_ret:
        return R.remote_interface_lookup_by_name_ret(iface=self._interface_by_name(args.name).ref())

    async def interface_lookup_by_mac_string(
        self, args: R.remote_interface_lookup_by_mac_string_args, ctx: ConnectionContext
    ) -> R.remote_interface_lookup_by_mac_string_ret:
        wanted = args.mac.lower()
        found = [i for i in self._sorted_interfaces() if i.defn.mac is None or i.defn.mac.lower() == wanted]
        if not found:
            raise report(C.VIR_ERR_NO_INTERFACE, FROM, f"no interface with matching mac '{args.mac}'")
        if len(found) > 1:
            raise report(C.VIR_ERR_MULTIPLE_INTERFACES, FROM)
        return R.remote_interface_lookup_by_mac_string_ret(iface=found[0].ref(args.mac))

    async def interface_is_active(
        self, args: R.remote_interface_is_active_args, ctx: ConnectionContext
    ) -> R.remote_interface_is_active_ret:
        return R.remote_interface_is_active_ret(active=int(self._interface_by_name(args.iface.name).active))

    async def interface_get_xml_desc(
        self, args: R.remote_interface_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_interface_get_xml_desc_ret:
        check_flags(args.flags, 0, "testInterfaceGetXMLDesc")
        return R.remote_interface_get_xml_desc_ret(xml=self._interface_by_name(args.iface.name).defn.xml())

    # --- definitions and state ---------------------------------------------------------

    async def interface_define_xml(
        self, args: R.remote_interface_define_xml_args, ctx: ConnectionContext
    ) -> R.remote_interface_define_xml_ret:
        check_flags(args.flags, C.VIR_INTERFACE_DEFINE_VALIDATE, "testInterfaceDefineXML")
        defn = parse_interface_xml(args.xml, validate=bool(args.flags & C.VIR_INTERFACE_DEFINE_VALIDATE))
        iface = self.interfaces.get(defn.name)
        if iface is None:
            iface = self.interfaces[defn.name] = HostInterface(defn)
        else:
            iface.defn = defn
        self._save_interface(iface)
        return R.remote_interface_define_xml_ret(iface=iface.ref())

    async def interface_undefine(
        self, args: R.remote_interface_undefine_args, ctx: ConnectionContext
    ) -> None:
        iface = self._interface_by_name(args.iface.name)
        del self.interfaces[iface.name]
        if self.interface_store is not None:
            self.interface_store.delete(_store_key(iface.name))

    async def interface_create(self, args: R.remote_interface_create_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, 0, "testInterfaceCreate")
        iface = self._interface_by_name(args.iface.name)
        if iface.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM)
        iface.active = True
        self._save_interface(iface)

    async def interface_destroy(self, args: R.remote_interface_destroy_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, 0, "testInterfaceDestroy")
        iface = self._interface_by_name(args.iface.name)
        if not iface.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM)
        iface.active = False
        self._save_interface(iface)

    # --- change transactions -----------------------------------------------------------

    async def interface_change_begin(
        self, args: R.remote_interface_change_begin_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testInterfaceChangeBegin")
        if self._interface_backup is not None:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "there is another transaction running.")
        self._interface_backup = {
            name: HostInterface(parse_interface_xml(iface.defn.xml()))
            for name, iface in self.interfaces.items()
        }

    async def interface_change_commit(
        self, args: R.remote_interface_change_commit_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testInterfaceChangeCommit")
        if self._interface_backup is None:
            raise report(
                C.VIR_ERR_OPERATION_INVALID, FROM, "no transaction running, nothing to be committed."
            )
        self._interface_backup = None

    async def interface_change_rollback(
        self, args: R.remote_interface_change_rollback_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testInterfaceChangeRollback")
        if self._interface_backup is None:
            raise report(C.VIR_ERR_OPERATION_INVALID, FROM, "no transaction running, nothing to rollback.")
        dropped = set(self.interfaces) - set(self._interface_backup)
        self.interfaces = self._interface_backup
        self._interface_backup = None
        if self.interface_store is not None:
            for name in dropped:
                self.interface_store.delete(_store_key(name))
            for iface in self.interfaces.values():
                self._save_interface(iface)
