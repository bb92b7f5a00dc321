"""`virt-ssh-helper [-r] URI` (also `virtwire ssh-helper`): stdio to the daemon's unix socket.

libvirt 9.0's clients reach a remote daemon over ssh by running
`virt-ssh-helper [-r] 'DRIVER:///PATH'` on the remote host (the default
proxy mode, src/remote/remote_ssh_helper.c). This is a compatible helper for
a host that runs `virtwire serve`: it picks the socket from the URI as
libvirt's helper does (remoteGetUNIXSocket, mode auto: the driver's own
daemon socket if present, else the monolithic `libvirt-sock[-ro]`; a session
URI uses the session socket) but in virtwire's runtime folder, connects, and
copies bytes both ways until either side closes.

It imports nothing heavy: ssh clients start one per connection.
"""

from __future__ import annotations

# _socket, not socket: the wrapper module (enums, io) is most of an import budget
# this program has not got; it needs one AF_UNIX connect and a descriptor.
import _socket
import os
import select
import sys

from .rundir import TYPE_CHECKING, runtime_dir_name

if TYPE_CHECKING:
    from collections.abc import Sequence

BUFFER_SIZE = 1024 * 1024  # as libvirt's helper
VERSION = "0.1.0"
_TRANSPORTS = ("tls", "unix", "ssh", "libssh2", "ext", "tcp", "libssh")
_HELP = """Usage:
  {prog} [OPTION…] URI - libvirt socket proxy

Internal tool used to handle connections coming from remote
clients (virtwire's virt-ssh-helper). Not intended to be called directly by the user.

Help Options:
  -h, --help         Show help options

Application Options:
  -r, --readonly     Connect read-only
  -V, --version      Display version information
"""


class HelperError(Exception):
    """A message for stderr, then exit status 1."""


def _split_uri(uri: str) -> tuple[str, str, str, str]:
    """(scheme, server, path) of a libvirt URI; HelperError when it has none."""
    scheme, sep, rest = uri.partition("://")
    if sep:
        end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
        authority, rest = rest[:end], rest[end:]
    else:
        scheme, sep, rest = uri.partition(":")
        authority = ""
    if not sep or not scheme:
        raise HelperError(f"cannot parse '{uri}': internal error: Unable to parse URI {uri}")
    path = rest.split("?", 1)[0].split("#", 1)[0]
    server = authority.rpartition("@")[2].rsplit(":", 1)[0] if authority.rpartition("@")[2] else ""
    return scheme, server.strip("[]"), path, uri


def socket_path(uri: str, readonly: bool, rundir: str | None = None) -> str:
    """The daemon socket for `uri`, chosen as libvirt's virt-ssh-helper chooses it."""
    scheme, server, path, _ = _split_uri(uri)
    driver, plus, transport = scheme.partition("+")
    if plus:
        transport = transport.lower()
        if transport not in _TRANSPORTS:
            raise HelperError(
                f"cannot parse URI transport '{uri}': invalid argument: remote_open: transport in URL not "
                "recognised (should be tls|unix|ssh|ext|tcp|libssh2|libssh)"
            )
        if transport == "unix" and server:
            raise HelperError(
                f"cannot parse URI transport '{uri}': invalid argument: using unix socket and remote "
                f"server '{server}' is not supported."
            )
    else:
        transport = "tls" if server else "unix"
    if transport != "unix":
        raise HelperError(f"unexpected URI transport '{uri}'")
    base = rundir if rundir is not None else runtime_dir_name()
    # remoteGetURIDaemonInfo: a session daemon for /session and test+..., unless root.
    session = (path == "/session" or scheme.startswith("test+")) and os.geteuid() > 0
    suffix = "sock" if session or not readonly else "sock-ro"
    if driver:
        direct = os.path.join(base, f"virt{driver}d-{suffix}")
        if os.path.exists(direct):
            return direct
    return os.path.join(base, f"libvirt-{suffix}")


class _Route:
    """One direction of the bridge: what it read and could not write yet."""

    __slots__ = ("buffer", "dst", "pending", "src")

    def __init__(self, src: int, dst: int) -> None:
        self.src = src
        self.dst = dst
        self.buffer = bytearray(BUFFER_SIZE)
        self.pending = memoryview(b"")

    def read(self) -> bool:
        """Read what is there and write what the far side takes; False at end of file."""
        count = os.readv(self.src, [self.buffer])
        if count == 0:
            return False
        self.pending = memoryview(self.buffer)[:count]
        return self.write()

    def write(self) -> bool:
        try:
            written = os.write(self.dst, self.pending)
        except BlockingIOError:
            return True
        self.pending = self.pending[written:]
        return True


def bridge(sock_fd: int, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy stdin to the socket and the socket to stdout until either side ends or fails.

    One thread, non-blocking descriptors and poll(), as libvirt's helper: a
    direction whose far side is full waits without stopping the other one
    (a client blocked sending while an event comes back would otherwise
    deadlock the pair).
    """
    fds = {sock_fd, stdin_fd, stdout_fd}
    blocking = {fd: os.get_blocking(fd) for fd in fds}
    try:
        for fd in fds:
            os.set_blocking(fd, False)
        _copy(_Route(stdin_fd, sock_fd), _Route(sock_fd, stdout_fd))
    except OSError:
        pass  # a reset or a closed pipe ends the bridge like an end of file
    finally:
        for fd, was in blocking.items():  # stdin/stdout may be shared with a shell
            try:
                os.set_blocking(fd, was)
            except OSError:
                continue  # (closed already)


def _copy(*routes: _Route) -> None:
    poller = select.poll()
    registered: dict[int, int] = {}
    readable = select.POLLIN | select.POLLHUP | select.POLLERR
    writable = select.POLLOUT | select.POLLHUP | select.POLLERR
    while True:
        wanted: dict[int, int] = {}
        for route in routes:
            if route.pending:
                wanted[route.dst] = wanted.get(route.dst, 0) | select.POLLOUT
            else:
                wanted[route.src] = wanted.get(route.src, 0) | select.POLLIN
        for fd in [fd for fd in registered if fd not in wanted]:
            poller.unregister(fd)
            del registered[fd]
        for fd, mask in wanted.items():
            if registered.get(fd) != mask:
                poller.register(fd, mask)
                registered[fd] = mask
        events: dict[int, int] = {}
        for fd, event in poller.poll():
            events[fd] = events.get(fd, 0) | event
        for route in routes:
            if route.pending:
                if events.get(route.dst, 0) & writable:
                    route.write()
            elif events.get(route.src, 0) & readable:
                try:
                    if not route.read():
                        return
                except BlockingIOError:
                    continue


def _parse_args(argv: Sequence[str], prog: str) -> tuple[bool, str] | int:
    """(readonly, URI), or the exit status when there is nothing to bridge (GOption's behaviour)."""
    readonly = version = False
    positional: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            positional.extend(args)
        elif arg in ("-r", "--readonly"):
            readonly = True
        elif arg in ("-V", "--version"):
            version = True
        elif arg in ("-h", "--help", "-?"):
            sys.stdout.write(_HELP.format(prog=prog) + "\n")
            return 0
        elif arg.startswith("-") and arg != "-":
            sys.stderr.write(f"option parsing failed: Unknown option {arg}\n")
            return 1
        else:
            positional.append(arg)
    if version:
        print(f"{prog} (virtwire) {VERSION}")
        return 0
    if len(positional) != 1:
        sys.stderr.write(_HELP.format(prog=prog) + "\n")
        return 1
    return readonly, positional[0]


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    prog = prog or os.path.basename(sys.argv[0]) or "virt-ssh-helper"
    parsed = _parse_args(sys.argv[1:] if argv is None else argv, prog)
    if isinstance(parsed, int):
        return parsed
    readonly, uri = parsed
    try:
        path = socket_path(uri, readonly)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
            raise HelperError(
                f"cannot connect to '{path}': Failed to connect socket to '{path}': {reason}"
            ) from None
    except HelperError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return 1
    bridge(sock.fileno())
    # Nothing is left to clean up: skip the interpreter's teardown (it is on every ssh close).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
