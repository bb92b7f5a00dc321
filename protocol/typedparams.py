"""Typed parameters: ``list[remote_typed_param]`` <-> the dict libvirt-python uses.

On the wire a typed parameter is a field name and a union keyed by the type code
(INT 1, UINT 2, LLONG 3, ULLONG 4, DOUBLE 5, BOOLEAN 6 sent as an int, STRING 7).
In Python, as in libvirt-python, the dict values are ``int``, ``float``, ``bool``
and ``str``; the wire type of a name cannot be told from a Python ``int``, so
callers pass it (``types=``) or rely on the tables below of the parameters libvirt
documents (migration parameters, job statistics).

Limits are libvirt's (src/util/virtypedparam.c): a field holds at most 79
characters (VIR_TYPED_PARAM_FIELD_LENGTH 80 with the NUL), and a procedure caps the
number of parameters.  Violations raise ``libvirtError`` with libvirt's code,
domain (VIR_FROM_NONE, the module that checks) and wording.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .errors import libvirtError, make_error
from .generated import constants as C
from .generated.remote import remote_typed_param, remote_typed_param_value

__all__ = [
    "JOB_STAT_TYPES",
    "KNOWN_PARAM_TYPES",
    "MAX_FIELD_LENGTH",
    "MIGRATION_PARAM_TYPES",
    "TYPE_NAMES",
    "ParamValue",
    "check_count",
    "dict_to_params",
    "make_param",
    "param_value",
    "params_to_dict",
    "params_to_list",
]

INT: Final = C.VIR_TYPED_PARAM_INT
UINT: Final = C.VIR_TYPED_PARAM_UINT
LLONG: Final = C.VIR_TYPED_PARAM_LLONG
ULLONG: Final = C.VIR_TYPED_PARAM_ULLONG
DOUBLE: Final = C.VIR_TYPED_PARAM_DOUBLE
BOOLEAN: Final = C.VIR_TYPED_PARAM_BOOLEAN
STRING: Final = C.VIR_TYPED_PARAM_STRING

TYPE_NAMES: Final[Mapping[int, str]] = {
    INT: "int", UINT: "uint", LLONG: "llong", ULLONG: "ullong",
    DOUBLE: "double", BOOLEAN: "boolean", STRING: "string",
}

# Longest field name: VIR_TYPED_PARAM_FIELD_LENGTH counts the terminating NUL.
MAX_FIELD_LENGTH: Final = C.VIR_TYPED_PARAM_FIELD_LENGTH - 1

ParamValue = int | float | bool | str

_INT_RANGES: Final[Mapping[int, tuple[int, int]]] = {
    INT: (-(2**31), 2**31 - 1),
    UINT: (0, 2**32 - 1),
    LLONG: (-(2**63), 2**63 - 1),
    ULLONG: (0, 2**64 - 1),
}

# Wire types of the migration parameters (VIR_MIGRATE_PARAM_*), as documented in
# include/libvirt/libvirt-domain.h; tests check them against libvirt's API XML.
MIGRATION_PARAM_TYPES: Final[Mapping[str, int]] = {
    C.VIR_MIGRATE_PARAM_URI: STRING,
    C.VIR_MIGRATE_PARAM_DEST_NAME: STRING,
    C.VIR_MIGRATE_PARAM_DEST_XML: STRING,
    C.VIR_MIGRATE_PARAM_PERSIST_XML: STRING,
    C.VIR_MIGRATE_PARAM_BANDWIDTH: ULLONG,
    C.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY: ULLONG,
    C.VIR_MIGRATE_PARAM_GRAPHICS_URI: STRING,
    C.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: STRING,
    C.VIR_MIGRATE_PARAM_MIGRATE_DISKS: STRING,  # may repeat: one entry per disk
    C.VIR_MIGRATE_PARAM_DISKS_PORT: INT,
    C.VIR_MIGRATE_PARAM_DISKS_URI: STRING,
    C.VIR_MIGRATE_PARAM_COMPRESSION: STRING,  # may repeat: one entry per method
    C.VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL: INT,
    C.VIR_MIGRATE_PARAM_COMPRESSION_MT_THREADS: INT,
    C.VIR_MIGRATE_PARAM_COMPRESSION_MT_DTHREADS: INT,
    C.VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE: ULLONG,
    C.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL: INT,
    C.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT: INT,
    C.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS: INT,
    C.VIR_MIGRATE_PARAM_TLS_DESTINATION: STRING,
}

# Wire types of the job statistics (VIR_DOMAIN_JOB_*), same source.
JOB_STAT_TYPES: Final[Mapping[str, int]] = {
    C.VIR_DOMAIN_JOB_OPERATION: INT,
    C.VIR_DOMAIN_JOB_TIME_ELAPSED: ULLONG,
    C.VIR_DOMAIN_JOB_TIME_ELAPSED_NET: ULLONG,
    C.VIR_DOMAIN_JOB_TIME_REMAINING: ULLONG,
    C.VIR_DOMAIN_JOB_DOWNTIME: ULLONG,
    C.VIR_DOMAIN_JOB_DOWNTIME_NET: ULLONG,
    C.VIR_DOMAIN_JOB_SETUP_TIME: ULLONG,
    C.VIR_DOMAIN_JOB_DATA_TOTAL: ULLONG,
    C.VIR_DOMAIN_JOB_DATA_PROCESSED: ULLONG,
    C.VIR_DOMAIN_JOB_DATA_REMAINING: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_TOTAL: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_PROCESSED: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_REMAINING: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_CONSTANT: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_NORMAL: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_NORMAL_BYTES: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_BPS: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_ITERATION: ULLONG,
    C.VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS: ULLONG,
    C.VIR_DOMAIN_JOB_DISK_TOTAL: ULLONG,
    C.VIR_DOMAIN_JOB_DISK_PROCESSED: ULLONG,
    C.VIR_DOMAIN_JOB_DISK_REMAINING: ULLONG,
    C.VIR_DOMAIN_JOB_DISK_BPS: ULLONG,
    C.VIR_DOMAIN_JOB_DISK_TEMP_USED: ULLONG,
    C.VIR_DOMAIN_JOB_DISK_TEMP_TOTAL: ULLONG,
    C.VIR_DOMAIN_JOB_COMPRESSION_CACHE: ULLONG,
    C.VIR_DOMAIN_JOB_COMPRESSION_BYTES: ULLONG,
    C.VIR_DOMAIN_JOB_COMPRESSION_PAGES: ULLONG,
    C.VIR_DOMAIN_JOB_COMPRESSION_CACHE_MISSES: ULLONG,
    C.VIR_DOMAIN_JOB_COMPRESSION_OVERFLOW: ULLONG,
    C.VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE: INT,
    C.VIR_DOMAIN_JOB_SUCCESS: BOOLEAN,
    C.VIR_DOMAIN_JOB_ERRMSG: STRING,
}

# The two tables share no name, so one lookup serves both.
KNOWN_PARAM_TYPES: Final[Mapping[str, int]] = {**MIGRATION_PARAM_TYPES, **JOB_STAT_TYPES}


def check_count(count: int, limit: int) -> None:
    """libvirt's cap on the number of parameters of one call or reply."""
    if count > limit:
        raise make_error(C.VIR_ERR_RPC, C.VIR_FROM_NONE, f"too many parameters '{count}' for limit '{limit}'")


def _unknown_type(type_code: int) -> libvirtError:
    return make_error(C.VIR_ERR_RPC, C.VIR_FROM_NONE, f"unknown parameter type: {type_code}")


def param_value(param: remote_typed_param) -> ParamValue:
    """The Python value of one received parameter, as libvirt-python returns it."""
    value = param.value
    type_code = value.type
    if type_code == BOOLEAN:
        # BOOLEAN travels as an int; any non-zero int is true in C.
        return bool(value.value)
    if type_code in TYPE_NAMES:
        result: ParamValue = value.value
        return result
    raise _unknown_type(type_code)


def _check_field(name: str) -> None:
    if len(name.encode("utf-8", "surrogateescape")) > MAX_FIELD_LENGTH:
        # The receiving side's check (virTypedParamsDeserialize).
        detail = f"parameter {name} too big for destination"
        raise make_error(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_NONE, detail)


def params_to_list(
    params: Sequence[remote_typed_param], limit: int | None = None
) -> list[tuple[str, int, ParamValue]]:
    """Received parameters as ``(name, type code, value)`` in wire order, duplicates kept."""
    if limit is not None:
        check_count(len(params), limit)
    out: list[tuple[str, int, ParamValue]] = []
    for param in params:
        _check_field(param.field)
        out.append((param.field, param.value.type, param_value(param)))
    return out


def params_to_dict(params: Sequence[remote_typed_param], limit: int | None = None) -> dict[str, ParamValue]:
    """Received parameters as libvirt-python's dict (a repeated name keeps its last value)."""
    return {name: value for name, _, value in params_to_list(params, limit)}


def _infer_type(name: str, value: object) -> int:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        # No table entry: the smallest signed type that holds it, else ULLONG.
        for type_code in (INT, LLONG, ULLONG):
            low, high = _INT_RANGES[type_code]
            if low <= value <= high:
                return type_code
        raise OverflowError(f"typed parameter {name!r}: {value} does not fit in 64 bits")
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    raise TypeError(f"typed parameter {name!r}: unsupported value type {type(value).__name__}")


def make_param(name: str, type_code: int, value: object) -> remote_typed_param:
    """One wire parameter, the value checked against its type's range.

    A value of the wrong Python type raises ``TypeError`` and an out-of-range
    integer ``OverflowError``, as libvirt-python does for the same mistakes.
    """
    if len(name.encode("utf-8", "surrogateescape")) > MAX_FIELD_LENGTH:
        # The sending side's check (virTypedParamsAdd*).
        raise make_error(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, f"Field name '{name}' too long")
    wire: int | float | str
    if type_code in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"typed parameter {name!r} ({TYPE_NAMES[type_code]}) needs an int, "
                            f"not {type(value).__name__}")
        low, high = _INT_RANGES[type_code]
        if not low <= value <= high:
            raise OverflowError(f"typed parameter {name!r}: {value} out of range for {TYPE_NAMES[type_code]}")
        wire = value
    elif type_code == DOUBLE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"typed parameter {name!r} (double) needs a float, not {type(value).__name__}")
        wire = float(value)
    elif type_code == BOOLEAN:
        if not isinstance(value, bool | int):
            raise TypeError(f"typed parameter {name!r} (boolean) needs a bool, not {type(value).__name__}")
        wire = 1 if value else 0
    elif type_code == STRING:
        if not isinstance(value, str):
            raise TypeError(f"typed parameter {name!r} (string) needs a str, not {type(value).__name__}")
        wire = value
    else:
        raise _unknown_type(type_code)
    return remote_typed_param(field=name, value=remote_typed_param_value(type=type_code, value=wire))


def dict_to_params(
    params: Mapping[str, object],
    types: Mapping[str, int] | None = None,
    *,
    limit: int | None = None,
) -> list[remote_typed_param]:
    """Wire parameters for a libvirt-python style dict.

    The type of a name comes from ``types``, else from ``KNOWN_PARAM_TYPES``,
    else from the Python value (bool, then int as INT/LLONG/ULLONG by range,
    float, str).  A list or tuple value of a STRING parameter becomes one entry
    per element, as libvirt-python does for ``migrate_disks``.
    """
    out: list[remote_typed_param] = []
    for name, value in params.items():
        items: Iterable[object] = value if isinstance(value, list | tuple) else (value,)
        for item in items:
            type_code = (types or {}).get(name)
            if type_code is None:
                type_code = KNOWN_PARAM_TYPES.get(name)
            if type_code is None:
                type_code = _infer_type(name, item)
            if isinstance(value, list | tuple) and type_code != STRING:
                raise TypeError(f"typed parameter {name!r}: only string parameters may repeat")
            out.append(make_param(name, type_code, item))
    if limit is not None:
        check_count(len(out), limit)
    return out
