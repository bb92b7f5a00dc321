"""Connection-level and daemon-level answers through real clients: identity, security label list."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol import typedparams
from virtwire.protocol.generated import remote as R
from vwtestkit import RawRpcClient, RealLibvirtd, VirtwireServer


@pytest.fixture
def both(
    real_libvirt: ModuleType, virtwire_host: VirtwireServer, real_libvirtd: RealLibvirtd
) -> Iterator[tuple[Any, Any]]:
    ours = real_libvirt.open(virtwire_host.tcp_uri)
    real = real_libvirt.open(real_libvirtd.tcp_uri)
    try:
        yield ours, real
    finally:
        ours.close()
        real.close()


def outcome(lv: ModuleType, conn: Any, params: dict[str, Any]) -> tuple[object, ...]:
    try:
        return ("ok", conn.setIdentity(params))
    except lv.libvirtError as exc:
        return tuple(exc.err)


@pytest.mark.parametrize(
    "params",
    [
        {"user-name": "nova", "unix-user-id": 1000, "process-id": 4242},
        {"group-name": "kvm", "selinux-context": "system_u:system_r:virtd_t:s0"},
        {},
        {"user-name": "nova", "no-such-field": "x"},
        {"aaa-unknown": 1, "user-name": "nova"},
    ],
    ids=["user", "group", "empty", "unknown", "unknown-first"],
)
def test_set_identity_like_libvirtd(
    real_libvirt: ModuleType, both: tuple[Any, Any], params: dict[str, Any]
) -> None:
    ours, real = both
    assert outcome(real_libvirt, ours, params) == outcome(real_libvirt, real, params)


def test_wrong_type_and_repeats_like_libvirtd(
    real_libvirtd: RealLibvirtd, virtwire_host: VirtwireServer
) -> None:
    # libvirt-python types the values itself; a raw client can send any type.
    cases = [
        [typedparams.make_param("process-time", typedparams.STRING, "yesterday")],
        [typedparams.make_param("user-name", typedparams.STRING, "a")] * 2,
        [
            typedparams.make_param("zz", typedparams.INT, 1),
            typedparams.make_param("group-name", typedparams.INT, 1),
        ],
    ]
    for params in cases:
        payload = R.remote_connect_set_identity_args(params=params, flags=0).to_bytes()
        answers = []
        for port in (real_libvirtd.tcp_port, virtwire_host.tcp_port):
            with RawRpcClient.tcp("127.0.0.1", port, timeout=10) as raw:
                raw.open()
                reply = raw.call(R.remote_procedure.REMOTE_PROC_CONNECT_SET_IDENTITY, payload)
                answers.append((reply.status, reply.payload))
        assert answers[0] == answers[1], params
        assert answers[0][0] != 0  # an error, not a silent success


def test_security_label_list_like_libvirtd(
    real_libvirtd: RealLibvirtd, virtwire_host: VirtwireServer
) -> None:
    # The test driver has no label list; libvirtd swallows that error into ret -1.
    for name in ("test", "no-such-domain"):
        answers = []
        for port in (real_libvirtd.tcp_port, virtwire_host.tcp_port):
            with RawRpcClient.tcp("127.0.0.1", port, timeout=10) as raw:
                raw.open()
                lookup = raw.call(
                    R.remote_procedure.REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
                    R.remote_domain_lookup_by_name_args(name="test").to_bytes(),
                )
                dom = R.remote_domain_lookup_by_name_ret.from_bytes(lookup.payload).dom
                dom.name = name
                reply = raw.call(
                    R.remote_procedure.REMOTE_PROC_DOMAIN_GET_SECURITY_LABEL_LIST,
                    R.remote_domain_get_security_label_list_args(dom=dom).to_bytes(),
                )
                answers.append((reply.status, reply.payload))
        assert answers[0] == answers[1]
