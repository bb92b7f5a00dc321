"""The two scopes around every call the server answers: fdpass.serving (the
descriptors a call brings and its reply takes) and StreamTable.serving (the stream
a call opens). Each must clean up on every way out, success or failure."""

from __future__ import annotations

import os

import pytest
from virtwire.server import fdpass, streams
from virtwire.server.streams import StreamSink, StreamTable


class Endpoint(StreamSink):
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def pipe_fds() -> list[int]:
    read_end, write_end = os.pipe()
    return [read_end, write_end]


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_call_keeps_what_it_took_and_its_reply_keeps_what_it_gave() -> None:
    brought = pipe_fds()
    kept, passed_back = pipe_fds()
    with fdpass.serving(list(brought)) as call:
        assert fdpass.take_one(0) == brought[0]
        fdpass.give(passed_back)
    assert call.outgoing == [passed_back]
    assert is_open(brought[0])  # taken: the call's to close
    assert not is_open(brought[1])  # left: closed when the call ended
    assert is_open(passed_back)  # the connection sends it, then closes it
    for fd in (brought[0], kept, passed_back):
        os.close(fd)


def test_a_failed_call_closes_what_it_brought_and_what_its_reply_would_have_taken() -> None:
    brought = pipe_fds()
    kept, passed_back = pipe_fds()
    with pytest.raises(RuntimeError), fdpass.serving(list(brought)) as call:
        fdpass.give(passed_back)
        raise RuntimeError("the driver failed")
    assert call.outgoing == [] and call.incoming == []
    assert not any(is_open(fd) for fd in [*brought, passed_back])
    os.close(kept)


def test_outside_a_call_there_are_no_descriptors() -> None:
    with fdpass.serving([]):
        pass
    assert fdpass.take() == []
    kept, orphan = pipe_fds()
    with pytest.raises(Exception, match="no call to pass a descriptor with"):
        fdpass.give(orphan)
    assert not is_open(orphan)
    os.close(kept)


def test_a_successful_call_registers_the_first_stream_it_attached_and_aborts_any_other() -> None:
    table = StreamTable(None)  # type: ignore[arg-type]  # no host needed until a stream runs
    first, second = Endpoint(), Endpoint()
    with table.serving(209, 6):
        streams.attach(first)
        streams.attach(second)
    assert len(table) == 1
    assert not first.aborted and second.aborted
    # The same call again (procedure and serial) cannot open a second stream.
    again = Endpoint()
    with table.serving(209, 6):
        streams.attach(again)
    assert again.aborted and len(table) == 1


def test_a_failed_call_aborts_every_stream_it_attached() -> None:
    table = StreamTable(None)  # type: ignore[arg-type]
    endpoint = Endpoint()
    with pytest.raises(RuntimeError), table.serving(209, 7):
        streams.attach(endpoint)
        raise RuntimeError("the driver failed after opening the stream")
    assert endpoint.aborted and len(table) == 0


def test_attach_outside_a_call_is_refused() -> None:
    table = StreamTable(None)  # type: ignore[arg-type]
    with table.serving(209, 8):
        pass
    with pytest.raises(RuntimeError, match="outside a call"):
        streams.attach(Endpoint())
