"""The call path of the async API's objects (client/aio_generated.py).

A generated method makes its one call directly (`_rpc`, awaited on the shell's
`call`).  A method whose Python shape libvirt-python writes by hand runs the
facade's own code for it (`_facade`): a facade object stands in for the async
one (its "shadow", on a connection whose socket awaits through client/bridge.py),
so every list, dict, tuple, error and multi-call flow is the facade's, written
once.  Objects the facade returns come back as the async API's objects, and
async objects given as arguments go in as their shadows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from virtwire.client import bridge, core, errfactory, ops
from virtwire.client.facade import virConnect
from virtwire.client.surface import base as surface_base
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import remote

# Facade class name (virDomain, ...) -> the async class standing for it.
ASYNC_CLASSES: Final[dict[str, Callable[..., Any]]] = {}


def _ident(ret: Any) -> Any:
    return ret


class AsyncHandle:
    """What generated async methods call: `_rpc`, `_wrap`, `_facade`."""

    _FACADE: str = ""  # the facade class this class stands for
    _ref: Any
    _conn: Any  # the parents generated methods hand to the objects they return
    _dom: Any
    _net: Any

    @property
    def _caller(self) -> Any:  # pragma: no cover - every concrete class defines it
        raise NotImplementedError

    async def _rpc(self, proc_name: str, args: tuple[Any, ...], flags: int = 0) -> Any:
        """Call `proc_name` with its args struct built from `args` (field order); the ret struct."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        op = ops.Op(proc, codec(*args) if codec is not None else None, _ident, flags)
        return await self._caller.call(op)

    def _wrap(self, klass: str, parent: Any, ref: Any) -> Any:
        return ASYNC_CLASSES[klass](parent, ref)

    def _shadow(self) -> Any:  # pragma: no cover - every concrete class defines it
        raise NotImplementedError

    async def _facade(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run the facade's `method` for this object; its result as async objects."""
        shadow = self._shadow()
        fn = getattr(shadow, method)
        result = await bridge.run_sync(
            fn, *[to_facade(a) for a in args], **{k: to_facade(v) for k, v in kwargs.items()}
        )
        ref = getattr(shadow, "_ref", None)
        if ref is not None:
            self._ref = ref  # the facade may have changed it: create() gives the running domain's id
        return to_async(result)


def to_facade(value: Any) -> Any:
    """An argument for the facade: async objects as their shadows."""
    if isinstance(value, AsyncHandle):
        return value._shadow()
    if isinstance(value, list | tuple) and any(isinstance(v, AsyncHandle) for v in value):
        return type(value)(to_facade(v) for v in value)
    return value


def to_async(value: Any) -> Any:
    """A facade result for the async API: facade objects as async objects."""
    if isinstance(value, _ShadowConnect):
        return value.owner
    if isinstance(value, surface_base.ObjectHandle):
        return ASYNC_CLASSES[type(value).__name__](to_async(value._parent), value._ref)
    if isinstance(value, list | tuple) and any(
        isinstance(v, surface_base.ObjectHandle | list | tuple) for v in value
    ):
        return type(value)(to_async(v) for v in value)
    return value


class AsyncObject(AsyncHandle):
    """An object of an async connection: its parent, its wire reference, its name."""

    def __init__(self, parent: Any, ref: Any) -> None:
        self._parent = parent
        self._ref = ref
        if isinstance(parent, AsyncObject):
            self._conn = parent._conn
            self._dom = parent if parent._FACADE == "virDomain" else None
            self._net = parent if parent._FACADE == "virNetwork" else None
        else:
            self._conn = parent

    @property
    def _caller(self) -> Any:
        return self._conn

    @property
    def name(self) -> str:
        """The object's name, as the server gave it (libvirt-python's name())."""
        return str(self._ref.name)

    def _shadow(self) -> Any:
        return surface_base.CLASSES[self._FACADE](self._parent._shadow(), _obj=self._ref)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self._ref, 'name', '?')!r}>"


class _RawCall:
    """A call already encoded by the facade (proc number and payload)."""

    __slots__ = ("_data", "proc")

    def __init__(self, procedure: int, payload: bytes) -> None:
        self.proc = remote.PROCEDURES[procedure]
        self._data = payload

    def payload(self) -> bytes:
        return self._data


class BridgedSocket:
    """The facade's socket API (sync.SyncConnection's call/call_many) over an async shell."""

    def __init__(self, shell: Any) -> None:
        self._shell = shell

    @property
    def alive(self) -> bool:
        return bool(self._shell.protocol.dead is None)

    def call(self, procedure: int, payload: bytes) -> core.Reply:
        shell = self._shell
        reply: core.Reply = bridge.await_(
            shell._roundtrip(shell.protocol.start_call, _RawCall(procedure, payload))
        )
        return reply

    def call_with_fds(self, procedure: int, payload: bytes, fds: list[int]) -> core.Reply:
        shell = self._shell
        if fds and not shell.passes_fds():
            bridge.await_(shell._shutdown())  # libvirt drops the connection too
            raise errfactory.fds_unsupported()
        protocol = shell.protocol

        def start(number: int, data: bytes, waiter: Any) -> tuple[int, bytes]:
            return protocol.start_call_passing_fds(number, data, fds, waiter)  # type: ignore[no-any-return]

        reply: core.Reply = bridge.await_(shell._roundtrip(start, _RawCall(procedure, payload)))
        return reply

    def call_receiving_fds(self, procedure: int, payload: bytes) -> core.Reply:
        """A call whose reply may pass descriptors (REPLY_WITH_FDS): the shell reads
        them with its packets (unix sockets), its core pairs them with the reply."""
        return self.call(procedure, payload)

    def call_many(self, calls: list[tuple[int, bytes]]) -> list[core.Reply | libvirtError]:
        out: list[core.Reply | libvirtError] = []
        for procedure, payload in calls:
            try:
                out.append(self.call(procedure, payload))
            except libvirtError as exc:
                out.append(exc)
        return out

    def shutdown(self) -> None:
        """The async connection owns the socket: closing a shadow closes nothing."""


class _ShadowConnect(virConnect):
    """The facade's virConnect over an async connection (see the module docstring)."""

    def __init__(self, owner: Any) -> None:
        super().__init__(owner.target, BridgedSocket(owner), owner.readonly)  # type: ignore[arg-type]
        self.owner = owner
        self._loop = None
        self._features = owner.features
        self._torn_down = True  # the async connection closes the socket, not this

    def __del__(self) -> None:
        pass


def shadow_connect(owner: Any) -> Any:
    return _ShadowConnect(owner)


def register(facade_name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        ASYNC_CLASSES[facade_name] = cls
        return cls

    return deco
