"""Typed parameters as the test driver and libvirtd handle them: validation and getter replies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import TYPE_NAMES, ParamValue, make_param, params_to_list

from ...errors import report

Param = tuple[str, int, ParamValue]


def received(params: Sequence[R.remote_typed_param], limit: int) -> list[Param]:
    """The parameters of a call as (name, type, value), with libvirtd's count limit."""
    return params_to_list(params, limit)


def _type_name(type_code: int) -> str:
    return TYPE_NAMES.get(type_code, "unknown")


def validate(params: Sequence[Param], allowed: Mapping[str, int]) -> None:
    """virTypedParamsValidate: known names, right types, no repeats; errors in name order."""
    keys = sorted(allowed, key=str.encode)
    ordered = sorted(params, key=lambda p: p[0].encode())
    i = j = 0
    last: str | None = None
    while i < len(ordered) and j < len(keys):
        name, type_code, _ = ordered[i]
        if name != keys[j]:
            j += 1
            continue
        if name == last:
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, f"parameter '{name}' occurs multiple times")
        if type_code != allowed[name]:
            detail = (
                f"invalid type '{_type_name(type_code)}' for parameter '{name}', "
                f"expected '{_type_name(allowed[name])}'"
            )
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, detail)
        last = name
        i += 1
    if j == len(keys) and i != len(ordered):
        raise report(
            C.VIR_ERR_ARGUMENT_UNSUPPORTED, C.VIR_FROM_NONE, f"parameter '{ordered[i][0]}' not supported"
        )


def too_many(requested: int, limit: int) -> None:
    """libvirtd's own check before it asks the driver for ``requested`` parameters."""
    if requested > limit:
        raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_RPC, "nparams too large")


def serialise(values: Sequence[Param | None], flags: int, limit: int) -> list[R.remote_typed_param]:
    """virTypedParamsSerialize on the server: empty slots and (without STRING_OKAY) strings dropped."""
    if len(values) > limit:
        raise report(
            C.VIR_ERR_RPC, C.VIR_FROM_NONE, f"too many parameters '{len(values)}' for limit '{limit}'"
        )
    out: list[R.remote_typed_param] = []
    for value in values:
        if value is None:
            continue
        name, type_code, item = value
        if type_code == C.VIR_TYPED_PARAM_STRING and not flags & C.VIR_TYPED_PARAM_STRING_OKAY:
            continue
        out.append(make_param(name, type_code, item))
    return out


def first(values: Sequence[Param], nparams: int) -> list[Param]:
    """TEST_SET_PARAM: the driver fills only the slots the caller made room for."""
    return list(values[: max(nparams, 0)])
