"""Client-driven migration, as libvirt 9.0's src/libvirt-domain.c runs it.

- virDomainMigrate3: probes MIGRATION_PARAMS (13) on both sides and runs the
  v3 protocol with typed parameters: Begin3Params (source), Prepare3Params
  (destination), Perform3Params (source), Finish3Params (destination),
  Confirm3Params (source), with libvirt's error handling at every step.
- virDomainMigrate / virDomainMigrate2: the same v3 protocol through the
  older fixed-argument procedures (Begin3 ... Confirm3) when both sides
  support MIGRATION_V3 (6); peer-to-peer through the source when asked.
- virDomainMigrateToURI / ToURI2 / ToURI3: one Perform call on the source
  (Perform3Params with dconnuri when the source supports 13, else Perform3,
  else the v2 Perform).

Protocols 1 and 2 driven from the client (Prepare/Perform/Finish without a
Begin step) are not implemented: after the same feature probes they report
what libvirt reports when no protocol is common to both sides.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from virtwire.client import errfactory, ops
from virtwire.client.flows import DST, SRC, Step, supported
from virtwire.protocol import typedparams
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.features import DriverFeature as F
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import remote

URI: Final = c.VIR_MIGRATE_PARAM_URI
DEST_NAME: Final = c.VIR_MIGRATE_PARAM_DEST_NAME
DEST_XML: Final = c.VIR_MIGRATE_PARAM_DEST_XML
BANDWIDTH: Final = c.VIR_MIGRATE_PARAM_BANDWIDTH
COMPAT_PARAMS: Final = frozenset({URI, DEST_NAME, DEST_XML, BANDWIDTH})

Flow = Generator[Step, Any, Any]


# -- errors, worded as libvirt ---------------------------------------------------


def invalid_arg(api: str, arg: str, message: str) -> libvirtError:
    # virReportInvalidArg: the message without template, str1 = function, str2 = argument.
    return errfactory.make(c.VIR_ERR_INVALID_ARG, c.VIR_FROM_DOMAIN, message, api, arg, None, 0, 0)


def _argument_unsupported(detail: str) -> libvirtError:
    return errfactory.templated(c.VIR_ERR_ARGUMENT_UNSUPPORTED, c.VIR_FROM_DOMAIN, detail)


def _exclusive_disk_flags(api: str, flags: int) -> None:
    if flags & c.VIR_MIGRATE_NON_SHARED_DISK and flags & c.VIR_MIGRATE_NON_SHARED_INC:
        raise invalid_arg(
            api,
            "ctl",
            "Flags 'VIR_MIGRATE_NON_SHARED_DISK' and 'VIR_MIGRATE_NON_SHARED_INC' are mutually exclusive",
        )
    # The next check of libvirt's migration entry points (VIR_EXCLUSIVE_FLAGS_GOTO).
    if flags & c.VIR_MIGRATE_TUNNELLED and flags & c.VIR_MIGRATE_PARALLEL:
        raise invalid_arg(
            api, "ctl", "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive"
        )


# -- small steps -------------------------------------------------------------------


def _op(name: str, **fields: Any) -> ops.Op:
    codec = ops.PROCS[name].args
    assert codec is not None
    return ops.Op(name, codec(**fields))


def _wire(params: Mapping[str, Any]) -> list[Any]:
    return typedparams.dict_to_params(params, limit=remote.REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX)


def _both(feature: int) -> Generator[Step, Any, bool]:
    # C's && short-circuits: the destination is asked only if the source says yes.
    if not (yield from supported(feature, SRC)):
        return False
    return (yield from supported(feature, DST))


def _check_offline(flags: int, both: bool) -> Generator[Step, Any, None]:
    if not flags & c.VIR_MIGRATE_OFFLINE:
        return
    if not (yield from supported(F.MIGRATION_OFFLINE, SRC)):
        raise _argument_unsupported("offline migration is not supported by the source host")
    if both and not (yield from supported(F.MIGRATION_OFFLINE, DST)):
        raise _argument_unsupported("offline migration is not supported by the destination host")


# -- the v3 protocol (virDomainMigrateVersion3Full) --------------------------------


@dataclass
class _Legacy:
    """The fixed arguments of the v3 procedures without typed parameters."""

    xmlin: str | None
    dname: str | None
    uri: str | None
    bandwidth: int


def version3(
    dom: ops.Dom, params: dict[str, Any], flags: int, legacy: _Legacy | None = None
) -> Generator[Step, Any, Any]:
    """Begin, Prepare, Perform, Finish, Confirm; returns the destination domain."""
    protection = c.VIR_MIGRATE_CHANGE_PROTECTION if (yield from supported(F.MIGRATE_CHANGE_PROTECTION)) else 0
    if legacy is None:
        begin = yield Step(
            SRC, _op("DOMAIN_MIGRATE_BEGIN3_PARAMS", dom=dom, params=_wire(params), flags=flags | protection)
        )
        state_op = ops.domain_get_state(dom, 0)
    else:
        begin = yield Step(
            SRC,
            _op(
                "DOMAIN_MIGRATE_BEGIN3",
                dom=dom,
                xmlin=legacy.xmlin,
                flags=flags | protection,
                dname=legacy.dname,
                resource=legacy.bandwidth,
            ),
        )
        state_op = ops.domain_get_info(dom)
    with contextlib.suppress(libvirtError):
        paused = (yield Step(SRC, state_op))[0] == c.VIR_DOMAIN_PAUSED
        # A failed post-copy source is paused too, but a recovery never arrives paused.
        if paused and not flags & c.VIR_MIGRATE_POSTCOPY_RESUME:
            flags |= c.VIR_MIGRATE_PAUSED
    destflags = flags & ~(c.VIR_MIGRATE_ABORT_ON_ERROR | c.VIR_MIGRATE_AUTO_CONVERGE)

    cookie: bytes = begin.cookie_out
    orig_err: libvirtError | None = None
    notify_source = True
    cancelled = 1
    uri = legacy.uri if legacy is not None else None
    try:
        if legacy is None:
            params[DEST_XML] = begin.xml
            prep = yield Step(
                DST,
                _op(
                    "DOMAIN_MIGRATE_PREPARE3_PARAMS", params=_wire(params), cookie_in=cookie, flags=destflags
                ),
            )
        else:
            prep = yield Step(
                DST,
                _op(
                    "DOMAIN_MIGRATE_PREPARE3",
                    cookie_in=cookie,
                    uri_in=legacy.uri,
                    flags=destflags,
                    dname=legacy.dname,
                    resource=legacy.bandwidth,
                    dom_xml=begin.xml,
                ),
            )
    except libvirtError as exc:
        if not protection:
            raise
        # Begin started a job on the source: Confirm cancels it, keeping this error.
        yield from _confirm(dom, params, b"", flags | protection, 1, legacy)
        raise exc from None

    cookie = prep.cookie_out
    perform = True
    if prep.uri_out is not None:
        uri = prep.uri_out
        params[URI] = prep.uri_out
    elif uri is None and URI not in params:
        orig_err = errfactory.templated(
            c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_DOMAIN, "domainMigratePrepare3 did not set uri"
        )
        perform = False
    if perform and flags & c.VIR_MIGRATE_OFFLINE:
        cookie, cancelled, perform = b"", 0, False
    if perform:
        try:
            if legacy is None:
                out = yield Step(
                    SRC,
                    _op(
                        "DOMAIN_MIGRATE_PERFORM3_PARAMS",
                        dom=dom,
                        dconnuri=None,
                        params=_wire(params),
                        cookie_in=cookie,
                        flags=flags | protection,
                    ),
                )
            else:
                out = yield Step(
                    SRC,
                    _op(
                        "DOMAIN_MIGRATE_PERFORM3",
                        dom=dom,
                        xmlin=None,
                        cookie_in=cookie,
                        dconnuri=None,
                        uri=uri,
                        flags=flags | protection,
                        dname=legacy.dname,
                        resource=legacy.bandwidth,
                    ),
                )
            cookie, cancelled = out.cookie_out, 0
        except libvirtError as exc:
            # The source already knows: no Confirm; Finish is told to cancel.
            orig_err, notify_source, cookie, cancelled = exc, False, b"", 1

    ddom: Any = None
    finish_cancelled = cancelled
    try:
        if legacy is None:
            params.setdefault(DEST_NAME, dom.name)
            fin = yield Step(
                DST,
                _op(
                    "DOMAIN_MIGRATE_FINISH3_PARAMS",
                    params=_wire(params),
                    cookie_in=cookie,
                    flags=destflags,
                    cancelled=cancelled,
                ),
            )
        else:
            fin = yield Step(
                DST,
                _op(
                    "DOMAIN_MIGRATE_FINISH3",
                    dname=legacy.dname or dom.name,
                    cookie_in=cookie,
                    dconnuri=None,
                    uri=uri,
                    flags=destflags,
                    cancelled=cancelled,
                ),
            )
        ddom, cookie = fin.dom, fin.cookie_out
    except libvirtError as exc:
        cookie = b""
        if orig_err is None or (finish_cancelled and _finish_explains(orig_err, exc)):
            orig_err = exc
    # A destination domain means success, even after a failed Perform (libvirt
    # logs "finish step ignored that migration was cancelled" and returns it).
    cancelled = 0 if ddom is not None else 1
    if notify_source:
        yield from _confirm(dom, params, cookie, flags | protection, cancelled, legacy)
    if ddom is None:
        err = orig_err or errfactory.templated(
            c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_DOMAIN, "migration failed"
        )
        orig_err = None
        try:
            raise err
        finally:
            # No local may keep the exception: its traceback holds this frame,
            # and the cycle would keep the connections open until the next GC.
            del err
    orig_err = None  # the same reference cycle, on success after a failed Perform
    return ddom


def _finish_explains(perform_err: libvirtError, finish_err: libvirtError) -> bool:
    """libvirt prefers Finish's error over a QEMU "operation failed" from Perform
    when Finish reports a real QEMU error (the domain died on the destination)."""
    return (
        perform_err.get_error_domain() == c.VIR_FROM_QEMU
        and perform_err.get_error_code() == c.VIR_ERR_OPERATION_FAILED
        and finish_err.get_error_domain() == c.VIR_FROM_QEMU
        and finish_err.get_error_code() != c.VIR_ERR_MIGRATE_FINISH_OK
    )


def _confirm(
    dom: ops.Dom,
    params: dict[str, Any],
    cookie: bytes,
    flags: int,
    cancelled: int,
    legacy: _Legacy | None,
) -> Generator[Step, Any, None]:
    """Confirm on the source; a failure there only leaves the guest paused (libvirt warns)."""
    with contextlib.suppress(libvirtError):
        if legacy is None:
            yield Step(
                SRC,
                _op(
                    "DOMAIN_MIGRATE_CONFIRM3_PARAMS",
                    dom=dom,
                    params=_wire(params),
                    cookie_in=cookie,
                    flags=flags,
                    cancelled=cancelled,
                ),
            )
        else:
            yield Step(
                SRC,
                _op("DOMAIN_MIGRATE_CONFIRM3", dom=dom, cookie_in=cookie, flags=flags, cancelled=cancelled),
            )


# -- public entry points --------------------------------------------------------------


def migrate3(dom: ops.Dom, params: Mapping[str, Any], flags: int) -> Flow:
    """virDomainMigrate3 (source and destination connections)."""
    api = "virDomainMigrate3"
    _exclusive_disk_flags(api, flags)
    if flags & c.VIR_MIGRATE_PEER2PEER:
        raise invalid_arg(api, "flags", "use virDomainMigrateToURI3 for peer-to-peer migration")
    if flags & c.VIR_MIGRATE_TUNNELLED:
        raise invalid_arg(api, "flags", "cannot perform tunnelled migration without using peer2peer flag")
    yield from _check_offline(flags, both=True)
    if flags & c.VIR_MIGRATE_CHANGE_PROTECTION and not (yield from supported(F.MIGRATE_CHANGE_PROTECTION)):
        raise _argument_unsupported("cannot enforce change protection")
    flags &= ~c.VIR_MIGRATE_CHANGE_PROTECTION
    if (yield from _both(F.MIGRATION_PARAMS)):
        return (yield from version3(dom, dict(params), flags))
    if set(params) - COMPAT_PARAMS:
        raise _argument_unsupported(
            "Migration APIs with extensible parameters are not supported but extended parameters were passed"
        )
    if (yield from _both(F.MIGRATION_V3)):
        legacy = _Legacy(
            params.get(DEST_XML), params.get(DEST_NAME), params.get(URI), params.get(BANDWIDTH, 0)
        )
        return (yield from version3(dom, dict(params), flags, legacy))
    yield from _no_common_protocol()
    raise errfactory.no_support(api)


def _no_common_protocol() -> Generator[Step, Any, None]:
    # The probes libvirt makes before it gives up (v2, then v1).
    if not (yield from _both(F.MIGRATION_V2)):
        yield from _both(F.MIGRATION_V1)


def migrate(
    dom: ops.Dom,
    flags: int,
    dname: str | None,
    uri: str | None,
    bandwidth: int,
    dxml: str | None,
    api: str,
    dest_uri: str,
) -> Flow:
    """virDomainMigrate / virDomainMigrate2; `dest_uri` is the destination connection's URI."""
    _exclusive_disk_flags(api, flags)
    yield from _check_offline(flags, both=True)
    if flags & c.VIR_MIGRATE_PEER2PEER:
        if not (yield from supported(F.MIGRATION_P2P)):
            raise errfactory.no_support(api)
        if api == "virDomainMigrate":
            dconnuri, miguri = (uri if uri is not None else dest_uri), None
        else:
            dconnuri, miguri = dest_uri, uri
        yield from _unmanaged(
            dom, dconnuri, _params(miguri, dname, dxml, bandwidth, always_bandwidth=True), flags
        )
        return (yield Step(DST, ops.lookup_by_name(dname if dname is not None else dom.name)))
    if flags & c.VIR_MIGRATE_CHANGE_PROTECTION and not (yield from supported(F.MIGRATE_CHANGE_PROTECTION)):
        raise _argument_unsupported("cannot enforce change protection")
    flags &= ~c.VIR_MIGRATE_CHANGE_PROTECTION
    if flags & c.VIR_MIGRATE_TUNNELLED:
        raise errfactory.templated(
            c.VIR_ERR_OPERATION_INVALID,
            c.VIR_FROM_DOMAIN,
            "cannot perform tunnelled migration without using peer2peer flag",
        )
    if (yield from _both(F.MIGRATION_V3)):
        params = _params(uri, dname, dxml, bandwidth)
        return (yield from version3(dom, params, flags, _Legacy(dxml, dname, uri, bandwidth)))
    yield from _no_common_protocol()
    raise errfactory.no_support(api)


def _params(
    uri: str | None, dname: str | None, dxml: str | None, bandwidth: int, always_bandwidth: bool = False
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if uri is not None:
        params[URI] = uri
    if dname is not None:
        params[DEST_NAME] = dname
    if dxml is not None:
        params[DEST_XML] = dxml
    if bandwidth or always_bandwidth:
        params[BANDWIDTH] = bandwidth
    return params


def migrate_to_uri(
    dom: ops.Dom, dconnuri: str | None, params: Mapping[str, Any], flags: int, api: str
) -> Generator[Step, Any, int]:
    """virDomainMigrateToURI / ToURI2 / ToURI3: the source daemon does the work."""
    _exclusive_disk_flags(api, flags)
    yield from _check_offline(flags, both=False)
    if flags & c.VIR_MIGRATE_PEER2PEER:
        if not (yield from supported(F.MIGRATION_P2P)):
            raise _argument_unsupported("p2p migration is not supported by the source host")
        if dconnuri is None:
            raise invalid_arg(api, "dconnuri", f"dconnuri in {api} must not be NULL")
    else:
        if not (yield from supported(F.MIGRATION_DIRECT)):
            raise _argument_unsupported("direct migration is not supported by the source host")
        dconnuri = None
    yield from _unmanaged(dom, dconnuri, dict(params), flags)
    return 0


def uri_params(dname: str | None, miguri: str | None, dxml: str | None, bandwidth: int) -> dict[str, Any]:
    """The parameters virDomainMigrateToURI/ToURI2 stand for (virDomainMigrateUnmanaged)."""
    return _params(miguri, dname, dxml, bandwidth, always_bandwidth=True)


def _unmanaged(dom: ops.Dom, dconnuri: str | None, params: dict[str, Any], flags: int) -> Flow:
    """virDomainMigrateUnmanagedParams: one Perform on the source."""
    p2p = bool(flags & c.VIR_MIGRATE_PEER2PEER)
    if p2p:
        assert dconnuri is not None
        _check_not_local(dconnuri)
    if p2p and (yield from supported(F.MIGRATION_PARAMS)):
        out = yield Step(
            SRC,
            _op(
                "DOMAIN_MIGRATE_PERFORM3_PARAMS",
                dom=dom,
                dconnuri=dconnuri,
                params=_wire(params),
                cookie_in=b"",
                flags=flags,
            ),
        )
        _no_cookie_expected(out.cookie_out)
        return None
    if (yield from supported(F.MIGRATION_V3)):
        if set(params) - COMPAT_PARAMS:
            raise _argument_unsupported("Some parameters are not supported by migration protocol 3")
        out = yield Step(
            SRC,
            _op(
                "DOMAIN_MIGRATE_PERFORM3",
                dom=dom,
                xmlin=params.get(DEST_XML),
                cookie_in=b"",
                dconnuri=dconnuri,
                uri=params.get(URI),
                flags=flags,
                dname=params.get(DEST_NAME),
                resource=params.get(BANDWIDTH, 0),
            ),
        )
        _no_cookie_expected(out.cookie_out)
        return None
    if set(params) - (COMPAT_PARAMS - {DEST_XML}):
        raise _argument_unsupported("Some parameters are not supported by migration protocol 2")
    miguri = params.get(URI)
    if p2p and miguri is not None:
        raise errfactory.templated(
            c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_DOMAIN, "Unable to override peer2peer migration URI"
        )
    yield Step(
        SRC,
        _op(
            "DOMAIN_MIGRATE_PERFORM",
            dom=dom,
            cookie=b"",
            uri=dconnuri if p2p else miguri,
            flags=flags,
            dname=params.get(DEST_NAME),
            resource=params.get(BANDWIDTH, 0),
        ),
    )
    return None


def _no_cookie_expected(cookie: bytes) -> None:
    # Unmanaged migration passes no cookie buffer; libvirt's remote driver
    # refuses a server that sends one anyway.
    if cookie:
        raise errfactory.templated(
            c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_REMOTE, "caller ignores cookieout or cookieoutlen"
        )


def _check_not_local(dconnuri: str) -> None:
    host = urllib.parse.urlsplit(dconnuri).hostname
    if not host or host.startswith("localhost"):
        raise invalid_arg(
            "virDomainMigrateCheckNotLocal", "dconnuri", "Attempt to migrate guest to the same host"
        )
