"""libvirt-python's classes over the sync connection: virConnect and virDomain.

Names, signatures, return types and errors follow libvirt-python 9.0 (its
generated libvirt.py and the overrides): a program written for `import
libvirt` runs unchanged with `import virtwire.libvirt as libvirt`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from virtwire.client import core, errfactory, eventloop, events, flows, migration, ops, sasl_auth, transport
from virtwire.client import uri as urimod
from virtwire.client.stream import virStream
from virtwire.client.surface import base as surface_base
from virtwire.client.surface import call, eventimpl, generated, lasterror
from virtwire.client.surface.objevents import ObjectEventsMixin
from virtwire.client.surface.overrides_connect import ConnectOverrides
from virtwire.client.surface.overrides_domain import DomainOverrides
from virtwire.client.surface.streams import DomainStreams
from virtwire.client.sync import SyncConnection
from virtwire.protocol import xdr
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import remote
from virtwire.protocol.xdr import Procedure

_T = TypeVar("_T")


# The call path and error reporting live in client/surface/call.py; these
# names stay importable from here.
_invoke = call.invoke
_run = call.run
# CONNECT_CLOSE's procedure number, looked up once: every close sends it.
_CONNECT_CLOSE = ops.connect_close().proc.number
_thread_error = lasterror.state
# Procedures of the calls written out below (their Ops would be built per call).
_LOOKUP_BY_NAME = ops.PROCS["DOMAIN_LOOKUP_BY_NAME"]
_LIST_ALL_DOMAINS = ops.PROCS["CONNECT_LIST_ALL_DOMAINS"]
_DOMAIN_GET_INFO = ops.PROCS["DOMAIN_GET_INFO"]
# virDomain._getter's calls: Op maker -> (procedure, reply converter).
_GETTERS: dict[Callable[[Any], ops.Op], tuple[Procedure, Callable[[Any], Any]]] = {}
report = call.report
set_error_handler = call.set_error_handler


class _Registration:
    __slots__ = ("cb", "event_id", "opaque")

    def __init__(self, event_id: int, cb: Callable[..., Any], opaque: Any) -> None:
        self.event_id = event_id
        self.cb = cb
        self.opaque = opaque


@surface_base.register
class virConnect(ObjectEventsMixin, ConnectOverrides, generated.virConnectGenerated):
    """A connection to a hypervisor driver behind a libvirt daemon."""

    def __init__(self, target: urimod.Target, sock_conn: SyncConnection, readonly: bool) -> None:
        self._target = target
        self._sock = sock_conn  # lives until the last reference is gone
        self._conn: SyncConnection | None = sock_conn  # None once this handle is closed
        self._readonly = readonly
        self._features = flows.NO_FEATURES
        # One entry per live virDomain: libvirt's reference count beyond the
        # open itself. deque append/pop are atomic, so no lock per domain.
        self._domain_refs: collections.deque[None] = collections.deque()
        self._torn_down = False
        self._teardown_lock = threading.Lock()
        self._callbacks: dict[int, _Registration] = {}
        self._object_callbacks: dict[tuple[str, int], tuple[int, Callable[..., Any], Any]] = {}
        self._close_cb: tuple[Callable[..., Any], Any] | None = None
        self._loop: eventloop.EventLoop | eventimpl.ImplLoop | None = eventimpl.current_loop()
        self.domainEventCallbackID: dict[int, Any] = {}

    # -- plumbing ---------------------------------------------------------

    def _live(self, api: str) -> SyncConnection:
        conn = self._conn
        if conn is None:
            raise _reported_error(errfactory.invalid_conn(api))
        return conn

    def _run(self, op: ops.Op) -> Any:
        """One public call: its error goes to the registered error handler too."""
        try:
            return self._call(op)
        except libvirtError as exc:
            report(exc)
            raise

    def _call(self, op: ops.Op) -> Any:
        conn = self._conn
        if conn is None:
            raise errfactory.invalid_conn(op.proc.api or op.proc.name)
        return _invoke(conn, self._readonly, op)

    def _run_op(self, op: ops.Op) -> Any:
        return self._run(op)

    def _rpc(self, proc_name: str, args: tuple[Any, ...], flags: int = 0) -> Any:
        """The generated methods' call: `proc_name` with its args struct built from `args`."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        return self._send_args(proc, None if codec is None else codec(*args), flags)

    def _send_args(self, proc: Procedure, args: Any, flags: int = 0) -> Any:
        """One public call of `proc` with its args struct (None: no args); its
        return struct.  _run, _call and call.invoke written out, with no Op:
        this is the path of every virConnect call."""
        _thread_error.err = None  # lasterror.reset(): every libvirt API call starts so
        try:
            conn = self._conn
            if conn is None:
                raise errfactory.invalid_conn(proc.api or proc.name)
            if self._readonly:
                core.check_read_only(proc, flags)
            return core.decode_reply(proc, conn.call(proc.number, b"" if args is None else args.to_bytes()))
        except libvirtError as exc:
            report(exc)
            raise

    def _run_fds(self, op: ops.Op, fds: list[int]) -> Any:
        try:
            conn = self._conn
            if conn is None:
                raise errfactory.invalid_conn(op.proc.api or op.proc.name)
            return call.invoke_with_fds(conn, self._readonly, op, fds)
        except libvirtError as exc:
            report(exc)
            raise

    def c_pointer(self) -> int:
        """An integer naming the connection (there is no C pointer: its id)."""
        return id(self)

    def _domain(self, ref: Any) -> virDomain:
        return virDomain(self, _obj=ref)

    def _domain_gone(self) -> None:
        """A virDomain was freed: the last reference of a closed handle closes the socket."""
        refs = self._domain_refs
        try:  # noqa: SIM105 - runs per freed domain; suppress() would build an object each time
            refs.pop()
        except IndexError:
            pass
        if self._conn is None and not refs:
            self._teardown()

    def _teardown(self) -> None:
        with self._teardown_lock:
            if self._torn_down:
                return
            self._torn_down = True
        conn = self._sock
        if conn.alive:
            try:  # noqa: SIM105 - once per close; suppress() builds an object each time
                conn.call(_CONNECT_CLOSE, b"")
            except libvirtError:
                pass
        if self._loop is not None:
            self._loop.discard(conn)
        conn.shutdown()

    def _handshake(self, flags: int, auth: Sequence[Any] | None) -> None:
        want_keepalive = self._loop is not None
        request = sasl_auth.request_for(self._target, auth)
        flow = flows.handshake(self._target.name, flags, want_keepalive, request)
        self._features = flows.drive(
            flow, {flows.SRC: self._run_unchecked}, {flows.SRC: self._run_together_unchecked}
        )
        if not self._target.uri:
            # Probed open: the daemon says which URI it chose (doRemoteOpen).
            uri = str(self._run_unchecked(ops.get_uri()))
            self._target = dataclasses.replace(self._target, uri=uri)
        conn = self._live("virConnectOpen")
        # Weak links back: the socket must not keep this object alive, so that
        # dropping the last reference closes the connection at once, as in
        # libvirt-python (a reference cycle would wait for the GC).
        owner = weakref.ref(self)

        def on_event(event: core.Event) -> None:
            live = owner()
            if live is not None:
                live._on_event(event)

        def on_close(reason: int) -> None:
            live = owner()
            if live is not None:
                live._on_close(reason)

        conn.on_event = on_event
        conn.on_close = on_close
        if self._loop is not None:
            self._loop.add(conn)

    def _run_unchecked(self, op: ops.Op) -> Any:
        conn = self._live("virConnectOpen")
        reply = conn.call(op.proc.number, op.payload())
        return op.convert(core.decode_reply(op.proc, reply))

    def _run_together_unchecked(self, calls: tuple[ops.Op, ...]) -> list[Any]:
        conn = self._live("virConnectOpen")
        out: list[Any] = []
        replies = conn.call_many([(op.proc.number, op.payload()) for op in calls])
        for op, reply in zip(calls, replies, strict=True):
            if isinstance(reply, libvirtError):
                out.append(reply)
                continue
            try:
                out.append(op.convert(core.decode_reply(op.proc, reply)))
            except libvirtError as exc:
                out.append(exc)
        return out

    # -- events (reader thread) -------------------------------------------

    def _on_event(self, event: core.Event) -> None:
        try:
            decoded = events.decode(event.procedure, event.payload)
        except (ValueError, libvirtError):
            return  # a malformed event is dropped, as libvirt's client does
        if decoded is None:
            deliver_object = self._object_event(event.procedure, event.payload)
            if deliver_object is not None:
                if self._loop is not None:
                    self._loop.post(deliver_object)
                else:
                    deliver_object()
            return
        reg = self._callbacks.get(decoded.callback_id)
        if reg is None or reg.event_id != decoded.event_id:
            return
        dom = virDomain(self, _obj=decoded.dom)

        def deliver() -> None:
            reg.cb(self, dom, *decoded.args, reg.opaque)

        if self._loop is not None:
            self._loop.post(deliver)
        else:
            deliver()

    def _on_close(self, reason: int) -> None:
        registered = self._close_cb
        if registered is None:
            return
        cb, opaque = registered

        def deliver() -> None:
            cb(self, reason, opaque)

        if self._loop is not None:
            self._loop.post(deliver)
        else:
            deliver()

    # -- lifetime -----------------------------------------------------------

    def close(self) -> int:
        """Drop the open's reference; returns how many remain (one per live domain).

        As in libvirt, domain objects keep the connection open after close();
        this handle itself is no longer usable.
        """
        if self._conn is None:
            raise _reported_error(errfactory.invalid_conn("virConnectClose"))
        self._conn = None
        left = len(self._domain_refs)
        if left == 0:
            self._teardown()
        return left

    def __enter__(self) -> virConnect:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_conn", None) is not None:
            with contextlib.suppress(Exception):
                self.close()

    def isAlive(self) -> int:
        return 1 if self._live("virConnectIsAlive").alive else 0

    def setKeepAlive(self, interval: int, count: int) -> int:
        conn = self._live("virConnectSetKeepAlive")
        if self._loop is None:
            raise _reported_error(
                errfactory.templated(
                    c.VIR_ERR_INTERNAL_ERROR,
                    c.VIR_FROM_REMOTE,
                    "the caller doesn't support keepalive protocol;"
                    " perhaps it's missing event loop implementation",
                )
            )
        if not self._features.keepalive:
            return 1  # the server does not speak keepalive
        conn.set_keepalive(interval, count)
        if self._loop is not None:
            self._loop.wake()
        return 0

    def registerCloseCallback(self, cb: Callable[..., Any], opaque: Any) -> int:
        self._live("virConnectRegisterCloseCallback")
        if self._close_cb is not None:
            raise _reported_error(
                errfactory.templated(
                    c.VIR_ERR_OPERATION_INVALID, c.VIR_FROM_REMOTE, "A close callback is already registered"
                )
            )
        if self._features.close_callback:
            self._run(ops.register_close_callback())
        self._close_cb = (cb, opaque)
        return 0

    def unregisterCloseCallback(self) -> None:
        self._live("virConnectUnregisterCloseCallback")
        if self._close_cb is None:
            raise _reported_error(
                errfactory.templated(
                    c.VIR_ERR_OPERATION_INVALID, c.VIR_FROM_REMOTE, "A different callback was requested"
                )
            )
        if self._features.close_callback:
            self._run(ops.unregister_close_callback())
        self._close_cb = None

    # -- streams --------------------------------------------------------------

    def newStream(self, flags: int = 0) -> virStream:
        """An unbound stream (nothing is sent); a download, upload or screenshot binds it."""
        self._live("virStreamNew")
        return virStream(self, flags=flags)

    # -- host ---------------------------------------------------------------

    def getType(self) -> str:
        return str(self._run(ops.get_type()))

    def getVersion(self) -> int:
        return int(self._run(ops.get_version()))

    def getLibVersion(self) -> int:
        return int(self._run(ops.get_lib_version()))

    def getHostname(self) -> str:
        return str(self._run(ops.get_hostname()))

    def getURI(self) -> str:
        self._live("virConnectGetURI")
        return self._target.uri  # answered locally, as libvirt does

    def getCapabilities(self) -> str:
        return str(self._run(ops.get_capabilities()))

    def getInfo(self) -> list[Any]:
        return list(self._run(ops.node_get_info()))

    def isSecure(self) -> int:
        # libvirt asks the server, then also requires a secure transport
        # (tls, unix or ssh), so an unencrypted hop never claims to be secure.
        secure = self._run(ops.is_secure())
        return 1 if secure and self._target.secure_transport else 0

    def isEncrypted(self) -> int:
        # virNetClientIsEncrypted: TLS, or any SASL session (libvirt does not look at its SSF).
        secure = self._run(ops.is_secure())
        encrypted = self._target.encrypted_transport or self._features.sasl
        return 1 if secure and encrypted else 0

    # -- domains ------------------------------------------------------------

    def lookupByName(self, name: str) -> virDomain:
        ret = self._send_args(_LOOKUP_BY_NAME, remote.remote_domain_lookup_by_name_args(name))
        return virDomain(self, ret.dom)

    def lookupByID(self, id: int) -> virDomain:
        return self._domain(self._run(ops.lookup_by_id(id)))

    def lookupByUUID(self, uuid: bytes) -> virDomain:
        if not isinstance(uuid, bytes | bytearray) or len(uuid) != 16:
            raise _invalid_uuid()
        return self._domain(self._run(ops.lookup_by_uuid(bytes(uuid))))

    def lookupByUUIDString(self, uuidstr: str) -> virDomain:
        import uuid  # here, not at the top: see surface.base.parse_uuid

        try:
            raw = uuid.UUID(uuidstr).bytes
        except (ValueError, TypeError, AttributeError):
            raise _invalid_uuid() from None
        return self._domain(self._run(ops.lookup_by_uuid(raw)))

    def listAllDomains(self, flags: int = 0) -> list[virDomain]:
        # need_results=1: libvirt-python wants the domains, not only their count
        args = remote.remote_connect_list_all_domains_args(1, flags)
        return [virDomain(self, d) for d in self._send_args(_LIST_ALL_DOMAINS, args, flags).domains]

    def listDomainsID(self) -> list[int]:
        # libvirt-python counts first, then asks for that many (libvirt-override.c).
        count = int(self._run(ops.num_of_domains()))
        return list(self._run(ops.list_domains_id(count))) if count else []

    def listDefinedDomains(self) -> list[str]:
        count = int(self._run(ops.num_of_defined_domains()))
        return list(self._run(ops.list_defined_domains(count))) if count else []

    def numOfDomains(self) -> int:
        return int(self._run(ops.num_of_domains()))

    def numOfDefinedDomains(self) -> int:
        return int(self._run(ops.num_of_defined_domains()))

    def defineXML(self, xml: str) -> virDomain:
        return self._domain(self._run(ops.define_xml(xml)))

    def defineXMLFlags(self, xml: str, flags: int = 0) -> virDomain:
        return self._domain(self._run(ops.define_xml_flags(xml, flags)))

    def createXML(self, xmlDesc: str, flags: int = 0) -> virDomain:
        return self._domain(self._run(ops.create_xml(xmlDesc, flags)))

    # -- events -------------------------------------------------------------

    def domainEventRegisterAny(
        self, dom: virDomain | None, eventID: int, cb: Callable[..., Any], opaque: _T
    ) -> int:
        self._live("virConnectDomainEventRegisterAny")
        if eventID not in events.PROC_BY_EVENT_ID:
            raise _reported_error(
                errfactory.templated(
                    c.VIR_ERR_INVALID_ARG,
                    c.VIR_FROM_DOMAIN,
                    "eventID in virConnectDomainEventRegisterAny must be less than "
                    f"{c.VIR_DOMAIN_EVENT_ID_LAST}",
                )
            )
        if self._loop is None:
            # libvirt queues events on an event-loop timer; without a loop the
            # registration fails before anything is sent.
            raise _reported_error(
                errfactory.templated(
                    c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_NONE, "could not initialize domain event timer"
                )
            )
        callback_id = int(self._run(ops.event_register_any(eventID, None if dom is None else dom._ref)))
        self._callbacks[callback_id] = _Registration(eventID, cb, opaque)
        self.domainEventCallbackID[callback_id] = opaque
        return callback_id

    def domainEventDeregisterAny(self, callbackID: int) -> None:
        self._live("virConnectDomainEventDeregisterAny")
        if callbackID not in self._callbacks:
            raise _reported_error(
                errfactory.templated(
                    c.VIR_ERR_INVALID_ARG, c.VIR_FROM_NONE, f"event callback id {callbackID} not registered"
                )
            )
        self._run(ops.event_deregister_any(callbackID))
        del self._callbacks[callbackID]
        self.domainEventCallbackID.pop(callbackID, None)

    # The older lifecycle-only API: many callbacks, one registration.

    def domainEventRegister(self, cb: Callable[..., Any], opaque: Any) -> None:
        callbacks: dict[Callable[..., Any], Any] | None = getattr(self, "domainEventCallbacks", None)
        if callbacks is not None:
            callbacks[cb] = opaque
            return
        self.domainEventCallbacks = {cb: opaque}
        try:
            self._legacy_id = self.domainEventRegisterAny(
                None, c.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._dispatch_legacy, None
            )
        except libvirtError:
            del self.domainEventCallbacks
            raise

    def _dispatch_legacy(
        self, conn: virConnect, dom: virDomain, event: int, detail: int, _opaque: Any
    ) -> None:
        for cb, opaque in list(getattr(self, "domainEventCallbacks", {}).items()):
            cb(self, dom, event, detail, opaque)

    def domainEventDeregister(self, cb: Callable[..., Any]) -> None:
        callbacks: dict[Callable[..., Any], Any] | None = getattr(self, "domainEventCallbacks", None)
        if callbacks is None or cb not in callbacks:
            return
        del callbacks[cb]
        if not callbacks:
            del self.domainEventCallbacks
            self.domainEventDeregisterAny(self._legacy_id)


def _invalid_uuid() -> libvirtError:
    # libvirt's own check, before any call: reported as its other errors are.
    return _reported_error(
        errfactory.make(
            c.VIR_ERR_INVALID_ARG,
            c.VIR_FROM_DOMAIN,
            "Invalid UUID",
            "virDomainLookupByUUIDString",
            "uuidstr",
            None,
            0,
            0,
        )
    )


def _reported_error(exc: libvirtError) -> libvirtError:
    report(exc)
    return exc


@surface_base.register
class virDomain(DomainOverrides, DomainStreams, generated.virDomainGenerated, surface_base.ObjectHandle):
    """A domain handle: name, UUID and id as the server gave them."""

    _conn: virConnect

    def __init__(self, conn: virConnect, _obj: Any = None) -> None:
        # ObjectHandle.__init__ written out for a connection's child: every
        # lookup, and every element of listAllDomains, makes one.
        if _obj is None:
            # libvirt-python: only the library creates objects, around a C pointer.
            raise Exception(f"Expected a wrapped C Object but got {type(_obj)}")
        self._parent = self._conn = conn
        self._ref = _obj
        # The encoding of _ref (the whole args of a call on the domain alone),
        # made on first use; _ref_encoded says which _ref it encodes, as
        # create() and destroy() replace _ref.
        self._ref_encoded: Any = None
        self._ref_bytes = b""
        conn._domain_refs.append(None)

    def __del__(self) -> None:
        # virConnect._domain_gone written out: one per freed domain.
        try:
            conn = self._conn
            refs = conn._domain_refs
            try:  # noqa: SIM105 - runs per freed domain; suppress() would build an object each time
                refs.pop()
            except IndexError:
                pass
            if conn._conn is None and not refs:
                conn._teardown()
        except Exception:  # never raise from a finalizer
            pass

    def _conn_run(self, op: ops.Op) -> Any:
        """One public call: its error goes to the registered error handler too."""
        conn = self._conn
        return _run(conn._sock, conn._readonly, op)

    def _getter(self, make: Callable[[Any], ops.Op]) -> Any:
        """Run a call whose args are the domain alone (`make` builds its Op, as
        for the async API's _getter); its converted reply.  The Op is built once
        per `make` for its procedure and converter: the payload is the domain's."""
        found = _GETTERS.get(make)
        if found is None:
            op = make(self._ref)
            found = _GETTERS[make] = (op.proc, op.convert)
        return found[1](self._call_on_ref(found[0]))

    def _call_on_ref(self, proc: Procedure) -> Any:
        """One public call of `proc`, whose args are the domain alone; its return
        struct.  The payload is the domain's encoding, made once per _ref; no Op."""
        _thread_error.err = None  # lasterror.reset(): every libvirt API call starts so
        conn = self._conn
        try:
            ref = self._ref
            if ref is not self._ref_encoded:
                self._ref_bytes = ref.to_bytes()
                self._ref_encoded = ref
            if conn._readonly:
                core.check_read_only(proc, 0)
            return core.decode_reply(proc, conn._sock.call(proc.number, self._ref_bytes))
        except libvirtError as exc:
            report(exc)
            raise

    def connect(self) -> virConnect:
        return self._conn

    # -- identity (answered locally, as libvirt does) -----------------------

    def name(self) -> str:
        return str(self._ref.name)

    def UUID(self) -> bytes:
        return bytes(self._ref.uuid)

    def UUIDString(self) -> str:
        return surface_base.uuid_string(self._ref.uuid)

    def ID(self) -> int:
        return int(self._ref.id)

    # -- state ----------------------------------------------------------------

    def info(self) -> list[int]:
        return ops.domain_info(self._call_on_ref(_DOMAIN_GET_INFO))

    def state(self, flags: int = 0) -> list[int]:
        return self._conn_run(ops.domain_get_state(self._ref, flags))  # type: ignore[no-any-return]

    def isActive(self) -> int:
        return int(self._getter(ops.domain_is_active))

    def isPersistent(self) -> int:
        return int(self._getter(ops.domain_is_persistent))

    def XMLDesc(self, flags: int = 0) -> str:
        return str(self._conn_run(ops.domain_get_xml_desc(self._ref, flags)))

    def OSType(self) -> str:
        return str(self._getter(ops.domain_get_os_type))

    def maxMemory(self) -> int:
        return int(self._getter(ops.domain_get_max_memory))

    def autostart(self) -> int:
        return int(self._getter(ops.domain_get_autostart))

    def setAutostart(self, autostart: int) -> int:
        self._conn_run(ops.domain_set_autostart(self._ref, int(autostart)))
        return 0

    # -- lifecycle --------------------------------------------------------------

    def _void(self, name: str) -> int:
        self._conn_run(ops.domain_simple(name, self._ref))
        return 0

    def _void_flags(self, name: str, flags: int) -> int:
        self._conn_run(ops.domain_with_flags(name, self._ref, flags))
        return 0

    def create(self) -> int:
        self._conn_run(ops.domain_simple("DOMAIN_CREATE", self._ref))
        # As libvirt's remote driver: fetch the id the running domain now has.
        self._ref = self._conn_run(ops.lookup_by_uuid(bytes(self._ref.uuid)))
        return 0

    def createWithFlags(self, flags: int = 0) -> int:
        new = self._conn_run(ops.domain_create_with_flags(self._ref, flags))
        if new is not None:
            self._ref = new  # the domain now has an id
        return 0

    def destroy(self) -> int:
        self._void("DOMAIN_DESTROY")
        # libvirt's remote driver marks the handle inactive (destroyFlags does not).
        self._ref = xdr.replace(self._ref, id=-1)
        return 0

    def destroyFlags(self, flags: int = 0) -> int:
        return self._void_flags("DOMAIN_DESTROY_FLAGS", flags)

    def shutdown(self) -> int:
        return self._void("DOMAIN_SHUTDOWN")

    def reboot(self, flags: int = 0) -> int:
        return self._void_flags("DOMAIN_REBOOT", flags)

    def suspend(self) -> int:
        return self._void("DOMAIN_SUSPEND")

    def resume(self) -> int:
        return self._void("DOMAIN_RESUME")

    def undefine(self) -> int:
        return self._void("DOMAIN_UNDEFINE")

    def undefineFlags(self, flags: int = 0) -> int:
        return self._void_flags("DOMAIN_UNDEFINE_FLAGS", flags)

    # -- jobs -------------------------------------------------------------------

    def jobInfo(self) -> list[int]:
        return self._getter(ops.domain_get_job_info)  # type: ignore[no-any-return]

    def jobStats(self, flags: int = 0) -> dict[str, Any]:
        return self._conn_run(ops.domain_get_job_stats(self._ref, flags))  # type: ignore[no-any-return]

    def abortJob(self) -> int:
        return self._void("DOMAIN_ABORT_JOB")

    def abortJobFlags(self, flags: int = 0) -> int:
        return self._void_flags("DOMAIN_ABORT_JOB_FLAGS", flags)

    def migrateStartPostCopy(self, flags: int = 0) -> int:
        self._conn_run(ops.domain_migrate_start_post_copy(self._ref, flags))
        return 0

    def migrateSetMaxDowntime(self, downtime: int, flags: int = 0) -> int:
        self._conn_run(ops.domain_migrate_set_max_downtime(self._ref, downtime, flags))
        return 0

    def migrateGetMaxDowntime(self, flags: int = 0) -> int | None:
        # libvirt-python 9.0 returns None instead of raising when this fails.
        try:
            return int(self._conn_run(ops.domain_migrate_get_max_downtime(self._ref, flags)))
        except libvirtError:
            return None

    def migrateSetMaxSpeed(self, bandwidth: int, flags: int = 0) -> int:
        self._conn_run(ops.domain_migrate_set_max_speed(self._ref, bandwidth, flags))
        return 0

    def migrateGetMaxSpeed(self, flags: int = 0) -> int:
        return int(self._conn_run(ops.domain_migrate_get_max_speed(self._ref, flags)))

    # -- migration (client-driven, see flows.py) ----------------------------------

    def _check_rw(self, api: str, *conns: virConnect | None) -> None:
        for cn in (self._conn, *conns):
            if cn is None:
                raise _reported_error(errfactory.invalid_conn(api))
            if cn._readonly:
                raise _reported_error(errfactory.read_only(api))

    def _drive(self, flow: flows.Flow, dconn: virConnect | None = None) -> Any:
        run: dict[str, Callable[[ops.Op], Any]] = {flows.SRC: self._call}
        if dconn is not None:
            run[flows.DST] = dconn._call
        try:
            return flows.drive(flow, run)
        except libvirtError as exc:
            report(exc)
            raise

    def migrate3(self, dconn: virConnect, params: dict[str, Any], flags: int = 0) -> virDomain:
        self._check_rw("virDomainMigrate3", dconn)
        return virDomain(dconn, _obj=self._drive(migration.migrate3(self._ref, params, flags), dconn))

    def migrate(
        self,
        dconn: virConnect,
        flags: int = 0,
        dname: str | None = None,
        uri: str | None = None,
        bandwidth: int = 0,
    ) -> virDomain:
        return self._migrate(dconn, None, flags, dname, uri, bandwidth, "virDomainMigrate")

    def migrate2(
        self,
        dconn: virConnect,
        dxml: str | None = None,
        flags: int = 0,
        dname: str | None = None,
        uri: str | None = None,
        bandwidth: int = 0,
    ) -> virDomain:
        return self._migrate(dconn, dxml, flags, dname, uri, bandwidth, "virDomainMigrate2")

    def _migrate(
        self,
        dconn: virConnect,
        dxml: str | None,
        flags: int,
        dname: str | None,
        uri: str | None,
        bandwidth: int,
        api: str,
    ) -> virDomain:
        self._check_rw(api, dconn)
        flow = migration.migrate(self._ref, flags, dname, uri, bandwidth, dxml, api, dconn.getURI())
        return virDomain(dconn, _obj=self._drive(flow, dconn))

    def migrateToURI3(self, dconnuri: str | None, params: dict[str, Any], flags: int = 0) -> int:
        self._check_rw("virDomainMigrateToURI3")
        flow = migration.migrate_to_uri(self._ref, dconnuri, params, flags, "virDomainMigrateToURI3")
        return int(self._drive(flow))

    def migrateToURI(self, duri: str, flags: int = 0, dname: str | None = None, bandwidth: int = 0) -> int:
        api = "virDomainMigrateToURI"
        self._check_rw(api)
        if duri is None:
            raise _reported_error(migration.invalid_arg(api, "duri", f"duri in {api} must not be NULL"))
        p2p = bool(flags & c.VIR_MIGRATE_PEER2PEER)
        params = migration.uri_params(dname, None if p2p else duri, None, bandwidth)
        return int(
            self._drive(migration.migrate_to_uri(self._ref, duri if p2p else None, params, flags, api))
        )

    def migrateToURI2(
        self,
        dconnuri: str | None = None,
        miguri: str | None = None,
        dxml: str | None = None,
        flags: int = 0,
        dname: str | None = None,
        bandwidth: int = 0,
    ) -> int:
        api = "virDomainMigrateToURI2"
        self._check_rw(api)
        params = migration.uri_params(dname, miguri, dxml, bandwidth)
        return int(self._drive(migration.migrate_to_uri(self._ref, dconnuri, params, flags, api)))


# -- opening ----------------------------------------------------------------------


def open_connection(name: str | None, readonly: bool, auth: Sequence[Any] | None = None) -> virConnect:
    lasterror.reset()  # virConnectOpen starts, as every API call, by forgetting the last error
    flags = c.VIR_CONNECT_RO if readonly else 0
    target = urimod.resolve(name, readonly=readonly)
    sock = transport.connect(target)
    conn = virConnect(target, SyncConnection(sock), readonly)
    try:
        conn._handshake(flags, auth)
    except BaseException:
        live = conn._conn
        conn._conn = None
        if live is not None:
            live.shutdown()
        raise
    return conn
