"""Client-driven migration: the calls virDomainMigrate3 / MigrateToURI3 make, in order."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.errors import libvirtError, make_error
from virtwire.protocol.generated import remote
from virtwire.protocol.typedparams import params_to_dict

import virtwire.libvirt as vlibvirt

FakeDaemon = Any  # tests/client/conftest.py
P = remote.PROCEDURES_BY_NAME
DOM = remote.remote_nonnull_domain(name="vm1", uuid=b"\x22" * 16, id=3)
MIGRATION_FEATURES = {10: 1, 14: 1, 15: 1, 13: 1, 6: 1, 4: 1}


def _num(name: str) -> int:
    return P[name].number


def _ret(name: str, **fields: Any) -> bytes:
    codec = P[name].ret
    assert codec is not None
    return bytes(codec(**fields).to_bytes())


def _args(daemon: Any, name: str) -> list[Any]:
    codec = P[name].args
    assert codec is not None
    return [codec.from_bytes(payload) for proc, _, payload in daemon.calls if proc == _num(name)]


def _lookup(_payload: bytes) -> bytes:
    return _ret("DOMAIN_LOOKUP_BY_NAME", dom=DOM)


def _source(perform_fails: bool = False) -> dict[int, Callable[[bytes], Any]]:
    def perform(payload: bytes) -> bytes:
        if perform_fails:
            raise make_error(
                vlibvirt.VIR_ERR_OPERATION_FAILED, vlibvirt.VIR_FROM_QEMU, "migration job: failed"
            )
        codec: Any = P["DOMAIN_MIGRATE_PERFORM3_PARAMS"].args
        args = codec.from_bytes(payload)
        # Peer-to-peer: the source daemon ran the whole protocol; no cookie comes back.
        return _ret("DOMAIN_MIGRATE_PERFORM3_PARAMS", cookie_out=b"" if args.dconnuri else b"cookie-perform")

    return {
        _num("DOMAIN_LOOKUP_BY_NAME"): _lookup,
        _num("DOMAIN_MIGRATE_BEGIN3_PARAMS"): lambda p: _ret(
            "DOMAIN_MIGRATE_BEGIN3_PARAMS", cookie_out=b"cookie-begin", xml="<domain>vm1</domain>"
        ),
        _num("DOMAIN_GET_STATE"): lambda p: _ret(
            "DOMAIN_GET_STATE", state=vlibvirt.VIR_DOMAIN_RUNNING, reason=1
        ),
        _num("DOMAIN_MIGRATE_PERFORM3_PARAMS"): perform,
        _num("DOMAIN_MIGRATE_CONFIRM3_PARAMS"): lambda p: b"",
    }


def _destination() -> dict[int, Callable[[bytes], Any]]:
    new_dom = remote.remote_nonnull_domain(name="vm1", uuid=b"\x22" * 16, id=9)

    def finish(payload: bytes) -> bytes:
        codec: Any = P["DOMAIN_MIGRATE_FINISH3_PARAMS"].args
        args = codec.from_bytes(payload)
        if args.cancelled:
            # The destination drops the incoming domain of a cancelled migration.
            raise make_error(vlibvirt.VIR_ERR_NO_DOMAIN, vlibvirt.VIR_FROM_QEMU, "vm1")
        return _ret("DOMAIN_MIGRATE_FINISH3_PARAMS", dom=new_dom, cookie_out=b"cookie-finish")

    return {
        _num("DOMAIN_MIGRATE_PREPARE3_PARAMS"): lambda p: _ret(
            "DOMAIN_MIGRATE_PREPARE3_PARAMS", cookie_out=b"cookie-prepare", uri_out="tcp://dst:49152"
        ),
        _num("DOMAIN_MIGRATE_FINISH3_PARAMS"): finish,
    }


def _migration_calls(daemon: Any) -> list[int]:
    handshake = {66, 60, 1, 2, 23}
    return [p for p in daemon.procedures() if p not in handshake]


def test_migrate3_runs_the_v3_params_protocol(fake_daemon: Callable[..., FakeDaemon]) -> None:
    src = fake_daemon(handlers=_source(), features=MIGRATION_FEATURES)
    dst = fake_daemon(handlers=_destination(), features=MIGRATION_FEATURES)
    sconn, dconn = vlibvirt.open(src.uri), vlibvirt.open(dst.uri)
    flags = vlibvirt.VIR_MIGRATE_LIVE | vlibvirt.VIR_MIGRATE_POSTCOPY | vlibvirt.VIR_MIGRATE_AUTO_CONVERGE
    new = sconn.lookupByName("vm1").migrate3(dconn, {"bandwidth": 100}, flags)
    assert (new.name(), new.ID(), new.connect() is dconn) == ("vm1", 9, True)

    begin = _num("DOMAIN_MIGRATE_BEGIN3_PARAMS")
    perform, confirm = _num("DOMAIN_MIGRATE_PERFORM3_PARAMS"), _num("DOMAIN_MIGRATE_CONFIRM3_PARAMS")
    prepare, finish = _num("DOMAIN_MIGRATE_PREPARE3_PARAMS"), _num("DOMAIN_MIGRATE_FINISH3_PARAMS")
    # Source: probes 13 and 7 (change protection), Begin, GetState, Perform, Confirm.
    assert _migration_calls(src) == [begin, _num("DOMAIN_GET_STATE"), perform, confirm]
    assert _migration_calls(dst) == [prepare, finish]
    features_asked = [int.from_bytes(p[:4], "big") for proc, _, p in src.calls if proc == 60]
    assert features_asked[-2:] == [13, 7]

    (b,) = _args(src, "DOMAIN_MIGRATE_BEGIN3_PARAMS")
    assert (b.dom.name, b.flags, params_to_dict(b.params)) == ("vm1", flags, {"bandwidth": 100})
    (p,) = _args(dst, "DOMAIN_MIGRATE_PREPARE3_PARAMS")
    # The destination never sees AUTO_CONVERGE; it gets the source's XML.
    assert p.flags == flags & ~vlibvirt.VIR_MIGRATE_AUTO_CONVERGE
    assert p.cookie_in == b"cookie-begin"
    assert params_to_dict(p.params) == {"bandwidth": 100, "destination_xml": "<domain>vm1</domain>"}
    (pf,) = _args(src, "DOMAIN_MIGRATE_PERFORM3_PARAMS")
    assert (pf.dconnuri, pf.cookie_in, pf.flags) == (None, b"cookie-prepare", flags)
    assert params_to_dict(pf.params)["migrate_uri"] == "tcp://dst:49152"
    (f,) = _args(dst, "DOMAIN_MIGRATE_FINISH3_PARAMS")
    assert (f.cookie_in, f.cancelled) == (b"cookie-perform", 0)
    assert params_to_dict(f.params)["destination_name"] == "vm1"
    (cf,) = _args(src, "DOMAIN_MIGRATE_CONFIRM3_PARAMS")
    assert (cf.cookie_in, cf.cancelled) == (b"cookie-finish", 0)


def test_failed_perform_cancels_finish_and_skips_confirm(fake_daemon: Callable[..., FakeDaemon]) -> None:
    src = fake_daemon(handlers=_source(perform_fails=True), features=MIGRATION_FEATURES)
    dst = fake_daemon(handlers=_destination(), features=MIGRATION_FEATURES)
    sconn, dconn = vlibvirt.open(src.uri), vlibvirt.open(dst.uri)
    with pytest.raises(libvirtError) as info:
        sconn.lookupByName("vm1").migrate3(dconn, {}, vlibvirt.VIR_MIGRATE_LIVE)
    # Perform failed with a QEMU "operation failed" and Finish then reported a
    # real QEMU error: libvirt raises Finish's error (the wire test below checks
    # the same against libvirt-python).
    assert info.value.get_error_message() == "Domain not found: vm1"
    (f,) = _args(dst, "DOMAIN_MIGRATE_FINISH3_PARAMS")
    assert f.cancelled == 1
    assert _num("DOMAIN_MIGRATE_CONFIRM3_PARAMS") not in src.procedures()


def test_peer_to_peer_is_one_perform_with_dconnuri(fake_daemon: Callable[..., FakeDaemon]) -> None:
    src = fake_daemon(handlers=_source(), features=MIGRATION_FEATURES)
    conn = vlibvirt.open(src.uri)
    flags = vlibvirt.VIR_MIGRATE_PEER2PEER | vlibvirt.VIR_MIGRATE_LIVE
    assert (
        conn.lookupByName("vm1").migrateToURI3("test+tcp://dest.example/default", {"bandwidth": 5}, flags)
        == 0
    )
    assert _migration_calls(src) == [_num("DOMAIN_MIGRATE_PERFORM3_PARAMS")]
    features_asked = [int.from_bytes(p[:4], "big") for proc, _, p in src.calls if proc == 60]
    assert features_asked[-2:] == [4, 13]
    (pf,) = _args(src, "DOMAIN_MIGRATE_PERFORM3_PARAMS")
    assert (pf.dconnuri, pf.flags, params_to_dict(pf.params)) == (
        "test+tcp://dest.example/default",
        flags,
        {"bandwidth": 5},
    )


def test_peer_to_peer_refused_without_feature(fake_daemon: Callable[..., FakeDaemon]) -> None:
    src = fake_daemon(handlers=_source(), features={14: 1, 15: 1})
    conn = vlibvirt.open(src.uri)
    with pytest.raises(libvirtError) as info:
        conn.lookupByName("vm1").migrateToURI3("test+tcp://d/default", {}, vlibvirt.VIR_MIGRATE_PEER2PEER)
    assert info.value.err == (
        74,
        20,
        "argument unsupported: p2p migration is not supported by the source host",
        2,
        "argument unsupported: %s",
        "p2p migration is not supported by the source host",
        None,
        -1,
        -1,
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda d, dc: d.migrate3(dc, {}, vlibvirt.VIR_MIGRATE_LIVE),
        lambda d, dc: d.migrate3(dc, {"bandwidth": 1}, vlibvirt.VIR_MIGRATE_PEER2PEER),
        lambda d, dc: d.migrate(dc, vlibvirt.VIR_MIGRATE_LIVE, None, None, 0),
        lambda d, dc: d.migrateToURI3("test+tcp://elsewhere/default", {}, vlibvirt.VIR_MIGRATE_PEER2PEER),
        lambda d, dc: d.migrateToURI3(None, {"migrate_uri": "tcp://x"}, 0),
        lambda d, dc: d.migrate3(
            dc, {}, vlibvirt.VIR_MIGRATE_NON_SHARED_DISK | vlibvirt.VIR_MIGRATE_NON_SHARED_INC
        ),
        lambda d, dc: d.migrate3(dc, {}, vlibvirt.VIR_MIGRATE_TUNNELLED),
        lambda d, dc: d.migrate3(dc, {"foo": 1}, 0),
        lambda d, dc: d.migrate(dc, vlibvirt.VIR_MIGRATE_TUNNELLED, None, None, 0),
        lambda d, dc: d.migrate(dc, vlibvirt.VIR_MIGRATE_PEER2PEER, None, None, 0),
        lambda d, dc: d.migrate2(dc, "<domain/>", vlibvirt.VIR_MIGRATE_LIVE, "x", None, 0),
        lambda d, dc: d.migrateToURI3(None, {}, vlibvirt.VIR_MIGRATE_PEER2PEER),
        lambda d, dc: d.migrateToURI("tcp://h:1", 0, None, 0),
        lambda d, dc: d.migrateToURI2(None, "tcp://h:1", None, 0, None, 0),
        lambda d, dc: d.migrateToURI3(None, {}, vlibvirt.VIR_MIGRATE_OFFLINE),
    ],
)
def test_migration_errors_match_libvirt_python(
    real_libvirtd: Any, real_libvirt: ModuleType, call: Any
) -> None:
    """The test driver supports no migration: both clients fail the same way."""
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    outcomes: list[Any] = []
    for lib in (real_libvirt, vlibvirt):
        src, dst = lib.open(real_libvirtd.tcp_uri), lib.open(real_libvirtd.unix_uri)
        try:
            call(src.lookupByName("test"), dst)
            outcomes.append(None)
        except lib.libvirtError as exc:
            outcomes.append(exc.err)
        finally:
            src.close()
            dst.close()
    assert outcomes[0] is not None
    assert outcomes[1] == outcomes[0]


def test_migrate_uses_the_v3_procedures_without_parameters(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """virDomainMigrate speaks Begin3..Confirm3 (fixed arguments) even when 13 is supported."""
    new_dom = remote.remote_nonnull_domain(name="renamed", uuid=b"\x22" * 16, id=9)
    src = fake_daemon(
        handlers={
            _num("DOMAIN_LOOKUP_BY_NAME"): _lookup,
            _num("DOMAIN_MIGRATE_BEGIN3"): lambda p: _ret(
                "DOMAIN_MIGRATE_BEGIN3", cookie_out=b"b", xml="<x/>"
            ),
            _num("DOMAIN_GET_INFO"): lambda p: _ret(
                "DOMAIN_GET_INFO", state=3, maxMem=1, memory=1, nrVirtCpu=1, cpuTime=0
            ),
            _num("DOMAIN_MIGRATE_PERFORM3"): lambda p: _ret("DOMAIN_MIGRATE_PERFORM3", cookie_out=b"pf"),
            _num("DOMAIN_MIGRATE_CONFIRM3"): lambda p: b"",
        },
        features=MIGRATION_FEATURES,
    )
    dst = fake_daemon(
        handlers={
            _num("DOMAIN_MIGRATE_PREPARE3"): lambda p: _ret(
                "DOMAIN_MIGRATE_PREPARE3", cookie_out=b"pr", uri_out=None
            ),
            _num("DOMAIN_MIGRATE_FINISH3"): lambda p: _ret(
                "DOMAIN_MIGRATE_FINISH3", dom=new_dom, cookie_out=b"f"
            ),
        },
        features=MIGRATION_FEATURES,
    )
    sconn, dconn = vlibvirt.open(src.uri), vlibvirt.open(dst.uri)
    new = sconn.lookupByName("vm1").migrate(dconn, vlibvirt.VIR_MIGRATE_LIVE, "renamed", "tcp://dst:1", 10)
    assert new.name() == "renamed"
    assert _migration_calls(src) == [
        _num("DOMAIN_MIGRATE_BEGIN3"),
        _num("DOMAIN_GET_INFO"),
        _num("DOMAIN_MIGRATE_PERFORM3"),
        _num("DOMAIN_MIGRATE_CONFIRM3"),
    ]
    assert _migration_calls(dst) == [_num("DOMAIN_MIGRATE_PREPARE3"), _num("DOMAIN_MIGRATE_FINISH3")]
    (b,) = _args(src, "DOMAIN_MIGRATE_BEGIN3")
    assert (b.dname, b.resource, b.flags) == ("renamed", 10, vlibvirt.VIR_MIGRATE_LIVE)
    (p,) = _args(dst, "DOMAIN_MIGRATE_PREPARE3")
    # The source is paused (GetInfo says 3), so libvirt adds VIR_MIGRATE_PAUSED.
    assert (p.uri_in, p.dom_xml, p.flags) == (
        "tcp://dst:1",
        "<x/>",
        vlibvirt.VIR_MIGRATE_LIVE | vlibvirt.VIR_MIGRATE_PAUSED,
    )
    (pf,) = _args(src, "DOMAIN_MIGRATE_PERFORM3")
    assert (pf.uri, pf.cookie_in, pf.dconnuri) == ("tcp://dst:1", b"pr", None)
    (f,) = _args(dst, "DOMAIN_MIGRATE_FINISH3")
    assert (f.dname, f.cookie_in, f.cancelled) == ("renamed", b"pf", 0)


@pytest.mark.parametrize(
    "scenario",
    [
        "migrate3",
        "migrate3_perform_fails",
        "migrate",
        "migrate2_p2p",
        "toURI3_p2p",
        "toURI_p2p",
        "toURI2_p2p",
    ],
)
def test_migration_wire_matches_libvirt_python(
    fake_daemon: Callable[..., FakeDaemon], real_libvirt: ModuleType, scenario: str
) -> None:
    """Both clients drive the same fake source and destination: identical packets."""
    real_libvirt.registerErrorHandler(lambda ctx, err: None, None)
    real_libvirt.virEventRegisterDefaultImpl()
    vlibvirt.virEventRegisterDefaultImpl()
    legacy = {
        _num("DOMAIN_MIGRATE_BEGIN3"): lambda p: _ret("DOMAIN_MIGRATE_BEGIN3", cookie_out=b"b3", xml="<x/>"),
        _num("DOMAIN_GET_INFO"): lambda p: _ret(
            "DOMAIN_GET_INFO", state=1, maxMem=1, memory=1, nrVirtCpu=1, cpuTime=0
        ),
        _num("DOMAIN_MIGRATE_PERFORM3"): lambda p: _ret("DOMAIN_MIGRATE_PERFORM3", cookie_out=b"p3"),
        _num("DOMAIN_MIGRATE_CONFIRM3"): lambda p: b"",
        _num("DOMAIN_MIGRATE_PREPARE3"): lambda p: _ret(
            "DOMAIN_MIGRATE_PREPARE3", cookie_out=b"r3", uri_out="tcp://d:1"
        ),
        _num("DOMAIN_MIGRATE_FINISH3"): lambda p: _ret("DOMAIN_MIGRATE_FINISH3", dom=DOM, cookie_out=b"f3"),
    }
    handlers = {**_source(perform_fails=scenario.endswith("fails")), **_destination(), **legacy}
    # One source and one destination for both clients, run one after the other.
    src = fake_daemon(handlers=handlers, features=MIGRATION_FEATURES)
    dst = fake_daemon(handlers=handlers, features=MIGRATION_FEATURES)
    recorded = [_run_scenario(lib, src, dst, scenario) for lib in (real_libvirt, vlibvirt)]
    (theirs_outcome, theirs_src, theirs_dst), (ours_outcome, ours_src, ours_dst) = recorded
    assert [p for p, _, _ in ours_src] == [p for p, _, _ in theirs_src]
    assert [p for p, _, _ in ours_dst] == [p for p, _, _ in theirs_dst]
    assert ours_src == theirs_src
    assert ours_dst == theirs_dst
    assert ours_outcome == theirs_outcome


def _run_scenario(lib: Any, src: FakeDaemon, dst: FakeDaemon, scenario: str) -> Any:
    src_mark, dst_mark = len(src.calls), len(dst.calls)
    outcome = _migrate_once(lib, src, dst, scenario)
    return outcome, src.calls[src_mark:], dst.calls[dst_mark:]


def _migrate_once(lib: Any, src: FakeDaemon, dst: FakeDaemon, scenario: str) -> Any:
    sconn, dconn = lib.open(src.uri), lib.open(dst.uri)
    dom = sconn.lookupByName("vm1")
    live, p2p = lib.VIR_MIGRATE_LIVE, lib.VIR_MIGRATE_PEER2PEER | lib.VIR_MIGRATE_LIVE
    dest = "test+tcp://dest.example/default"
    calls = {
        "migrate3": lambda: dom.migrate3(dconn, {"bandwidth": 5, "destination_name": "n"}, live),
        "migrate3_perform_fails": lambda: dom.migrate3(dconn, {}, live),
        "migrate": lambda: dom.migrate(dconn, live, "n2", "tcp://d:9", 7),
        "migrate2_p2p": lambda: dom.migrate2(dconn, "<x/>", p2p, None, "tcp://d:9", 0),
        "toURI3_p2p": lambda: dom.migrateToURI3(dest, {"bandwidth": 3}, p2p),
        "toURI_p2p": lambda: dom.migrateToURI(dest, p2p, "n3", 4),
        "toURI2_p2p": lambda: dom.migrateToURI2(dest, "tcp://d:2", None, p2p, None, 0),
    }
    try:
        result = calls[scenario]()
        outcome: tuple[str, Any] = ("ok", result.name() if hasattr(result, "name") else result)
    except lib.libvirtError as exc:
        outcome = ("error", exc.err)
    return outcome
