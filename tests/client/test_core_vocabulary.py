"""One wire vocabulary: header, keepalive packets, driver feature numbers and
migration parameter types come from protocol/, and both ends use them.

The two end-to-end tests would have caught the bugs of separate copies: the
client asked feature 11 for offline migration (libvirt's number is 12), and
peer-to-peer migration forwarded INT parameters as ULLONG.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from virtwire.client import core, migration, ops
from virtwire.protocol import typedparams, wire
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import remote

import virtwire.libvirt as vlibvirt

VirtwireServer = Any


def test_header_and_keepalive_packets_are_shared() -> None:
    """The client core and the server build packets from the same definitions."""
    from virtwire.server import connection

    assert core.PING_PACKET is wire.PING_PACKET and connection.PING_PACKET is wire.PING_PACKET
    assert core.PONG_PACKET is wire.PONG_PACKET and connection.PONG_PACKET is wire.PONG_PACKET
    assert wire.PACKET_HEADER.size == wire.HEADER_SIZE == 28
    packet = core.call_packet(9, 60, b"\0\0\0\x0c")
    assert wire.PACKET_HEADER.unpack_from(packet) == (
        32, remote.REMOTE_PROGRAM, remote.REMOTE_PROTOCOL_VERSION, 60, wire.CALL, 9, wire.OK
    )


def test_feature_numbers_match_what_libvirtd_answers(real_libvirtd: Any) -> None:
    """libvirtd's test driver says yes to exactly two driver features
    (TYPED_PARAM_STRING, NETWORK_UPDATE_HAS_CORRECT_ORDER) and the daemon adds
    the remote ones it implements: our numbers must name those features."""
    conn = vlibvirt.open(real_libvirtd.tcp_uri)
    try:
        yes = {f for f in DriverFeature if conn._run(ops.supports_feature(int(f)))}
    finally:
        conn.close()
    assert {
        DriverFeature.TYPED_PARAM_STRING,
        DriverFeature.NETWORK_UPDATE_HAS_CORRECT_ORDER,
        DriverFeature.REMOTE_EVENT_CALLBACK,
        DriverFeature.REMOTE_CLOSE_CALLBACK,
    } <= yes
    no = {DriverFeature.MIGRATION_OFFLINE, DriverFeature.XML_MIGRATABLE, DriverFeature.MIGRATION_V3}
    assert not yes & no


def test_migration_flows_probe_libvirt_numbers() -> None:
    """The offline check asks feature 12, as libvirt's virDomainMigrate* do."""
    flow = migration._check_offline(vlibvirt.VIR_MIGRATE_OFFLINE, both=False)
    step = next(flow)
    assert step.op.args.feature == int(DriverFeature.MIGRATION_OFFLINE) == 12


def _domain_xml(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )


@pytest.fixture
def two_hosts(virtwire_server: Callable[..., VirtwireServer]) -> tuple[VirtwireServer, VirtwireServer]:
    return (
        virtwire_server(tls=False, ro=False, hostname="vocab-src"),
        virtwire_server(tls=False, ro=False, hostname="vocab-dst"),
    )


def test_offline_migration_from_virtwire_libvirt_to_virtwire_serve(
    two_hosts: tuple[VirtwireServer, VirtwireServer],
) -> None:
    src, dst = two_hosts
    sconn, dconn = vlibvirt.open(src.tcp_uri), vlibvirt.open(dst.tcp_uri)
    try:
        name = f"offline-{uuid.uuid4().hex[:8]}"
        dom = sconn.defineXML(_domain_xml(name))
        flags = vlibvirt.VIR_MIGRATE_OFFLINE | vlibvirt.VIR_MIGRATE_PERSIST_DEST
        moved = dom.migrate3(dconn, {}, flags)
        assert moved.name() == name
        assert dconn.lookupByName(name).isActive() == 0
        assert dconn.lookupByName(name).isPersistent() == 1
    finally:
        sconn.close()
        dconn.close()


def test_peer_to_peer_migration_forwards_int_parameters(
    two_hosts: tuple[VirtwireServer, VirtwireServer],
) -> None:
    """auto_converge.initial and parallel.connections are INT in libvirt: the
    source must hand them to the destination as INT, or it refuses them."""
    src, dst = two_hosts
    types = typedparams.MIGRATION_PARAM_TYPES
    assert types[vlibvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL] == typedparams.INT
    sconn = vlibvirt.open(src.tcp_uri)
    dconn = vlibvirt.open(dst.tcp_uri)
    try:
        name = f"p2p-int-{uuid.uuid4().hex[:8]}"
        dom = sconn.defineXML(_domain_xml(name))
        dom.createWithFlags(0)
        params = {
            vlibvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL: 20,
            vlibvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS: 2,
        }
        # each tuning parameter with the flag that turns its feature on (libvirt refuses it otherwise)
        flags = (
            vlibvirt.VIR_MIGRATE_PEER2PEER
            | vlibvirt.VIR_MIGRATE_LIVE
            | vlibvirt.VIR_MIGRATE_AUTO_CONVERGE
            | vlibvirt.VIR_MIGRATE_PARALLEL
        )
        dom.migrateToURI3(dst.tcp_uri, params, flags)
        assert dconn.lookupByName(name).isActive() == 1
    finally:
        sconn.close()
        dconn.close()
