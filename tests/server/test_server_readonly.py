"""Read-only policy, from raw packets that bypass every client-side check.

Every procedure the spec marks ``@readonly: deny`` is sent, one by one, on the
read-only unix socket (CONNECT_OPEN without the RO flag, as virsh without -r
does) and must be refused with libvirt's exact error before any driver code,
whether or not we implement it, and without decoding its (empty) payload.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from virtwire.protocol.errors import api_error_domain
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import remote_error
from virtwire.protocol.xdr import ReadOnlyPolicy
from vwtestkit import RawRpcClient, VirtwireServer
from vwtestkit.rawrpc import REPLY, STATUS_ERROR, STATUS_OK, RawPacket, xdr_string, xdr_uint

DENIED = sorted(n for n, p in R.PROCEDURES.items() if p.readonly is ReadOnlyPolicy.DENY and p.event is None)
TEST_DOM = xdr_string("test") + bytes.fromhex("6695eb01f6a4830479aa97f2502e193f") + xdr_uint(1)


def expected_domain(api: str) -> int:
    # The VIR_FROM_THIS of the libvirt-*.c file defining the API (virNodeSuspendForDuration
    # reports 20, virConnectFindStoragePoolSources 18); tests/spec checks this table
    # against libvirt.so's own refusals.
    return api_error_domain(api)


def assert_denied(reply: RawPacket, api: str, detail: str | None = None) -> None:
    assert reply.type == REPLY and reply.status == STATUS_ERROR, reply
    e = remote_error.from_bytes(reply.payload)
    detail = detail or f"read only access prevents {api}"
    assert (e.code, e.message, e.level, e.str1, e.str2, e.str3, e.int1, e.int2) == (
        29,
        f"operation forbidden: {detail}",
        2,
        "operation forbidden: %s",
        detail,
        None,
        -1,
        -1,
    )
    assert e.domain == expected_domain(api)


@pytest.fixture(scope="module")
def ro_socket_client(virtwire_host: VirtwireServer) -> Iterator[RawRpcClient]:
    assert virtwire_host.unix_ro_path is not None
    with RawRpcClient.unix(virtwire_host.unix_ro_path, timeout=10) as client:
        client.open(flags=0)  # the socket alone makes it read-only
        yield client


def test_the_table_has_denied_procedures() -> None:
    assert len(DENIED) > 100
    assert 34 in DENIED  # DOMAIN_SUSPEND


@pytest.mark.parametrize("number", DENIED, ids=[R.PROCEDURES[n].name for n in DENIED])
def test_denied_on_the_read_only_socket(ro_socket_client: RawRpcClient, number: int) -> None:
    proc = R.PROCEDURES[number]
    assert proc.api is not None
    assert_denied(ro_socket_client.call(number), proc.api)


def test_denied_before_driver_even_for_missing_domains(ro_socket_client: RawRpcClient) -> None:
    ghost = xdr_string("ghost") + b"\x11" * 16 + xdr_uint(0xFFFFFFFF)
    assert_denied(ro_socket_client.call(34, ghost), "virDomainSuspend")


def test_reads_still_work_read_only(ro_socket_client: RawRpcClient) -> None:
    assert ro_socket_client.call(23, xdr_string("test")).status == STATUS_OK  # lookupByName
    assert ro_socket_client.call(16, TEST_DOM).status == STATUS_OK  # getInfo
    assert ro_socket_client.call(273, xdr_uint(1) + xdr_uint(0)).status == STATUS_OK  # listAllDomains


def test_xml_desc_secure_is_denied_plain_is_not(ro_socket_client: RawRpcClient) -> None:
    assert ro_socket_client.call(14, TEST_DOM + xdr_uint(0)).status == STATUS_OK
    # libvirt words this refusal differently: "virDomainGetXMLDesc with secure flag"
    secure = "virDomainGetXMLDesc with secure flag"
    assert_denied(ro_socket_client.call(14, TEST_DOM + xdr_uint(1)), "virDomainGetXMLDesc", secure)
    assert_denied(ro_socket_client.call(14, TEST_DOM + xdr_uint(8)), "virDomainGetXMLDesc", secure)
    assert ro_socket_client.call(14, TEST_DOM + xdr_uint(2)).status == STATUS_OK  # INACTIVE


@pytest.mark.parametrize("number", [34, 28, 12, 11, 35, 364, 302, 164])
def test_denied_when_asked_for_over_tcp(virtwire_host: VirtwireServer, number: int) -> None:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as client:
        client.open(flags=1)  # VIR_CONNECT_RO
        api = R.PROCEDURES[number].api
        assert api is not None
        assert_denied(client.call(number, TEST_DOM + xdr_uint(0)), api)


def test_read_write_connection_is_not_refused(virtwire_host: VirtwireServer) -> None:
    with RawRpcClient.tcp("127.0.0.1", virtwire_host.tcp_port, timeout=10) as client:
        client.open(flags=0)
        e = remote_error.from_bytes(client.call(364, TEST_DOM + xdr_uint(0)).payload)
        assert e.code != 29  # whatever the driver says, not DENIED
