"""Domain event messages: which procedure carries which event ID, and how a
message becomes the arguments libvirt-python passes to its callback.

The mapping comes from the generated procedure table and the VIR_DOMAIN_EVENT_ID_*
constants: event ID `X` travels as DOMAIN_EVENT_CALLBACK_X, or DOMAIN_EVENT_X for
the events added later that carry a callbackID from the start. Every such
message starts with `callbackID`, then the domain, then the event's own fields
in the order libvirt-python's callback takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from virtwire.protocol import typedparams
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import remote
from virtwire.protocol.xdr import Procedure, XdrStruct


def _event_procedures() -> tuple[dict[int, Procedure], dict[int, int]]:
    by_id: dict[int, Procedure] = {}
    for name in dir(c):
        if not name.startswith("VIR_DOMAIN_EVENT_ID_") or name.endswith("_LAST"):
            continue
        suffix = name[len("VIR_DOMAIN_EVENT_ID_") :]
        for proc_name in (f"DOMAIN_EVENT_CALLBACK_{suffix}", f"DOMAIN_EVENT_{suffix}"):
            proc = remote.PROCEDURES_BY_NAME.get(proc_name)
            if proc is not None and proc.msg is not None and _has_callback_id(proc):
                by_id[getattr(c, name)] = proc
                break
    id_by_proc = {proc.number: event_id for event_id, proc in by_id.items()}
    return by_id, id_by_proc


def _has_callback_id(proc: Procedure) -> bool:
    assert proc.msg is not None
    names = proc.msg.__match_args__
    return bool(names) and names[0] == "callbackID"


PROC_BY_EVENT_ID, EVENT_ID_BY_PROC = _event_procedures()
CONNECTION_CLOSED: Final = remote.PROCEDURES_BY_NAME.get("CONNECT_EVENT_CONNECTION_CLOSED")


@dataclass(frozen=True, slots=True)
class DomainEvent:
    event_id: int
    callback_id: int
    dom: Any  # remote_nonnull_domain
    args: tuple[Any, ...]  # the callback's arguments between dom and opaque


def _plain(value: Any, name: str) -> Any:
    """A message field as libvirt-python hands it to a callback."""
    if name == "params" and isinstance(value, list):
        return typedparams.params_to_dict(value)
    if isinstance(value, XdrStruct):
        # e.g. the graphics event's addresses: a dict of their fields
        return {name: _plain(getattr(value, name), name) for name in value.__match_args__}
    if isinstance(value, list) and value and isinstance(value[0], XdrStruct):
        return [tuple(getattr(v, name) for name in v.__match_args__) for v in value]
    if isinstance(value, int):
        return int(value)
    return value


def decode(procedure: int, payload: bytes) -> DomainEvent | None:
    """The event in a MESSAGE packet, or None if it is not a domain event we know."""
    event_id = EVENT_ID_BY_PROC.get(procedure)
    if event_id is None:
        return None
    proc = PROC_BY_EVENT_ID[event_id]
    assert proc.msg is not None
    msg = proc.msg.from_bytes(payload, exact=False)
    dom: Any = None
    args: list[Any] = []

    def flatten(obj: Any) -> None:
        nonlocal dom
        for name in obj.__match_args__:
            value = getattr(obj, name)
            if name == "callbackID":
                continue
            if name == "dom" and dom is None:
                dom = value
            elif name == "msg":
                flatten(value)
            else:
                args.append(_plain(value, name))

    flatten(msg)
    callback_id: int = getattr(msg, "callbackID")  # noqa: B009 - generated field, typed Any
    return DomainEvent(event_id, int(callback_id), dom, tuple(args))
