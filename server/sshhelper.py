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

import argparse
import os
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .rundir import runtime_dir

BUFFER_SIZE = 1024 * 1024  # as libvirt's helper
VERSION = "0.1.0"
_TRANSPORTS = ("tls", "unix", "ssh", "libssh2", "ext", "tcp", "libssh")


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


def socket_path(uri: str, readonly: bool, rundir: Path | None = None) -> Path:
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
    base = rundir if rundir is not None else runtime_dir()
    # remoteGetURIDaemonInfo: a session daemon for /session and test+..., unless root.
    session = (path == "/session" or scheme.startswith("test+")) and os.geteuid() > 0
    suffix = "sock" if session or not readonly else "sock-ro"
    if driver:
        direct = base / f"virt{driver}d-{suffix}"
        if direct.exists():
            return direct
    return base / f"libvirt-{suffix}"


def _pump(read_fd: int, write: socket.socket | int) -> None:
    """Copy until end of file or an error; then the whole helper ends."""
    try:
        while True:
            data = os.read(read_fd, BUFFER_SIZE)
            if not data:
                break
            if isinstance(write, socket.socket):
                write.sendall(data)
            else:
                view = memoryview(data)
                while view:
                    view = view[os.write(write, view) :]
    except OSError:
        pass


def bridge(sock: socket.socket, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy stdin to the socket and the socket to stdout until either closes."""
    done = threading.Event()

    def run(read_fd: int, write: socket.socket | int) -> None:
        _pump(read_fd, write)
        done.set()

    for args in ((stdin_fd, sock), (sock.fileno(), stdout_fd)):
        threading.Thread(target=run, args=args, daemon=True).start()
    done.wait()


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [OPTION...] URI - libvirt socket proxy",
        description="Internal tool used to handle connections coming from remote clients "
        "(virtwire's virt-ssh-helper). Not intended to be called directly by the user.",
    )
    parser.add_argument("-r", "--readonly", action="store_true", help="Connect read-only")
    parser.add_argument("-V", "--version", action="store_true", help="Display version information")
    parser.add_argument("uri", nargs="?")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    prog = prog or os.path.basename(sys.argv[0]) or "virt-ssh-helper"
    parser = _parser(prog)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.version:
        print(f"{prog} (virtwire) {VERSION}")
        return 0
    if args.uri is None:
        parser.print_help(sys.stderr)
        return 1
    try:
        path = socket_path(args.uri, args.readonly)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
            raise HelperError(
                f"cannot connect to '{path}': Failed to connect socket to '{path}': {reason}"
            ) from None
    except HelperError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return 1
    bridge(sock)
    # The other direction's thread may still sit in a read: leave without joining it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
