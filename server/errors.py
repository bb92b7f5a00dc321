"""Server-side error helpers on top of ``virtwire.protocol.errors``.

The protocol package builds every error with libvirt's wording; this module adds
what only the server needs: which VIR_FROM_* a public API reports under, and the
layouts of virCheckFlags and of libxml2 parse errors.
"""

from __future__ import annotations

from virtwire.protocol import errors as E
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C

# Which VIR_FROM_* a public API reports its own checks under (read-only, not
# supported): each libvirt-*.c file sets its VIR_FROM_THIS.  Longest prefix first.
_API_ERROR_DOMAINS: tuple[tuple[str, int], ...] = (
    ("virDomainSnapshot", C.VIR_FROM_DOMAIN_SNAPSHOT),
    ("virDomainCheckpoint", C.VIR_FROM_DOMAIN_CHECKPOINT),
    ("virDomain", C.VIR_FROM_DOMAIN),
    ("virNetwork", C.VIR_FROM_NETWORK),
    ("virStorage", C.VIR_FROM_STORAGE),
    ("virNodeDevice", C.VIR_FROM_NODEDEV),
    ("virSecret", C.VIR_FROM_SECRET),
    ("virNWFilter", C.VIR_FROM_NWFILTER),
    ("virInterface", C.VIR_FROM_INTERFACE),
    ("virStream", C.VIR_FROM_STREAMS),
)


def api_error_domain(api: str) -> int:
    """The VIR_FROM_* libvirt's public API layer uses for errors raised by ``api``."""
    for prefix, domain in _API_ERROR_DOMAINS:
        if api.startswith(prefix):
            return domain
    return C.VIR_FROM_NONE


def report(code: int, domain: int, detail: str | None = None) -> libvirtError:
    """What ``virReportError(code, "%s", detail)`` produces in libvirt."""
    return E.make_error(code, domain, detail)


def operation_denied(api: str) -> libvirtError:
    """A read-only connection calling ``api``, reported under the API's module."""
    return E.operation_denied(api, api_error_domain(api))


def no_support(api: str) -> libvirtError:
    """The driver lacks ``api``, reported under the API's module."""
    return E.no_support(api, api_error_domain(api))


def unsupported_flags(flags: int, function: str, domain: int = C.VIR_FROM_TEST) -> libvirtError:
    """virCheckFlags' own layout: str1 the C function, str2 "flags", int1 = int2 = 0."""
    message = f"unsupported flags (0x{flags:x}) in function {function}"
    return libvirtError(
        message, (C.VIR_ERR_INVALID_ARG, domain, message, C.VIR_ERR_ERROR, function, "flags", None, 0, 0)
    )


def check_flags(flags: int, allowed: int, function: str) -> None:
    """Raise virCheckFlags' error when ``flags`` has bits outside ``allowed``."""
    if flags & ~allowed:
        raise unsupported_flags(flags & ~allowed, function)


def xml_detail(detail: str) -> libvirtError:
    """A document that does not parse (libxml2's message; str1 is "%s")."""
    return libvirtError(
        detail, (C.VIR_ERR_XML_DETAIL, C.VIR_FROM_DOMAIN, detail, C.VIR_ERR_ERROR, "%s", detail, None, -1, -1)
    )
