"""The async API both async shells share: the calls, the Domain handle, the flow runner.

The trio shell (aio.py) and the asyncio shell (asyncio_client.py) differ only
in how they wait and do I/O; each Connection class mixes in `AsyncAPI`, whose
methods are written once on top of the shell's `call(op)`.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from virtwire.client import aio_handle, aio_objects, errfactory, events, flows, migration, ops
from virtwire.client import uri as urimod
from virtwire.client.aio_generated import ConnectionCalls, DomainCalls
from virtwire.client.stream_aio import AsyncStream
from virtwire.protocol import xdr
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import remote

__all__ = ["AsyncAPI", "Domain", "DomainEventRecord", "ObjectEventRecord", "aio_objects", "drive"]


class Caller(Protocol):
    readonly: bool

    async def call(self, op: ops.Op) -> Any: ...


@dataclass(frozen=True, slots=True)
class DomainEventRecord:
    """One domain event: its ID, the domain, and the callback arguments libvirt-python passes."""

    event_id: int
    domain: Domain
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ObjectEventRecord:
    """One network, storage pool, node device or secret event: its family
    ("NETWORK", ...), its ID, the object, and libvirt-python's callback arguments."""

    family: str
    event_id: int
    obj: Any
    args: tuple[Any, ...]


def check_event_id(event_id: int) -> None:
    if event_id not in events.PROC_BY_EVENT_ID:
        raise errfactory.templated(
            c.VIR_ERR_INVALID_ARG,
            c.VIR_FROM_DOMAIN,
            f"eventID must be less than {c.VIR_DOMAIN_EVENT_ID_LAST}",
        )


class AsyncAPI(ConnectionCalls):
    """The calls of an async connection, on top of its shell's `call` and `new_stream`.

    libvirt-python's virConnect methods come from aio_generated.ConnectionCalls
    (same names, awaited); the snake_case names below are the first async API's.
    """

    target: urimod.Target
    readonly: bool
    features: flows.Features
    _shadow_conn: Any = None

    @property
    def _caller(self) -> AsyncAPI:
        return self

    def _shadow(self) -> Any:
        shadow = self._shadow_conn
        if shadow is None:
            shadow = self._shadow_conn = aio_handle.shadow_connect(self)
        return shadow

    # -- libvirt-python names the async connection writes itself -----------

    async def newStream(self, flags: int = 0) -> AsyncStream:
        """An unbound stream: a download, upload, screenshot or console call binds it."""
        return AsyncStream(self, None)  # type: ignore[arg-type]

    async def setKeepAlive(self, interval: int, count: int) -> int:
        """virConnectSetKeepAlive: 1 when the server does not speak keepalive."""
        if not self.features.keepalive:
            return 1
        self.set_keepalive(interval, count)
        return 0

    def set_keepalive(self, interval: float, count: int) -> None:
        raise NotImplementedError

    async def _bind(self, stream: AsyncStream, op: ops.Op, sparse: bool = False) -> Any:
        opened = await self.new_stream(op, sparse)
        stream.bind(opened)
        return opened.result

    async def call(self, op: ops.Op) -> Any:
        raise NotImplementedError

    async def new_stream(self, op: ops.Op, sparse: bool = False) -> AsyncStream:
        raise NotImplementedError

    # -- streams ----------------------------------------------------------

    async def storage_vol_lookup(self, pool: str, name: str) -> Any:
        """The wire handle of volume `name` in pool `pool` (for the stream calls)."""
        pool_ref = await self.call(ops.call("STORAGE_POOL_LOOKUP_BY_NAME", ops.field("pool"), name=pool))
        lookup = ops.call("STORAGE_VOL_LOOKUP_BY_NAME", ops.field("vol"), pool=pool_ref, name=name)
        return await self.call(lookup)

    async def storage_vol_download(
        self, vol: Any, offset: int = 0, length: int = 0, flags: int = 0
    ) -> AsyncStream:
        """virStorageVolDownload: a stream of the volume's bytes (holes kept with
        VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)."""
        op = ops.call("STORAGE_VOL_DOWNLOAD", vol=vol, offset=offset, length=length, flags=flags)
        return await self.new_stream(op, bool(flags & c.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM))

    async def storage_vol_upload(
        self, vol: Any, offset: int = 0, length: int = 0, flags: int = 0
    ) -> AsyncStream:
        """virStorageVolUpload: send the bytes into the stream, then finish it."""
        op = ops.call("STORAGE_VOL_UPLOAD", vol=vol, offset=offset, length=length, flags=flags)
        return await self.new_stream(op, bool(flags & c.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM))

    async def screenshot(self, dom: Domain, screen: int = 0, flags: int = 0) -> AsyncStream:
        """virDomainScreenshot: the image as a stream; its MIME type is the stream's `result`."""
        op = ops.call("DOMAIN_SCREENSHOT", ops.field("mime"), dom=dom.ref, screen=screen, flags=flags)
        return await self.new_stream(op)

    # -- host -----------------------------------------------------------

    async def get_type(self) -> str:
        return str(await self.call(ops.get_type()))

    async def get_version(self) -> int:
        return int(await self.call(ops.get_version()))

    async def get_lib_version(self) -> int:
        return int(await self.call(ops.get_lib_version()))

    async def get_hostname(self) -> str:
        return str(await self.call(ops.get_hostname()))

    async def get_capabilities(self) -> str:
        return str(await self.call(ops.get_capabilities()))

    async def get_info(self) -> list[Any]:
        return list(await self.call(ops.node_get_info()))

    def get_uri(self) -> str:
        return self.target.uri

    async def is_secure(self) -> bool:
        secure = await self.call(ops.is_secure())
        return bool(secure) and self.target.secure_transport

    async def is_encrypted(self) -> bool:
        secure = await self.call(ops.is_secure())
        # virNetClientIsEncrypted: libvirt's TLS, or any SASL session.
        return bool(secure) and (self.target.encrypted_transport or self.features.sasl)

    # -- domains --------------------------------------------------------

    async def lookup_by_name(self, name: str) -> Domain:
        return Domain(self, await self.call(ops.lookup_by_name(name)))

    async def lookup_by_id(self, dom_id: int) -> Domain:
        return Domain(self, await self.call(ops.lookup_by_id(dom_id)))

    async def lookup_by_uuid(self, uuid: bytes | str) -> Domain:
        raw = uuidlib.UUID(uuid).bytes if isinstance(uuid, str) else bytes(uuid)
        return Domain(self, await self.call(ops.lookup_by_uuid(raw)))

    async def list_all_domains(self, flags: int = 0) -> list[Domain]:
        return [Domain(self, d) for d in await self.call(ops.list_all_domains(flags))]

    async def list_domains_id(self) -> list[int]:
        return list(await self.call(ops.list_domains_id(remote.REMOTE_DOMAIN_LIST_MAX)))

    async def list_defined_domains(self) -> list[str]:
        return list(await self.call(ops.list_defined_domains(remote.REMOTE_DOMAIN_LIST_MAX)))

    async def num_of_domains(self) -> int:
        return int(await self.call(ops.num_of_domains()))

    async def num_of_defined_domains(self) -> int:
        return int(await self.call(ops.num_of_defined_domains()))

    async def define_xml(self, xml: str, flags: int = 0) -> Domain:
        op = ops.define_xml_flags(xml, flags) if flags else ops.define_xml(xml)
        return Domain(self, await self.call(op))

    async def create_xml(self, xml: str, flags: int = 0) -> Domain:
        return Domain(self, await self.call(ops.create_xml(xml, flags)))


@aio_handle.register("virDomain")
class Domain(DomainCalls, aio_handle.AsyncObject):
    """A domain handle on an async Connection: libvirt-python's virDomain methods,
    awaited (aio_generated.DomainCalls), and the first async API's names."""

    def __init__(self, conn: Any, ref: Any) -> None:
        aio_handle.AsyncObject.__init__(self, conn, ref)

    @property
    def conn(self) -> Any:
        return self._conn

    @property
    def ref(self) -> Any:
        return self._ref

    @ref.setter
    def ref(self, value: Any) -> None:
        self._ref = value

    @property
    def uuid(self) -> bytes:
        return bytes(self._ref.uuid)

    @property
    def uuid_string(self) -> str:
        return str(uuidlib.UUID(bytes=bytes(self._ref.uuid)))

    @property
    def id(self) -> int:
        return int(self._ref.id)

    def __repr__(self) -> str:
        return f"<Domain {self.name!r} id={self.id}>"

    # -- streams: bind a stream from newStream() ----------------------------

    async def screenshot(self, stream: AsyncStream, screen: int, flags: int = 0) -> str:
        op = ops.call("DOMAIN_SCREENSHOT", ops.field("mime"), dom=self._ref, screen=screen, flags=flags)
        return str(await self._conn._bind(stream, op))

    async def openConsole(self, dev_name: str | None, st: AsyncStream, flags: int = 0) -> int:
        op = ops.call("DOMAIN_OPEN_CONSOLE", dom=self._ref, dev_name=dev_name, flags=flags)
        await self._conn._bind(st, op)
        return 0

    async def openChannel(self, name: str | None, st: AsyncStream, flags: int = 0) -> int:
        await self._conn._bind(st, ops.call("DOMAIN_OPEN_CHANNEL", dom=self._ref, name=name, flags=flags))
        return 0

    async def _void(self, name: str, flags: int | None = None) -> None:
        op = (
            ops.domain_simple(name, self.ref)
            if flags is None
            else ops.domain_with_flags(name, self.ref, flags)
        )
        await self.conn.call(op)

    def _op(self, make: Callable[[Any], ops.Op]) -> ops.Op:
        """The Op of a call whose args are the domain alone, built and encoded once per reference."""
        ref = self._ref
        cache = self.__dict__.setdefault("_ops", {})
        cached = cache.get(make)
        if cached is None or cached[0] is not ref:
            cached = cache[make] = (ref, make(ref))
        return cached[1]  # type: ignore[no-any-return]

    async def _getter(self, make: Callable[[Any], ops.Op]) -> Any:
        return await self._conn.call(self._op(make))

    async def info(self) -> list[int]:
        return await self._conn.call(self._op(ops.domain_get_info))  # type: ignore[no-any-return]

    async def state(self, flags: int = 0) -> list[int]:
        return list(await self.conn.call(ops.domain_get_state(self.ref, flags)))

    async def is_active(self) -> bool:
        return bool(await self._getter(ops.domain_is_active))

    async def is_persistent(self) -> bool:
        return bool(await self._getter(ops.domain_is_persistent))

    async def xml_desc(self, flags: int = 0) -> str:
        return str(await self.conn.call(ops.domain_get_xml_desc(self.ref, flags)))

    async def os_type(self) -> str:
        return str(await self._getter(ops.domain_get_os_type))

    async def max_memory(self) -> int:
        return int(await self._getter(ops.domain_get_max_memory))

    async def autostart(self) -> bool:
        return bool(await self.conn.call(ops.domain_get_autostart(self.ref)))

    async def set_autostart(self, autostart: bool) -> None:
        await self.conn.call(ops.domain_set_autostart(self.ref, int(autostart)))

    async def create(self, flags: int = 0) -> int:
        """virDomainCreate as libvirt-python's create(); with flags virDomainCreateWithFlags."""
        if not flags:
            return int(await self._facade("create"))
        new = await self.conn.call(ops.domain_create_with_flags(self.ref, flags))
        if new is not None:
            self.ref = new  # the running domain's id
        return 0

    async def destroy(self, flags: int = 0) -> int:
        """virDomainDestroy as libvirt-python's destroy(); with flags virDomainDestroyFlags."""
        if not flags:
            return int(await self._facade("destroy"))
        await self._void("DOMAIN_DESTROY_FLAGS", flags)
        self.ref = xdr.replace(self.ref, id=-1)
        return 0

    async def shutdown(self) -> None:
        await self._void("DOMAIN_SHUTDOWN")

    async def reboot(self, flags: int = 0) -> None:
        await self._void("DOMAIN_REBOOT", flags)

    async def suspend(self) -> None:
        await self._void("DOMAIN_SUSPEND")

    async def resume(self) -> None:
        await self._void("DOMAIN_RESUME")

    async def undefine(self, flags: int = 0) -> None:
        await self._void("DOMAIN_UNDEFINE_FLAGS", flags) if flags else await self._void("DOMAIN_UNDEFINE")

    async def job_info(self) -> list[int]:
        return list(await self._getter(ops.domain_get_job_info))

    async def job_stats(self, flags: int = 0) -> dict[str, Any]:
        return dict(await self.conn.call(ops.domain_get_job_stats(self.ref, flags)))

    async def abort_job(self, flags: int = 0) -> None:
        await self._void("DOMAIN_ABORT_JOB_FLAGS", flags) if flags else await self._void("DOMAIN_ABORT_JOB")

    async def migrate_start_post_copy(self, flags: int = 0) -> None:
        await self.conn.call(ops.domain_migrate_start_post_copy(self.ref, flags))

    async def migrate_set_max_downtime(self, downtime: int, flags: int = 0) -> None:
        await self.conn.call(ops.domain_migrate_set_max_downtime(self.ref, downtime, flags))

    async def migrate_get_max_downtime(self, flags: int = 0) -> int:
        return int(await self.conn.call(ops.domain_migrate_get_max_downtime(self.ref, flags)))

    async def migrate_set_max_speed(self, bandwidth: int, flags: int = 0) -> None:
        await self.conn.call(ops.domain_migrate_set_max_speed(self.ref, bandwidth, flags))

    async def migrate_get_max_speed(self, flags: int = 0) -> int:
        return int(await self.conn.call(ops.domain_migrate_get_max_speed(self.ref, flags)))

    async def migrate3(self, dconn: Caller, params: Mapping[str, Any], flags: int = 0) -> Domain:
        for cn in (self.conn, dconn):
            if cn.readonly:
                raise errfactory.read_only("virDomainMigrate3")
        ref = await drive(
            migration.migrate3(self.ref, params, flags), {flows.SRC: self.conn, flows.DST: dconn}
        )
        return Domain(dconn, ref)

    async def migrate_to_uri3(self, dconnuri: str | None, params: Mapping[str, Any], flags: int = 0) -> None:
        if self.conn.readonly:
            raise errfactory.read_only("virDomainMigrateToURI3")
        flow = migration.migrate_to_uri(self.ref, dconnuri, params, flags, "virDomainMigrateToURI3")
        await drive(flow, {flows.SRC: self.conn})


class _Caller(Protocol):
    async def call(self, op: ops.Op) -> Any: ...


async def drive(flow: flows.Flow, conns: Mapping[str, _Caller]) -> Any:
    """Run a flow (see flows.py) with awaiting calls."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, flows.Together):
                step = flow.send(await _one_by_one(conns[step.target], step.ops))
                continue
            try:
                result = await conns[step.target].call(step.op)
            except libvirtError as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        return stop.value


async def _one_by_one(conn: _Caller, calls: tuple[ops.Op, ...]) -> list[Any]:
    """A flow's Together, one call after the other (each result or its libvirtError)."""
    out: list[Any] = []
    for op in calls:
        try:
            out.append(await conn.call(op))
        except libvirtError as exc:
            out.append(exc)
    return out


class Unchecked:
    """The handshake's runner: CONNECT_OPEN's RO flag is a request, not a local refusal."""

    def __init__(self, conn: Caller) -> None:
        self._conn = conn

    async def call(self, op: ops.Op) -> Any:
        readonly = self._conn.readonly
        self._conn.readonly = False
        try:
            return await self._conn.call(op)
        finally:
            self._conn.readonly = readonly
