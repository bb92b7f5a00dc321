"""What every class of the libvirt-python surface shares.

`Handle` is the root of the generated method classes: one way to run a
procedure by name (read-only check, error handler) and to wrap a returned
wire reference in its Python class.  `ObjectHandle` adds the lifetime of an
object handle (it keeps its connection open, as libvirt's objects hold a
reference on theirs) and libvirt-python's `connect()` / `c_pointer()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from virtwire.client import core, errfactory, ops
from virtwire.client.surface import call, lasterror
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.generated import constants as c

# Class name -> class, filled as the facade's classes are defined (a generated
# method returning a virStoragePool must not import the module defining it).
CLASSES: Final[dict[str, Callable[..., Any]]] = {}
_thread_error = lasterror.state


def register(cls: type) -> type:
    CLASSES[cls.__name__] = cls
    return cls


def _ident(ret: Any) -> Any:
    return ret


class Handle:
    """The call path of generated and hand-written methods."""

    _ref: Any
    _conn: Any  # the parents generated methods hand to the objects they return
    _dom: Any
    _net: Any

    def _run_op(self, op: ops.Op) -> Any:  # pragma: no cover - every concrete class defines it
        raise NotImplementedError

    def _rpc(self, proc_name: str, args: tuple[Any, ...], flags: int = 0) -> Any:
        """Call `proc_name` with its args struct built from `args` (field order); the ret struct."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        op = ops.Op(proc, codec(*args) if codec is not None else None, _ident, flags)
        return self._run_op(op)

    def _rpc_fds(self, proc_name: str, args: tuple[Any, ...], fds: list[int], flags: int = 0) -> Any:
        """As _rpc, for a call passing file descriptors (unix sockets: CALL_WITH_FDS)."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        assert codec is not None
        return self._run_fds(ops.Op(proc, codec(*args), _ident, flags), [int(fd) for fd in fds])

    def _run_fds(self, op: ops.Op, fds: list[int]) -> Any:  # pragma: no cover - classes define it
        raise NotImplementedError

    def _rpc_receiving_fds(self, proc_name: str, args: tuple[Any, ...]) -> tuple[Any, list[int]]:
        """As _rpc, for a call whose reply passes descriptors (REPLY_WITH_FDS):
        the ret struct and the descriptors, the caller's to close."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        assert codec is not None
        return self._run_receiving_fds(ops.Op(proc, codec(*args), _ident))

    def _run_receiving_fds(self, op: ops.Op) -> tuple[Any, list[int]]:  # pragma: no cover
        raise NotImplementedError

    def _wrap(self, klass: str, parent: Any, ref: Any) -> Any:
        return CLASSES[klass](parent, _obj=ref)

    def _rpc_read_allowed(self, proc_name: str, args: tuple[Any, ...]) -> Any:
        """As _rpc, for a call libvirt lets read-only connections make although
        its procedure's policy is deny (the refusal depends on another argument
        than flags, e.g. virDomainInterfaceAddresses' source)."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        assert codec is not None
        return self._run_op_read_allowed(ops.Op(proc, codec(*args), _ident))

    def _run_op_read_allowed(self, op: ops.Op) -> Any:  # pragma: no cover - ObjectHandle defines it
        raise NotImplementedError


class ObjectHandle(Handle):
    """An object of a connection: libvirt-python's constructor, lifetime and back-pointers."""

    def __init__(self, parent: Any, _obj: Any = None) -> None:
        if _obj is None:
            # libvirt-python: only the library creates objects, around a C pointer.
            raise Exception(f"Expected a wrapped C Object but got {type(_obj)}")
        self._parent = parent
        kind = self._parent_kind()
        self._conn = parent if kind == "conn" else parent.connect()
        if kind == "domain":
            self._dom = parent
        elif kind == "network":
            self._net = parent
        self._ref = _obj
        self._conn._domain_refs.append(None)

    @classmethod
    def _parent_kind(cls) -> str:
        return "conn"

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:  # noqa: SIM105 - runs per freed object; suppress() would build an object each time
                conn._domain_gone()
            except Exception:  # never raise from a finalizer
                pass

    def _run_op(self, op: ops.Op) -> Any:
        conn = self._conn
        return call.run(conn._sock, conn._readonly, op)

    def _rpc(self, proc_name: str, args: tuple[Any, ...], flags: int = 0) -> Any:
        """Handle._rpc and call.run written out, with no Op: the path of every
        generated method of an object (an object keeps its connection's socket
        alive after virConnect.close())."""
        proc = ops.PROCS[proc_name]
        codec = proc.args
        value = None if codec is None else codec(*args)
        conn = self._conn
        _thread_error.err = None  # lasterror.reset(): every libvirt API call starts so
        try:
            if conn._readonly:
                core.check_read_only(proc, flags)
            payload = b"" if value is None else value.to_bytes()
            return core.decode_reply(proc, conn._sock.call(proc.number, payload))
        except libvirtError as exc:
            call.report(exc)
            raise

    def _call(self, op: ops.Op, readonly_check: bool = True) -> Any:
        # An object keeps its connection's socket alive after virConnect.close().
        conn = self._conn
        return call.invoke(conn._sock, conn._readonly and readonly_check, op)

    def _run_fds(self, op: ops.Op, fds: list[int]) -> Any:
        conn = self._conn
        try:
            return call.invoke_with_fds(conn._sock, conn._readonly, op, fds)
        except libvirtError as exc:
            call.report(exc)
            raise

    def _run_receiving_fds(self, op: ops.Op) -> tuple[Any, list[int]]:
        try:
            return call.invoke_receiving_fds(self._conn._sock, op)
        except libvirtError as exc:
            call.report(exc)
            raise

    def _run_op_read_allowed(self, op: ops.Op) -> Any:
        try:
            return self._call(op, readonly_check=False)
        except libvirtError as exc:
            call.report(exc)
            raise

    def connect(self) -> Any:
        return self._conn

    def c_pointer(self) -> int:
        """An integer naming the underlying object (there is no C pointer: its id)."""
        return id(self._ref)


def uuid_string(raw: bytes) -> str:
    """16 bytes as UUID text, lowercase 8-4-4-4-12 (virUUIDFormat)."""
    import uuid  # here, not at the top: see parse_uuid

    return str(uuid.UUID(bytes=bytes(raw)))


def parse_uuid(text: str, api: str, domain: int, message: str) -> bytes:
    """A UUID string as 16 bytes; libvirt's invalid-argument error (its `message`) otherwise."""
    # uuid imported here: it imports platform, a cost to every client's start for a rare call.
    import uuid

    try:
        return uuid.UUID(text).bytes
    except (ValueError, TypeError, AttributeError):
        err = errfactory.make(c.VIR_ERR_INVALID_ARG, domain, message, api, "uuidstr", None, 0, 0)
        call.report(err)  # libvirt's check inside the API call: reported as its other errors
        raise err from None
