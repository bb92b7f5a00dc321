"""The Driver interface: what a hypervisor backend implements for the server.

Dispatch is table-driven: for a remote procedure ``DOMAIN_SUSPEND`` the server
calls the driver's ``domain_suspend(args, ctx)`` method, where ``args`` is the
generated ``remote_domain_suspend_args`` (None for a void procedure) and ``ctx``
the calling connection's ``ConnectionContext``; it returns the generated
``..._ret`` struct (None for void) or raises ``libvirtError``.  A procedure with
no such method answers VIR_ERR_NO_SUPPORT with the spec's ``@api`` name.

This base class declares, with their types, the methods the embedded memory
driver implements; each answers NO_SUPPORT until a subclass overrides it, so a
custom backend implements only what it has.  Connection-level procedures (auth,
features, open/close, event and close-callback registration) are the server's
and never reach a driver.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio
from virtwire.protocol.generated import remote as R

from ..errors import no_support
from ..events import DomainEvents, EventBus


@dataclass(slots=True, eq=False)
class ConnectionContext:
    """What a driver may know about the connection a call came in on."""

    conn_id: int
    peer: str
    transport: str  # "tcp", "tls" or "unix"
    readonly: bool = False
    uri: str | None = None  # the name given to CONNECT_OPEN
    # Per-connection data a driver wants to keep (freed with the connection).
    data: dict[str, Any] = field(default_factory=dict)


_NONBLOCKING = "__virtwire_nonblocking__"
C_T = TypeVar("C_T", bound=type)


def nonblocking(cls: C_T) -> C_T:
    """Class decorator: every coroutine method defined in ``cls`` never waits.

    The server then runs those calls in the connection's reader instead of a task
    of their own (cheaper per call).  Only for methods that do not await anything
    that can block; a method that does wait must live in an undecorated class,
    or it would hold up its connection's other calls.
    """
    for value in vars(cls).values():
        if inspect.iscoroutinefunction(value):
            setattr(value, _NONBLOCKING, True)
    return cls


def is_nonblocking(handler: Callable[..., Any]) -> bool:
    return bool(getattr(getattr(handler, "__func__", handler), _NONBLOCKING, False))


def _unsupported(procedure: str) -> Exception:
    api = R.PROCEDURES_BY_NAME[procedure].api
    return no_support(api or procedure)


@nonblocking
class Driver:
    """Base of every backend. Subclasses override the API methods they support."""

    # Work that outlives the call starting it (an incoming migration outlives its
    # PREPARE) runs here: the server sets a nursery that lives as long as it serves
    # and is cancelled after the last connection has closed.
    nursery: trio.Nursery | None = None

    def __init__(self) -> None:
        # Replaced by the server's bus; a standalone driver emits into the void.
        self.events = DomainEvents(EventBus())

    # --- what the server asks the driver -----------------------------------------------

    def features(self) -> frozenset[int]:
        """VIR_DRV_FEATURE_* numbers the hypervisor itself supports (SUPPORTS_FEATURE).

        The server answers 10 (keepalive), 14 (event callbacks) and 15 (close
        callback) itself; migration features (4, 6, 13) belong here.
        """
        return frozenset()

    def check_uri(self, name: str | None) -> None:
        """Accept the name given to CONNECT_OPEN, or raise libvirt's error for it."""
        raise NotImplementedError

    async def connection_opened(self, ctx: ConnectionContext) -> None:
        """A connection completed CONNECT_OPEN."""

    async def connection_closed(self, ctx: ConnectionContext) -> None:
        """A connection that was open went away (closed, dropped or re-opened)."""

    # --- host ---------------------------------------------------------------------------

    async def connect_get_type(self, args: None, ctx: ConnectionContext) -> R.remote_connect_get_type_ret:
        raise _unsupported("CONNECT_GET_TYPE")

    async def connect_get_version(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_version_ret:
        raise _unsupported("CONNECT_GET_VERSION")

    async def connect_get_lib_version(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_lib_version_ret:
        raise _unsupported("CONNECT_GET_LIB_VERSION")

    async def connect_get_hostname(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_hostname_ret:
        raise _unsupported("CONNECT_GET_HOSTNAME")

    async def connect_get_uri(self, args: None, ctx: ConnectionContext) -> R.remote_connect_get_uri_ret:
        raise _unsupported("CONNECT_GET_URI")

    async def connect_get_max_vcpus(
        self, args: R.remote_connect_get_max_vcpus_args, ctx: ConnectionContext
    ) -> R.remote_connect_get_max_vcpus_ret:
        raise _unsupported("CONNECT_GET_MAX_VCPUS")

    async def connect_get_capabilities(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_get_capabilities_ret:
        raise _unsupported("CONNECT_GET_CAPABILITIES")

    async def connect_is_secure(self, args: None, ctx: ConnectionContext) -> R.remote_connect_is_secure_ret:
        raise _unsupported("CONNECT_IS_SECURE")

    async def node_get_info(self, args: None, ctx: ConnectionContext) -> R.remote_node_get_info_ret:
        raise _unsupported("NODE_GET_INFO")

    async def node_get_free_memory(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_node_get_free_memory_ret:
        raise _unsupported("NODE_GET_FREE_MEMORY")

    async def node_get_security_model(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_node_get_security_model_ret:
        raise _unsupported("NODE_GET_SECURITY_MODEL")

    async def connect_list_domains(
        self, args: R.remote_connect_list_domains_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_domains_ret:
        raise _unsupported("CONNECT_LIST_DOMAINS")

    async def connect_num_of_domains(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_domains_ret:
        raise _unsupported("CONNECT_NUM_OF_DOMAINS")

    async def connect_list_defined_domains(
        self, args: R.remote_connect_list_defined_domains_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_defined_domains_ret:
        raise _unsupported("CONNECT_LIST_DEFINED_DOMAINS")

    async def connect_num_of_defined_domains(
        self, args: None, ctx: ConnectionContext
    ) -> R.remote_connect_num_of_defined_domains_ret:
        raise _unsupported("CONNECT_NUM_OF_DEFINED_DOMAINS")

    async def connect_list_all_domains(
        self, args: R.remote_connect_list_all_domains_args, ctx: ConnectionContext
    ) -> R.remote_connect_list_all_domains_ret:
        raise _unsupported("CONNECT_LIST_ALL_DOMAINS")

    # --- domains: lookup and definition -----------------------------------------------

    async def domain_lookup_by_name(
        self, args: R.remote_domain_lookup_by_name_args, ctx: ConnectionContext
    ) -> R.remote_domain_lookup_by_name_ret:
        raise _unsupported("DOMAIN_LOOKUP_BY_NAME")

    async def domain_lookup_by_uuid(
        self, args: R.remote_domain_lookup_by_uuid_args, ctx: ConnectionContext
    ) -> R.remote_domain_lookup_by_uuid_ret:
        raise _unsupported("DOMAIN_LOOKUP_BY_UUID")

    async def domain_lookup_by_id(
        self, args: R.remote_domain_lookup_by_id_args, ctx: ConnectionContext
    ) -> R.remote_domain_lookup_by_id_ret:
        raise _unsupported("DOMAIN_LOOKUP_BY_ID")

    async def domain_define_xml(
        self, args: R.remote_domain_define_xml_args, ctx: ConnectionContext
    ) -> R.remote_domain_define_xml_ret:
        raise _unsupported("DOMAIN_DEFINE_XML")

    async def domain_define_xml_flags(
        self, args: R.remote_domain_define_xml_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_define_xml_flags_ret:
        raise _unsupported("DOMAIN_DEFINE_XML_FLAGS")

    async def domain_create_xml(
        self, args: R.remote_domain_create_xml_args, ctx: ConnectionContext
    ) -> R.remote_domain_create_xml_ret:
        raise _unsupported("DOMAIN_CREATE_XML")

    async def domain_undefine(self, args: R.remote_domain_undefine_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_UNDEFINE")

    async def domain_undefine_flags(
        self, args: R.remote_domain_undefine_flags_args, ctx: ConnectionContext
    ) -> None:
        raise _unsupported("DOMAIN_UNDEFINE_FLAGS")

    # --- domains: life cycle ------------------------------------------------------------

    async def domain_create(self, args: R.remote_domain_create_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_CREATE")

    async def domain_create_with_flags(
        self, args: R.remote_domain_create_with_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_create_with_flags_ret:
        raise _unsupported("DOMAIN_CREATE_WITH_FLAGS")

    async def domain_destroy(self, args: R.remote_domain_destroy_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_DESTROY")

    async def domain_destroy_flags(
        self, args: R.remote_domain_destroy_flags_args, ctx: ConnectionContext
    ) -> None:
        raise _unsupported("DOMAIN_DESTROY_FLAGS")

    async def domain_shutdown(self, args: R.remote_domain_shutdown_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_SHUTDOWN")

    async def domain_shutdown_flags(
        self, args: R.remote_domain_shutdown_flags_args, ctx: ConnectionContext
    ) -> None:
        raise _unsupported("DOMAIN_SHUTDOWN_FLAGS")

    async def domain_reboot(self, args: R.remote_domain_reboot_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_REBOOT")

    async def domain_suspend(self, args: R.remote_domain_suspend_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_SUSPEND")

    async def domain_resume(self, args: R.remote_domain_resume_args, ctx: ConnectionContext) -> None:
        raise _unsupported("DOMAIN_RESUME")

    # --- domains: information -----------------------------------------------------------

    async def domain_get_xml_desc(
        self, args: R.remote_domain_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_xml_desc_ret:
        raise _unsupported("DOMAIN_GET_XML_DESC")

    async def domain_get_info(
        self, args: R.remote_domain_get_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_info_ret:
        raise _unsupported("DOMAIN_GET_INFO")

    async def domain_get_state(
        self, args: R.remote_domain_get_state_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_state_ret:
        raise _unsupported("DOMAIN_GET_STATE")

    async def domain_get_os_type(
        self, args: R.remote_domain_get_os_type_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_os_type_ret:
        raise _unsupported("DOMAIN_GET_OS_TYPE")

    async def domain_get_max_memory(
        self, args: R.remote_domain_get_max_memory_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_max_memory_ret:
        raise _unsupported("DOMAIN_GET_MAX_MEMORY")

    async def domain_get_autostart(
        self, args: R.remote_domain_get_autostart_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_autostart_ret:
        raise _unsupported("DOMAIN_GET_AUTOSTART")

    async def domain_set_autostart(
        self, args: R.remote_domain_set_autostart_args, ctx: ConnectionContext
    ) -> None:
        raise _unsupported("DOMAIN_SET_AUTOSTART")

    async def domain_is_active(
        self, args: R.remote_domain_is_active_args, ctx: ConnectionContext
    ) -> R.remote_domain_is_active_ret:
        raise _unsupported("DOMAIN_IS_ACTIVE")

    async def domain_is_persistent(
        self, args: R.remote_domain_is_persistent_args, ctx: ConnectionContext
    ) -> R.remote_domain_is_persistent_ret:
        raise _unsupported("DOMAIN_IS_PERSISTENT")

    async def domain_is_updated(
        self, args: R.remote_domain_is_updated_args, ctx: ConnectionContext
    ) -> R.remote_domain_is_updated_ret:
        raise _unsupported("DOMAIN_IS_UPDATED")

    async def domain_has_managed_save_image(
        self, args: R.remote_domain_has_managed_save_image_args, ctx: ConnectionContext
    ) -> R.remote_domain_has_managed_save_image_ret:
        raise _unsupported("DOMAIN_HAS_MANAGED_SAVE_IMAGE")

    async def domain_get_security_label(
        self, args: R.remote_domain_get_security_label_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_security_label_ret:
        raise _unsupported("DOMAIN_GET_SECURITY_LABEL")

    async def domain_snapshot_num(
        self, args: R.remote_domain_snapshot_num_args, ctx: ConnectionContext
    ) -> R.remote_domain_snapshot_num_ret:
        raise _unsupported("DOMAIN_SNAPSHOT_NUM")

    async def domain_get_messages(
        self, args: R.remote_domain_get_messages_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_messages_ret:
        raise _unsupported("DOMAIN_GET_MESSAGES")

    async def domain_get_vcpus_flags(
        self, args: R.remote_domain_get_vcpus_flags_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_vcpus_flags_ret:
        raise _unsupported("DOMAIN_GET_VCPUS_FLAGS")

    async def domain_get_max_vcpus(
        self, args: R.remote_domain_get_max_vcpus_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_max_vcpus_ret:
        raise _unsupported("DOMAIN_GET_MAX_VCPUS")

    async def domain_get_control_info(
        self, args: R.remote_domain_get_control_info_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_control_info_ret:
        raise _unsupported("DOMAIN_GET_CONTROL_INFO")

    async def domain_get_hostname(
        self, args: R.remote_domain_get_hostname_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_hostname_ret:
        raise _unsupported("DOMAIN_GET_HOSTNAME")

    async def domain_get_scheduler_type(
        self, args: R.remote_domain_get_scheduler_type_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_scheduler_type_ret:
        raise _unsupported("DOMAIN_GET_SCHEDULER_TYPE")
