"""Every procedure of the generated table, called with hostile arguments, gets a
libvirt error or a success, and the server logs no traceback.

Modes (tests/fixtures/vwtestkit/hostile.py): strings that are not UTF-8, hold a NUL,
take 1 MiB or are empty; integers at INT_MAX / INT_MIN / -1 (UINT_MAX,
UINT64_MAX for unsigned); variable arrays empty or at their bound; and extreme
integers on test:///default's domain "test" (flags 0) to get past lookups.  A call that
ends the connection (CONNECT_CLOSE, a second CONNECT_OPEN) is followed by a new
connection.  Procedures other helpers add to the spec and the driver are swept
too: the list is the generated PROCEDURES table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from virtwire.protocol.errors import unset_error
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated import virnet as V
from vwtestkit import RawRpcClient, VirtwireServer, start_server, stop_servers
from vwtestkit.hostile import MODES, hostile_args

REPLY_OK, REPLY_ERROR = 0, 1
UNSET_MESSAGE = unset_error().get_error_message()


@pytest.fixture(scope="module")
def sweep_server() -> Iterator[VirtwireServer]:
    server = start_server(pki=None, ro=False, tls=False)
    try:
        yield server
    finally:
        stop_servers([server])


class Session:
    """A raw connection that reconnects (and reopens) when the server hangs up."""

    def __init__(self, server: VirtwireServer) -> None:
        self.server = server
        self.client: RawRpcClient | None = None

    def connect(self) -> RawRpcClient:
        if self.client is None:
            self.client = RawRpcClient.tcp("127.0.0.1", self.server.tcp_port, timeout=60)
            self.client.open()
        return self.client

    def call(self, procedure: int, payload: bytes) -> tuple[int, bytes] | None:
        """(status, payload) of the reply, or None if the server closed the connection."""
        client = self.connect()
        try:
            reply = client.call(procedure, payload)
        except (EOFError, ConnectionError):
            client.close()
            self.client = None
            return None
        client.unsolicited.clear()
        return reply.status, reply.payload

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def reset(self) -> None:
        """The next call goes over a new, opened connection."""
        self.close()
        self.client = None


def _problem(name: str, outcome: tuple[int, bytes] | None, ends_connection: bool) -> str | None:
    if outcome is None:
        return None if ends_connection else f"{name}: connection closed"
    status, payload = outcome
    if status == REPLY_OK:
        return None
    if status != REPLY_ERROR:
        return f"{name}: reply status {status}"
    error = V.remote_error.from_bytes(payload)
    if error.message == UNSET_MESSAGE:
        return f"{name}: {error.message} (a handler raised)"
    return None


# Ending the connection is these procedures' job.
ENDS_CONNECTION = {R.remote_procedure.REMOTE_PROC_CONNECT_CLOSE, R.remote_procedure.REMOTE_PROC_CONNECT_OPEN}


@pytest.mark.hang_limit(600)
@pytest.mark.parametrize("mode", MODES)
def test_every_procedure_answers_hostile_arguments_with_an_error_or_success(
    mode: str, sweep_server: VirtwireServer
) -> None:
    session = Session(sweep_server)
    problems: list[str] = []
    try:
        for number, proc in sorted(R.PROCEDURES.items()):
            outcome = session.call(number, hostile_args(proc, mode))
            problem = _problem(proc.name, outcome, number in ENDS_CONNECTION)
            if problem:
                problems.append(problem)
            if number in ENDS_CONNECTION:
                session.reset()
    finally:
        session.close()
    assert sweep_server.running()
    log = sweep_server.log
    assert "Traceback" not in log, log[-20000:]
    assert problems == []
