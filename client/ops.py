"""What each API call sends and how its reply becomes libvirt-python's value.

Both client APIs run the same `Op`s: the sync facade (`virtwire.libvirt`) and
the trio API (`virtwire.client.aio`) differ only in how they wait. An Op names
its procedure (from the generated table), carries the args struct, the flags
the read-only policy looks at, and a converter from the return struct to the
value libvirt-python returns (lists vs tuples, ints, dicts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from virtwire.protocol import typedparams
from virtwire.protocol.generated import remote
from virtwire.protocol.xdr import Procedure

PROCS: Final = remote.PROCEDURES_BY_NAME
Dom = Any  # remote_nonnull_domain


def _ident(value: Any) -> Any:
    return value


class Op:
    """One RPC: procedure, args, read-only flags, reply converter."""

    __slots__ = ("_payload", "api", "args", "convert", "flags", "proc")

    def __init__(
        self,
        name: str | Procedure,
        args: Any = None,
        convert: Callable[[Any], Any] = _ident,
        flags: int = 0,
        api: str | None = None,
    ) -> None:
        self.proc: Procedure = name if isinstance(name, Procedure) else PROCS[name]
        self.args = args
        self.convert = convert
        self.flags = flags
        self.api = api
        self._payload: bytes | None = None

    def payload(self) -> bytes:
        """The encoded args (computed once: an Op may be sent again, see virDomain)."""
        data = self._payload
        if data is None:
            args = self.args
            data = self._payload = b"" if args is None else args.to_bytes()
        return data


def call(
    proc_name: str, convert: Callable[[Any], Any] = _ident, /, *, flags_field: bool = True, **fields: Any
) -> Op:
    """An Op whose args are given by field name; `flags` feeds the read-only check."""
    proc = PROCS[proc_name]
    if not fields:
        return Op(proc, None, convert)
    codec = proc.args
    assert codec is not None, proc_name
    return Op(proc, codec(**fields), convert, int(fields.get("flags", 0)) if flags_field else 0)


# -- converters ------------------------------------------------------------


def field(name: str) -> Callable[[Any], Any]:
    return lambda ret: getattr(ret, name)


def int_field(name: str) -> Callable[[Any], int]:
    return lambda ret: int(getattr(ret, name))


def dom_of(ret: Any) -> Dom:
    return ret.dom


def chars_to_str(chars: Sequence[int]) -> str:
    """A rpcgen `char x[N]` (one int per char, NUL padded) as a str."""
    raw = bytes(c & 0xFF for c in chars)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def node_info(ret: Any) -> list[Any]:
    # libvirt-python: [model, memory MiB, cpus, mhz, nodes, sockets, cores, threads]
    return [
        chars_to_str(ret.model),
        ret.memory >> 10,
        ret.cpus,
        ret.mhz,
        ret.nodes,
        ret.sockets,
        ret.cores,
        ret.threads,
    ]


def domain_info(ret: Any) -> list[int]:
    return [int(ret.state), ret.maxMem, ret.memory, ret.nrVirtCpu, ret.cpuTime]


def job_info(ret: Any) -> list[int]:
    return [
        ret.type,
        ret.timeElapsed,
        ret.timeRemaining,
        ret.dataTotal,
        ret.dataProcessed,
        ret.dataRemaining,
        ret.memTotal,
        ret.memProcessed,
        ret.memRemaining,
        ret.fileTotal,
        ret.fileProcessed,
        ret.fileRemaining,
    ]


def job_stats(ret: Any) -> dict[str, Any]:
    # libvirt-override.c puts the job type in the dict under "type".
    out: dict[str, Any] = {"type": ret.type}
    out.update(typedparams.params_to_dict(ret.params))
    return out


def state(ret: Any) -> list[int]:
    return [ret.state, ret.reason]


# -- connection -------------------------------------------------------------


def auth_list() -> Op:
    return Op("AUTH_LIST", None, lambda ret: [int(t) for t in ret.types])


def supports_feature(feature: int) -> Op:
    return call("CONNECT_SUPPORTS_FEATURE", int_field("supported"), feature=feature)


def connect_open(name: str | None, flags: int) -> Op:
    # The read-only flag here asks the server for a read-only connection; it
    # is not a reason to refuse locally.
    return call("CONNECT_OPEN", flags_field=False, name=name, flags=flags)


def connect_close() -> Op:
    return Op("CONNECT_CLOSE")


def get_type() -> Op:
    return Op("CONNECT_GET_TYPE", None, field("type"))


def get_version() -> Op:
    return Op("CONNECT_GET_VERSION", None, field("hv_ver"))


def get_lib_version() -> Op:
    return Op("CONNECT_GET_LIB_VERSION", None, field("lib_ver"))


def get_hostname() -> Op:
    return Op("CONNECT_GET_HOSTNAME", None, field("hostname"))


def get_capabilities() -> Op:
    return Op("CONNECT_GET_CAPABILITIES", None, field("capabilities"))


def get_uri() -> Op:
    return Op("CONNECT_GET_URI", None, field("uri"))


def node_get_info() -> Op:
    return Op("NODE_GET_INFO", None, node_info)


def is_secure() -> Op:
    return Op("CONNECT_IS_SECURE", None, int_field("secure"))


def lookup_by_name(name: str) -> Op:
    return call("DOMAIN_LOOKUP_BY_NAME", dom_of, name=name)


def lookup_by_uuid(uuid: bytes) -> Op:
    return call("DOMAIN_LOOKUP_BY_UUID", dom_of, uuid=uuid)


def lookup_by_id(dom_id: int) -> Op:
    return call("DOMAIN_LOOKUP_BY_ID", dom_of, id=dom_id)


def list_all_domains(flags: int) -> Op:
    return call("CONNECT_LIST_ALL_DOMAINS", field("domains"), need_results=1, flags=flags)


def list_domains_id(maxids: int) -> Op:
    return call("CONNECT_LIST_DOMAINS", lambda ret: list(ret.ids), maxids=maxids)


def list_defined_domains(maxnames: int) -> Op:
    return call("CONNECT_LIST_DEFINED_DOMAINS", lambda ret: list(ret.names), maxnames=maxnames)


def num_of_domains() -> Op:
    return Op("CONNECT_NUM_OF_DOMAINS", None, int_field("num"))


def num_of_defined_domains() -> Op:
    return Op("CONNECT_NUM_OF_DEFINED_DOMAINS", None, int_field("num"))


def define_xml(xml: str) -> Op:
    return call("DOMAIN_DEFINE_XML", dom_of, xml=xml)


def define_xml_flags(xml: str, flags: int) -> Op:
    return call("DOMAIN_DEFINE_XML_FLAGS", dom_of, xml=xml, flags=flags)


def create_xml(xml: str, flags: int) -> Op:
    return call("DOMAIN_CREATE_XML", dom_of, xml_desc=xml, flags=flags)


def event_register_any(event_id: int, dom: Dom | None) -> Op:
    return call(
        "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY", int_field("callbackID"), eventID=event_id, dom=dom
    )


def event_deregister_any(callback_id: int) -> Op:
    return call("CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY", callbackID=callback_id)


def register_close_callback() -> Op:
    return Op("CONNECT_REGISTER_CLOSE_CALLBACK")


def unregister_close_callback() -> Op:
    return Op("CONNECT_UNREGISTER_CLOSE_CALLBACK")


# -- domain -----------------------------------------------------------------


def dom_call(proc_name: str, dom: Dom, convert: Callable[[Any], Any] = _ident, /, **fields: Any) -> Op:
    proc = PROCS[proc_name]
    codec: Callable[..., Any] | None = proc.args
    assert codec is not None, proc_name
    return Op(proc, codec(dom=dom, **fields), convert, int(fields.get("flags", 0)))


def domain_get_info(dom: Dom) -> Op:
    return dom_call("DOMAIN_GET_INFO", dom, domain_info)


def domain_get_state(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_GET_STATE", dom, state, flags=flags)


def domain_is_active(dom: Dom) -> Op:
    return dom_call("DOMAIN_IS_ACTIVE", dom, int_field("active"))


def domain_is_persistent(dom: Dom) -> Op:
    return dom_call("DOMAIN_IS_PERSISTENT", dom, int_field("persistent"))


def domain_get_xml_desc(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_GET_XML_DESC", dom, field("xml"), flags=flags)


def domain_get_os_type(dom: Dom) -> Op:
    return dom_call("DOMAIN_GET_OS_TYPE", dom, field("type"))


def domain_get_max_memory(dom: Dom) -> Op:
    return dom_call("DOMAIN_GET_MAX_MEMORY", dom, field("memory"))


def domain_get_autostart(dom: Dom) -> Op:
    return dom_call("DOMAIN_GET_AUTOSTART", dom, int_field("autostart"))


def domain_set_autostart(dom: Dom, autostart: int) -> Op:
    return dom_call("DOMAIN_SET_AUTOSTART", dom, autostart=autostart)


def domain_simple(name: str, dom: Dom) -> Op:
    """create, destroy, shutdown, suspend, resume, undefine, abortJob: dom only, void."""
    return dom_call(name, dom)


def domain_with_flags(name: str, dom: Dom, flags: int) -> Op:
    return dom_call(name, dom, flags=flags)


def domain_create_with_flags(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_CREATE_WITH_FLAGS", dom, dom_of, flags=flags)


def domain_get_job_info(dom: Dom) -> Op:
    return dom_call("DOMAIN_GET_JOB_INFO", dom, job_info)


def domain_get_job_stats(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_GET_JOB_STATS", dom, job_stats, flags=flags)


def domain_migrate_set_max_downtime(dom: Dom, downtime: int, flags: int) -> Op:
    return dom_call("DOMAIN_MIGRATE_SET_MAX_DOWNTIME", dom, downtime=downtime, flags=flags)


def domain_migrate_get_max_downtime(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_MIGRATE_GET_MAX_DOWNTIME", dom, field("downtime"), flags=flags)


def domain_migrate_set_max_speed(dom: Dom, bandwidth: int, flags: int) -> Op:
    return dom_call("DOMAIN_MIGRATE_SET_MAX_SPEED", dom, bandwidth=bandwidth, flags=flags)


def domain_migrate_get_max_speed(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_MIGRATE_GET_MAX_SPEED", dom, field("bandwidth"), flags=flags)


def domain_migrate_start_post_copy(dom: Dom, flags: int) -> Op:
    return dom_call("DOMAIN_MIGRATE_START_POST_COPY", dom, flags=flags)
