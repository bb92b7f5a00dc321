"""Typed parameters: dict <-> wire with type fidelity and libvirt's limits."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated.remote import remote_typed_param, remote_typed_param_value
from virtwire.protocol.typedparams import (
    JOB_STAT_TYPES,
    KNOWN_PARAM_TYPES,
    MIGRATION_PARAM_TYPES,
    dict_to_params,
    make_param,
    param_value,
    params_to_dict,
    params_to_list,
)
from vwtestkit import unavailable

API_XML = Path("/usr/share/libvirt/api/libvirt-api.xml")


def _xdr_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(4, "big") + raw + b"\0" * (-len(raw) % 4)


@pytest.mark.parametrize(
    ("type_code", "value", "value_bytes"),
    [
        (C.VIR_TYPED_PARAM_INT, -2, (-2).to_bytes(4, "big", signed=True)),
        (C.VIR_TYPED_PARAM_UINT, 4000000000, (4000000000).to_bytes(4, "big")),
        (C.VIR_TYPED_PARAM_LLONG, -(2**40), (-(2**40)).to_bytes(8, "big", signed=True)),
        (C.VIR_TYPED_PARAM_ULLONG, 2**64 - 1, b"\xff" * 8),
        (C.VIR_TYPED_PARAM_DOUBLE, 1.5, bytes.fromhex("3ff8000000000000")),
        (C.VIR_TYPED_PARAM_BOOLEAN, True, (1).to_bytes(4, "big")),
        (C.VIR_TYPED_PARAM_STRING, "tcp://dst", _xdr_string("tcp://dst")),
    ],
)
def test_each_type_has_libvirts_layout(type_code: int, value: object, value_bytes: bytes) -> None:
    param = make_param("field", type_code, value)
    expected = _xdr_string("field") + type_code.to_bytes(4, "big") + value_bytes
    assert param.to_bytes() == expected
    decoded = remote_typed_param.from_bytes(expected)
    assert params_to_list([decoded]) == [("field", type_code, value)]
    assert type(param_value(decoded)) is type(value)


def test_job_stats_dict_roundtrip_keeps_wire_types() -> None:
    stats = {
        "operation": C.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT,
        "time_elapsed": 1234,
        "memory_total": 8 * 2**30,
        "memory_remaining": 0,
        "memory_dirty_rate": 12,
        "auto_converge_throttle": 30,
        "success": True,
        "errmsg": "none",
    }
    params = dict_to_params(stats)
    types = {p.field: p.value.type for p in params}
    assert types["operation"] == C.VIR_TYPED_PARAM_INT
    assert types["time_elapsed"] == C.VIR_TYPED_PARAM_ULLONG
    assert types["success"] == C.VIR_TYPED_PARAM_BOOLEAN
    assert types["errmsg"] == C.VIR_TYPED_PARAM_STRING
    wire = [remote_typed_param.from_bytes(p.to_bytes()) for p in params]
    assert params_to_dict(wire) == stats
    assert params_to_dict(wire)["success"] is True


def test_explicit_types_override_the_tables_and_inference() -> None:
    params = dict_to_params(
        {"bandwidth": 5, "custom": 7, "ratio": 2},
        {"custom": C.VIR_TYPED_PARAM_UINT, "ratio": C.VIR_TYPED_PARAM_DOUBLE},
    )
    assert [(p.field, p.value.type, p.value.value) for p in params] == [
        ("bandwidth", C.VIR_TYPED_PARAM_ULLONG, 5),
        ("custom", C.VIR_TYPED_PARAM_UINT, 7),
        ("ratio", C.VIR_TYPED_PARAM_DOUBLE, 2.0),
    ]


@pytest.mark.parametrize(
    ("value", "type_code"),
    [
        (True, C.VIR_TYPED_PARAM_BOOLEAN),
        (5, C.VIR_TYPED_PARAM_INT),
        (-(2**40), C.VIR_TYPED_PARAM_LLONG),
        (2**63, C.VIR_TYPED_PARAM_ULLONG),
        (0.25, C.VIR_TYPED_PARAM_DOUBLE),
        ("s", C.VIR_TYPED_PARAM_STRING),
    ],
)
def test_inferred_types_for_unknown_names(value: object, type_code: int) -> None:
    (param,) = dict_to_params({"x.unknown": value})
    assert param.value.type == type_code


def test_repeated_string_params() -> None:
    params = dict_to_params({"migrate_disks": ["vda", "vdb"], "bandwidth": 10})
    assert [(p.field, p.value.value) for p in params] == [
        ("migrate_disks", "vda"),
        ("migrate_disks", "vdb"),
        ("bandwidth", 10),
    ]
    # libvirt-python's dict keeps the last of a repeated name.
    assert params_to_dict(params)["migrate_disks"] == "vdb"
    with pytest.raises(TypeError):
        dict_to_params({"bandwidth": [1, 2]})


def test_field_name_limits() -> None:
    assert make_param("a" * 79, C.VIR_TYPED_PARAM_INT, 1).field == "a" * 79
    with pytest.raises(libvirtError) as exc:
        make_param("a" * 80, C.VIR_TYPED_PARAM_INT, 1)
    assert exc.value.get_error_code() == C.VIR_ERR_INVALID_ARG
    assert str(exc.value) == f"invalid argument: Field name '{'a' * 80}' too long"
    received = remote_typed_param(field="b" * 80, value=remote_typed_param_value(type=1, value=1))
    with pytest.raises(libvirtError) as exc:
        params_to_dict([remote_typed_param.from_bytes(received.to_bytes())])
    assert exc.value.get_error_code() == C.VIR_ERR_INTERNAL_ERROR
    assert str(exc.value) == f"internal error: parameter {'b' * 80} too big for destination"


def test_count_limit_has_libvirts_wording() -> None:
    params = [make_param(f"p{i}", C.VIR_TYPED_PARAM_INT, i) for i in range(65)]
    assert len(params_to_dict(params[:64], limit=64)) == 64
    with pytest.raises(libvirtError) as exc:
        params_to_dict(params, limit=64)
    assert exc.value.err == (
        C.VIR_ERR_RPC,
        C.VIR_FROM_NONE,
        "too many parameters '65' for limit '64'",
        2,
        "%s",
        "too many parameters '65' for limit '64'",
        None,
        -1,
        -1,
    )
    with pytest.raises(libvirtError, match="too many parameters '65' for limit '64'"):
        dict_to_params({f"p{i}": i for i in range(65)}, limit=64)


@pytest.mark.parametrize(
    ("type_code", "value", "error"),
    [
        (C.VIR_TYPED_PARAM_INT, 2**31, OverflowError),
        (C.VIR_TYPED_PARAM_UINT, -1, OverflowError),
        (C.VIR_TYPED_PARAM_ULLONG, 2**64, OverflowError),
        (C.VIR_TYPED_PARAM_INT, "1", TypeError),
        (C.VIR_TYPED_PARAM_INT, True, TypeError),
        (C.VIR_TYPED_PARAM_DOUBLE, "x", TypeError),
        (C.VIR_TYPED_PARAM_STRING, 1, TypeError),
        (C.VIR_TYPED_PARAM_BOOLEAN, "yes", TypeError),
    ],
)
def test_bad_values_are_refused(type_code: int, value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        make_param("f", type_code, value)


def test_unknown_type_code() -> None:
    with pytest.raises(libvirtError, match="unknown parameter type: 9") as exc:
        make_param("f", 9, 1)
    assert exc.value.get_error_code() == C.VIR_ERR_RPC
    with pytest.raises(TypeError):
        dict_to_params({"f": object()})
    with pytest.raises(OverflowError):
        dict_to_params({"f": 2**64})


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=19),
        st.one_of(
            st.booleans(),
            st.integers(-(2**63), 2**64 - 1),
            st.floats(allow_nan=False),
            st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30),  # C ends at NUL
        ),
        max_size=20,
    )
)
def test_any_dict_roundtrips(d: dict[str, object]) -> None:
    names = {k for k in d if k not in KNOWN_PARAM_TYPES}
    plain = {k: v for k, v in d.items() if k in names}
    wire = [remote_typed_param.from_bytes(p.to_bytes()) for p in dict_to_params(plain)]
    assert params_to_dict(wire) == plain


def test_type_tables_agree_with_libvirts_documentation() -> None:
    if not API_XML.exists():
        unavailable("libvirt's API XML is missing (install libvirt-dev)")
    names = {
        "VIR_TYPED_PARAM_" + n: getattr(C, "VIR_TYPED_PARAM_" + n)
        for n in ("INT", "UINT", "LLONG", "ULLONG", "DOUBLE", "BOOLEAN", "STRING")
    }
    documented: dict[str, int] = {}
    covered: set[str] = set()
    for macro in ET.parse(API_XML).getroot().iter("macro"):
        name, string = macro.get("name", ""), macro.get("string")
        if string is None or not name.startswith(("VIR_MIGRATE_PARAM_", "VIR_DOMAIN_JOB_")):
            continue
        covered.add(string)
        info = macro.find("info")
        mentioned = set(
            re.findall(r"VIR_TYPED_PARAM_[A-Z]+", "".join(info.itertext()) if info is not None else "")
        )
        if len(mentioned) == 1:
            documented[string] = names[mentioned.pop()]
    assert covered == set(MIGRATION_PARAM_TYPES) | set(JOB_STAT_TYPES)
    for name, type_code in documented.items():
        assert KNOWN_PARAM_TYPES[name] == type_code, name
