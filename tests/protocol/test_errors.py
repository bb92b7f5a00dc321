"""libvirtError and the error builders, checked against the real libvirt 9.0:
libvirt.so's own virReportError for the wording, libvirt-python's libvirtError for
the interface, and captured libvirtd replies for the wire form."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import pickle
from pathlib import Path
from types import ModuleType

import pytest
from virtwire.protocol import errors
from virtwire.protocol.errors import (
    ProtocolError,
    from_remote_error,
    libvirtError,
    make_error,
    to_remote_error,
)
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated.virnet import remote_error
from vwtestkit import unavailable

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

ACCESSORS = (
    "get_error_code",
    "get_error_domain",
    "get_error_message",
    "get_error_level",
    "get_str1",
    "get_str2",
    "get_str3",
    "get_int1",
    "get_int2",
)


class _VirError(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_int),
        ("domain", ctypes.c_int),
        ("message", ctypes.c_char_p),
        ("level", ctypes.c_int),
        ("conn", ctypes.c_void_p),
        ("dom", ctypes.c_void_p),
        ("str1", ctypes.c_char_p),
        ("str2", ctypes.c_char_p),
        ("str3", ctypes.c_char_p),
        ("int1", ctypes.c_int),
        ("int2", ctypes.c_int),
        ("net", ctypes.c_void_p),
    ]


@pytest.fixture(scope="module")
def libvirt_so(real_libvirt: ModuleType) -> ctypes.CDLL:
    """The libvirt.so libvirt-python uses; its private virReportErrorHelper is our oracle."""
    name = ctypes.util.find_library("virt")
    if name is None:
        unavailable("libvirt.so is missing (install libvirt0)")
    lib = ctypes.CDLL(name)
    lib.virInitialize()
    lib.virGetLastError.restype = ctypes.POINTER(_VirError)
    # Keep libvirt's default handler from printing every oracle error to stderr.
    real_libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return lib


def _report(lib: ctypes.CDLL, code: int, domain: int, detail: str | None) -> None:
    """virReportError(code, "%s", detail) (or NULL) from module `domain`, in libvirt.so itself."""
    helper = lib.virReportErrorHelper
    if detail is None:
        helper(domain, code, b"test.c", b"test", ctypes.c_size_t(1), None)
    else:
        helper(domain, code, b"test.c", b"test", ctypes.c_size_t(1), b"%s", detail.encode())


@pytest.mark.parametrize("detail", [None, "some detail", ""])
def test_make_error_matches_libvirt_for_every_code(
    libvirt_so: ctypes.CDLL, real_libvirt: ModuleType, detail: str | None
) -> None:
    for code in range(1, C.VIR_ERR_NUMBER_LAST + 3):  # and a few codes libvirt has no text for
        domain = code % C.VIR_ERR_DOMAIN_LAST
        _report(libvirt_so, code, domain, detail)
        theirs = real_libvirt.libvirtError("fallback")
        ours = make_error(code, domain, detail)
        assert ours.err == theirs.err, code
        assert str(ours) == str(theirs)
        for accessor in ACCESSORS:
            assert getattr(ours, accessor)() == getattr(theirs, accessor)(), (code, accessor)


def test_libvirt_error_without_details_matches_libvirt_python(real_libvirt: ModuleType) -> None:
    real_libvirt.virResetLastError()
    theirs = real_libvirt.libvirtError("boom")
    ours = libvirtError("boom")
    assert theirs.err is None and ours.err is None
    assert str(ours) == str(theirs) == "boom"
    for accessor in ACCESSORS:
        assert getattr(ours, accessor)() is None
    assert isinstance(ours, Exception)


def test_real_failure_roundtrips_through_our_class(real_libvirt: ModuleType) -> None:
    real_libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    with pytest.raises(real_libvirt.libvirtError) as caught:
        real_libvirt.open("test:///nonexistent/virtwire-test.xml")
    theirs = caught.value
    ours = libvirtError("virConnectOpen() failed", theirs.err)
    assert str(ours) == str(theirs)
    assert ours.err == theirs.err
    ours_again = from_remote_error(to_remote_error(ours), as_client=False)
    assert ours_again.err == theirs.err


def _captured_error(name: str) -> tuple[remote_error, bytes]:
    for line in (VECTORS / name).read_text().splitlines():
        record = json.loads(line)
        if record.get("status") == 1:
            payload = bytes.fromhex(record["payload_hex"])
            return remote_error.from_bytes(payload), payload
    raise AssertionError(f"no error reply in {name}")


def test_operation_denied_is_byte_identical_to_libvirtd() -> None:
    captured, payload = _captured_error("d2_readonly_rosock_virsh.jsonl")
    ours = errors.operation_denied("virDomainSuspend")
    assert to_remote_error(ours).to_bytes() == payload
    assert str(ours) == "operation forbidden: read only access prevents virDomainSuspend"
    assert ours.err == (
        29,
        20,
        str(ours),
        2,
        "operation forbidden: %s",
        "read only access prevents virDomainSuspend",
        None,
        -1,
        -1,
    )
    assert from_remote_error(captured).err == ours.err


def test_no_support_is_byte_identical_to_libvirtd() -> None:
    captured, payload = _captured_error("e_migrate_postcopy.jsonl")
    ours = errors.no_support("virDomainMigrateStartPostCopy")
    assert to_remote_error(ours).to_bytes() == payload
    assert from_remote_error(captured).get_error_code() == C.VIR_ERR_NO_SUPPORT


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            errors.unknown_procedure(9999),
            (39, 7, "unknown procedure: 9999", 2, "%s", "unknown procedure: 9999"),
        ),
        (
            errors.unknown_program(305419896, 1),
            (
                39,
                7,
                "Cannot find program 305419896 version 1",
                2,
                "%s",
                "Cannot find program 305419896 version 1",
            ),
        ),
        (
            errors.connection_not_open(),
            (
                1,
                7,
                "internal error: hypervisor connection not open",
                2,
                "internal error: %s",
                "hypervisor connection not open",
            ),
        ),
        (
            errors.connection_already_open(),
            (
                1,
                7,
                "internal error: connection already open",
                2,
                "internal error: %s",
                "connection already open",
            ),
        ),
        (
            errors.no_connect("nosuch:///x"),
            (
                5,
                0,
                "no connection driver available for nosuch:///x",
                2,
                "no connection driver available for %s",
                "nosuch:///x",
            ),
        ),
        (errors.no_domain(domain=C.VIR_FROM_TEST), (42, 12, "Domain not found", 2, "Domain not found", None)),
        (
            errors.operation_invalid("domain is not running"),
            (
                55,
                20,
                "Requested operation is not valid: domain is not running",
                2,
                "Requested operation is not valid: %s",
                "domain is not running",
            ),
        ),
        (
            errors.payload_decode_failed(),
            (39, 7, "Unable to decode message payload", 2, "%s", "Unable to decode message payload"),
        ),
        (
            errors.unexpected_status(1),
            (39, 7, "Unexpected message status 1", 2, "%s", "Unexpected message status 1"),
        ),
        (errors.auth_required(), (39, 7, "authentication required", 2, "%s", "authentication required")),
    ],
)
def test_named_builders(error: libvirtError, expected: tuple[object, ...]) -> None:
    assert error.err is not None
    assert error.err[:6] == expected
    assert error.err[6:] == (None, -1, -1)
    assert str(error) == expected[2]


def test_unset_error_is_what_libvirtd_sends() -> None:
    err = errors.unset_error().err
    assert err == (
        1,
        7,
        "Library function returned error but did not set virError",
        2,
        None,
        None,
        None,
        0,
        0,
    )
    assert to_remote_error(libvirtError("no details")).message == err[2]


def test_client_maps_unknown_procedure_to_no_support() -> None:
    wire = to_remote_error(errors.unknown_procedure(364))
    as_client = from_remote_error(wire)
    assert as_client.get_error_code() == C.VIR_ERR_NO_SUPPORT
    assert str(as_client) == "unknown procedure: 364"
    assert from_remote_error(wire, as_client=False).get_error_code() == C.VIR_ERR_RPC
    remote_layer = remote_error(
        39, C.VIR_FROM_REMOTE, "unknown procedure: 1", 2, None, None, None, None, 0, 0, None
    )
    assert from_remote_error(remote_layer).get_error_code() == C.VIR_ERR_NO_SUPPORT
    other_domain = remote_error(
        39, C.VIR_FROM_QEMU, "unknown procedure: 1", 2, None, None, None, None, 0, 0, None
    )
    assert from_remote_error(other_domain).get_error_code() == C.VIR_ERR_RPC


def test_client_fixups_for_old_servers() -> None:
    def code_after(code: int, domain: int) -> int | None:
        return from_remote_error(
            remote_error(code, domain, "m", 2, None, None, None, None, 0, 0, None)
        ).get_error_code()

    assert code_after(C.VIR_ERR_INVALID_NWFILTER, C.VIR_FROM_SECRET) == C.VIR_ERR_INVALID_SECRET
    assert code_after(C.VIR_ERR_INVALID_NWFILTER, C.VIR_FROM_NWFILTER) == C.VIR_ERR_INVALID_NWFILTER
    assert code_after(C.VIR_WAR_NO_SECRET, C.VIR_FROM_QEMU) == C.VIR_ERR_OPERATION_TIMEOUT
    assert code_after(C.VIR_ERR_INVALID_SECRET, C.VIR_FROM_XEN) == C.VIR_ERR_MIGRATE_PERSIST_FAILED
    assert code_after(C.VIR_ERR_NO_DOMAIN, C.VIR_FROM_QEMU) == C.VIR_ERR_NO_DOMAIN


def test_missing_message_becomes_unknown_error() -> None:
    err = from_remote_error(remote_error(1, 0, None, 2, None, None, None, None, 0, 0, None))
    assert str(err) == "Unknown error"
    assert err.get_error_message() == "Unknown error"


def test_pickle_keeps_details() -> None:
    original = errors.no_domain("no domain with matching name 'x'", C.VIR_FROM_QEMU)
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is libvirtError
    assert copy.err == original.err and str(copy) == str(original)
    proto = pickle.loads(pickle.dumps(ProtocolError("bad")))
    assert type(proto) is ProtocolError and proto.err == ProtocolError("bad").err


def test_protocol_error_is_an_rpc_libvirt_error() -> None:
    exc = ProtocolError("Unable to decode message header", (1, 2, 3, 4, 5, 6))
    assert isinstance(exc, libvirtError)
    assert exc.err == (
        39,
        7,
        "Unable to decode message header",
        2,
        "%s",
        "Unable to decode message header",
        None,
        -1,
        -1,
    )
    assert exc.raw_header == (1, 2, 3, 4, 5, 6)


def test_module_exposes_every_error_constant() -> None:
    assert errors.VIR_ERR_RPC == 39
    assert errors.VIR_FROM_TEST == C.VIR_FROM_TEST  # via the module __getattr__
    assert errors.VIR_WAR_NO_NETWORK == C.VIR_WAR_NO_NETWORK
    with pytest.raises(AttributeError):
        _ = errors.VIR_NOT_A_CONSTANT
    with pytest.raises(ValueError):
        make_error(C.VIR_ERR_OK, 0)
