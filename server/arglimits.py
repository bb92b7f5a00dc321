"""The argument limits libvirtd's dispatch layer enforces before any driver code.

libvirtd checks some count arguments against remote_protocol.x's limits in
its dispatch stubs, so the answer does not depend on the driver (a driver
without the API still gets the limit error).  Two families:

* generated stubs, for every call that returns one list sized by a ``max<X>``
  argument (``maxids`` and ``ids<REMOTE_DOMAIN_LIST_MAX>``): VIR_ERR_RPC,
  "maxids must be non-negative" / "maxids > REMOTE_DOMAIN_LIST_MAX".  They are
  found from the generated types: the argument, the list and its bound's name;
* hand-written stubs (``HAND_WRITTEN``): VIR_ERR_INTERNAL_ERROR with their own
  wording, including libvirt's quirks (DOMAIN_GET_VCPUS reports a negative
  ``maplen`` as "maxinfo must be non-negative").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from virtwire.protocol import errors as E
from virtwire.protocol.generated import remote as R
from virtwire.protocol.xdr import ArrayType, IntType, Procedure, StructType

Check = Callable[[Any], None]


def _internal(detail: str) -> E.libvirtError:
    return E.internal_error(detail, E.VIR_FROM_RPC)


def _ret_array(proc: Procedure, name: str) -> ArrayType | None:
    ret = proc.ret.xdr_type if proc.ret is not None else None
    if not isinstance(ret, StructType):
        return None
    for field, ftype in ret.fields:
        if field.lower() == name.lower() and isinstance(ftype, ArrayType) and not ftype.fixed:
            return ftype
    return None


def _bound(proc: Procedure, ret_field: str) -> int:
    array = _ret_array(proc, ret_field)
    assert array is not None, f"{proc.name} returns no {ret_field} list"
    return array.size


def _non_negative(field: str, *, reported_as: str | None = None) -> Check:
    def check(args: Any) -> None:
        if getattr(args, field) < 0:
            raise _internal(f"{reported_as or field} must be non-negative")

    return check


def _at_most(field: str, limit: int, detail: str) -> Check:
    def check(args: Any) -> None:
        if getattr(args, field) > limit:
            raise _internal(detail)

    return check


def _product_at_most(first: str, second: str, limit: int, detail: str) -> Check:
    def check(args: Any) -> None:
        if getattr(args, first) * getattr(args, second) > limit:
            raise _internal(detail)

    return check


def _nparams(proc: Procedure) -> list[Check]:
    """The typed-parameter getters: nparams against the reply's params bound."""
    return [_non_negative("nparams"), _at_most("nparams", _bound(proc, "params"), "nparams too large")]


def _vcpus(proc: Procedure) -> list[Check]:
    return [
        _non_negative("maxinfo"),
        _non_negative("maplen", reported_as="maxinfo"),  # libvirt's wording
        _at_most("maxinfo", R.REMOTE_VCPUINFO_MAX, "maxinfo > REMOTE_VCPUINFO_MAX"),
        _product_at_most("maxinfo", "maplen", R.REMOTE_CPUMAPS_MAX, "maxinfo * maplen > REMOTE_CPUMAPS_MAX"),
    ]


def _vcpu_pin_info(proc: Procedure) -> list[Check]:
    return [
        _non_negative("ncpumaps"),
        _non_negative("maplen"),
        _at_most("ncpumaps", R.REMOTE_VCPUINFO_MAX, "ncpumaps > REMOTE_VCPUINFO_MAX"),
        _product_at_most("ncpumaps", "maplen", R.REMOTE_CPUMAPS_MAX, "maxinfo * maplen > REMOTE_CPUMAPS_MAX"),
    ]


def _emulator_pin_info(proc: Procedure) -> list[Check]:
    return [_non_negative("maplen")]


def _memory_stats(proc: Procedure) -> list[Check]:
    array = _ret_array(proc, "stats")
    assert array is not None
    return [_at_most("maxStats", array.size, f"maxStats > {array.bound_name}")]


def _disk_errors(proc: Procedure) -> list[Check]:
    return [_at_most("maxerrors", _bound(proc, "errors"), "maxerrors too large")]


def _cpu_stats(proc: Procedure) -> list[Check]:
    return [
        _at_most("nparams", R.REMOTE_NODE_CPU_STATS_MAX, "nparams too large"),
        _at_most("ncpus", R.REMOTE_DOMAIN_GET_CPU_STATS_NCPUS_MAX, "ncpus too large"),
    ]


# libvirtd's hand-written dispatchers that check counts, and what each checks.
HAND_WRITTEN: dict[str, Callable[[Procedure], list[Check]]] = {
    "DOMAIN_GET_VCPUS": _vcpus,
    "DOMAIN_GET_VCPU_PIN_INFO": _vcpu_pin_info,
    "DOMAIN_GET_EMULATOR_PIN_INFO": _emulator_pin_info,
    "DOMAIN_MEMORY_STATS": _memory_stats,
    "DOMAIN_GET_DISK_ERRORS": _disk_errors,
    "DOMAIN_GET_CPU_STATS": _cpu_stats,
    "DOMAIN_GET_SCHEDULER_PARAMETERS": _nparams,
    "DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS": _nparams,
    "DOMAIN_GET_MEMORY_PARAMETERS": _nparams,
    "DOMAIN_GET_BLKIO_PARAMETERS": _nparams,
    "DOMAIN_GET_NUMA_PARAMETERS": _nparams,
    "DOMAIN_GET_INTERFACE_PARAMETERS": _nparams,
    "DOMAIN_GET_BLOCK_IO_TUNE": _nparams,
    "DOMAIN_BLOCK_STATS_FLAGS": _nparams,
    "NODE_GET_CPU_STATS": _nparams,
    "NODE_GET_MEMORY_STATS": _nparams,
    "NODE_GET_MEMORY_PARAMETERS": _nparams,
}


def _list_limit(proc: Procedure) -> list[Check]:
    """The generated stubs' check: a signed ``max<X>`` argument sizing the list ``<X>``."""
    args = proc.args.xdr_type if proc.args is not None else None
    if not isinstance(args, StructType):
        return []
    checks: list[Check] = []
    for field, ftype in args.fields:
        if not (field.startswith("max") and isinstance(ftype, IntType) and ftype.lo < 0):
            continue
        array = _ret_array(proc, field[3:])
        if array is None or not array.bound_name:
            continue

        def check(args: Any, field: str = field, array: ArrayType = array) -> None:
            value = getattr(args, field)
            if value < 0:
                raise E.rpc_error(f"{field} must be non-negative")
            if value > array.size:
                raise E.rpc_error(f"{field} > {array.bound_name}")

        checks.append(check)
    return checks


@cache
def limit_checks(proc: Procedure) -> tuple[Check, ...]:
    """The checks libvirtd runs on ``proc``'s decoded arguments, in its order."""
    hand_written = HAND_WRITTEN.get(proc.name)
    return tuple(hand_written(proc) if hand_written is not None else _list_limit(proc))


def check_argument_limits(proc: Procedure, args: Any) -> None:
    """Raise libvirtd's error if a count argument is outside remote_protocol.x's limits."""
    for check in limit_checks(proc):
        check(args)
