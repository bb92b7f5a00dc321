"""libvirt-python's `libvirtmod`: each C function name bound to what implements it.

Programs (and libvirt-python's own API coverage test) look up the C-level
binding of a function by its C name; here that is the Python method or
function of the surface, found through the generated BINDINGS table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from virtwire.client.surface.generated import BINDINGS

# C-level names libvirt-python's binding module spells differently.
_RENAMED: Final = {
    "virRegisterErrorHandler": ("libvirt", "registerErrorHandler"),
    "virConnectListDomainsID": ("virConnect", "listDomainsID"),
    "virConnectOpenAuth": ("libvirt", "openAuth"),
    "virGetVersion": ("libvirt", "getVersion"),
}


def bindings(namespace: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
    """C name -> callable, for every binding `namespace` (virtwire.libvirt's globals) has."""
    out: dict[str, Callable[..., Any]] = {}
    for cname, (klass, method) in [*BINDINGS.items(), *_RENAMED.items()]:
        if klass == "libvirt":
            target = namespace.get(method)
        else:
            owner = namespace.get(klass)
            target = getattr(owner, method, None) if owner is not None else None
        if callable(target):
            out[cname] = target
    return out
