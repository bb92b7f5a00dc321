"""Multi-call logic libvirt's client library runs itself, written once for both APIs.

A flow is a generator: it yields `Step`s (an Op for the source or destination
connection) and receives each result, or the libvirtError thrown in. The sync
facade drives it with blocking calls (`drive`), the trio API with awaits; the
logic (handshake, migration protocol v3 with parameters, peer-to-peer) lives
only here. It follows libvirt 9.0's src/libvirt-domain.c (virDomainMigrate3,
virDomainMigrateVersion3Full, virDomainMigrateToURI3, virDomainMigrate) and
src/remote/remote_driver.c (doRemoteOpen).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from virtwire.client import errfactory, ops
from virtwire.protocol import typedparams
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

# Driver features (src/libvirt_internal.h), asked with CONNECT_SUPPORTS_FEATURE.
FEATURE_MIGRATION_V1: Final = 1
FEATURE_MIGRATION_V2: Final = 3
FEATURE_MIGRATION_P2P: Final = 4
FEATURE_MIGRATION_DIRECT: Final = 5
FEATURE_MIGRATION_V3: Final = 6
FEATURE_MIGRATE_CHANGE_PROTECTION: Final = 7
FEATURE_PROGRAM_KEEPALIVE: Final = 10
FEATURE_MIGRATION_OFFLINE: Final = 11
FEATURE_MIGRATION_PARAMS: Final = 13
FEATURE_REMOTE_EVENT_CALLBACK: Final = 14
FEATURE_REMOTE_CLOSE_CALLBACK: Final = 15

AUTH_NONE: Final = 0
AUTH_SASL: Final = 1
AUTH_POLKIT: Final = 2

SRC: Final = "src"
DST: Final = "dst"


@dataclass(frozen=True, slots=True)
class Step:
    target: str
    op: ops.Op


Flow = Generator[Step, Any, Any]


def drive(flow: Flow, run: Mapping[str, Callable[[ops.Op], Any]]) -> Any:
    """Run a flow with blocking runners, one per connection name."""
    try:
        step = next(flow)
        while True:
            try:
                result = run[step.target](step.op)
            except libvirtError as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        return stop.value


# -- handshake --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Features:
    keepalive: bool
    event_callback: bool
    close_callback: bool


def _supported(feature: int, target: str = SRC) -> Generator[Step, Any, bool]:
    try:
        answer = yield Step(target, ops.supports_feature(feature))
    except libvirtError:
        return False
    return bool(answer)


def handshake(name: str | None, flags: int, want_keepalive: bool) -> Generator[Step, Any, Features]:
    """AUTH_LIST, [feature 10], CONNECT_OPEN, features 14 and 15: libvirt-python's order."""
    try:
        types: list[int] = yield Step(SRC, ops.auth_list())
    except libvirtError as exc:
        # An old server without AUTH_LIST means "no auth".
        if exc.get_error_code() != c.VIR_ERR_NO_SUPPORT:
            raise
        types = []
    if types and types[0] != AUTH_NONE:
        if types[0] == AUTH_POLKIT:
            yield Step(SRC, ops.Op("AUTH_POLKIT"))
        else:
            raise errfactory.templated(
                c.VIR_ERR_AUTH_FAILED,
                c.VIR_FROM_REMOTE,
                f"authentication type {types[0]} (SASL) is not supported by virtwire; "
                "configure the daemon with auth none or polkit for this socket",
            )
    keepalive = False
    if want_keepalive:
        keepalive = yield from _supported(FEATURE_PROGRAM_KEEPALIVE)
    yield Step(SRC, ops.connect_open(name, flags))
    event_cb = yield from _supported(FEATURE_REMOTE_EVENT_CALLBACK)
    close_cb = yield from _supported(FEATURE_REMOTE_CLOSE_CALLBACK)
    return Features(keepalive, event_cb, close_cb)


# -- migration ----------------------------------------------------------------

_COMPAT_PARAMS: Final = frozenset(
    {
        c.VIR_MIGRATE_PARAM_URI,
        c.VIR_MIGRATE_PARAM_DEST_NAME,
        c.VIR_MIGRATE_PARAM_DEST_XML,
        c.VIR_MIGRATE_PARAM_BANDWIDTH,
    }
)


def _wire(params: Mapping[str, Any]) -> list[Any]:
    return typedparams.dict_to_params(
        params,
        limit=c.VIR_DOMAIN_MIGRATE_PARAM_LIST_MAX if hasattr(c, "VIR_DOMAIN_MIGRATE_PARAM_LIST_MAX") else 64,
    )


def _exclusive_disk_flags(flags: int) -> None:
    if flags & c.VIR_MIGRATE_NON_SHARED_DISK and flags & c.VIR_MIGRATE_NON_SHARED_INC:
        raise errfactory.templated(
            c.VIR_ERR_INVALID_ARG,
            c.VIR_FROM_DOMAIN,
            "Flags 'VIR_MIGRATE_NON_SHARED_DISK' and 'VIR_MIGRATE_NON_SHARED_INC' are mutually exclusive",
        )


def _argument_unsupported(detail: str) -> libvirtError:
    return errfactory.templated(c.VIR_ERR_ARGUMENT_UNSUPPORTED, c.VIR_FROM_DOMAIN, detail)


def _check_offline(flags: int, both: bool) -> Generator[Step, Any, None]:
    if not flags & c.VIR_MIGRATE_OFFLINE:
        return
    if not (yield from _supported(FEATURE_MIGRATION_OFFLINE, SRC)):
        raise _argument_unsupported("offline migration is not supported by the source host")
    if both and not (yield from _supported(FEATURE_MIGRATION_OFFLINE, DST)):
        raise _argument_unsupported("offline migration is not supported by the destination host")


def _both(feature: int) -> Generator[Step, Any, bool]:
    # C's && short-circuits: the destination is asked only if the source says yes.
    if not (yield from _supported(feature, SRC)):
        return False
    return (yield from _supported(feature, DST))


def migrate3(
    dom: ops.Dom, params: Mapping[str, Any], flags: int, api: str = "virDomainMigrate3"
) -> Generator[Step, Any, Any]:
    """virDomainMigrate3: returns the destination's remote_nonnull_domain."""
    _exclusive_disk_flags(flags)
    if flags & c.VIR_MIGRATE_PEER2PEER:
        raise errfactory.templated(
            c.VIR_ERR_INVALID_ARG, c.VIR_FROM_DOMAIN, "use virDomainMigrateToURI3 for peer-to-peer migration"
        )
    if flags & c.VIR_MIGRATE_TUNNELLED:
        raise errfactory.templated(
            c.VIR_ERR_INVALID_ARG,
            c.VIR_FROM_DOMAIN,
            "cannot perform tunnelled migration without using peer2peer flag",
        )
    yield from _check_offline(flags, both=True)
    if flags & c.VIR_MIGRATE_CHANGE_PROTECTION and not (
        yield from _supported(FEATURE_MIGRATE_CHANGE_PROTECTION, SRC)
    ):
        raise _argument_unsupported("cannot enforce change protection")
    flags &= ~c.VIR_MIGRATE_CHANGE_PROTECTION
    if (yield from _both(FEATURE_MIGRATION_PARAMS)):
        return (yield from version3_params(dom, dict(params), flags))
    if set(params) - _COMPAT_PARAMS:
        raise _argument_unsupported(
            "Migration APIs with extensible parameters are not supported but extended parameters were passed"
        )
    # Servers without extensible parameters speak the older protocols, which
    # virtwire does not drive: after the same probes, report what libvirt
    # reports when no protocol is common to both sides.
    for feature in (FEATURE_MIGRATION_V3, FEATURE_MIGRATION_V2, FEATURE_MIGRATION_V1):
        if (yield from _both(feature)):
            break
    raise errfactory.no_support(api)


def version3_params(dom: ops.Dom, params: dict[str, Any], flags: int) -> Generator[Step, Any, Any]:
    """virDomainMigrateVersion3Full with extensible parameters: Begin, Prepare,
    Perform, Finish, Confirm, each error handled as libvirt does."""
    protection = (
        c.VIR_MIGRATE_CHANGE_PROTECTION
        if (yield from _supported(FEATURE_MIGRATE_CHANGE_PROTECTION, SRC))
        else 0
    )
    begin = yield Step(
        SRC,
        ops.Op(
            "DOMAIN_MIGRATE_BEGIN3_PARAMS",
            ops.PROCS["DOMAIN_MIGRATE_BEGIN3_PARAMS"].args(
                dom=dom, params=_wire(params), flags=flags | protection
            ),
        ),
    )
    with contextlib.suppress(libvirtError):
        dstate = yield Step(SRC, ops.domain_get_state(dom, 0))
        if dstate[0] == c.VIR_DOMAIN_PAUSED:
            flags |= c.VIR_MIGRATE_PAUSED
    destflags = flags & ~(c.VIR_MIGRATE_ABORT_ON_ERROR | c.VIR_MIGRATE_AUTO_CONVERGE)
    params[c.VIR_MIGRATE_PARAM_DEST_XML] = begin.xml
    cookie: bytes = begin.cookie_out
    orig_err: libvirtError | None = None
    cancelled = 1
    notify_source = True
    ddom: Any = None
    skip_to_confirm = False
    try:
        prep = yield Step(
            DST,
            _params_op(
                "DOMAIN_MIGRATE_PREPARE3_PARAMS", params=_wire(params), cookie_in=cookie, flags=destflags
            ),
        )
    except libvirtError as exc:
        if not protection:
            raise
        orig_err = exc
        skip_to_confirm = True
        cookie = b""
    if not skip_to_confirm:
        cookie = prep.cookie_out
        perform = True
        if prep.uri_out is not None:
            params[c.VIR_MIGRATE_PARAM_URI] = prep.uri_out
        elif c.VIR_MIGRATE_PARAM_URI not in params:
            orig_err = errfactory.templated(
                c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_DOMAIN, "domainMigratePrepare3 did not set uri"
            )
            perform = False
        if perform and flags & c.VIR_MIGRATE_OFFLINE:
            cookie = b""
            cancelled = 0
            perform = False
        if perform:
            try:
                out = yield Step(
                    SRC,
                    _params_op(
                        "DOMAIN_MIGRATE_PERFORM3_PARAMS",
                        dom=dom,
                        dconnuri=None,
                        params=_wire(params),
                        cookie_in=cookie,
                        flags=flags | protection,
                    ),
                )
                cookie = out.cookie_out
                cancelled = 0
            except libvirtError as exc:
                orig_err = exc
                notify_source = False
                cookie = b""
                cancelled = 1
        params.setdefault(c.VIR_MIGRATE_PARAM_DEST_NAME, dom.name)
        try:
            fin = yield Step(
                DST,
                _params_op(
                    "DOMAIN_MIGRATE_FINISH3_PARAMS",
                    params=_wire(params),
                    cookie_in=cookie,
                    flags=destflags,
                    cancelled=cancelled,
                ),
            )
            ddom, cookie = fin.dom, fin.cookie_out
        except libvirtError as exc:
            ddom, cookie = None, b""
            if orig_err is None:
                orig_err = exc
        cancelled = 0 if ddom is not None else 1
    if notify_source:
        with contextlib.suppress(
            libvirtError
        ):  # libvirt only warns: the guest may be left paused on the source
            yield Step(
                SRC,
                _params_op(
                    "DOMAIN_MIGRATE_CONFIRM3_PARAMS",
                    dom=dom,
                    params=_wire(params),
                    cookie_in=cookie,
                    flags=flags | protection,
                    cancelled=cancelled,
                ),
            )
    if orig_err is not None:
        raise orig_err
    return ddom


def _params_op(name: str, **fields: Any) -> ops.Op:
    codec = ops.PROCS[name].args
    assert codec is not None
    return ops.Op(name, codec(**fields))


def _check_not_local(dconnuri: str) -> None:
    host = urllib.parse.urlsplit(dconnuri).hostname
    if not host or host.startswith("localhost"):
        raise errfactory.make(
            c.VIR_ERR_INVALID_ARG,
            c.VIR_FROM_DOMAIN,
            "invalid argument: Attempt to migrate guest to the same host",
            "invalid argument: %s",
            "Attempt to migrate guest to the same host",
        )


def migrate_to_uri3(
    dom: ops.Dom,
    dconnuri: str | None,
    params: Mapping[str, Any],
    flags: int,
    api: str = "virDomainMigrateToURI3",
) -> Generator[Step, Any, int]:
    """virDomainMigrateToURI3: peer-to-peer (or direct) migration driven by the source."""
    _exclusive_disk_flags(flags)
    yield from _check_offline(flags, both=False)
    if flags & c.VIR_MIGRATE_PEER2PEER:
        if not (yield from _supported(FEATURE_MIGRATION_P2P, SRC)):
            raise _argument_unsupported("p2p migration is not supported by the source host")
        if dconnuri is None:
            raise errfactory.templated(
                c.VIR_ERR_INVALID_ARG, c.VIR_FROM_DOMAIN, f"dconnuri in {api} must not be NULL"
            )
        _check_not_local(dconnuri)
    else:
        if not (yield from _supported(FEATURE_MIGRATION_DIRECT, SRC)):
            raise _argument_unsupported("direct migration is not supported by the source host")
        dconnuri = None
    if flags & c.VIR_MIGRATE_PEER2PEER and (yield from _supported(FEATURE_MIGRATION_PARAMS, SRC)):
        yield Step(
            SRC,
            _params_op(
                "DOMAIN_MIGRATE_PERFORM3_PARAMS",
                dom=dom,
                dconnuri=dconnuri,
                params=_wire(params),
                cookie_in=b"",
                flags=flags,
            ),
        )
        return 0
    # Protocols 2 and 3 without parameters are not driven by virtwire.
    raise errfactory.no_support(api)


def legacy_params(
    dname: str | None, uri: str | None, bandwidth: int, dxml: str | None = None
) -> dict[str, Any]:
    """The parameters virDomainMigrate/virDomainMigrate2 stand for."""
    params: dict[str, Any] = {}
    if uri is not None:
        params[c.VIR_MIGRATE_PARAM_URI] = uri
    if dname is not None:
        params[c.VIR_MIGRATE_PARAM_DEST_NAME] = dname
    if dxml is not None:
        params[c.VIR_MIGRATE_PARAM_DEST_XML] = dxml
    if bandwidth:
        params[c.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth
    return params
