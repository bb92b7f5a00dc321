"""A program (ssh, or +ext's command) as the connection: its stdin/stdout are a socket.

As libvirt does (virnetsocket.c, virNetSocketNewConnectCommand), the child gets
one end of a unix socketpair as stdin and stdout and a pipe as stderr; the
client keeps the other end, a real socket, so every shell (threads, trio,
asyncio) uses it like a unix socket. When the connection dies, what the
program wrote on stderr becomes part of the error ("Cannot recv data: <ssh's
complaint>: Connection reset by peer"). Closing the socket stops the program
as virProcessAbort does: SIGTERM, a 10 ms grace, SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from typing import TYPE_CHECKING

from virtwire.client import errfactory
from virtwire.protocol.errors import libvirtError

# subprocess (and signal) where a program is started or stopped: only ssh and
# +ext connections run one, and every client imports this module.
if TYPE_CHECKING:
    import subprocess

STDERR_LIMIT = 1024  # virFileReadLimFD(sock->errfd, 1024, ...)
# How long to wait for the program's stderr to reach end of file once its
# stdout did (it is exiting): bounded, so a wedged program cannot hang a client.
STDERR_GRACE = 2.0
ABORT_GRACE = 0.01

# The variables libvirt passes to ssh (virCommandAddEnvPassCommon and
# virNetSocketNewConnectSSH); everything else is dropped.
_PASSED_ENV = (
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "DYLD_INSERT_LIBRARIES",
    "DYLD_FORCE_FLAT_NAMESPACE",
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "KRB5CCNAME",
    "SSH_AUTH_SOCK",
    "SSH_ASKPASS",
    "OPENSSL_CONF",
    "DISPLAY",
    "XAUTHORITY",
)


def child_environment() -> dict[str, str]:
    env = {"LC_ALL": "C"}
    for name in _PASSED_ENV:
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    return env


class CommandProcess:
    """The tunnel program and the read end of its stderr pipe."""

    def __init__(self, process: subprocess.Popen[bytes], errfd: int) -> None:
        self._process: subprocess.Popen[bytes] | None = process
        self._errfd = errfd
        self._errout = b""
        os.set_blocking(errfd, False)

    @property
    def pid(self) -> int:
        return -1 if self._process is None else self._process.pid

    def stderr_text(self) -> str:
        """What the program wrote on stderr (first 1 KiB, trailing space removed).

        Called when the connection broke: the program is exiting, so wait a
        little for its stderr to close, never long.
        """
        self._read_stderr(STDERR_GRACE)
        return self._errout.decode("utf-8", "replace").rstrip()

    def _read_stderr(self, grace: float) -> None:
        fd = self._errfd
        if fd < 0:
            return
        deadline = time.monotonic() + grace
        while len(self._errout) < STDERR_LIMIT:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                break
            try:
                chunk = os.read(fd, STDERR_LIMIT - len(self._errout))
            except OSError:
                break
            if not chunk:
                break
            self._errout += chunk

    def abort(self) -> None:
        """virProcessAbort: reap it if it ended, else SIGTERM, a short grace, SIGKILL."""
        import signal
        import subprocess

        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(ABORT_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    process.kill()
                process.wait()
        if self._errfd >= 0:
            # Keep what is already there: asyncio closes the socket (and so this) on
            # a reset before the reader asks for the error text.
            self._read_stderr(0.0)
            with contextlib.suppress(OSError):
                os.close(self._errfd)
            self._errfd = -1


class CommandSocket(socket.socket):
    """Our end of the socketpair for the thread shell: closing it also stops the program.

    (trio wants a plain socket.socket: its shell takes `spawn`'s pair instead.)"""

    tunnel: CommandProcess

    def close(self) -> None:
        super().close()
        self.tunnel.abort()


def spawn(argv: tuple[str, ...]) -> tuple[socket.socket, CommandProcess]:
    """Start `argv` with its stdin/stdout on a socketpair; return our end and the program."""
    import subprocess

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    err_read, err_write = os.pipe()
    try:
        process = subprocess.Popen(
            argv,
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=err_write,
            env=child_environment(),
            close_fds=True,
        )
    except OSError as exc:
        ours.close()
        os.close(err_read)
        raise exec_failed(argv[0], exc) from None
    finally:
        theirs.close()
        os.close(err_write)
    return ours, CommandProcess(process, err_read)


def spawn_socket(argv: tuple[str, ...]) -> CommandSocket:
    """`spawn`, as one socket object that owns the program."""
    ours, tunnel = spawn(argv)
    sock = CommandSocket(ours.family, ours.type, ours.proto, fileno=ours.detach())
    sock.tunnel = tunnel
    return sock


def exec_failed(binary: str, exc: OSError) -> libvirtError:
    """libvirt's child reports a failed exec on stderr and exits; the client then
    reads a reset connection: the same error here, without the fork."""
    reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
    errout = f"libvirt:  error : cannot execute binary {binary}: {reason}"
    return errfactory.system(f"Cannot recv data: {errout}: Connection reset by peer", 104)
