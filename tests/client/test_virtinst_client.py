"""virtinst (virt-install, virt-xml, virt-clone) running on virtwire.libvirt instead of
libvirt-python, against a real libvirtd: the same session as with Debian's own stack.

virtinst is libvirt-python's heaviest user in Debian: capabilities and domain
capabilities parsing, storage pool creation, volume allocation and cloning,
definition round trips, error reporting.  vwtestkit.virtinst runs its code with
``libvirt`` resolving to ``virtwire.libvirt``; every message and every guest,
volume and listing it leaves must be what the stock tools leave.
"""

from __future__ import annotations

from collections.abc import Callable

from vwtestkit.libvirtd import RealLibvirtd
from vwtestkit.virtinst import require_virtinst, scenario


def test_virtinst_on_our_client_matches_the_stock_tools(fresh_libvirtd: Callable[..., RealLibvirtd]) -> None:
    require_virtinst()
    stock = scenario(fresh_libvirtd().unix_uri, "real")
    ours = scenario(fresh_libvirtd().unix_uri, "ours")
    assert ours == stock
