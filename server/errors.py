"""Server-side error helpers on top of ``virtwire.protocol.errors``.

The protocol package builds every error with libvirt's wording; this module adds
what only the server needs: the layouts of virCheckFlags and of libxml2 parse errors.
"""

from __future__ import annotations

from virtwire.protocol import errors as E
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C


def report(code: int, domain: int, detail: str | None = None) -> libvirtError:
    """What ``virReportError(code, "%s", detail)`` produces in libvirt."""
    return E.make_error(code, domain, detail)


def no_support(api: str) -> libvirtError:
    """The driver lacks ``api``, reported under the API's module."""
    return E.no_support(api)


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
