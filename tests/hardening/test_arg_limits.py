"""Count arguments outside remote_protocol.x's limits get libvirtd's error.

Every procedure of the generated table with a count argument (``max*``,
``nparams``, ``ncpumaps``, ``maplen``, ``ncpus``) is called with -1 (signed
ones) and with one past the bound of the list it sizes, on a real libvirtd and
on our server.  Where libvirtd answers with a limit error, we must answer the
same code, domain and message; where it does not, neither may we (what follows
then depends on the driver, not on the limits).  Also: a bad length word is
logged as coming from the client.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from virtwire.protocol import xdr
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated import virnet as V
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer, start_server, stop_servers
from vwtestkit.hostile import TEST_DOMAIN_UUID, value_for

TEST_DOMAIN = R.remote_nonnull_domain("test", TEST_DOMAIN_UUID, 1)
COUNT_FIELDS = ("ncpumaps", "maplen", "nparams", "ncpus")
LIMIT_WORDING = ("must be non-negative", " > REMOTE_", "too large")


def count_arguments() -> list[tuple[str, str, int]]:
    """(procedure, field, value) for every count argument of the generated table."""
    out = []
    for proc in sorted(R.PROCEDURES.values(), key=lambda p: p.number):
        args = proc.args.xdr_type if proc.args is not None else None
        if not isinstance(args, xdr.StructType):
            continue
        ret = proc.ret.xdr_type if proc.ret is not None else None
        lists = [
            t.size for _, t in getattr(ret, "fields", ()) if isinstance(t, xdr.ArrayType) and not t.fixed
        ]
        for name, ftype in args.fields:
            if not isinstance(ftype, xdr.IntType) or not (name.startswith("max") or name in COUNT_FIELDS):
                continue
            past = max(lists, default=R.REMOTE_CPUMAPS_MAX) + 1
            values = ([-1] if ftype.lo < 0 else []) + [past, ftype.hi]
            out += [(proc.name, name, v) for v in values]
    return out


CASES = count_arguments()


def call_args(proc: xdr.Procedure, field: str, value: int) -> bytes:
    assert proc.args is not None
    t = proc.args.xdr_type
    assert isinstance(t, xdr.StructType)
    values: list[Any] = []
    for name, ftype in t.fields:
        if name == field:
            values.append(value)
        elif name == "dom":
            values.append(TEST_DOMAIN)
        elif isinstance(ftype, xdr.IntType):
            values.append(1 if name in COUNT_FIELDS else 0)  # the other counts within limits
        else:
            values.append(value_for(ftype, "empty"))
    return bytes(t.cls(*values).to_bytes())


def answer(client: RawRpcClient, proc_name: str, field: str, value: int) -> str:
    proc = R.PROCEDURES_BY_NAME[proc_name]
    reply = client.call(proc.number, call_args(proc, field, value))
    if reply.status == 0:
        return "OK"
    error = V.remote_error.from_bytes(reply.payload)
    return f"{error.code} {error.domain} {error.message}"


@pytest.fixture(scope="module")
def ours() -> Iterator[RawRpcClient]:
    server = start_server(pki=None, ro=False, tls=False)
    try:
        with RawRpcClient.tcp("127.0.0.1", server.tcp_port) as client:
            client.open()
            yield client
    finally:
        stop_servers([server])


@pytest.fixture(scope="module")
def theirs(real_libvirtd: RealLibvirtd) -> Iterator[RawRpcClient]:
    with RawRpcClient.tcp("127.0.0.1", real_libvirtd.tcp_port) as client:
        client.open()
        yield client


def test_the_sweep_finds_the_count_arguments() -> None:
    fields = {(p, f) for p, f, _ in CASES}
    assert ("CONNECT_LIST_DOMAINS", "maxids") in fields
    assert ("DOMAIN_GET_VCPU_PIN_INFO", "ncpumaps") in fields


@pytest.mark.parametrize(("proc", "field", "value"), CASES)
def test_count_argument_limits_as_libvirtd(
    proc: str, field: str, value: int, ours: RawRpcClient, theirs: RawRpcClient
) -> None:
    expected = answer(theirs, proc, field, value)
    got = answer(ours, proc, field, value)
    if any(w in expected for w in LIMIT_WORDING):
        assert got == expected
    else:
        assert not any(w in got for w in LIMIT_WORDING), f"libvirtd: {expected}"


def test_a_bad_length_word_is_logged_as_the_clients(virtwire_server: Any) -> None:
    server: VirtwireServer = virtwire_server(ro=False, tls=False)
    with socket.create_connection(("127.0.0.1", server.tcp_port)) as sock:
        sock.sendall(struct.pack(">I", 7))
        assert sock.recv(1) == b""  # libvirtd hangs up too
    assert "packet 7 bytes received from client too small, want 28" in server.log
