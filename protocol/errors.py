"""libvirt's error object, its wire form, and builders with libvirt's exact wording.

``libvirtError`` mirrors libvirt-python's class: the 9-tuple ``err`` and the
``get_*`` accessors.  ``make_error`` builds an error the way libvirt's
``virReportError`` does (``virReportErrorHelper`` in src/util/virerror.c): the
message is the code's template from ``virErrorMsg`` with the detail formatted in,
``str1`` is that template, ``str2`` the detail, ``int1 = int2 = -1``.  The
templates are generated from libvirt.so (see ``constants_gen``), so every code
speaks libvirt's words.
"""

from __future__ import annotations

import os
from typing import Any

from .generated import constants
from .generated.constants import (
    ERROR_MESSAGES,
    VIR_ERR_ARGUMENT_UNSUPPORTED,
    VIR_ERR_AUTH_FAILED,
    VIR_ERR_BUILD_FIREWALL,
    VIR_ERR_ERROR,
    VIR_ERR_INTERNAL_ERROR,
    VIR_ERR_INVALID_ARG,
    VIR_ERR_INVALID_NWFILTER,
    VIR_ERR_INVALID_SECRET,
    VIR_ERR_MIGRATE_PERSIST_FAILED,
    VIR_ERR_NO_CONNECT,
    VIR_ERR_NO_DOMAIN,
    VIR_ERR_NO_NWFILTER,
    VIR_ERR_NO_SUPPORT,
    VIR_ERR_NONE,
    VIR_ERR_OK,
    VIR_ERR_OPERATION_DENIED,
    VIR_ERR_OPERATION_FAILED,
    VIR_ERR_OPERATION_INVALID,
    VIR_ERR_OPERATION_TIMEOUT,
    VIR_ERR_RPC,
    VIR_ERR_WARNING,
    VIR_FROM_DOMAIN,
    VIR_FROM_NONE,
    VIR_FROM_NWFILTER,
    VIR_FROM_QEMU,
    VIR_FROM_REMOTE,
    VIR_FROM_RPC,
    VIR_FROM_XEN,
    VIR_WAR_NO_SECRET,
)
from .generated.virnet import remote_error
from .xdr import Procedure

__all__ = [
    "VIR_ERR_ARGUMENT_UNSUPPORTED",
    "VIR_ERR_AUTH_FAILED",
    "VIR_ERR_ERROR",
    "VIR_ERR_INTERNAL_ERROR",
    "VIR_ERR_INVALID_ARG",
    "VIR_ERR_NONE",
    "VIR_ERR_NO_CONNECT",
    "VIR_ERR_NO_DOMAIN",
    "VIR_ERR_NO_SUPPORT",
    "VIR_ERR_OK",
    "VIR_ERR_OPERATION_DENIED",
    "VIR_ERR_OPERATION_FAILED",
    "VIR_ERR_OPERATION_INVALID",
    "VIR_ERR_RPC",
    "VIR_ERR_WARNING",
    "VIR_FROM_DOMAIN",
    "VIR_FROM_NONE",
    "VIR_FROM_REMOTE",
    "VIR_FROM_RPC",
    "ErrorTuple",
    "ProtocolError",
    "RawHeader",
    "api_error_domain",
    "auth_required",
    "connection_already_open",
    "connection_not_open",
    "error_message",
    "from_remote_error",
    "internal_error",
    "invalid_arg",
    "invalid_argument",
    "libvirtError",
    "make_error",
    "no_connect",
    "no_domain",
    "no_support",
    "operation_denied",
    "operation_invalid",
    "payload_decode_failed",
    "read_only_denial",
    "rpc_error",
    "to_remote_error",
    "unexpected_status",
    "unexpected_type",
    "unknown_procedure",
    "unknown_program",
    "unset_error",
    "unsupported_flags",
]

# (code, domain, message, level, str1, str2, str3, int1, int2), as libvirt-python.
ErrorTuple = tuple[int, int, str | None, int, str | None, str | None, str | None, int, int]

# libvirt's text when a template is missing for a code (virRaiseErrorFull, fmt NULL).
_NO_MESSAGE = "No error message provided"
# Client side: a remote_error without a message (virNetClientProgramDispatchError).
_UNKNOWN_ERROR = "Unknown error"


class libvirtError(Exception):
    """An error from libvirt, with libvirt-python's interface.

    ``libvirtError(defmsg)`` works as in libvirt-python for user code that raises
    it (``err`` is then None and every accessor returns None); pass ``err`` to
    carry the full error.  ``str(e)`` is the error's message, or ``defmsg``.
    """

    err: ErrorTuple | None

    def __init__(self, defmsg: str, err: ErrorTuple | None = None) -> None:
        message = defmsg if err is None or err[2] is None else err[2]
        super().__init__(message)
        self.err = err

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles only args; keep err (and the class) across processes.
        return (libvirtError._rebuild, (type(self), str(self), self.err))

    @staticmethod
    def _rebuild(cls: type[libvirtError], message: str, err: ErrorTuple | None) -> libvirtError:
        obj = cls.__new__(cls)
        Exception.__init__(obj, message)
        obj.err = err
        return obj

    def get_error_code(self) -> int | None:
        return None if self.err is None else self.err[0]

    def get_error_domain(self) -> int | None:
        return None if self.err is None else self.err[1]

    def get_error_message(self) -> str | None:
        return None if self.err is None else self.err[2]

    def get_error_level(self) -> int | None:
        return None if self.err is None else self.err[3]

    def get_str1(self) -> str | None:
        return None if self.err is None else self.err[4]

    def get_str2(self) -> str | None:
        return None if self.err is None else self.err[5]

    def get_str3(self) -> str | None:
        return None if self.err is None else self.err[6]

    def get_int1(self) -> int | None:
        return None if self.err is None else self.err[7]

    def get_int2(self) -> int | None:
        return None if self.err is None else self.err[8]


def error_message(code: int, detail: str | None = None) -> tuple[str, str | None]:
    """``(message, template)`` libvirt gives ``code`` with ``detail``.

    The template is None for a code libvirt has no text for.
    """
    templates = ERROR_MESSAGES.get(code)
    if templates is None:
        return _NO_MESSAGE, None
    plain, with_detail = templates
    if detail is None:
        return plain, plain
    return with_detail.replace("%s", detail, 1), with_detail


def make_error(
    code: int,
    domain: int,
    detail: str | None = None,
    *,
    level: int = VIR_ERR_ERROR,
    cls: type[libvirtError] = libvirtError,
) -> libvirtError:
    """The error ``virReportError(code, "%s", detail)`` raises in a libvirt module of ``domain``.

    ``detail=None`` is ``virReportError(code, NULL)``: the template without detail.
    """
    if code == VIR_ERR_OK:
        raise ValueError("VIR_ERR_OK is not an error")
    message, template = error_message(code, detail)
    return cls(message, (code, domain, message, level, template, detail, None, -1, -1))


# The six header words as received: prog, vers, proc, type, serial, status.
RawHeader = tuple[int, int, int, int, int, int]


class ProtocolError(libvirtError):
    """A malformed packet: VIR_ERR_RPC from VIR_FROM_RPC with libvirt's wording.

    ``raw_header`` holds the six header words when they could be read, so a server
    can still address its error reply (serial, procedure) to the sender.
    """

    raw_header: RawHeader | None = None

    def __init__(self, detail: str, raw_header: RawHeader | None = None) -> None:
        message, template = error_message(VIR_ERR_RPC, detail)
        err: ErrorTuple = (VIR_ERR_RPC, VIR_FROM_RPC, message, VIR_ERR_ERROR, template, detail, None, -1, -1)
        super().__init__(message, err)
        self.raw_header = raw_header


# ---------------------------------------------------------------- named builders
# Each is the exact error real libvirt 9.0 produces in that situation (captured
# from libvirtd, or read from the libvirt source named in the docstring).


def api_error_domain(api: str) -> int:
    """The VIR_FROM_* a public API reports its own checks under.

    That is the VIR_FROM_THIS of the libvirt-*.c file defining it, generated from
    the API XML; libvirt's internal migration steps live in libvirt-domain.c.
    """
    return constants.API_ERROR_DOMAINS.get(api, VIR_FROM_DOMAIN)


def operation_denied(api: str, domain: int | None = None) -> libvirtError:
    """A read-only connection calling a mutating API (virCheckReadOnlyGoto)."""
    if domain is None:
        domain = api_error_domain(api)
    return make_error(VIR_ERR_OPERATION_DENIED, domain, f"read only access prevents {api}")


def read_only_denial(proc: Procedure) -> libvirtError:
    """libvirt's refusal of ``proc`` on a read-only connection, worded as the spec says."""
    api = proc.api or proc.name
    return make_error(VIR_ERR_OPERATION_DENIED, api_error_domain(api), proc.denial_detail)


def no_support(api: str, domain: int | None = None) -> libvirtError:
    """The driver does not implement ``api`` (virReportUnsupportedError)."""
    if domain is None:
        domain = api_error_domain(api)
    return make_error(VIR_ERR_NO_SUPPORT, domain, api)


def rpc_error(detail: str) -> libvirtError:
    """A VIR_ERR_RPC error of the RPC layer: message == str2 == detail, str1 "%s"."""
    return make_error(VIR_ERR_RPC, VIR_FROM_RPC, detail)


def unknown_procedure(procedure: int) -> libvirtError:
    """libvirtd's answer to a procedure number its program does not know."""
    return rpc_error(f"unknown procedure: {procedure}")


def unknown_program(program: int, version: int) -> libvirtError:
    """libvirtd's answer to a packet for a program/version it does not serve (decimal)."""
    return rpc_error(f"Cannot find program {program} version {version}")


def unexpected_status(status: int) -> libvirtError:
    return rpc_error(f"Unexpected message status {status}")


def unexpected_type(message_type: int) -> libvirtError:
    return rpc_error(f"Unexpected message type {message_type}")


def payload_decode_failed() -> libvirtError:
    """A payload that does not decode as the procedure's args/ret (virNetMessageDecodePayload)."""
    return rpc_error("Unable to decode message payload")


def auth_required() -> libvirtError:
    """A call other than the auth procedures before authentication completed."""
    return rpc_error("authentication required")


def internal_error(detail: str, domain: int) -> libvirtError:
    return make_error(VIR_ERR_INTERNAL_ERROR, domain, detail)


def system_error(errno: int, detail: str, domain: int) -> libvirtError:
    """virReportSystemError: ``"<detail>: <strerror(errno)>"``, str1 "%s", int1 the errno."""
    message = f"{detail}: {os.strerror(errno)}"
    code = constants.VIR_ERR_SYSTEM_ERROR
    return libvirtError(message, (code, domain, message, VIR_ERR_ERROR, "%s", message, None, errno, -1))


def connection_not_open() -> libvirtError:
    """Any call but the pre-open ones before CONNECT_OPEN."""
    return internal_error("hypervisor connection not open", VIR_FROM_RPC)


def authentication_required() -> libvirtError:
    """Any call but AUTH_* before the client has authenticated (VIR_ERR_RPC, not
    AUTH_FAILED: libvirtd keeps it for clients that predate that code)."""
    return make_error(constants.VIR_ERR_RPC, VIR_FROM_RPC, "authentication required")


def connection_already_open() -> libvirtError:
    """A second CONNECT_OPEN on one connection."""
    return internal_error("connection already open", VIR_FROM_RPC)


def no_connect(name: str | None) -> libvirtError:
    """No driver accepts the URI given to CONNECT_OPEN ("<null>" when it is absent)."""
    return make_error(VIR_ERR_NO_CONNECT, VIR_FROM_NONE, name if name is not None else "<null>")


def no_domain(detail: str | None = None, domain: int = VIR_FROM_DOMAIN) -> libvirtError:
    """No such domain: ``"Domain not found"`` or ``"Domain not found: <detail>"``."""
    return make_error(VIR_ERR_NO_DOMAIN, domain, detail)


def operation_invalid(detail: str, domain: int = VIR_FROM_DOMAIN) -> libvirtError:
    """``"Requested operation is not valid: <detail>"``."""
    return make_error(VIR_ERR_OPERATION_INVALID, domain, detail)


def invalid_arg(detail: str, domain: int = VIR_FROM_DOMAIN) -> libvirtError:
    """``"invalid argument: <detail>"``."""
    return make_error(VIR_ERR_INVALID_ARG, domain, detail)


def invalid_argument(function: str, argument: str, message: str, domain: int) -> libvirtError:
    """libvirt's virReportInvalidArg: the message as given, str1 the reporting C
    function, str2 the argument's name, int1 = int2 = 0."""
    return libvirtError(
        message, (VIR_ERR_INVALID_ARG, domain, message, VIR_ERR_ERROR, function, argument, None, 0, 0)
    )


def unsupported_flags(flags: int, function: str, domain: int) -> libvirtError:
    """virCheckFlags refusing ``flags``: "unsupported flags (0x4) in function testDomainX"."""
    message = f"unsupported flags (0x{flags:x}) in function {function}"
    return invalid_argument(function, "flags", message, domain)


def unset_error() -> libvirtError:
    """What libvirtd sends when a handler failed without setting an error
    (virNetMessageSaveError): no str1..3, ints zero."""
    message = "Library function returned error but did not set virError"
    return libvirtError(
        message, (VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, message, VIR_ERR_ERROR, None, None, None, 0, 0)
    )


# ---------------------------------------------------------------- wire form


def to_remote_error(error: libvirtError) -> remote_error:
    """The ``remote_error`` payload libvirtd sends for ``error``.

    An error without details (``err`` None) is sent as libvirtd sends a failure
    that set no error.
    """
    err = error.err if error.err is not None else unset_error().err
    assert err is not None
    code, domain, message, level, str1, str2, str3, int1, int2 = err
    return remote_error(
        code=code,
        domain=domain,
        message=message,
        level=level,
        dom=None,
        str1=str1,
        str2=str2,
        str3=str3,
        int1=int1,
        int2=int2,
        net=None,
    )


def _client_code(code: int, domain: int) -> int:
    """libvirt's client fix-up of codes renumbered in 0.8.0, for 0.7.1-0.7.7 servers
    (virNetClientProgramDispatchError); still applied by libvirt 9.0."""
    if code in (VIR_ERR_INVALID_NWFILTER, VIR_ERR_NO_NWFILTER, VIR_ERR_BUILD_FIREWALL):
        return code + 4 if domain != VIR_FROM_NWFILTER else code
    if code == VIR_WAR_NO_SECRET and domain == VIR_FROM_QEMU:
        return VIR_ERR_OPERATION_TIMEOUT
    if code == VIR_ERR_INVALID_SECRET and domain == VIR_FROM_XEN:
        return VIR_ERR_MIGRATE_PERSIST_FAILED
    return code


def from_remote_error(rerr: remote_error, *, as_client: bool = True) -> libvirtError:
    """The ``libvirtError`` a libvirt client raises for a received ``remote_error``.

    With ``as_client`` (the default) it applies libvirt's client-side rewrites:
    the old-server code fix-ups, and an RPC "unknown procedure" error from the
    remote or RPC layer becomes VIR_ERR_NO_SUPPORT (the server is older than the
    call).  ``as_client=False`` maps the fields one to one.
    """
    code = rerr.code
    message = rerr.message
    if as_client:
        code = _client_code(code, rerr.domain)
        if (
            rerr.domain in (VIR_FROM_REMOTE, VIR_FROM_RPC)
            and code == VIR_ERR_RPC
            and rerr.level == VIR_ERR_ERROR
            and message is not None
            and message.startswith("unknown procedure")
        ):
            code = VIR_ERR_NO_SUPPORT
        if message is None:
            message = _UNKNOWN_ERROR
    err: ErrorTuple = (
        code,
        rerr.domain,
        message,
        rerr.level,
        rerr.str1,
        rerr.str2,
        rerr.str3,
        rerr.int1,
        rerr.int2,
    )
    return libvirtError(message if message is not None else _UNKNOWN_ERROR, err)


def __getattr__(name: str) -> int:
    """The other VIR_ERR_* / VIR_WAR_* / VIR_FROM_* codes, from the generated constants."""
    if name.startswith(("VIR_ERR_", "VIR_WAR_", "VIR_FROM_")):
        value = getattr(constants, name, None)
        if isinstance(value, int):
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
