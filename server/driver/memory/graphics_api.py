"""Descriptors to and from a domain: OPEN_GRAPHICS, OPEN_GRAPHICS_FD, FD_ASSOCIATE.

libvirt's test driver implements none of them; these answer as its QEMU driver
does (qemuDomainOpenGraphics, qemuDomainOpenGraphicsFD, qemuDomainFDAssociate),
with its checks, their order and its errors.  The display behind a graphics
client is simulated (graphics_sim.py).  The descriptors come and go through
server/fdpass.py: any this module does not take is closed by the connection.

FD_ASSOCIATE keeps the descriptors as QEMU keeps its fd groups: under their name
on the domain, active or not (a domain started later uses them), replaced by a
later association of the same name, and closed when the connection that made
the association closes or the domain is removed.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from typing import Any

import trio
from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ... import fdpass
from ...errors import report, unsupported_flags
from ..base import ConnectionContext
from .core import MemoryCore
from .graphics_sim import Display, GraphicsHub
from .model import Domain

GRAPHICS = "graphics"  # Domain.extra: the GraphicsHub of the current run
FD_GROUPS = "fdgroups"  # Domain.extra: name -> FdGroup
_OPENABLE = {"vnc": "vnc", "spice": "spice", "dbus": "@dbus-display"}
_FD_ASSOCIATE_FLAGS = C.VIR_DOMAIN_FD_ASSOCIATE_SECLABEL_RESTORE | C.VIR_DOMAIN_FD_ASSOCIATE_SECLABEL_WRITABLE


@dataclass(slots=True)
class FdGroup:
    """Descriptors associated with a domain under one name (QEMU's virStorageSourceFDTuple)."""

    fds: list[int]
    conn_id: int
    writable: bool
    restore_label: bool

    def close(self) -> None:
        fdpass.close_all(self.fds)


def _check_socket(fd: int) -> None:
    """virDomainOpenGraphics' checks of the descriptor, in the daemon."""
    api = "virDomainOpenGraphics"
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise E.system_error(
            exc.errno or 0, f"Unable to access file descriptor {fd}", C.VIR_FROM_DOMAIN
        ) from None
    if not stat.S_ISSOCK(mode):
        raise E.invalid_argument(api, "fd", f"fd {fd} must be a socket", C.VIR_FROM_DOMAIN)


class GraphicsAPI(MemoryCore):
    nursery: trio.Nursery | None

    # --- the domain's graphics ------------------------------------------------------

    def _display(self, dom: Domain, idx: int, flags: int) -> Display:
        """The display `idx` names, with the QEMU driver's checks after the job starts."""
        if not dom.active:
            raise report(C.VIR_ERR_OPERATION_INVALID, C.VIR_FROM_DOMAIN, "domain is not running")
        devices = dom.tree.find("devices")
        graphics = [] if devices is None else devices.findall("graphics")
        if idx >= len(graphics):
            raise report(C.VIR_ERR_INTERNAL_ERROR, C.VIR_FROM_QEMU, f"No graphics backend with index {idx}")
        device = graphics[idx]
        kind = device.get("type", "")
        protocol = _OPENABLE.get(kind)
        if protocol is None:
            raise report(
                C.VIR_ERR_CONFIG_UNSUPPORTED,
                C.VIR_FROM_QEMU,
                f"Can only open VNC, SPICE or D-Bus p2p graphics backends, not {kind}",
            )
        password = device.get("passwd") if kind == "vnc" else None
        skip = bool(flags & C.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
        return Display(protocol, dom.name, password, skip)

    def _hub(self, dom: Domain) -> GraphicsHub:
        hub = dom.extra.get(GRAPHICS)
        if not isinstance(hub, GraphicsHub) or hub.closed:
            hub = dom.extra[GRAPHICS] = GraphicsHub(self._start_graphics_task)
        return hub

    def _start_graphics_task(self, fn: Any) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(fn)
        else:
            trio.lowlevel.spawn_system_task(fn)

    def stop_domain(self, dom: Domain, *, reason: int, detail: int, emit: bool = True) -> None:
        hub = dom.extra.pop(GRAPHICS, None)
        if isinstance(hub, GraphicsHub):
            hub.close()  # QEMU is gone: so is every display connection
        super().stop_domain(dom, reason=reason, detail=detail, emit=emit)

    def remove_domain(self, dom: Domain) -> None:
        for group in dom.extra.pop(FD_GROUPS, {}).values():
            group.close()
        super().remove_domain(dom)

    # --- procedures -----------------------------------------------------------------

    async def domain_open_graphics(
        self, args: R.remote_domain_open_graphics_args, ctx: ConnectionContext
    ) -> None:
        fd = fdpass.take_one(0)  # the daemon's virNetMessageDupFD, before anything else
        try:
            _check_socket(fd)
            if args.flags & ~C.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH:
                raise unsupported_flags(
                    args.flags & ~C.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH,
                    "qemuDomainOpenGraphics",
                    C.VIR_FROM_QEMU,
                )
            dom = self.lookup(args.dom)
            display = self._display(dom, args.idx, args.flags)
        except BaseException:
            os.close(fd)
            raise
        self._hub(dom).add(fd, display)

    async def domain_open_graphics_fd(
        self, args: R.remote_domain_open_graphics_fd_args, ctx: ConnectionContext
    ) -> None:
        if args.flags & ~C.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH:
            raise unsupported_flags(
                args.flags & ~C.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH, "qemuDomainOpenGraphicsFD", C.VIR_FROM_QEMU
            )
        dom = self.lookup(args.dom)
        display = self._display(dom, args.idx, args.flags)
        ours, theirs = socket_pair()
        self._hub(dom).add(ours, display)
        fdpass.give(theirs)

    async def domain_fd_associate(
        self, args: R.remote_domain_fd_associate_args, ctx: ConnectionContext
    ) -> None:
        fds = fdpass.take()
        try:
            if not fds:
                # The daemon's public API call (virDomainFDAssociate) checks the count first.
                raise E.invalid_argument(
                    "virDomainFDAssociate",
                    "nfds",
                    "nfds in virDomainFDAssociate must not be zero",
                    C.VIR_FROM_DOMAIN,
                )
            if args.flags & ~_FD_ASSOCIATE_FLAGS:
                raise unsupported_flags(
                    args.flags & ~_FD_ASSOCIATE_FLAGS, "qemuDomainFDAssociate", C.VIR_FROM_QEMU
                )
            dom = self.lookup(args.dom)
        except BaseException:
            fdpass.close_all(fds)
            raise
        group = FdGroup(
            fds,
            ctx.conn_id,
            writable=bool(args.flags & C.VIR_DOMAIN_FD_ASSOCIATE_SECLABEL_WRITABLE),
            restore_label=bool(args.flags & C.VIR_DOMAIN_FD_ASSOCIATE_SECLABEL_RESTORE),
        )
        groups: dict[str, FdGroup] = dom.extra.setdefault(FD_GROUPS, {})
        old = groups.pop(args.name, None)
        if old is not None:
            old.close()
        groups[args.name] = group

    async def connection_closed(self, ctx: ConnectionContext) -> None:
        """The fd groups a connection associated go with it (qemuDomainFDHashCloseConnect)."""
        await super().connection_closed(ctx)
        for dom in self.domains():
            groups = dom.extra.get(FD_GROUPS)
            if not groups:
                continue
            for name in [n for n, g in groups.items() if g.conn_id == ctx.conn_id]:
                groups.pop(name).close()

    def fd_groups(self, dom: Domain) -> dict[str, FdGroup]:
        """The fd groups associated with `dom` (for tests and the admin view)."""
        groups: dict[str, FdGroup] = dom.extra.get(FD_GROUPS, {})
        return groups


def socket_pair() -> tuple[int, int]:
    """A connected unix stream pair, close-on-exec, as raw descriptors."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a.detach(), b.detach()
