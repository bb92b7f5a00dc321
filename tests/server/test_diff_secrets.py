"""Secrets: the same calls through real libvirt-python against libvirt's own secret
driver and against ``virtwire serve``, results, XML, errors and events compared.

No libvirtd here serves secrets with the test driver, so the reference is libvirt
9.0's secret driver embedded in a process (``secret:///embed?root=DIR``), the
code that libvirtd's secret driver runs.  Embedded, libvirt 9.0 crashes on an
ephemeral secret's define and on every undefine (it calls the daemon's inhibit
callback, which an embedding process does not have), so those are checked
against virtwire alone, with the results libvirt's source gives.  Each side runs in a subprocess of its
own (this file run as a script): the embedded driver needs libvirt's default
event loop, which must not be registered in the pytest process.

What embedding cannot show is checked against virtwire alone, from libvirt's
source: a private secret's value is refused to every remote caller (the
daemon's ``virIdentityIsCurrentElevated`` is false for a client, true for the
embedding process), and read-only connections never read a value.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.generated import remote as R
from virtwire.protocol.generated.virnet import remote_error
from vwtestkit import RawRpcClient, VirtwireServer, start_server, stop_servers
from vwtestkit.differential import run_scenario_script

CEPH_UUID = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
ISCSI_UUID = "7d3b0a4e-1c5f-4e2a-9b1d-6f0e2c8a4b10"
VOLUME_UUID = "c3b1d2e4-5f60-4718-8a9b-0c1d2e3f4a5b"

CEPH_XML = f"""<secret ephemeral='no' private='no'>
  <uuid>{CEPH_UUID}</uuid>
  <description>cluster &amp; key</description>
  <usage type='ceph'>
    <name>client.admin secret</name>
  </usage>
</secret>"""
ISCSI_XML = f"""<secret ephemeral='no' private='yes'>
  <uuid>{ISCSI_UUID}</uuid>
  <usage type='iscsi'><target>iqn.2013-07.com.example:storage</target></usage>
</secret>"""
VOLUME_XML = "<secret><usage type='volume'><volume>/var/lib/images/a.img</volume></usage></secret>"
TLS_NO_UUID_XML = (
    "<secret private='no'><description>tls</description><usage type='tls'><name>web</name></usage></secret>"
)

BAD_DEFINITIONS = [
    "<secret",
    "<foo/>",
    "<secret private='maybe'/>",
    "<secret ephemeral='1'/>",
    "<secret><usage/></secret>",
    "<secret><usage type='nfs'/></secret>",
    "<secret><usage type='ceph'/></secret>",
    "<secret><usage type='volume'></usage></secret>",
    "<secret><usage type='iscsi'><name>x</name></usage></secret>",
    "<secret><usage type='tls'/></secret>",
    "<secret><usage type='vtpm'/></secret>",
    "<secret><uuid>not-a-uuid</uuid></secret>",
    "<secret><uuid>0a81f5b2-8403-7b23-c8d6-21ccc2f80d6</uuid></secret>",
    # Same usage as the ceph secret, other UUID: refused.
    "<secret><uuid>11111111-2222-3333-4444-555555555555</uuid>"
    "<usage type='ceph'><name>client.admin secret</name></usage></secret>",
    # The ceph secret's UUID with another usage: refused.
    f"<secret><uuid>{CEPH_UUID}</uuid><usage type='ceph'><name>other</name></usage></secret>",
    # A private secret cannot become public.
    f"<secret ephemeral='no' private='no'><uuid>{ISCSI_UUID}</uuid>"
    "<usage type='iscsi'><target>iqn.2013-07.com.example:storage</target></usage></secret>",
]
# Refused by secret.rng, so only with VIR_SECRET_DEFINE_VALIDATE.
SCHEMA_INVALID = [
    "<secret private='perhaps'><usage type='ceph'><name>v</name></usage></secret>",
    "<secret><usage type='ceph'/></secret>",
    "<secret><uuid>not-a-uuid</uuid></secret>",
    "<secret><usage type='volume'><volume>/v</volume></usage>"
    "<usage type='tls'><name>t</name></usage></secret>",
]


# --- the scenario (runs in a subprocess against one URI) --------------------------------------


def _scenario(libvirt: ModuleType, conn: Any, events: list[Any], full: bool) -> list[Any]:
    out: list[Any] = []

    def step(label: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            value = call(*args)
        except libvirt.libvirtError as exc:
            out.append([label, "error", exc.get_error_code(), exc.get_error_domain(), str(exc)])
            return None
        out.append([label, "ok", _plain(value)])
        return value

    def names(flags: int) -> list[str]:
        return sorted(s.usageID() for s in conn.listAllSecrets(flags))

    step("num-empty", conn.numOfSecrets)
    ceph = step("define-ceph", lambda: conn.secretDefineXML(CEPH_XML))
    step("ceph-identity", lambda: [ceph.UUIDString(), ceph.usageType(), ceph.usageID()])
    step("ceph-xml", lambda: ceph.XMLDesc(0))
    iscsi = step("define-iscsi", lambda: conn.secretDefineXML(ISCSI_XML))
    step("iscsi-xml", lambda: iscsi.XMLDesc(0))
    volume = step("define-volume", lambda: conn.secretDefineXML(VOLUME_XML))
    step("volume-identity", lambda: [volume.usageType(), volume.usageID(), len(volume.UUID())])
    tls = step("define-tls", lambda: conn.secretDefineXML(TLS_NO_UUID_XML))
    step("tls-xml-without-uuid", lambda: tls.XMLDesc(0).replace(tls.UUIDString(), "UUID"))
    for index, xml in enumerate(BAD_DEFINITIONS):
        step(f"bad-{index}", lambda xml: conn.secretDefineXML(xml), xml)
    step("bad-flags-define", lambda: conn.secretDefineXML(CEPH_XML, 1 << 4))
    step("validate-unknown-element", lambda: conn.secretDefineXML("<secret><bogus/></secret>", 1))
    # secret.rng through libxml2's validator: a bad attribute value, a missing id, bad UUID text.
    for index, xml in enumerate(SCHEMA_INVALID):
        step(f"validate-{index}", lambda xml: conn.secretDefineXML(xml, 1), xml)
    step(
        "unknown-element-unvalidated",
        lambda: conn.secretDefineXML(
            "<secret><bogus/><usage type='tls'><name>lenient</name></usage></secret>", 0
        ).usageID(),
    )
    step("bad-flags-xml", lambda: ceph.XMLDesc(1))
    step("bad-flags-list", lambda: conn.listAllSecrets(1 << 6))
    step("bad-flags-set", lambda: ceph.setValue(b"x", 2))
    step("bad-flags-get", lambda: ceph.value(4))
    step("ceph-value-unset", ceph.value)
    step("ceph-set", lambda: ceph.setValue(b"hunter2\x00\xff"))
    step("ceph-value", lambda: ceph.value().hex())
    step("ceph-set-empty", lambda: ceph.setValue(b""))
    step("ceph-value-empty", lambda: ceph.value().hex())
    step("ceph-set-again", lambda: ceph.setValue(b"s3cret"))
    step("iscsi-set", lambda: iscsi.setValue(b"chap"))
    # A redefinition keeps the value (same UUID and usage).
    redefined = CEPH_XML.replace("cluster &amp; key", "rotated")
    step("redefine-ceph", lambda: conn.secretDefineXML(redefined).UUIDString())
    step("ceph-xml-after", lambda: ceph.XMLDesc(0))
    step("ceph-value-after", lambda: ceph.value().hex())
    # Private may be switched on.
    made_private = CEPH_XML.replace("private='no'", "private='yes'").replace("cluster &amp; key", "rotated")
    step("redefine-ceph-private", lambda: conn.secretDefineXML(made_private).UUIDString())
    step("ceph-xml-private", lambda: ceph.XMLDesc(0))
    step("num", conn.numOfSecrets)
    step("list-uuids-len", lambda: len(conn.listSecrets()))
    step("list-uuids-has-ceph", lambda: CEPH_UUID in conn.listSecrets())
    for flags in range(16):
        step(f"list-all-{flags}", lambda flags: names(flags), flags)
    step("by-usage-ceph", lambda: conn.secretLookupByUsage(2, "client.admin secret").UUIDString())
    step(
        "by-usage-iscsi", lambda: conn.secretLookupByUsage(3, "iqn.2013-07.com.example:storage").UUIDString()
    )
    step("by-usage-wrong-type", lambda: conn.secretLookupByUsage(1, "client.admin secret"))
    step("by-usage-none", lambda: conn.secretLookupByUsage(0, ""))
    step("by-usage-missing", lambda: conn.secretLookupByUsage(2, "nobody"))
    step("by-uuid", lambda: conn.secretLookupByUUIDString(ISCSI_UUID).usageID())
    step("by-uuid-missing", lambda: conn.secretLookupByUUIDString("11111111-2222-3333-4444-555555555555"))
    if full:
        ephemeral = ISCSI_XML.replace("ephemeral='no'", "ephemeral='yes'")
        step("ephemeral-define", lambda: conn.secretDefineXML(ephemeral).UUIDString())
        step("ephemeral-xml-head", lambda: iscsi.XMLDesc(0).splitlines()[0])
        step("list-ephemeral", lambda: names(libvirt.VIR_CONNECT_LIST_SECRETS_EPHEMERAL))
        step("list-no-ephemeral-len", lambda: len(names(libvirt.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL)))
        step("list-ephemeral-public", lambda: names(libvirt.VIR_CONNECT_LIST_SECRETS_EPHEMERAL | 8))
        step("ephemeral-set", lambda: iscsi.setValue(b"x"))
        step("undefine-iscsi", iscsi.undefine)
        step("undefine-iscsi-again", iscsi.undefine)
        step("iscsi-xml-gone", lambda: iscsi.XMLDesc(0))
        step("iscsi-value-gone", iscsi.value)
        step("iscsi-set-gone", lambda: iscsi.setValue(b"x"))
        step("undefine-others", lambda: [s.undefine() for s in (ceph, volume, tls)] and None)
        step("num-end", conn.numOfSecrets)
    out.append(["events", events])
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return type(value).__name__


def _run(uri: str, full: bool) -> None:
    import libvirt

    libvirt.virEventRegisterDefaultImpl()

    def loop() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    conn = libvirt.open(uri)
    events: list[Any] = []
    done = threading.Event()

    def lifecycle(_c: Any, secret: Any, event: int, detail: int, _o: Any) -> None:
        events.append(["lifecycle", secret.usageID(), event, detail])
        if secret.usageID() == "end":
            done.set()

    def value_changed(_c: Any, secret: Any, _o: Any) -> None:
        events.append(["value-changed", secret.usageID()])

    conn.secretEventRegisterAny(None, libvirt.VIR_SECRET_EVENT_ID_LIFECYCLE, lifecycle, None)
    conn.secretEventRegisterAny(None, libvirt.VIR_SECRET_EVENT_ID_VALUE_CHANGED, value_changed, None)
    result = _scenario(libvirt, conn, events, full)
    # Events arrive in order; one last define/undefine pair tells us all came in.
    conn.secretDefineXML("<secret><usage type='tls'><name>end</name></usage></secret>")
    if not done.wait(30):
        raise SystemExit("events never arrived")
    result[-1][1] = [e for e in events if e[1] != "end"]
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # the embedded driver's teardown at exit is not what is tested here


def run_scenario(uri: str, *, full: bool = False) -> list[Any]:
    return run_scenario_script(__file__, uri, *(["full"] if full else []))


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario_server(pki: Path) -> Iterator[VirtwireServer]:
    """A server of this module's own: the scenarios leave secrets behind."""
    server = start_server(pki=pki)
    try:
        yield server
    finally:
        stop_servers([server])


@pytest.fixture(scope="module")
def both_sides(
    tmp_path_factory: pytest.TempPathFactory, real_libvirt: ModuleType, scenario_server: VirtwireServer
) -> tuple[list[Any], list[Any]]:
    root = tmp_path_factory.mktemp("secret-embed")
    real = run_scenario(f"secret:///embed?root={root}")
    ours = run_scenario(scenario_server.tcp_uri)
    return real, ours


def _libxml2_detail_free(step: list[Any]) -> list[Any]:
    # libxml2 and expat word a syntax error differently; code, domain and the
    # "(definition_of_secret):LINE:" prefix are what we match.
    if step[1] == "error" and step[2] == 35:
        return [*step[:4], step[4].split(": ", 1)[0]]
    return step


def test_every_step_matches_libvirts_secret_driver(both_sides: tuple[list[Any], list[Any]]) -> None:
    real, ours = both_sides
    assert [s[0] for s in ours] == [s[0] for s in real]
    for mine, theirs in zip(ours[:-1], real[:-1], strict=True):
        assert _libxml2_detail_free(mine) == _libxml2_detail_free(theirs), mine[0]


def test_events_match_libvirts_secret_driver(both_sides: tuple[list[Any], list[Any]]) -> None:
    real, ours = both_sides
    assert ours[-1] == real[-1]
    assert ["value-changed", "client.admin secret"] in ours[-1][1]


def test_private_value_is_never_readable_remotely(real_libvirt: ModuleType, virtwire_host: Any) -> None:
    conn = real_libvirt.open(virtwire_host.tcp_uri)
    try:
        secret = conn.secretDefineXML(
            "<secret ephemeral='yes' private='yes'>"
            "<usage type='tls'><name>private-one</name></usage></secret>"
        )
        secret.setValue(b"top")
        with pytest.raises(real_libvirt.libvirtError) as err:
            secret.value()
        assert err.value.get_error_code() == real_libvirt.VIR_ERR_INVALID_SECRET
        assert err.value.get_error_domain() == real_libvirt.VIR_FROM_SECRET
        assert str(err.value) == "Invalid secret: secret is private"
        secret.undefine()
    finally:
        conn.close()


def test_read_only_connection_reads_no_value(
    real_libvirt: ModuleType, virtwire_server: Callable[..., Any], raw_rpc: Any
) -> None:
    server = virtwire_server()
    rw = real_libvirt.open(server.unix_uri)
    ro = real_libvirt.openReadOnly(server.unix_ro_uri)
    try:
        rw.secretDefineXML(CEPH_XML).setValue(b"v")
        secret = ro.secretLookupByUUIDString(CEPH_UUID)
        assert secret.XMLDesc(0).startswith("<secret ephemeral='no' private='no'>")
        for call in (
            secret.value,
            lambda: secret.setValue(b"w"),
            secret.undefine,
            lambda: ro.secretDefineXML(VOLUME_XML),
        ):
            with pytest.raises(real_libvirt.libvirtError) as err:
                call()
            assert err.value.get_error_code() == real_libvirt.VIR_ERR_OPERATION_DENIED
        assert rw.secretLookupByUUIDString(CEPH_UUID).value() == b"v"
        assert ro.numOfSecrets() == 1
    finally:
        ro.close()
        rw.close()


def test_read_only_socket_refuses_the_value_on_the_wire(
    real_libvirt: ModuleType, virtwire_server: Callable[..., Any]
) -> None:
    # libvirt-python refuses before sending; a raw client must meet the same refusal in the server.
    server = virtwire_server()
    rw = real_libvirt.open(server.unix_uri)
    try:
        rw.secretDefineXML(CEPH_XML).setValue(b"v")
    finally:
        rw.close()
    args = R.remote_secret_get_value_args(
        secret=R.remote_nonnull_secret(
            uuid=bytes.fromhex(CEPH_UUID.replace("-", "")), usageType=2, usageID="client.admin secret"
        ),
        flags=0,
    )
    with RawRpcClient.unix(server.unix_ro_path, timeout=10) as client:
        client.open(flags=0)
        reply = client.call(R.remote_procedure.REMOTE_PROC_SECRET_GET_VALUE, args.to_bytes())
    assert reply.status == 1  # VIR_NET_ERROR
    error = remote_error.from_bytes(reply.payload)
    assert (error.code, error.message) == (
        real_libvirt.VIR_ERR_OPERATION_DENIED,
        "operation forbidden: read only access prevents virSecretGetValue",
    )


def test_persistent_secrets_and_values_survive_a_restart(
    real_libvirt: ModuleType, virtwire_server: Callable[..., Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    server = virtwire_server(state_dir=state)
    conn = real_libvirt.open(server.tcp_uri)
    conn.secretDefineXML(CEPH_XML).setValue(b"kept")
    ephemeral = ISCSI_XML.replace("ephemeral='no'", "ephemeral='yes'")
    conn.secretDefineXML(ephemeral).setValue(b"ephemeral values are never written")
    volume = conn.secretDefineXML(VOLUME_XML)
    volume_uuid = volume.UUIDString()
    gone = conn.secretDefineXML(TLS_NO_UUID_XML)
    gone.setValue(b"x")
    gone.undefine()
    conn.close()
    stored = sorted(p.name for p in (state / "secrets").iterdir() if not p.name.startswith("."))
    assert stored == sorted([f"{CEPH_UUID}.xml", f"{CEPH_UUID}.value.bin", f"{volume_uuid}.xml"])
    assert b"kept" not in (state / "secrets" / f"{CEPH_UUID}.xml").read_bytes()
    server.stop()

    again = virtwire_server(state_dir=state)
    conn = real_libvirt.open(again.tcp_uri)
    try:
        assert sorted(conn.listSecrets()) == sorted([CEPH_UUID, volume_uuid])
        ceph = conn.secretLookupByUUIDString(CEPH_UUID)
        assert ceph.value() == b"kept"
        assert ceph.XMLDesc(0) == CEPH_XML + "\n"
        with pytest.raises(real_libvirt.libvirtError) as err:
            conn.secretLookupByUUIDString(volume_uuid).value()
        assert err.value.get_error_code() == real_libvirt.VIR_ERR_NO_SECRET
        # Turning a persistent secret ephemeral forgets its files; and back.
        conn.secretDefineXML(CEPH_XML.replace("ephemeral='no'", "ephemeral='yes'"))
        assert not (state / "secrets" / f"{CEPH_UUID}.xml").exists()
        assert not (state / "secrets" / f"{CEPH_UUID}.value.bin").exists()
        conn.secretDefineXML(CEPH_XML)
        assert (state / "secrets" / f"{CEPH_UUID}.value.bin").read_bytes() == b"kept"
    finally:
        conn.close()


# Steps only virtwire runs (see the module docstring), with the answers libvirt's
# secret_driver.c / virsecretobj.c give.
_GONE = ["error", 66, 30, f"Secret not found: no secret with matching uuid '{ISCSI_UUID}'"]
EXPECTED_EXTRA = [
    ["ephemeral-define", "ok", ISCSI_UUID],
    ["ephemeral-xml-head", "ok", "<secret ephemeral='yes' private='yes'>"],
    ["list-ephemeral", "ok", ["iqn.2013-07.com.example:storage"]],
    ["list-no-ephemeral-len", "ok", 4],
    ["list-ephemeral-public", "ok", []],
    ["ephemeral-set", "ok", 0],
    ["undefine-iscsi", "ok", 0],
    ["undefine-iscsi-again", *_GONE],
    ["iscsi-xml-gone", *_GONE],
    ["iscsi-value-gone", *_GONE],
    ["iscsi-set-gone", *_GONE],
    ["undefine-others", "ok", None],
    ["num-end", "ok", 1],  # the leniently parsed secret stays
]
EXPECTED_EXTRA_EVENTS = [
    ["lifecycle", "iqn.2013-07.com.example:storage", 0, 0],
    ["value-changed", "iqn.2013-07.com.example:storage"],
    ["lifecycle", "iqn.2013-07.com.example:storage", 1, 0],
    ["lifecycle", "client.admin secret", 1, 0],
    ["lifecycle", "/var/lib/images/a.img", 1, 0],
    ["lifecycle", "web", 1, 0],
]


def test_ephemeral_secrets_and_undefine(
    both_sides: tuple[list[Any], list[Any]], pki: Path, virtwire_server: Callable[..., VirtwireServer]
) -> None:
    real, _ = both_sides
    full = run_scenario(virtwire_server().tcp_uri, full=True)
    common = len(real) - 1
    assert full[common:-1] == EXPECTED_EXTRA
    assert full[-1][1] == real[-1][1] + EXPECTED_EXTRA_EVENTS


if __name__ == "__main__":
    _run(sys.argv[1], full=sys.argv[2:] == ["full"])
