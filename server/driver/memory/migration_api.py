"""Migration and job procedures of the in-memory driver.

The memory driver inherits this mixin (``class MemoryDriver(MigrationMixin, ...)``); the
calls made while a migration runs (job stats, abort, post-copy switch, tunables) are in
``migration_control.JobControlMixin``, which it builds on.
Its methods are named like the remote procedures they serve (lowercased, e.g.
``domain_migrate_begin3_params``) and are found by the table-driven dispatcher.

The five steps of a client-managed V3 migration with params, as libvirt's client
runs them (virDomainMigrateVersion3Full):

    source  BEGIN3_PARAMS    -> domain XML + cookie
    dest    PREPARE3_PARAMS  -> incoming domain (paused), migration port -> uri_out
    source  PERFORM3_PARAMS  -> the engine streams memory to uri_out; blocks to the end
    dest    FINISH3_PARAMS   -> resume (or clean up when cancelled) -> domain
    source  CONFIRM3_PARAMS  -> stop the source (or resume it when cancelled)

Peer-to-peer (VIR_MIGRATE_PEER2PEER) is one PERFORM3_PARAMS on the source, which
then plays the client's part towards the destination itself (``migration_p2p``).
Domain state changes and their lifecycle events follow libvirt's QEMU driver.
"""

from __future__ import annotations

import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import (
    MIGRATION_PARAM_TYPES,
    TYPE_NAMES,
    make_param,
    params_to_dict,
    params_to_list,
)

from ...errors import check_flags, report
from ...streams import attach
from ..base import ConnectionContext
from .core import FROM, dom_ref, operation_invalid
from .domxml import parse_domain_xml
from .guest import PAGE_SIZE, Guest, parse_fault, parse_workload
from .jobs import (
    Job,
    JobOperation,
    JobStatus,
)
from .migration import (
    LINK_ERRORS,
    MigrationCancelled,
    MigrationFailed,
    MigrationSettings,
    OutgoingMigration,
    Phase,
    SourceObserver,
    link_error,
)
from .migration_connect import LinkPlan, accept_incoming, open_outgoing
from .migration_control import JobControlMixin, invalid
from .migration_incoming import DestinationObserver, IncomingMigration
from .migration_link import MigrationLink
from .migration_options import checked, destination_plan, source_plan
from .migration_recovery import MigrationPhase, check_resume, failed_postcopy
from .migration_session import (
    COMPLETED_JOB,
    INCOMING,
    OUTGOING,
    SUPPORTED_FLAGS,
    Cookie,
    IncomingSession,
    OutgoingSession,
    apply_auto_converge,
    check_not_same_host,
    finished_job,
    host_uuid,
    listen_spec,
    migratable_xml,
    migration_settings,
    parse_migrate_uri,
    persist_xml,
)
from .migration_tunnel import TunnelDestinationLink, TunnelSink
from .model import Domain

log = logging.getLogger(__name__)

MIGRATION_FEATURES = frozenset(
    {
        DriverFeature.MIGRATION_P2P,
        DriverFeature.MIGRATION_V3,
        DriverFeature.MIGRATION_OFFLINE,
        DriverFeature.MIGRATION_PARAMS,
        DriverFeature.MIGRATE_CHANGE_PROTECTION,
    }
)
_MIGRATE_PARAM_LIMIT = 64
_MIGRATION_PORT_MIN = 49152  # start of QEMU hosts' default migration port range
_JOB_OUT = "migration out"
_JOB_IN = "migration in"


def _check_migrate_flags(flags: int, function: str) -> None:
    check_flags(flags, SUPPORTED_FLAGS, function)
    if flags & C.VIR_MIGRATE_POSTCOPY and (not flags & C.VIR_MIGRATE_LIVE or flags & C.VIR_MIGRATE_PAUSED):
        raise report(
            C.VIR_ERR_ARGUMENT_UNSUPPORTED,
            FROM,
            "post-copy migration is not supported with non-live or paused migration",
        )
    if flags & C.VIR_MIGRATE_POSTCOPY and flags & C.VIR_MIGRATE_TUNNELLED:
        raise report(
            C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, "post-copy is not supported with tunnelled migration"
        )
    if flags & C.VIR_MIGRATE_OFFLINE and not flags & C.VIR_MIGRATE_PERSIST_DEST:
        raise invalid("offline migration must be specified with the persistent flag set")
    if flags & C.VIR_MIGRATE_OFFLINE and flags & C.VIR_MIGRATE_TUNNELLED:
        raise invalid("tunnelled offline migration does not make sense")


def _params(raw: list[R.remote_typed_param]) -> dict[str, Any]:
    """The migration parameters, checked as QEMU hosts check them (virTypedParamsValidate)."""
    for name, kind, _ in params_to_list(raw, _MIGRATE_PARAM_LIMIT):
        expected = MIGRATION_PARAM_TYPES.get(name)
        if expected is None:
            raise report(C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, f"parameter '{name}' not supported")
        if kind != expected:
            raise report(
                C.VIR_ERR_INVALID_ARG,
                FROM,
                f"invalid type '{TYPE_NAMES.get(kind, kind)}' for parameter '{name}', "
                f"expected '{TYPE_NAMES[expected]}'",
            )
    params: dict[str, Any] = dict(params_to_dict(raw, _MIGRATE_PARAM_LIMIT))
    # The compression parameter repeats, one method each: keep them all.
    listed = params_to_list(raw, _MIGRATE_PARAM_LIMIT)
    methods = [value for name, _, value in listed if name == C.VIR_MIGRATE_PARAM_COMPRESSION]
    if methods:
        params[C.VIR_MIGRATE_PARAM_COMPRESSION] = methods
    return params


def _string_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) and value else None


def _renamed(xml: str, name: str | None) -> str:
    if not name:
        return xml
    root = ET.fromstring(xml.encode("utf-8", "surrogateescape"))
    element = root.find("name")
    if element is None or element.text == name:
        return xml
    element.text = name
    return ET.tostring(root, encoding="unicode")


class MigrationMixin(JobControlMixin):
    """Live migration (pre-copy and post-copy), job info/stats and job abort."""

    # A nursery for incoming migrations, which outlive the PREPARE call; the server
    # may provide one. Without it they run as trio system tasks (see _spawn).
    nursery: trio.Nursery | None = None
    # The host's PKI (--pki-dir): TLS migration uses it as QEMU hosts use /etc/pki/qemu.
    migration_pki_dir: Path | None = None

    def features(self) -> frozenset[int]:
        return super().features() | MIGRATION_FEATURES

    # --- shared helpers ---------------------------------------------------------------

    def _cookie(self) -> Cookie:
        return Cookie(self.hostname, host_uuid(self.hostname))

    def _guest(self, dom: Domain) -> Guest:
        """The domain's simulated guest, made on first use; runs while the domain runs."""
        pages = dom.memory_kib * 1024 // PAGE_SIZE
        guest = dom.guest
        if not isinstance(guest, Guest) or guest.memory.total_pages != pages:
            try:
                workload = parse_workload(dom.tree, pages)
            except ValueError as exc:
                raise report(C.VIR_ERR_XML_DETAIL, FROM, str(exc)) from None
            guest = Guest(pages, workload)
            dom.guest = guest
        now = trio.current_time()
        if dom.state == C.VIR_DOMAIN_RUNNING:
            guest.resume(now)
        else:
            guest.pause(now)
        return guest

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(fn, *args)
        else:
            trio.lowlevel.spawn_system_task(fn, *args)

    def _job_started(self, job: Job) -> Job:
        if self.job_observer is not None:
            self.job_observer.migration_started(job, _direction(job))
        return job

    def _job_finished(self, dom: Domain, job: Job, status: JobStatus, errmsg: str | None = None) -> None:
        job.finish(status, trio.current_time(), errmsg)
        if self.job_observer is not None:
            seconds = job.ended - job.started if job.ended is not None else 0.0
            data = job.counters.memory_processed
            self.job_observer.migration_finished(job, _direction(job), status.value, data, seconds)
        dom.extra[COMPLETED_JOB] = job
        if dom.job is job:
            dom.job = None

    def stop_domain(self, dom: Domain, *, reason: int, detail: int, emit: bool = True) -> None:
        """A half of a failed post-copy migration that stops takes its job with it."""
        job = dom.job
        if isinstance(job, Job) and job.status is JobStatus.POSTCOPY_PAUSED:
            dom.extra.pop(OUTGOING, None)
            incoming = dom.extra.pop(INCOMING, None)
            if isinstance(incoming, IncomingSession):
                incoming.cancel_scope.cancel()  # a recovery's listener, if one waits
            self._job_finished(dom, job, JobStatus.FAILED, "domain is not running")
        super().stop_domain(dom, reason=reason, detail=detail, emit=emit)

    def _emit_job_completed(self, dom: Domain, job: Job) -> None:
        params = [make_param(name, kind, value) for name, kind, value in job.to_params(trio.current_time())]
        self.events.job_completed(dom_ref(dom), params)

    # --- source: BEGIN ----------------------------------------------------------------

    async def domain_migrate_begin3_params(
        self, args: R.remote_domain_migrate_begin3_params_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_begin3_params_ret:
        _check_migrate_flags(args.flags, "qemuDomainMigrateBegin3Params")
        _params(args.params)
        dom = self.lookup(args.dom)
        if args.flags & C.VIR_MIGRATE_POSTCOPY_RESUME:
            session = self._outgoing_to_resume(dom, args.flags, MigrationPhase.POSTCOPY_FAILED)
            session.phase = MigrationPhase.BEGIN_RESUME
            begun: list[bytes] = ctx.data.setdefault(OUTGOING, [])
            begun.append(dom.uuid)
            return R.remote_domain_migrate_begin3_params_ret(
                cookie_out=self._cookie().encode(), xml=migratable_xml(dom.xml(), dom.tree)
            )
        if args.flags & C.VIR_MIGRATE_OFFLINE:
            if not dom.persistent:
                raise invalid("cannot migrate a transient domain offline")
            xml = migratable_xml(dom.xml(inactive=True), dom.tree)
        else:
            if not dom.active:
                raise invalid("domain is not running")
            xml = migratable_xml(dom.xml(), dom.tree)
        if OUTGOING in dom.extra or INCOMING in dom.extra:
            raise invalid(f"another migration job is already running for domain '{dom.name}'")
        return R.remote_domain_migrate_begin3_params_ret(cookie_out=self._cookie().encode(), xml=xml)

    # --- destination: PREPARE ---------------------------------------------------------

    async def domain_migrate_prepare3_params(
        self, args: R.remote_domain_migrate_prepare3_params_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_prepare3_params_ret:
        _check_migrate_flags(args.flags, "qemuDomainMigratePrepare3Params")
        params = _params(args.params)
        if args.flags & C.VIR_MIGRATE_TUNNELLED:
            raise report(
                C.VIR_ERR_INTERNAL_ERROR, FROM, "Tunnelled migration requested but invalid RPC method called"
            )
        spec, channels = checked(params, args.flags)
        check_not_same_host(self._cookie(), Cookie.decode(args.cookie_in))
        xml = _string_param(params, C.VIR_MIGRATE_PARAM_DEST_XML)
        if xml is None:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, "no domain XML passed")
        xml = _renamed(xml, _string_param(params, C.VIR_MIGRATE_PARAM_DEST_NAME))
        if args.flags & C.VIR_MIGRATE_POSTCOPY_RESUME:
            uri = await self._prepare_resume(parse_domain_xml(xml).name, params, args.flags, ctx)
            cookie = self._cookie().encode()
            return R.remote_domain_migrate_prepare3_params_ret(cookie_out=cookie, uri_out=uri)
        plan = destination_plan(spec, channels, args.flags, self.migration_pki_dir)
        offline = bool(args.flags & C.VIR_MIGRATE_OFFLINE)
        parsed = parse_domain_xml(xml)
        new_domain = parsed.name not in self._by_name
        dom = self._incoming_domain(xml, offline)
        host, port = self._listen_spec(params)
        if offline:
            # libvirt's client insists on a URI even though nothing will connect
            # (QEMU hosts reserve a port from their migration range all the same).
            dom.extra[INCOMING] = IncomingSession(
                None, args.flags, None, None, owner_conn=ctx.conn_id, new_domain=new_domain
            )
            _prepared_by(ctx).append(dom.uuid)
            return R.remote_domain_migrate_prepare3_params_ret(
                cookie_out=self._cookie().encode(), uri_out=f"tcp://{host}:{port or _MIGRATION_PORT_MIN}"
            )
        try:
            listener, uri = await _listen(host, port)
        except BaseException:
            self._discard_incoming(dom)
            raise
        session = self._start_incoming(
            dom, args.flags, ctx, new_domain, listener=listener, uri=uri, plan=plan
        )
        self._spawn(self._run_incoming, dom, session)
        return R.remote_domain_migrate_prepare3_params_ret(cookie_out=self._cookie().encode(), uri_out=uri)

    async def domain_migrate_prepare_tunnel3_params(
        self, args: R.remote_domain_migrate_prepare_tunnel3_params_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_prepare_tunnel3_params_ret:
        """The destination of a tunnelled migration: the call's stream carries the pages."""
        _check_migrate_flags(args.flags, "qemuDomainMigratePrepareTunnel3Params")
        params = _params(args.params)
        if not args.flags & C.VIR_MIGRATE_TUNNELLED:
            raise report(C.VIR_ERR_INTERNAL_ERROR, FROM, "PrepareTunnel called but no TUNNELLED flag set")
        checked(params, args.flags)
        check_not_same_host(self._cookie(), Cookie.decode(args.cookie_in))
        xml = _string_param(params, C.VIR_MIGRATE_PARAM_DEST_XML)
        if xml is None:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, "no domain XML passed")
        xml = _renamed(xml, _string_param(params, C.VIR_MIGRATE_PARAM_DEST_NAME))
        new_domain = parse_domain_xml(xml).name not in self._by_name
        dom = self._incoming_domain(xml, False)
        link = TunnelDestinationLink()
        session = self._start_incoming(dom, args.flags, ctx, new_domain, tunnel=link)
        attach(TunnelSink(link, session.done, lambda: session.failure))
        self._spawn(self._run_incoming, dom, session)
        return R.remote_domain_migrate_prepare_tunnel3_params_ret(cookie_out=self._cookie().encode())

    def _start_incoming(
        self,
        dom: Domain,
        flags: int,
        ctx: ConnectionContext,
        new_domain: bool,
        *,
        listener: trio.SocketListener | None = None,
        uri: str | None = None,
        plan: LinkPlan | None = None,
        tunnel: MigrationLink | None = None,
    ) -> IncomingSession:
        """The incoming engine, its job and session; the caller spawns ``_run_incoming``."""
        pages = dom.memory_kib * 1024 // PAGE_SIZE
        guest = Guest.empty(pages, parse_workload(dom.tree, pages))
        dom.guest = guest
        job = self._job_started(Job(JobOperation.MIGRATION_IN, trio.current_time()))
        dom.job = job
        engine = IncomingMigration(guest, job, _DestinationEvents(self, dom))
        session = IncomingSession(
            engine,
            flags,
            listener,
            uri,
            owner_conn=ctx.conn_id,
            new_domain=new_domain,
            link_plan=plan or LinkPlan(),
            tunnel=tunnel,
        )
        dom.extra[INCOMING] = session
        _prepared_by(ctx).append(dom.uuid)
        return session

    @staticmethod
    def _listen_spec(params: dict[str, Any]) -> tuple[str, int]:
        return listen_spec(
            _string_param(params, C.VIR_MIGRATE_PARAM_URI),
            _string_param(params, C.VIR_MIGRATE_PARAM_LISTEN_ADDRESS),
        )

    async def _prepare_resume(
        self, name: str, params: dict[str, Any], flags: int, ctx: ConnectionContext
    ) -> str:
        """Destination of a recovery: listen again for the same incoming migration."""
        dom = self._by_name.get(name)
        if dom is None:
            raise report(C.VIR_ERR_NO_DOMAIN, FROM, f"no domain with matching name '{name}'")
        session = dom.extra.get(INCOMING)
        incoming = session if isinstance(session, IncomingSession) and session.engine is not None else None
        check_resume(
            dom,
            incoming.phase if incoming is not None else None,
            flags,
            incoming=True,
            expected=MigrationPhase.POSTCOPY_FAILED,
            monitored=incoming is not None and not incoming.done.is_set(),
        )
        assert incoming is not None
        # A recovery is one connection, TLS when it asks for it (as the migration did).
        plan = destination_plan(None, 0, flags, self.migration_pki_dir)
        host, port = self._listen_spec(params)
        listener, uri = await _listen(host, port)
        incoming.phase = MigrationPhase.PREPARE_RESUME
        incoming.listener = listener
        incoming.uri = uri
        incoming.owner_conn = ctx.conn_id
        incoming.cancel_scope = trio.CancelScope()
        incoming.done = trio.Event()
        incoming.failure = None
        incoming.connected = False
        incoming.link_plan = plan
        _prepared_by(ctx).append(dom.uuid)
        self._spawn(self._run_incoming, dom, incoming)
        return uri

    def _outgoing_to_resume(self, dom: Domain, flags: int, expected: MigrationPhase) -> OutgoingSession:
        """The source's failed post-copy migration, if a recovery step may run on it now."""
        session = dom.extra.get(OUTGOING)
        outgoing = session if isinstance(session, OutgoingSession) else None
        job = dom.job
        check_resume(
            dom,
            outgoing.phase if outgoing is not None else None,
            flags,
            incoming=False,
            expected=expected,
            # Pre-copy (its job not switched yet): Perform still watches it.
            monitored=outgoing is not None
            and outgoing.phase is MigrationPhase.NONE
            and isinstance(job, Job)
            and job.status is JobStatus.ACTIVE,
        )
        assert outgoing is not None
        if expected < MigrationPhase.CONFIRM_RESUME and isinstance(job, Job) and job.status.running:
            raise invalid("QEMU reports migration is still running")
        return outgoing

    def _incoming_domain(self, xml: str, offline: bool) -> Domain:
        """The domain that receives the guest: new and transient, paused for migration."""
        parsed = parse_domain_xml(xml)
        existing = self._by_uuid.get(parsed.uuid) if parsed.uuid is not None else None
        if existing is None:
            existing = self._by_name.get(parsed.name)
        if existing is not None:
            if existing.uuid != parsed.uuid:
                raise report(
                    C.VIR_ERR_OPERATION_FAILED,
                    C.VIR_FROM_DOMAIN,
                    f"domain '{parsed.name}' already exists with uuid {existing.uuid_string}",
                )
            if existing.name != parsed.name:
                raise report(
                    C.VIR_ERR_OPERATION_FAILED,
                    C.VIR_FROM_DOMAIN,
                    f"domain '{existing.name}' is already defined with uuid {existing.uuid_string}",
                )
            if existing.active:
                raise operation_invalid(f"domain '{existing.name}' is already active", C.VIR_FROM_DOMAIN)
            if INCOMING in existing.extra:
                raise operation_invalid(
                    f"domain '{existing.name}' is already being started", C.VIR_FROM_DOMAIN
                )
        if offline:
            dom = existing or self.define_domain(xml, persistent=False, emit=False)
            return dom
        dom = self.define_domain(xml, persistent=False, emit=False, save=False)
        self.start_domain(
            dom,
            state=C.VIR_DOMAIN_PAUSED,
            reason=C.VIR_DOMAIN_PAUSED_MIGRATION,
            detail=C.VIR_DOMAIN_EVENT_STARTED_MIGRATED,
        )
        return dom

    def _discard_incoming(self, dom: Domain) -> None:
        dom.extra.pop(INCOMING, None)
        if dom.active:
            self.stop_domain(
                dom, reason=C.VIR_DOMAIN_SHUTOFF_FAILED, detail=C.VIR_DOMAIN_EVENT_STOPPED_FAILED
            )
        elif not dom.persistent:
            self.remove_domain(dom)

    async def _run_incoming(self, dom: Domain, session: IncomingSession) -> None:
        assert session.engine is not None
        resuming = session.phase is not MigrationPhase.NONE
        try:
            with session.cancel_scope:
                async with self._incoming_link(session) as link:
                    if resuming:
                        await session.engine.resume(link)
                    else:
                        await session.engine.run(link)
        except LINK_ERRORS as exc:  # the link broke before the engine ran
            session.failure = link_error(exc, "read from")
        except MigrationFailed as exc:
            session.failure = exc.reason
            if exc.postcopy:
                self._incoming_postcopy_failed(dom)
        except Exception as exc:  # a system task must never raise
            log.exception("incoming migration of %s crashed", dom.name)
            session.failure = str(exc) or type(exc).__name__
        finally:
            if session.listener is not None:
                with trio.CancelScope(shield=True):
                    await session.listener.aclose()
            if session.failure is None and session.cancel_scope.cancelled_caught:
                session.failure = "migration canceled"
            session.done.set()

    @contextlib.asynccontextmanager
    async def _incoming_link(self, session: IncomingSession) -> AsyncIterator[MigrationLink]:
        """The link the source opens, as the Prepare step planned it."""
        if session.tunnel is not None:
            session.connected = True
            async with session.tunnel as tunnel:
                yield tunnel
            return
        assert session.listener is not None
        async with accept_incoming(session.listener, session.link_plan) as link:
            session.connected = True
            await session.listener.aclose()  # every connection of the link is in
            yield link

    def _incoming_postcopy_failed(self, dom: Domain) -> None:
        """The guest runs here but misses pages only the source has (qemuMigrationDstPostcopyFailed)."""
        job = dom.job
        if isinstance(job, Job):
            job.status = JobStatus.POSTCOPY_PAUSED
        if failed_postcopy(dom):
            return
        self.set_state(
            dom,
            C.VIR_DOMAIN_RUNNING,
            C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED,
            C.VIR_DOMAIN_EVENT_RESUMED,
            C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED,
        )

    # --- source: PERFORM --------------------------------------------------------------

    async def domain_migrate_perform3_params(
        self, args: R.remote_domain_migrate_perform3_params_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_perform3_params_ret:
        _check_migrate_flags(args.flags, "qemuDomainMigratePerform3Params")
        params = _params(args.params)
        dom = self.lookup(args.dom)
        apply_auto_converge(MigrationSettings(), params, args.flags)  # refused before anything starts
        checked(params, args.flags)  # so is the link's part, before a p2p source calls the destination
        # libvirt runs a tunnelled migration peer-to-peer, flag or not (qemuMigrationSrcPerform).
        if args.flags & (C.VIR_MIGRATE_PEER2PEER | C.VIR_MIGRATE_TUNNELLED):
            from .migration_p2p import perform_peer2peer

            await perform_peer2peer(self, dom, args.dconnuri, params, args.flags)
            return R.remote_domain_migrate_perform3_params_ret(cookie_out=b"")
        if args.flags & C.VIR_MIGRATE_OFFLINE:
            return R.remote_domain_migrate_perform3_params_ret(cookie_out=self._cookie().encode())
        uri = _string_param(params, C.VIR_MIGRATE_PARAM_URI)
        if uri is None:
            raise report(C.VIR_ERR_INVALID_ARG, FROM, "migration URI is missing")
        persistent = persist_xml(params, args.flags)
        await self._migrate_to(dom, uri, params, args.flags)
        cookie = self._cookie()
        return R.remote_domain_migrate_perform3_params_ret(
            cookie_out=Cookie(cookie.hostname, cookie.hostuuid, persistent).encode()
        )

    async def _migrate_to(
        self,
        dom: Domain,
        uri: str | None,
        params: dict[str, Any],
        flags: int,
        tunnel: MigrationLink | None = None,
    ) -> None:
        """Stream ``dom`` to a destination that listens on ``uri`` (or into ``tunnel``);
        returns when it has it all."""
        if flags & C.VIR_MIGRATE_POSTCOPY_RESUME:
            assert uri is not None  # post-copy is never tunnelled
            await self._resume_to(dom, uri, params, flags)
            return
        if not dom.active:
            raise invalid("domain is not running")
        if dom.job is not None or OUTGOING in dom.extra:
            raise invalid(f"another migration job is already running for domain '{dom.name}'")
        spec, channels = checked(params, flags)
        if tunnel is None:
            assert uri is not None
            host, port = parse_migrate_uri(uri)
            plan = source_plan(spec, channels, flags, params, host, self.migration_pki_dir, dom.tree)
            opener = open_outgoing(host, port, plan)
        else:
            opener = _given(tunnel)
        settings = migration_settings(dom.extra, flags)
        apply_auto_converge(settings, params, flags)
        settings.compression = spec
        if spec is not None and spec.xbzrle_cache is not None:
            settings.compression_cache_bytes = spec.xbzrle_cache
        bandwidth = params.get(C.VIR_MIGRATE_PARAM_BANDWIDTH)
        if isinstance(bandwidth, int) and bandwidth > 0:
            settings.bandwidth_mib_s = bandwidth
        postcopy_bandwidth = params.get(C.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY)
        if isinstance(postcopy_bandwidth, int) and postcopy_bandwidth > 0:
            settings.postcopy_bandwidth_mib_s = postcopy_bandwidth
        settings.fault = parse_fault(dom.tree)
        guest = self._guest(dom)
        job = self._job_started(Job(JobOperation.MIGRATION_OUT, trio.current_time()))
        dom.job = job
        engine = OutgoingMigration(guest, job, settings, _SourceEvents(self, dom))
        dom.extra[OUTGOING] = OutgoingSession(engine, flags)
        try:
            await self._run_outgoing(dom, job, engine, opener)
        finally:
            if job.status.running:
                # Cancelled (the calling client went away): end the job as a failed
                # migration would, and leave the domain as libvirt leaves it.
                self._interrupted(dom, job, engine)

    async def _run_outgoing(
        self,
        dom: Domain,
        job: Job,
        engine: OutgoingMigration,
        opener: contextlib.AbstractAsyncContextManager[MigrationLink],
    ) -> None:
        try:
            async with opener as link:
                await engine.run(link)
        except MigrationCancelled:
            self._job_finished(dom, job, JobStatus.CANCELLED)
            dom.extra.pop(OUTGOING, None)
            raise report(C.VIR_ERR_OPERATION_ABORTED, FROM, f"job '{_JOB_OUT}' canceled by client") from None
        except MigrationFailed as exc:
            message = f"job '{_JOB_OUT}' failed: {exc.reason}"
            if exc.postcopy:
                self._outgoing_postcopy_failed(dom, job)
            else:
                self._job_finished(dom, job, JobStatus.FAILED, exc.reason)
                dom.extra.pop(OUTGOING, None)
                self._source_after_failure(dom)
            raise report(C.VIR_ERR_OPERATION_FAILED, FROM, message) from None
        self._job_finished(dom, job, JobStatus.COMPLETED)

    async def _resume_to(self, dom: Domain, uri: str, params: dict[str, Any], flags: int) -> None:
        """Recover a failed post-copy migration towards ``uri``; returns when the destination has it all."""
        session = self._outgoing_to_resume(dom, flags, MigrationPhase.BEGIN_RESUME)
        job = dom.job
        assert isinstance(job, Job)
        session.phase = MigrationPhase.PERFORM_RESUME
        engine = session.engine
        postcopy_bandwidth = params.get(C.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY)
        if isinstance(postcopy_bandwidth, int) and postcopy_bandwidth > 0:
            engine.set_bandwidth(postcopy_bandwidth, postcopy=True)
        host, port = parse_migrate_uri(uri)
        try:
            plan = source_plan(None, 0, flags, params, host, self.migration_pki_dir, dom.tree)
            async with open_outgoing(host, port, plan) as link:
                await engine.resume(link)
        except MigrationFailed as exc:
            self._outgoing_postcopy_failed(dom, job)
            raise report(C.VIR_ERR_OPERATION_FAILED, FROM, f"job '{_JOB_OUT}' failed: {exc.reason}") from None
        except BaseException:
            self._outgoing_postcopy_failed(dom, job)
            raise
        self._job_finished(dom, job, JobStatus.COMPLETED)

    def _interrupted(self, dom: Domain, job: Job, engine: OutgoingMigration) -> None:
        if engine.phase is Phase.POSTCOPY:
            self._outgoing_postcopy_failed(dom, job)
            return
        self._job_finished(dom, job, JobStatus.FAILED, "migration interrupted: client disconnected")
        dom.extra.pop(OUTGOING, None)
        self._source_after_failure(dom)

    def _outgoing_postcopy_failed(self, dom: Domain, job: Job) -> None:
        """Neither host has the whole guest: keep it paused here, job and all, for recovery."""
        job.status = JobStatus.POSTCOPY_PAUSED
        session = dom.extra.get(OUTGOING)
        if isinstance(session, OutgoingSession):
            session.phase = MigrationPhase.POSTCOPY_FAILED
        if failed_postcopy(dom) or not dom.active:
            return
        self.set_state(
            dom,
            C.VIR_DOMAIN_PAUSED,
            C.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED,
            C.VIR_DOMAIN_EVENT_SUSPENDED,
            C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED,
        )

    def _source_after_failure(self, dom: Domain) -> None:
        """The source guest once its pre-copy migration failed."""
        if dom.state == C.VIR_DOMAIN_PAUSED and dom.reason == C.VIR_DOMAIN_PAUSED_MIGRATION:
            self._resume_after_failed_switchover(dom)

    def _resume_after_failed_switchover(self, dom: Domain) -> None:
        guest = dom.guest
        if isinstance(guest, Guest):
            guest.resume(trio.current_time())
        self.set_state(
            dom,
            C.VIR_DOMAIN_RUNNING,
            C.VIR_DOMAIN_RUNNING_MIGRATION_CANCELED,
            C.VIR_DOMAIN_EVENT_RESUMED,
            C.VIR_DOMAIN_EVENT_RESUMED_MIGRATED,
        )

    # --- destination: FINISH ----------------------------------------------------------

    async def domain_migrate_finish3_params(
        self, args: R.remote_domain_migrate_finish3_params_args, ctx: ConnectionContext
    ) -> R.remote_domain_migrate_finish3_params_ret:
        _check_migrate_flags(args.flags, "qemuDomainMigrateFinish3Params")
        params = _params(args.params)
        name = _string_param(params, C.VIR_MIGRATE_PARAM_DEST_NAME)
        dom = self._by_name.get(name) if name else None
        session = dom.extra.get(INCOMING) if dom is not None else None
        if dom is None or not isinstance(session, IncomingSession):
            raise report(C.VIR_ERR_NO_DOMAIN, FROM, f"no domain with matching name '{name}'")
        if args.flags & C.VIR_MIGRATE_POSTCOPY_RESUME:
            phase = session.phase
            check_resume(dom, phase, args.flags, incoming=True, expected=MigrationPhase.PREPARE_RESUME)
            session.phase = MigrationPhase.FINISH_RESUME
        elif session.phase is not MigrationPhase.NONE:
            raise invalid(f"domain '{dom.name}' is not processing incoming migration")
        sent = Cookie.decode(args.cookie_in)
        persistent = sent.persistent if sent is not None else None
        cancelled = bool(args.cancelled)
        moved = await self._finish_incoming(dom, session, cancelled=cancelled, persistent=persistent)
        cookie = self._cookie().encode()
        return R.remote_domain_migrate_finish3_params_ret(dom=dom_ref(moved), cookie_out=cookie)

    async def _finish_incoming(
        self, dom: Domain, session: IncomingSession, *, cancelled: bool, persistent: str | None = None
    ) -> Domain:
        """End an incoming migration: the domain runs here now, or it is cleaned up.

        ``persistent``: the definition to keep with VIR_MIGRATE_PERSIST_DEST (PERSIST_XML).
        """
        engine = session.engine
        if engine is None:  # offline: only the definition moves
            dom.extra.pop(INCOMING, None)
            if cancelled:
                self._discard_incoming(dom)
                raise report(C.VIR_ERR_OPERATION_FAILED, FROM, f"job '{_JOB_IN}' failed: canceled")
            dom.persistent = True
            self.save(dom)
            self.events.lifecycle(dom_ref(dom), C.VIR_DOMAIN_EVENT_DEFINED, C.VIR_DOMAIN_EVENT_DEFINED_ADDED)
            return dom
        if cancelled and not session.done.is_set():
            if engine.phase is Phase.POSTCOPY and session.connected:
                # Too late to cancel: the guest runs here. Wait for the source's verdict.
                await session.done.wait()
            else:
                session.cancel_scope.cancel()
        await session.done.wait()
        job = dom.job if isinstance(dom.job, Job) else Job(JobOperation.MIGRATION_IN, trio.current_time())
        failure = session.failure or ("migration canceled" if cancelled else None)
        if failure is not None:
            if engine.phase is Phase.POSTCOPY or dom.reason == C.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED:
                # The only running copy of the guest: keep it (RUNNING/POSTCOPY_FAILED),
                # its job and session waiting for a recovery.
                self._incoming_postcopy_failed(dom)
                session.phase = MigrationPhase.POSTCOPY_FAILED
                raise report(C.VIR_ERR_OPERATION_FAILED, FROM, f"job '{_JOB_IN}' failed: {failure}")
            dom.extra.pop(INCOMING, None)
            dom.job = None
            self._discard_incoming(dom)
            raise report(C.VIR_ERR_OPERATION_FAILED, FROM, f"job '{_JOB_IN}' failed: {failure}")
        dom.extra.pop(INCOMING, None)
        postcopy = engine.phase is Phase.DONE and dom.reason == C.VIR_DOMAIN_RUNNING_POSTCOPY
        self._job_finished(dom, job, JobStatus.COMPLETED)
        if postcopy:
            dom.extra.pop(COMPLETED_JOB, None)  # post-copy stats exist only on the source
        if session.flags & C.VIR_MIGRATE_PERSIST_DEST:
            if persistent is not None:
                # The running definition stays; this one is what the next start uses.
                self.define_domain(_renamed(persistent, dom.name), persistent=True, emit=False)
            dom.persistent = True
            self.save(dom)
            detail = (
                C.VIR_DOMAIN_EVENT_DEFINED_ADDED if session.new_domain else C.VIR_DOMAIN_EVENT_DEFINED_UPDATED
            )
            self.events.lifecycle(dom_ref(dom), C.VIR_DOMAIN_EVENT_DEFINED, detail)
        if session.flags & C.VIR_MIGRATE_PAUSED and not postcopy:
            self.set_state(
                dom,
                C.VIR_DOMAIN_PAUSED,
                C.VIR_DOMAIN_PAUSED_USER,
                C.VIR_DOMAIN_EVENT_SUSPENDED,
                C.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED,
            )
        else:
            if engine.guest is not None:
                engine.guest.resume(trio.current_time())
            self.set_state(
                dom,
                C.VIR_DOMAIN_RUNNING,
                C.VIR_DOMAIN_RUNNING_MIGRATED,
                C.VIR_DOMAIN_EVENT_RESUMED,
                C.VIR_DOMAIN_EVENT_RESUMED_MIGRATED,
            )
        return dom

    # --- source: CONFIRM --------------------------------------------------------------

    async def domain_migrate_confirm3_params(
        self, args: R.remote_domain_migrate_confirm3_params_args, ctx: ConnectionContext
    ) -> None:
        _check_migrate_flags(args.flags, "qemuDomainMigrateConfirm3Params")
        _params(args.params)
        dom = self.lookup(args.dom)
        self.confirm_outgoing(dom, args.flags, cancelled=bool(args.cancelled))

    def confirm_outgoing(self, dom: Domain, flags: int, *, cancelled: bool) -> None:
        session = dom.extra.get(OUTGOING)
        if flags & C.VIR_MIGRATE_POSTCOPY_RESUME:
            self._outgoing_to_resume(dom, flags, MigrationPhase.PERFORM_RESUME)
        active = dom.job
        paused = isinstance(active, Job) and active.status is JobStatus.POSTCOPY_PAUSED
        if isinstance(session, OutgoingSession) and paused:
            # Post-copy failed: the job stays, waiting for a recovery.
            session.phase = MigrationPhase.POSTCOPY_FAILED
            return
        dom.extra.pop(OUTGOING, None)
        job = finished_job(dom.extra)
        if flags & C.VIR_MIGRATE_OFFLINE:
            if not cancelled and flags & C.VIR_MIGRATE_UNDEFINE_SOURCE and dom.persistent:
                self.undefine_domain(dom)
            return
        if cancelled:
            if dom.state == C.VIR_DOMAIN_PAUSED and dom.reason == C.VIR_DOMAIN_PAUSED_MIGRATION:
                self._resume_after_failed_switchover(dom)
            return
        if not isinstance(session, OutgoingSession) or job is None or job.status is not JobStatus.COMPLETED:
            raise invalid("domain is not being migrated")
        self._emit_job_completed(dom, job)
        if isinstance(dom.guest, Guest):
            dom.guest.memory.versions.clear()
        dom.guest = None
        self.stop_domain(
            dom, reason=C.VIR_DOMAIN_SHUTOFF_MIGRATED, detail=C.VIR_DOMAIN_EVENT_STOPPED_MIGRATED
        )
        if flags & C.VIR_MIGRATE_UNDEFINE_SOURCE and dom.persistent:
            self.undefine_domain(dom)

    # --- connection life --------------------------------------------------------------

    async def connection_closed(self, ctx: ConnectionContext) -> None:
        """An incoming migration prepared by a client that went away is cleaned up."""
        await super().connection_closed(ctx)
        for uuid in ctx.data.pop(INCOMING, ()):
            dom = self._by_uuid.get(uuid)
            session = dom.extra.get(INCOMING) if dom is not None else None
            if dom is not None and isinstance(session, IncomingSession) and session.owner_conn == ctx.conn_id:
                if session.phase is MigrationPhase.PREPARE_RESUME and not session.connected:
                    # A recovery nobody will finish: stop listening, wait for the next one.
                    session.cancel_scope.cancel()
                    await session.done.wait()
                    session.phase = MigrationPhase.POSTCOPY_FAILED
                    continue
                if session.engine is not None and session.engine.phase is Phase.POSTCOPY:
                    continue  # the guest runs here now; keep it
                with contextlib.suppress(Exception):
                    await self._finish_incoming(dom, session, cancelled=True)
        # A recovery begun by this client, and left there, may be begun again.
        for uuid in ctx.data.pop(OUTGOING, ()):
            dom = self._by_uuid.get(uuid)
            outgoing = dom.extra.get(OUTGOING) if dom is not None else None
            if isinstance(outgoing, OutgoingSession) and outgoing.phase is MigrationPhase.BEGIN_RESUME:
                outgoing.phase = MigrationPhase.POSTCOPY_FAILED


async def _listen(host: str, port: int) -> tuple[trio.SocketListener, str]:
    """A listener for the incoming migration stream, and the URI that names it."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise report(
            C.VIR_ERR_OPERATION_FAILED, FROM, f"Failed to bind port {port} on {host}: {exc.strerror}"
        ) from None
    listener = listeners[0]
    for extra in listeners[1:]:
        await extra.aclose()
    bound = listener.socket.getsockname()
    uri = f"tcp://{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"tcp://[{bound[0]}]:{bound[1]}"
    return listener, uri


@contextlib.asynccontextmanager
async def _given(link: MigrationLink) -> AsyncIterator[MigrationLink]:
    async with link:
        yield link


def _direction(job: Job) -> str:
    return "in" if job.operation is JobOperation.MIGRATION_IN else "out"


def _prepared_by(ctx: ConnectionContext) -> list[bytes]:
    """UUIDs of the incoming migrations this connection prepared (looked at when it closes)."""
    prepared: list[bytes] = ctx.data.setdefault(INCOMING, [])
    return prepared


class _SourceEvents(SourceObserver):
    """Mirrors the outgoing engine onto the source domain (state, events)."""

    def __init__(self, driver: MigrationMixin, dom: Domain) -> None:
        self.driver = driver
        self.dom = dom

    def iteration(self, number: int) -> None:
        self.driver.events.migration_iteration(dom_ref(self.dom), number)

    def guest_state(self) -> str:
        if not self.dom.active:
            return "gone"
        return "running" if self.dom.state == C.VIR_DOMAIN_RUNNING else "paused"

    def recovered(self) -> None:
        # QEMU's postcopy-recover status: the failed state gives way to post-copy again.
        self.driver.set_state(
            self.dom,
            C.VIR_DOMAIN_PAUSED,
            C.VIR_DOMAIN_PAUSED_POSTCOPY,
            C.VIR_DOMAIN_EVENT_SUSPENDED,
            C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY,
        )
        job = self.dom.job
        if isinstance(job, Job):
            job.status = JobStatus.POSTCOPY

    def paused(self, postcopy: bool) -> None:
        if postcopy:
            self.driver.set_state(
                self.dom,
                C.VIR_DOMAIN_PAUSED,
                C.VIR_DOMAIN_PAUSED_POSTCOPY,
                C.VIR_DOMAIN_EVENT_SUSPENDED,
                C.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY,
            )
            job = self.dom.job
            if isinstance(job, Job):
                job.status = JobStatus.POSTCOPY
        else:
            self.driver.set_state(
                self.dom,
                C.VIR_DOMAIN_PAUSED,
                C.VIR_DOMAIN_PAUSED_MIGRATION,
                C.VIR_DOMAIN_EVENT_SUSPENDED,
                C.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED,
            )


class _DestinationEvents(DestinationObserver):
    def __init__(self, driver: MigrationMixin, dom: Domain) -> None:
        self.driver = driver
        self.dom = dom

    def recovered(self) -> None:
        job = self.dom.job
        if isinstance(job, Job):
            job.status = JobStatus.POSTCOPY
        self.postcopy_running()

    def postcopy_running(self) -> None:
        self.driver.set_state(
            self.dom,
            C.VIR_DOMAIN_RUNNING,
            C.VIR_DOMAIN_RUNNING_POSTCOPY,
            C.VIR_DOMAIN_EVENT_RESUMED,
            C.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY,
        )
