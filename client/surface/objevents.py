"""Events of networks, storage pools, node devices and secrets.

libvirt-python's networkEventRegisterAny, storagePoolEventRegisterAny,
nodeDeviceEventRegisterAny, secretEventRegisterAny and their Deregister
calls.  The event IDs and their message procedures come from the constants and
the procedure table: event ID VIR_<FAMILY>_EVENT_ID_<X> travels as
<FAMILY>_EVENT_<X>, a message of callbackID, the object, then the callback's
own arguments (event and detail, or none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from virtwire.client import errfactory
from virtwire.client.surface import call, lasterror
from virtwire.client.surface.base import Handle
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c
from virtwire.protocol.generated import remote
from virtwire.protocol.xdr import Procedure


@dataclass(frozen=True, slots=True)
class Family:
    prefix: str  # NETWORK, STORAGE_POOL, ...
    klass: str  # the Python class of the object
    api: str  # the C name part: Network, StoragePool, ...
    last: int  # VIR_<FAMILY>_EVENT_ID_LAST


FAMILIES: Final = {
    f.prefix: f
    for f in (
        Family("NETWORK", "virNetwork", "Network", c.VIR_NETWORK_EVENT_ID_LAST),
        Family("STORAGE_POOL", "virStoragePool", "StoragePool", c.VIR_STORAGE_POOL_EVENT_ID_LAST),
        Family("NODE_DEVICE", "virNodeDevice", "NodeDevice", c.VIR_NODE_DEVICE_EVENT_ID_LAST),
        Family("SECRET", "virSecret", "Secret", c.VIR_SECRET_EVENT_ID_LAST),
    )
}


def _message_procedures() -> dict[int, tuple[Family, int, Procedure]]:
    """Message procedure number -> (family, event ID, procedure)."""
    out: dict[int, tuple[Family, int, Procedure]] = {}
    for fam in FAMILIES.values():
        marker = f"VIR_{fam.prefix}_EVENT_ID_"
        for name in dir(c):
            if not name.startswith(marker) or name.endswith("_LAST"):
                continue
            proc = remote.PROCEDURES_BY_NAME.get(f"{fam.prefix}_EVENT_{name[len(marker) :]}")
            if proc is not None and proc.msg is not None:
                out[proc.number] = (fam, getattr(c, name), proc)
    return out


BY_PROC: Final = _message_procedures()


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    family: Family
    event_id: int
    callback_id: int
    obj: Any  # the wire reference of the network, pool, device or secret
    args: tuple[Any, ...]


def decode(procedure: int, payload: bytes) -> ObjectEvent | None:
    """The event in a MESSAGE packet, or None if it is not one of these families'."""
    found = BY_PROC.get(procedure)
    if found is None:
        return None
    fam, event_id, proc = found
    assert proc.msg is not None
    msg = proc.msg.from_bytes(payload, exact=False)
    values = [getattr(msg, name) for name in msg.__match_args__]
    return ObjectEvent(fam, event_id, int(values[0]), values[1], tuple(int(v) for v in values[2:]))


def check_event_id(fam: Family, event_id: int) -> None:
    """libvirt-python refuses an event ID it has no callback type for before
    calling libvirt, without setting an error: the exception carries whatever
    the thread's last error is."""
    if not 0 <= event_id < fam.last:
        raise libvirtError(f"virConnect{fam.api}EventRegisterAny() failed", lasterror.get())


def not_registered(callback_id: int) -> libvirtError:
    # virObjectEventStateCallbackID (src/conf/object_event.c), as the remote driver runs it.
    return errfactory.templated(
        c.VIR_ERR_INVALID_ARG, c.VIR_FROM_NONE, f"event callback id {callback_id} not registered"
    )


def _ids(conn: Any, fam: Family) -> dict[int, Any]:
    attr = fam.api[0].lower() + fam.api[1:] + "EventCallbackID"
    ids: dict[int, Any] | None = getattr(conn, attr, None)
    if ids is None:
        ids = {}
        setattr(conn, attr, ids)
    return ids


class ObjectEventsMixin(Handle):
    """The registration methods of virConnect for the four families."""

    _object_callbacks: dict[tuple[str, int], tuple[int, Callable[..., Any], Any]]
    _loop: Any
    _live: Callable[[str], Any]  # virConnect's: the socket, or libvirt's invalid-connection error

    def _register(self, prefix: str, obj: Any, event_id: int, cb: Callable[..., Any], opaque: Any) -> int:
        fam = FAMILIES[prefix]
        self._live(f"virConnect{fam.api}EventRegisterAny")
        check_event_id(fam, event_id)
        if self._loop is None:
            # As for domain events: no event loop, no timer to deliver them.
            err = errfactory.templated(
                c.VIR_ERR_INTERNAL_ERROR, c.VIR_FROM_NONE, "could not initialize domain event timer"
            )
            call.report(err)
            raise err
        ref = None if obj is None else obj._ref
        ret = self._rpc(f"CONNECT_{prefix}_EVENT_REGISTER_ANY", (event_id, ref))
        callback_id = int(ret.callbackID)
        self._object_callbacks[(prefix, callback_id)] = (event_id, cb, opaque)
        # libvirt-python keeps the opaque data of each registration in e.g.
        # conn.networkEventCallbackID; programs read it.
        _ids(self, fam)[callback_id] = opaque
        return callback_id

    def _deregister(self, prefix: str, callback_id: int) -> None:
        fam = FAMILIES[prefix]
        self._live(f"virConnect{fam.api}EventDeregisterAny")
        if (prefix, callback_id) not in self._object_callbacks:
            err = not_registered(callback_id)
            call.report(err)  # libvirt's error, reported as its others
            raise err
        self._rpc(f"CONNECT_{prefix}_EVENT_DEREGISTER_ANY", (callback_id,))
        del self._object_callbacks[(prefix, callback_id)]
        _ids(self, fam).pop(callback_id, None)

    def networkEventRegisterAny(self, net: Any, eventID: int, cb: Callable[..., Any], opaque: Any) -> int:
        return self._register("NETWORK", net, eventID, cb, opaque)

    def networkEventDeregisterAny(self, callbackID: int) -> None:
        self._deregister("NETWORK", callbackID)

    def storagePoolEventRegisterAny(
        self, pool: Any, eventID: int, cb: Callable[..., Any], opaque: Any
    ) -> int:
        return self._register("STORAGE_POOL", pool, eventID, cb, opaque)

    def storagePoolEventDeregisterAny(self, callbackID: int) -> None:
        self._deregister("STORAGE_POOL", callbackID)

    def nodeDeviceEventRegisterAny(self, dev: Any, eventID: int, cb: Callable[..., Any], opaque: Any) -> int:
        return self._register("NODE_DEVICE", dev, eventID, cb, opaque)

    def nodeDeviceEventDeregisterAny(self, callbackID: int) -> None:
        self._deregister("NODE_DEVICE", callbackID)

    def secretEventRegisterAny(self, secret: Any, eventID: int, cb: Callable[..., Any], opaque: Any) -> int:
        return self._register("SECRET", secret, eventID, cb, opaque)

    def secretEventDeregisterAny(self, callbackID: int) -> None:
        self._deregister("SECRET", callbackID)

    def _object_event(self, procedure: int, payload: bytes) -> Callable[[], None] | None:
        """The delivery of an object event (to run on the event loop), or None."""
        try:
            event = decode(procedure, payload)
        except ValueError:
            return None  # malformed: dropped, as libvirt's client does
        if event is None:
            return None
        reg = self._object_callbacks.get((event.family.prefix, event.callback_id))
        if reg is None or reg[0] != event.event_id:
            return None
        _, cb, opaque = reg
        obj = self._wrap(event.family.klass, self, event.obj)

        def deliver() -> None:
            cb(self, obj, *event.args, opaque)

        return deliver
