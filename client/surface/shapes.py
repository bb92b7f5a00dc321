"""The call shapes libvirt-python's hand-written bindings share.

Each helper runs the procedures the C binding runs, in the same order (so the
wire traffic matches libvirt-python's), and returns its Python value: typed
parameters as a dict (count first, then the values), name lists (count
first, then the names), listAll* as objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from virtwire.client.surface.base import Handle
from virtwire.protocol import typedparams
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated.remote import remote_typed_param

# libvirt's client library asks for string parameters too (the daemon supports
# them since 0.9.7), as libvirt-domain.c does for every typed-parameter getter.
STRING_OKAY = c.VIR_TYPED_PARAM_STRING_OKAY


def ret_fields(ret: Any) -> list[Any]:
    return [getattr(ret, name) for name in ret.__match_args__]


def get_params(
    h: Handle, proc: str, head: tuple[Any, ...], flags: int, tail: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """Typed parameters the libvirt-python way: ask how many (nparams 0), then fetch them."""
    wire = flags | STRING_OKAY
    first = h._rpc(proc, (*head, *tail, 0, wire), flags)
    count = int(first.nparams)
    if count == 0:
        return {}
    ret = h._rpc(proc, (*head, *tail, count, wire), flags)
    return typedparams.params_to_dict(ret.params)


def typed(current: list[remote_typed_param], params: Mapping[str, Any]) -> list[remote_typed_param]:
    """`params` with the types the current values have (libvirt-python's setPyVirTypedParameter)."""
    types = {p.field: p.value.type for p in current}
    out = []
    for name, value in params.items():
        if name not in types:
            raise LookupError(f'Attribute name "{name}" could not be recognized')
        out.append(typedparams.make_param(name, types[name], value))
    return out


def set_params(
    h: Handle,
    get_proc: str,
    set_proc: str,
    head: tuple[Any, ...],
    params: Mapping[str, Any],
    flags: int,
    owner: str = "Domain",
    tail: tuple[Any, ...] = (),
) -> int:
    """Set typed parameters, typed as the getter reports them (as libvirt-python does)."""
    if not params:
        raise LookupError("Need non-empty dictionary to set attributes")
    wire = flags | STRING_OKAY
    first = h._rpc(get_proc, (*head, *tail, 0, wire), flags)
    count = int(first.nparams)
    if count == 0:
        raise LookupError(f"{owner} has no settable attributes")
    current = h._rpc(get_proc, (*head, *tail, count, wire), flags).params
    h._rpc(set_proc, (*head, *tail, typed(current, params), flags), flags)
    return 0


def names(
    h: Handle, count_proc: str, list_proc: str, head: tuple[Any, ...] = (), flags: int | None = None
) -> list[str]:
    """A name list: count first, then that many names (none asked for when the count is 0)."""
    tail = () if flags is None else (flags,)
    count = int(ret_fields(h._rpc(count_proc, (*head, *tail), flags or 0))[0])
    if count == 0:
        return []
    return list(ret_fields(h._rpc(list_proc, (*head, count, *tail), flags or 0))[0])


def list_all(h: Handle, proc: str, head: tuple[Any, ...], flags: int, klass: str, parent: Any) -> list[Any]:
    """listAll*: the objects of the reply, each in its class."""
    ret = h._rpc(proc, (*head, 1, flags), flags)
    return [h._wrap(klass, parent, ref) for ref in ret_fields(ret)[0]]
