"""Access control beyond read-only: per-identity, per-object permissions (--access-policy).

Two TLS identities of the test PKI talk to one `virtwire serve`: the operator
(O=virtwire-test,CN=virtwire-client) may do everything; the intruder
(O=other,CN=intruder) may only read `dev-*` domains and migrate nothing.  Every
family is checked with real libvirt-python and with virtwire.libvirt: the exact
error of a denial, listings filtered to what the identity may see, lookups of
missing objects still reported as missing, events only for visible objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.server.access_policy import AccessObject, Policy, PolicyError
from vwtestkit import VirtwireServer, client_pkipath, start_server

import virtwire.libvirt as vlibvirt

POLICY = """
default = "deny"

[[rule]]
x509_dname = "O=virtwire-test,CN=virtwire-client"
permissions = ["*:*"]
allow = true

[[rule]]
x509_dname = "O=other,CN=intruder"
permissions = ["connect:getattr", "connect:read", "connect:search_*"]
allow = true

[[rule]]
x509_dname = "O=other,CN=intruder"
permissions = ["domain:getattr", "domain:read"]
objects = ["dev-*"]
allow = true
"""

DOMAIN_XML = """<domain type='test'>
  <name>{name}</name>
  <memory unit='KiB'>65536</memory>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""

DENIED = (88, 55, "access denied: 'Test' denied access")  # VIR_ERR_ACCESS_DENIED, VIR_FROM_ACCESS


# --- the policy file --------------------------------------------------------------------


def test_policy_first_matching_rule_decides() -> None:
    policy = Policy.from_mapping(
        {
            "rule": [
                {"user_name": "alice", "permissions": ["domain:*"], "objects": ["dev-*"], "allow": True},
                {"user_name": "alice", "permissions": ["domain:stop"], "allow": False},
                {"user_name": "alice", "permissions": ["domain:*"], "allow": True},
            ]
        }
    )
    alice = policy.for_identity({"user_name": "alice", "transport": "unix"})
    bob = policy.for_identity({"user_name": "bob"})
    assert alice.allows("domain", "stop", AccessObject("domain", "dev-1"))
    assert not alice.allows("domain", "stop", AccessObject("domain", "prod-1"))
    assert alice.allows("domain", "start", AccessObject("domain", "prod-1"))
    assert alice.uniform("domain", "start") is None  # depends on the object
    assert alice.uniform("network", "read") is False  # default deny
    assert not bob.allows("domain", "getattr", AccessObject("domain", "dev-1"))
    # a rule with objects never speaks for connect permissions
    only_objects = Policy.from_mapping(
        {"default": "deny", "rule": [{"permissions": ["*:*"], "objects": ["x"], "allow": True}]}
    )
    assert not only_objects.for_identity({}).allows("connect", "getattr")


def test_policy_matches_uuids_and_identity_globs() -> None:
    policy = Policy.from_mapping(
        {
            "default": "allow",
            "rule": [
                {
                    "x509_dname": "O=other,*",
                    "permissions": ["domain:write"],
                    "objects": ["6695eb01-*"],
                    "allow": False,
                }
            ],
        }
    )
    subject = policy.for_identity({"x509_dname": "O=other,CN=intruder"})
    assert not subject.allows(
        "domain", "write", AccessObject("domain", "test", "6695eb01-f6a4-8304-79aa-97f2502e193f")
    )
    assert subject.allows(
        "domain", "write", AccessObject("domain", "test", "00000000-0000-0000-0000-000000000000")
    )
    assert policy.for_identity({"x509_dname": "O=virtwire-test,CN=x"}).uniform("domain", "write") is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"defaults": "deny"}, "unknown key 'defaults'"),
        ({"default": "maybe"}, "default = 'maybe'"),
        ({"rule": {"permissions": ["domain:read"]}}, "array of tables"),
        ({"rule": [{"permissions": ["domain:read"]}]}, "allow must be true or false"),
        ({"rule": [{"permissions": [], "allow": True}]}, "non-empty list"),
        ({"rule": [{"permissions": ["dom:read"], "allow": True}]}, "names no object"),
        ({"rule": [{"permissions": ["domain:read"], "allow": True, "who": "x"}]}, "unknown key 'who'"),
        ({"rule": [{"permissions": ["domain:read"], "objects": "dev-*", "allow": True}]}, "list of strings"),
    ],
)
def test_policy_refuses_bad_files(data: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(")):
        Policy.from_mapping(data)


def test_serve_refuses_a_bad_policy_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "policy.toml"
    bad.write_text("[[rule]]\npermissions = [\"domain:read\"]\nallow = 'yes'\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "virtwire.server",
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--access-policy",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--access-policy" in proc.stderr and "allow must be true or false" in proc.stderr


# --- a server with the policy -----------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtwireServer]:
    policy = tmp_path_factory.mktemp("acl") / "policy.toml"
    policy.write_text(POLICY)
    server = start_server("--access-policy", str(policy), pki=pki)
    try:
        operator = vlibvirt.open(server.tls_uri_with(client_pkipath(pki, "client")))
        for name in ("dev-1", "dev-2", "prod-1"):
            operator.defineXML(DOMAIN_XML.format(name=name)).create()
        operator.close()
        yield server
    finally:
        server.stop()


def _uris(server: VirtwireServer, pki: Path) -> tuple[str, str]:
    return server.tls_uri_with(client_pkipath(pki, "client")), server.tls_uri_with(
        client_pkipath(pki, "other")
    )


def _denied(call: Callable[[], Any], lib: ModuleType) -> None:
    with pytest.raises(lib.libvirtError) as info:
        call()
    err = info.value
    assert (err.get_error_code(), err.get_error_domain(), err.get_error_message()) == DENIED


@pytest.fixture(params=["libvirt-python", "virtwire.libvirt"])
def lib(request: pytest.FixtureRequest, real_libvirt: ModuleType) -> ModuleType:
    return real_libvirt if request.param == "libvirt-python" else vlibvirt


def test_operator_may_do_everything(guarded: VirtwireServer, pki: Path, lib: ModuleType) -> None:
    conn = lib.open(_uris(guarded, pki)[0])
    try:
        names = sorted(d.name() for d in conn.listAllDomains())
        assert names == ["dev-1", "dev-2", "prod-1", "test"]
        assert conn.numOfDomains() == 4
        assert conn.networkLookupByName("default").name() == "default"
        prod = conn.lookupByName("prod-1")
        prod.suspend()
        prod.resume()
        assert prod.XMLDesc(lib.VIR_DOMAIN_XML_SECURE).startswith("<domain")
    finally:
        conn.close()


def test_intruder_sees_and_reads_only_dev_domains(
    guarded: VirtwireServer, pki: Path, lib: ModuleType
) -> None:
    conn = lib.open(_uris(guarded, pki)[1])
    try:
        assert conn.getType() == "TEST"  # connect:getattr
        assert sorted(d.name() for d in conn.listAllDomains()) == ["dev-1", "dev-2"]
        assert conn.numOfDomains() == 2
        ids = conn.listDomainsID()
        assert sorted(conn.lookupByID(i).name() for i in ids) == ["dev-1", "dev-2"]
        assert conn.listDefinedDomains() == []
        dev = conn.lookupByName("dev-1")
        assert dev.info()[0] == lib.VIR_DOMAIN_RUNNING  # domain:read
        assert "<name>dev-1</name>" in dev.XMLDesc(0)
        assert conn.lookupByUUIDString(dev.UUIDString()).name() == "dev-1"
        # denied: another domain, secure XML, any change, migration
        _denied(lambda: conn.lookupByName("prod-1"), lib)
        _denied(lambda: conn.lookupByName("test"), lib)
        _denied(lambda: dev.XMLDesc(lib.VIR_DOMAIN_XML_SECURE), lib)
        _denied(dev.suspend, lib)
        _denied(dev.destroy, lib)
        _denied(lambda: dev.setMemory(32768), lib)
        _denied(lambda: dev.migrateGetMaxSpeed(0), lib)  # domain:migrate
        _denied(lambda: dev.migrateSetMaxDowntime(100, 0), lib)
        _denied(lambda: dev.snapshotCreateXML("<domainsnapshot/>", 0), lib)
        _denied(lambda: conn.defineXML(DOMAIN_XML.format(name="dev-9")), lib)
        _denied(lambda: conn.createXML(DOMAIN_XML.format(name="dev-9"), 0), lib)
        # a missing domain is reported missing, as libvirt looks it up first
        with pytest.raises(lib.libvirtError) as info:
            conn.lookupByName("no-such-domain")
        assert info.value.get_error_code() == lib.VIR_ERR_NO_DOMAIN
    finally:
        conn.close()


def test_intruder_is_denied_every_other_family(guarded: VirtwireServer, pki: Path, lib: ModuleType) -> None:
    operator = lib.open(_uris(guarded, pki)[0])
    conn = lib.open(_uris(guarded, pki)[1])
    try:
        assert conn.listAllNetworks() == []
        assert conn.numOfNetworks() == 0
        assert conn.listAllStoragePools() == []
        assert conn.listAllInterfaces() == []
        assert conn.listAllDevices() == []
        assert conn.listAllSecrets() == []
        assert conn.listNetworks() == []
        _denied(lambda: conn.networkLookupByName("default"), lib)
        _denied(lambda: conn.storagePoolLookupByName("default-pool"), lib)
        _denied(lambda: conn.interfaceLookupByName("eth1"), lib)
        _denied(lambda: conn.nodeDeviceLookupByName("computer"), lib)
        _denied(lambda: conn.networkDefineXML("<network><name>dev-net</name></network>"), lib)
        _denied(lambda: conn.secretDefineXML("<secret ephemeral='no' private='no'/>"), lib)
        assert operator.networkLookupByName("default").isActive() == 1  # nothing changed for others
    finally:
        conn.close()
        operator.close()


def test_a_forged_reference_is_checked_on_the_real_object(guarded: VirtwireServer, pki: Path) -> None:
    """A call naming an allowed domain with another domain's UUID is checked on the domain found."""
    from virtwire.protocol.generated import remote as R
    from virtwire.protocol.generated.virnet import remote_error
    from vwtestkit import RawRpcClient

    operator = vlibvirt.open(_uris(guarded, pki)[0])
    prod_uuid = operator.lookupByName("prod-1").UUID()
    operator.close()
    assert guarded.tls_port is not None
    raw = RawRpcClient.tls("127.0.0.1", guarded.tls_port, client_pkipath(pki, "other"))
    try:
        raw.open("test:///default")
        forged = R.remote_nonnull_domain(name="dev-1", uuid=prod_uuid, id=-1)
        args = R.remote_domain_get_xml_desc_args(dom=forged, flags=0)
        reply = raw.call(R.PROCEDURES_BY_NAME["DOMAIN_GET_XML_DESC"].number, args.to_bytes())
        assert reply.status == 1  # VIR_NET_ERROR
        err = remote_error.from_bytes(reply.payload)
        assert (err.code, err.domain, err.message) == DENIED
    finally:
        raw.close()


def test_events_reach_only_identities_that_may_see_the_object(
    guarded: VirtwireServer, pki: Path, lib: ModuleType
) -> None:
    seen: list[str] = []
    got_dev = threading.Event()

    def on_lifecycle(_conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        seen.append(dom.name())
        if dom.name() == "dev-2":
            got_dev.set()

    if lib.virEventRegisterDefaultImpl is not None:
        lib.virEventRegisterDefaultImpl()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            lib.virEventRunDefaultImpl()

    runner = threading.Thread(target=loop, daemon=True)
    runner.start()
    conn = lib.open(_uris(guarded, pki)[1])
    operator = vlibvirt.open(_uris(guarded, pki)[0])
    try:
        callback = conn.domainEventRegisterAny(None, lib.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
        for name in ("prod-1", "test", "dev-2"):  # dev-2 last: once it is seen, the others were sent
            dom = operator.lookupByName(name)
            dom.suspend()
            dom.resume()
        assert got_dev.wait(30), f"no dev-2 event; saw {seen}"
        # one connection's events arrive in order: any sent for prod-1 or test came first
        assert set(seen) == {"dev-2"}, seen
        conn.domainEventDeregisterAny(callback)
    finally:
        conn.close()
        operator.close()
        stop.set()


def test_virsh_as_the_intruder(guarded: VirtwireServer, pki: Path, run_virsh: Callable[..., Any]) -> None:
    uri = _uris(guarded, pki)[1]
    listing = run_virsh(uri, "list", "--all", "--name", check=True)
    assert sorted(line for line in listing.stdout.split() if line) == ["dev-1", "dev-2"]
    refused = run_virsh(uri, "suspend", "dev-1")
    assert refused.returncode != 0
    assert "access denied: 'Test' denied access" in refused.stderr
    assert "dev-1" in run_virsh(uri, "dominfo", "dev-1", check=True).stdout
