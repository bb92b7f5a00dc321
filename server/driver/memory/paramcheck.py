"""Typed parameters as the test driver and libvirtd handle them: validation and getter replies.

``validate`` is protocol.typedparams.validate (libvirt's virTypedParamsValidate), re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.typedparams import TYPE_NAMES, ParamValue, make_param, params_to_list, validate

from ...errors import report

__all__ = ["Param", "first", "received", "serialise", "too_many", "validate"]

Param = tuple[str, int, ParamValue]


def received(params: Sequence[R.remote_typed_param], limit: int) -> list[Param]:
    """The parameters of a call as (name, type, value), with libvirtd's count limit."""
    return params_to_list(params, limit)


def _type_name(type_code: int) -> str:
    return TYPE_NAMES.get(type_code, "unknown")


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
