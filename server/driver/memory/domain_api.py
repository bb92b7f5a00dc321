"""Domain procedures of the memory driver, with the test driver's checks and errors."""

from __future__ import annotations

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags
from ..base import ConnectionContext, nonblocking
from . import defaults
from .core import FROM, MemoryCore, dom_ref, internal, operation_invalid
from .domain_guest import control_state, guest_state
from .domsecure import shown
from .host_api import chars
from .model import Domain

_XML_FLAGS = (
    C.VIR_DOMAIN_XML_SECURE
    | C.VIR_DOMAIN_XML_INACTIVE
    | C.VIR_DOMAIN_XML_UPDATE_CPU
    | C.VIR_DOMAIN_XML_MIGRATABLE
)
_UNDEFINE_FLAGS = (
    C.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | C.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | C.VIR_DOMAIN_UNDEFINE_NVRAM
    | C.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
    | C.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | C.VIR_DOMAIN_UNDEFINE_TPM
    | C.VIR_DOMAIN_UNDEFINE_KEEP_TPM
)
_REBOOT_FLAGS = 0x1F  # DEFAULT | ACPI | GUEST_AGENT | INITCTL | SIGNAL
_DESTROY_FLAGS = C.VIR_DOMAIN_DESTROY_GRACEFUL
_DEFINE_FLAGS = C.VIR_DOMAIN_DEFINE_VALIDATE
_CREATE_FLAGS = C.VIR_DOMAIN_START_VALIDATE
_HOSTNAME_FLAGS = C.VIR_DOMAIN_GET_HOSTNAME_LEASE | C.VIR_DOMAIN_GET_HOSTNAME_AGENT
_VCPU_FLAGS = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG | C.VIR_DOMAIN_VCPU_MAXIMUM


@nonblocking
class DomainAPI(MemoryCore):
    """virDomain* answers of test:///default."""

    # --- lookup and definition ----------------------------------------------------------

    async def domain_lookup_by_name(
        self, args: R.remote_domain_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_domain_lookup_by_name_ret:
        return R.remote_domain_lookup_by_name_ret(dom=dom_ref(self.find_by_name(args.name)))

    async def domain_lookup_by_uuid(
        self, args: R.remote_domain_lookup_by_uuid_args, ctx: ConnectionContext
    ) -> R.remote_domain_lookup_by_uuid_ret:
        return R.remote_domain_lookup_by_uuid_ret(dom=dom_ref(self.find_by_uuid(args.uuid)))

    async def domain_lookup_by_id(
        self, args: R.remote_domain_lookup_by_id_args, ctx: ConnectionContext
    ) -> R.remote_domain_lookup_by_id_ret:
        return R.remote_domain_lookup_by_id_ret(dom=dom_ref(self.find_by_id(args.id)))

    async def domain_define_xml(
        self, args: R.remote_domain_define_xml_args, ctx: ConnectionContext
    ) -> R.remote_domain_define_xml_ret:
        return R.remote_domain_define_xml_ret(dom=dom_ref(self.define_domain(args.xml, persistent=True)))

    async def domain_define_xml_flags(
        self, args: R.remote_domain_define_xml_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_define_xml_flags_ret:
        check_flags(args.flags, _DEFINE_FLAGS, "testDomainDefineXMLFlags")
        return R.remote_domain_define_xml_flags_ret(
            dom=dom_ref(
                self.define_domain(
                    args.xml, persistent=True, validate=bool(args.flags & C.VIR_DOMAIN_DEFINE_VALIDATE)
                )
            )
        )

    async def domain_create_xml(
        self, args: R.remote_domain_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_domain_create_xml_ret:
        check_flags(args.flags, _CREATE_FLAGS, "testDomainCreateXML")
        validate = bool(args.flags & C.VIR_DOMAIN_START_VALIDATE)
        dom = self.define_domain(args.xml_desc, persistent=False, emit=False, live=True, validate=validate)
        self.start_domain(dom)
        return R.remote_domain_create_xml_ret(dom=dom_ref(dom))

    async def domain_undefine(self, args: R.remote_domain_undefine_args, ctx: ConnectionContext) -> None:
        self._undefine(args.dom, 0)

    async def domain_undefine_flags(
        self, args: R.remote_domain_undefine_flags_args, ctx: ConnectionContext
    ) -> None:
        self._undefine(args.dom, args.flags)

    def _undefine(self, ref: R.remote_nonnull_domain, flags: int) -> None:
        check_flags(flags, _UNDEFINE_FLAGS, "testDomainUndefineFlags")
        dom = self.lookup(ref)
        if not dom.persistent:
            raise operation_invalid("cannot undefine transient domain", FROM)
        self.undefine_domain(dom)

    # --- life cycle -----------------------------------------------------------------------

    async def domain_create(self, args: R.remote_domain_create_args, ctx: ConnectionContext) -> None:
        self.start_domain(self.lookup(args.dom))

    async def domain_create_with_flags(
        self, args: R.remote_domain_create_with_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_create_with_flags_ret:
        check_flags(args.flags, 0, "testDomainCreateWithFlags")
        dom = self.lookup(args.dom)
        self.start_domain(dom)
        return R.remote_domain_create_with_flags_ret(dom=dom_ref(dom))

    async def domain_destroy(self, args: R.remote_domain_destroy_args, ctx: ConnectionContext) -> None:
        self._destroy(args.dom, 0)

    async def domain_destroy_flags(
        self, args: R.remote_domain_destroy_flags_args, ctx: ConnectionContext
    ) -> None:
        self._destroy(args.dom, args.flags)

    def _destroy(self, ref: R.remote_nonnull_domain, flags: int) -> None:
        check_flags(flags, _DESTROY_FLAGS, "testDomainDestroyFlags")
        dom = self.lookup(ref)
        if not dom.active:
            raise operation_invalid("domain is not running")
        self.stop_domain(
            dom, reason=C.VIR_DOMAIN_SHUTOFF_DESTROYED, detail=C.VIR_DOMAIN_EVENT_STOPPED_DESTROYED
        )

    async def domain_shutdown(self, args: R.remote_domain_shutdown_args, ctx: ConnectionContext) -> None:
        self._shutdown(args.dom, 0)

    async def domain_shutdown_flags(
        self, args: R.remote_domain_shutdown_flags_args, ctx: ConnectionContext
    ) -> None:
        self._shutdown(args.dom, args.flags)

    def _shutdown(self, ref: R.remote_nonnull_domain, flags: int) -> None:
        check_flags(flags, 0, "testDomainShutdownFlags")
        dom = self.lookup(ref)
        if not dom.active:
            raise internal(f"domain '{dom.name}' not running")
        self.stop_domain(
            dom, reason=C.VIR_DOMAIN_SHUTOFF_SHUTDOWN, detail=C.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
        )

    async def domain_reboot(self, args: R.remote_domain_reboot_args, ctx: ConnectionContext) -> None:
        check_flags(args.flags, _REBOOT_FLAGS, "testDomainReboot")
        dom = self.lookup(args.dom)
        if not dom.active:
            raise operation_invalid("domain is not running")
        # The test driver applies <on_reboot>: restart (the default) comes straight
        # back up with no event at all; destroy shuts the domain off.
        if (dom.tree.findtext("on_reboot") or "restart").strip() == "destroy":
            self.stop_domain(
                dom, reason=C.VIR_DOMAIN_SHUTOFF_SHUTDOWN, detail=C.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
            )
        else:
            self.set_state(dom, C.VIR_DOMAIN_RUNNING, C.VIR_DOMAIN_RUNNING_BOOTED)

    async def domain_suspend(self, args: R.remote_domain_suspend_args, ctx: ConnectionContext) -> None:
        dom = self.lookup(args.dom)
        if dom.state in (C.VIR_DOMAIN_SHUTOFF, C.VIR_DOMAIN_PAUSED):
            raise internal(f"domain '{dom.name}' not running")
        self.set_state(
            dom,
            C.VIR_DOMAIN_PAUSED,
            C.VIR_DOMAIN_PAUSED_USER,
            C.VIR_DOMAIN_EVENT_SUSPENDED,
            C.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED,
        )

    async def domain_resume(self, args: R.remote_domain_resume_args, ctx: ConnectionContext) -> None:
        dom = self.lookup(args.dom)
        if dom.state != C.VIR_DOMAIN_PAUSED:
            raise internal(f"domain '{dom.name}' not paused")
        self.set_state(
            dom,
            C.VIR_DOMAIN_RUNNING,
            C.VIR_DOMAIN_RUNNING_UNPAUSED,
            C.VIR_DOMAIN_EVENT_RESUMED,
            C.VIR_DOMAIN_EVENT_RESUMED_UNPAUSED,
        )

    # --- information ----------------------------------------------------------------------

    async def domain_get_xml_desc(
        self, args: R.remote_domain_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_xml_desc_ret:
        check_flags(args.flags, _XML_FLAGS, "testDomainGetXMLDesc")
        dom = self.lookup(args.dom)
        inactive = bool(args.flags & C.VIR_DOMAIN_XML_INACTIVE)
        secure = bool(args.flags & C.VIR_DOMAIN_XML_SECURE)
        return R.remote_domain_get_xml_desc_ret(xml=shown(dom.xml(inactive=inactive), secure))

    async def domain_get_info(
        self, args: R.remote_domain_get_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_info_ret:
        dom = self.lookup(args.dom)
        return R.remote_domain_get_info_ret(
            state=dom.state,
            maxMem=dom.memory_kib,
            memory=dom.current_memory_kib,
            nrVirtCpu=dom.vcpus,
            cpuTime=dom.cpu_time_ns(),
        )

    async def domain_get_state(
        self, args: R.remote_domain_get_state_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_state_ret:
        check_flags(args.flags, 0, "testDomainGetState")
        dom = self.lookup(args.dom)
        return R.remote_domain_get_state_ret(state=dom.state, reason=dom.reason)

    async def domain_get_os_type(
        self, args: R.remote_domain_get_os_type_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_os_type_ret:
        self.lookup(args.dom)
        return R.remote_domain_get_os_type_ret(type=defaults.GUEST_OS_TYPE)

    async def domain_get_max_memory(
        self, args: R.remote_domain_get_max_memory_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_max_memory_ret:
        return R.remote_domain_get_max_memory_ret(memory=self.lookup(args.dom).memory_kib)

    async def domain_get_autostart(
        self, args: R.remote_domain_get_autostart_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_autostart_ret:
        return R.remote_domain_get_autostart_ret(autostart=int(self.lookup(args.dom).autostart))

    async def domain_set_autostart(
        self, args: R.remote_domain_set_autostart_args, ctx: ConnectionContext
    ) -> None:
        dom = self.lookup(args.dom)
        if not dom.persistent:
            raise operation_invalid("cannot set autostart for transient domain", FROM)
        dom.autostart = bool(args.autostart)
        self.save(dom)

    async def domain_is_active(
        self, args: R.remote_domain_is_active_args, ctx: ConnectionContext
    ) -> R.remote_domain_is_active_ret:
        return R.remote_domain_is_active_ret(active=int(self.lookup(args.dom).active))

    async def domain_is_persistent(
        self, args: R.remote_domain_is_persistent_args, ctx: ConnectionContext
    ) -> R.remote_domain_is_persistent_ret:
        return R.remote_domain_is_persistent_ret(persistent=int(self.lookup(args.dom).persistent))

    async def domain_is_updated(
        self, args: R.remote_domain_is_updated_args, ctx: ConnectionContext
    ) -> R.remote_domain_is_updated_ret:
        self.lookup(args.dom)
        return R.remote_domain_is_updated_ret(updated=0)

    async def domain_get_security_label(
        self, args: R.remote_domain_get_security_label_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_security_label_ret:
        if not self.lookup(args.dom).active:
            # Only a running domain has a label; an inactive one answers an empty one.
            return R.remote_domain_get_security_label_ret(label=chars(""), enforcing=0)
        return R.remote_domain_get_security_label_ret(
            label=chars(defaults.SECURITY_LABEL), enforcing=int(defaults.SECURITY_ENFORCING)
        )

    async def domain_get_security_label_list(
        self, args: R.remote_domain_get_security_label_list_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_security_label_list_ret:
        # libvirt's test driver has no label list: virDomainGetSecurityLabelList fails
        # (before any lookup) and libvirtd answers success with ret -1 and no labels.
        return R.remote_domain_get_security_label_list_ret(labels=[], ret=-1)

    async def domain_get_messages(
        self, args: R.remote_domain_get_messages_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_messages_ret:
        self.lookup(args.dom)
        return R.remote_domain_get_messages_ret(msgs=[])

    async def domain_snapshot_num(
        self, args: R.remote_domain_snapshot_num_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_num_ret:
        # No snapshots here; virsh undefine asks before it undefines.
        self.lookup(args.dom)
        return R.remote_domain_snapshot_num_ret(num=0)

    # --- control, guest (vCPUs: domain_cpu) ------------------------------------------------------------

    async def domain_get_control_info(
        self, args: R.remote_domain_get_control_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_control_info_ret:
        check_flags(args.flags, 0, "testDomainGetControlInfo")
        state, details, state_time = control_state(guest_state(self._running(args.dom)).seconds)
        return R.remote_domain_get_control_info_ret(state=state, details=details, stateTime=state_time)

    async def domain_get_hostname(
        self, args: R.remote_domain_get_hostname_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_hostname_ret:
        check_flags(args.flags, 0, "testDomainGetHostname")
        dom = self._running(args.dom)
        return R.remote_domain_get_hostname_ret(hostname=f"{dom.name}host")

    async def domain_get_scheduler_type(
        self, args: R.remote_domain_get_scheduler_type_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_scheduler_type_ret:
        # The test driver answers without looking the domain up (any name or UUID will do).
        return R.remote_domain_get_scheduler_type_ret(type=defaults.SCHEDULER, nparams=1)

    def _running(self, ref: R.remote_nonnull_domain) -> Domain:
        dom = self.lookup(ref)
        if not dom.active:
            raise operation_invalid("domain is not running")
        return dom
