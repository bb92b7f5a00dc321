"""Access control at dispatch: libvirt's per-API, per-object permission checks.

Each procedure's permissions come from the spec's ``@acl``/``@aclfilter``
annotations (``remote.ACCESS``); the answers come from the policy file
(``access_policy``).  The checks follow libvirt's generated
``vir*EnsureACL``/``vir*CheckACL`` helpers:

* a rule with a flag (``domain:save:VIR_DOMAIN_AFFECT_CONFIG``) applies only when
  those flags are all set (``!A|B``: when none of them is), one with a parameter
  (``domain:write::source:VIR_..._AGENT``) only when the argument has that value;
* ``connect`` permissions are checked before anything else; an object permission
  is checked on the object the call names, looked up by the driver first (a
  missing domain is still VIR_ERR_NO_DOMAIN, as libvirt looks up before it
  checks), or on the object the call's XML defines, or, for lookups, on the
  object found;
* a refusal is VIR_ERR_ACCESS_DENIED, "access denied: 'Test' denied access" (the
  driver's name, never the reason, as libvirt sanitises it);
* ``@aclfilter`` listings keep only the objects the identity may see, and their
  NUM_OF_* counts count only those.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from virtwire.protocol import errors as E
from virtwire.protocol import xdr
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.protocol.xdr import Access, AccessCheck, ArrayType, Procedure, StructType, XdrStruct

from .access_policy import AccessObject, Policy, SubjectAccess

# The wire references of each object kind libvirt's @acl lines name.
REFERENCE_TYPES: dict[str, tuple[type, ...]] = {
    "domain": (R.remote_nonnull_domain,),
    "network": (R.remote_nonnull_network,),
    "network_port": (R.remote_nonnull_network_port,),
    "storage_pool": (R.remote_nonnull_storage_pool,),
    "storage_vol": (R.remote_nonnull_storage_vol,),
    "interface": (R.remote_nonnull_interface,),
    "node_device": (R.remote_nonnull_node_device,),
    "secret": (R.remote_nonnull_secret,),
    "nwfilter": (R.remote_nonnull_nwfilter,),
    "nwfilter_binding": (R.remote_nonnull_nwfilter_binding,),
}
# A snapshot or checkpoint is checked as its domain.
_DOMAIN_CHILDREN = (R.remote_nonnull_domain_snapshot, R.remote_nonnull_domain_checkpoint)
_XML_FIELDS = ("xml", "xml_desc", "xmlDesc")

# (kind, wire reference or name or domain ID) -> every object it may designate, as the
# driver knows them (a reference names an object by name and by UUID: both are checked)
Resolver = Callable[[str, Any], list[AccessObject]]
ListCall = Callable[[str, Any], Awaitable[Any]]


def access_denied(driver_name: str) -> E.libvirtError:
    return E.make_error(C.VIR_ERR_ACCESS_DENIED, C.VIR_FROM_ACCESS, f"'{driver_name}' denied access")


def _flag_value(expr: str) -> int:
    return sum(int(getattr(C, name)) for name in expr.split("|"))


def applies(check: AccessCheck, args: Any) -> bool:
    """Whether a rule applies to this call (its flag or parameter condition holds)."""
    if check.flag is not None:
        flags = int(getattr(args, "flags", 0) or 0)
        if check.flag.startswith("!"):
            if flags & _flag_value(check.flag[1:]):
                return False
        else:
            wanted = _flag_value(check.flag)
            if flags & wanted != wanted:
                return False
    if check.param is not None and check.value is not None:
        actual = int(getattr(args, check.param, 0) or 0)
        if check.value.startswith("!"):
            return actual != _flag_value(check.value[1:])
        return actual == _flag_value(check.value)
    return True


def _references(value: Any, kind: str) -> list[Any]:
    """The wire references of ``kind`` in a struct's fields (and in snapshots, nested messages)."""
    types = REFERENCE_TYPES[kind]
    found = []
    for name in value.__match_args__:
        item = getattr(value, name)
        if isinstance(item, types):
            found.append(item)
        elif kind == "domain" and isinstance(item, _DOMAIN_CHILDREN):
            found.append(item.dom)
        elif isinstance(item, XdrStruct):
            found += _references(item, kind)  # an event callback's message wraps the event
    return found


def _max_field(args: Any) -> str | None:
    """The ``max<X>`` argument of a listing (maxids, maxnames...), if it has one."""
    if args is None:
        return None
    return next((name for name in args.__match_args__ if name.startswith("max")), None)


def list_bound(proc: Procedure) -> int:
    """The bound of the list a listing returns (REMOTE_DOMAIN_LIST_MAX...)."""
    assert proc.ret is not None
    ret_type = proc.ret.xdr_type
    assert isinstance(ret_type, StructType)
    return next(t.size for _, t in ret_type.fields if isinstance(t, ArrayType))


def _xml_object(kind: str, args: Any) -> AccessObject | None:
    """The object a define/create call's XML describes (its <name> and <uuid>)."""
    for name in _XML_FIELDS:
        text = getattr(args, name, None)
        if isinstance(text, str):
            break
    else:
        return None
    try:
        root = ET.fromstring(text.encode("utf-8", "surrogateescape"))
    except ET.ParseError:
        return None
    obj_name = (root.findtext("name") or "").strip()
    uuid = (root.findtext("uuid") or "").strip() or None
    if not obj_name and uuid is None:
        return None
    return AccessObject(kind, obj_name, uuid)


class CallAccess:
    """The access checks of one connection's calls."""

    def __init__(
        self,
        policy: Policy,
        identity: Callable[[], Mapping[str, str]],
        resolve: Resolver,
        list_call: ListCall,
        driver_name: str,
    ) -> None:
        self._policy = policy
        self._identity = identity
        self._resolve = resolve
        self._list_call = list_call
        self._driver_name = driver_name
        self._subject: SubjectAccess | None = None

    @property
    def subject(self) -> SubjectAccess:
        # Made at the first check (CONNECT_OPEN's): by then authentication is over.
        if self._subject is None:
            self._subject = self._policy.for_identity(self._identity())
        return self._subject

    def _deny(self) -> E.libvirtError:
        return access_denied(self._driver_name)

    def may_see_event(self, kind: str, msg: Any) -> bool:
        """Whether the identity may see an event's object (libvirt checks getattr on it).

        The event names its object as the server knows it, also when the event
        says the object is gone, so its own reference is what is checked.
        """
        if self.subject.uniform(kind, "getattr") is not None:
            return bool(self.subject.uniform(kind, "getattr"))
        return all(
            self.subject.allows(kind, "getattr", obj)
            for ref in _references(msg, kind)
            for obj in wire_objects(kind, ref)
        )

    async def before(self, proc: Procedure, args: Any) -> list[AccessCheck]:
        """Check what can be checked before the call; return the checks that need its result."""
        access = R.ACCESS.get(proc.number)
        if access is None:
            return []
        later: list[AccessCheck] = []
        subject = self.subject
        for check in access.checks:
            if not applies(check, args):
                continue
            kind, perm = check.object, check.permission
            if kind == "connect":
                if not subject.allows(kind, perm):
                    raise self._deny()
                continue
            uniform = subject.uniform(kind, perm)
            refs = _references(args, kind) if args is not None else []
            if refs:
                for ref in refs:
                    # A reference to no object passes: the call then reports it missing,
                    # as libvirt looks the object up before it checks.
                    for obj in self._resolve(kind, ref):
                        if uniform is False or not subject.allows(kind, perm, obj):
                            raise self._deny()
                continue
            if uniform is True:
                continue
            obj_from_xml = _xml_object(kind, args) if args is not None else None
            if obj_from_xml is not None:
                if not subject.allows(kind, perm, obj_from_xml):
                    raise self._deny()
            elif "LOOKUP" in proc.name and proc.ret is not None:
                later.append(check)  # decided on the object found
            else:
                raise self._deny()  # the object cannot be known before the call
        return later

    def after(self, later: list[AccessCheck], ret: Any) -> None:
        """The checks on the object a lookup found."""
        for check in later:
            found = _references(ret, check.object) if ret is not None else []
            objs = [obj for ref in found for obj in self._resolve(check.object, ref)]
            if not objs or not all(self.subject.allows(check.object, check.permission, o) for o in objs):
                raise self._deny()

    def widen(self, proc: Procedure, args: Any) -> Any:
        """A filtered listing's arguments asking for as many objects as the list may hold.

        libvirt filters before it stops at the caller's ``max<X>``; the driver here
        stops first, so ask it for everything and cut after filtering (``filter``).
        """
        access = R.ACCESS.get(proc.number)
        limit = _max_field(args)
        if access is None or not access.filters or limit is None or proc.ret is None:
            return args
        return xdr.replace(args, **{limit: list_bound(proc)})

    async def filter(self, proc: Procedure, args: Any, ret: Any) -> Any:
        """A listing's result with only the objects the identity may see."""
        access: Access | None = R.ACCESS.get(proc.number)
        if access is None or not access.filters or ret is None:
            return ret
        kind, perm = access.filters[0]
        uniform = self.subject.uniform(kind, perm)
        if uniform is True:
            return ret
        if "_NUM_OF_" in proc.name or proc.name.startswith("NUM_OF_"):
            return await self._filtered_count(proc, args, ret, kind, perm, uniform)
        changes: dict[str, Any] = {}
        for name in ret.__match_args__:
            value = getattr(ret, name)
            if isinstance(value, list):
                kept = [v for v in value if uniform is None and self._visible(kind, perm, v)]
                limit = _max_field(args)
                changes[name] = kept[: getattr(args, limit)] if limit is not None else kept
                if getattr(ret, "ret", None) == len(value):
                    changes["ret"] = len(changes[name])  # listAll*'s count of what it returns
        return xdr.replace(ret, **changes) if changes else ret

    def _visible(self, kind: str, perm: str, item: Any) -> bool:
        objs = self._resolve(kind, item)  # none: gone meanwhile
        return bool(objs) and all(self.subject.allows(kind, perm, obj) for obj in objs)

    async def _filtered_count(
        self, proc: Procedure, args: Any, ret: Any, kind: str, perm: str, uniform: bool | None
    ) -> Any:
        (count_field,) = ret.__match_args__
        if uniform is False:
            return xdr.replace(ret, **{count_field: 0})
        listing = await self._list_call(proc.name.replace("NUM_OF", "LIST"), args)
        (items,) = (getattr(listing, name) for name in listing.__match_args__)
        visible = sum(1 for item in items if self._visible(kind, perm, item))
        return xdr.replace(ret, **{count_field: visible})


def wire_objects(kind: str, ref: Any) -> list[AccessObject]:
    """The object a reference describes, taken at its word (for drivers that cannot look up)."""
    if isinstance(ref, str):
        return [AccessObject(kind, ref)]
    if isinstance(ref, int):
        return [AccessObject(kind, str(ref))]
    uuid = getattr(ref, "uuid", None)
    uuid_text = str(uuidlib.UUID(bytes=bytes(uuid))) if isinstance(uuid, bytes | bytearray) else uuid
    for attr in ("name", "portdev", "usageID"):
        name = getattr(ref, attr, None)
        if isinstance(name, str):
            return [AccessObject(kind, name, uuid_text)]
    return [AccessObject(kind, uuid_text or "", uuid_text)]
