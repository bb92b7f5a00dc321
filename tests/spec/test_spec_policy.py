"""The procedure tables of spec/*.x: complete, correctly named, correctly annotated.

The spec is compiled afresh with our compiler (not the committed generated
module), so these tests judge the spec itself. Checks against the installed
libvirt (its API list and libvirt.so's read-only behaviour) are skipped when
libvirt is missing, and fail then with CI=true.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.errors import read_only_denial
from virtwire.protocol.xdr import ReadOnlyPolicy
from virtwire.protocol.xdrc import compile_file
from vwtestkit import unavailable

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "spec"
TOOLS = SPEC / "tools"
API_XML = Path("/usr/share/libvirt/api/libvirt-api.xml")
LIBVIRT_9_0_PROCS = 443


def _import_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _compiled(stem: str, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("spec") / f"spec_{stem}.py"
    out.write_text(compile_file(SPEC / f"{stem}.x"), encoding="utf-8")
    return _import_path(f"vw_spec_test_{stem}", out)


def _need(path: Path) -> None:
    if not path.exists():
        unavailable(f"{path} is missing (install libvirt-dev)")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return _compiled("remote", tmp_path_factory)


@pytest.fixture(scope="module")
def keepalive(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return _compiled("keepalive", tmp_path_factory)


@pytest.fixture(scope="module")
def virnet(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return _compiled("virnet", tmp_path_factory)


@pytest.fixture(scope="module")
def api_tool() -> ModuleType:
    return _import_path("vw_check_api_names", TOOLS / "check_api_names.py")


@pytest.fixture(scope="module")
def libvirt_9_0_names() -> dict[int, str]:
    table = json.loads((Path(__file__).parent / "procnames-9.0.json").read_text(encoding="utf-8"))
    return {int(num): name for num, name in table["0x20008086"]["procs"].items()}


# ----------------------------------------------------------------- the table


def test_all_443_procedures_numbered_without_gaps(remote: ModuleType) -> None:
    assert sorted(remote.PROCEDURES) == list(range(1, LIBVIRT_9_0_PROCS + 1))
    assert len(remote.PROCEDURES_BY_NAME) == LIBVIRT_9_0_PROCS


def test_names_are_libvirt_9_0s(remote: ModuleType, libvirt_9_0_names: dict[int, str]) -> None:
    assert len(libvirt_9_0_names) == LIBVIRT_9_0_PROCS
    wrong = {
        num: (proc.name, libvirt_9_0_names[num].upper())
        for num, proc in remote.PROCEDURES.items()
        if proc.name != libvirt_9_0_names[num].upper()
    }
    assert wrong == {}
    assert remote.remote_procedure.REMOTE_PROC_DOMAIN_GET_MESSAGES == 426


def test_program_numbers(remote: ModuleType, keepalive: ModuleType) -> None:
    assert remote.REMOTE_PROGRAM == 0x20008086 and remote.REMOTE_PROTOCOL_VERSION == 1
    assert {p.program for p in remote.PROCEDURES.values()} == {0x20008086}
    assert keepalive.KEEPALIVE_PROGRAM == 0x6B656570
    assert keepalive.KEEPALIVE_PROTOCOL_VERSION == 1


def test_every_procedure_has_a_codec_or_is_void(remote: ModuleType) -> None:
    void = sorted(
        p.name for p in remote.PROCEDURES.values() if p.args is None and p.ret is None and p.msg is None
    )
    assert void == ["CONNECT_CLOSE", "CONNECT_REGISTER_CLOSE_CALLBACK", "CONNECT_UNREGISTER_CLOSE_CALLBACK"]
    assert all(p.modelled for p in remote.PROCEDURES.values())


def test_events_and_calls(remote: ModuleType) -> None:
    events = [p for p in remote.PROCEDURES.values() if p.event is not None]
    calls = [p for p in remote.PROCEDURES.values() if p.event is None]
    assert len(events) == 51
    for p in events:
        assert p.msg is not None and p.args is None and p.ret is None, p.name
        assert p.readonly is ReadOnlyPolicy.ALLOW
    for p in calls:
        assert p.msg is None and p.api, p.name
    by_name = remote.PROCEDURES_BY_NAME
    assert by_name["DOMAIN_EVENT_CALLBACK_LIFECYCLE"].event == "lifecycle"
    assert by_name["DOMAIN_EVENT_LIFECYCLE"].event == "lifecycle"
    assert by_name["DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION"].event == "migration_iteration"
    assert by_name["DOMAIN_EVENT_CALLBACK_JOB_COMPLETED"].event == "job_completed"
    assert by_name["DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE"].event == "memory_device_size_change"
    assert by_name["CONNECT_EVENT_CONNECTION_CLOSED"].event == "connection_closed"


def test_keepalive_table(keepalive: ModuleType) -> None:
    ping, pong = keepalive.PROCEDURES[1], keepalive.PROCEDURES[2]
    assert (ping.name, ping.event, pong.name, pong.event) == ("PING", "ping", "PONG", "pong")
    assert ping.readonly is ReadOnlyPolicy.ALLOW and pong.readonly is ReadOnlyPolicy.ALLOW
    assert ping.msg is None and pong.msg is None


# ----------------------------------------------------------------- API names


def test_api_names_exist_in_libvirt(api_tool: Any) -> None:
    _need(API_XML)
    notes = api_tool.procedure_annotations((SPEC / "remote.x").read_text(encoding="utf-8"))
    assert len(notes) == LIBVIRT_9_0_PROCS
    assert api_tool.unknown_apis(notes, api_tool.public_functions(API_XML)) == []


def test_api_checker_reports_unknown_names(api_tool: Any) -> None:
    notes = {
        "REMOTE_PROC_A": {"api": "virDomainSuspend", "readonly": "deny"},
        "REMOTE_PROC_B": {"api": "virDomainMigrateBegin3Params", "readonly": "deny"},
        "REMOTE_PROC_C": {"api": "virDomainSuspnd", "readonly": "deny"},
        "REMOTE_PROC_D": {"readonly": "allow"},
        "REMOTE_PROC_E": {"event": "reboot", "readonly": "allow"},
    }
    bad = api_tool.unknown_apis(notes, {"virDomainSuspend"})
    assert bad == [("REMOTE_PROC_C", "virDomainSuspnd"), ("REMOTE_PROC_D", "<missing>")]


@pytest.mark.parametrize(
    ("name", "api"),
    [
        ("DOMAIN_GET_XML_DESC", "virDomainGetXMLDesc"),
        ("CONNECT_LIST_ALL_DOMAINS", "virConnectListAllDomains"),
        ("DOMAIN_LOOKUP_BY_UUID", "virDomainLookupByUUID"),
        ("CONNECT_GET_URI", "virConnectGetURI"),
        ("NODE_DEVICE_DETTACH", "virNodeDeviceDettach"),
        ("DOMAIN_MIGRATE_BEGIN3_PARAMS", "virDomainMigrateBegin3Params"),
        ("DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS", "virDomainMigratePrepareTunnel3Params"),
        ("CONNECT_OPEN", "virConnectOpen"),
        ("CONNECT_CLOSE", "virConnectClose"),
        ("CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY", "virConnectDomainEventRegisterAny"),
        ("DOMAIN_GET_JOB_STATS", "virDomainGetJobStats"),
        ("DOMAIN_MIGRATE_START_POST_COPY", "virDomainMigrateStartPostCopy"),
    ],
)
def test_irregular_api_names(remote: ModuleType, name: str, api: str) -> None:
    assert remote.PROCEDURES_BY_NAME[name].api == api


# ----------------------------------------------------------------- read-only policy


@pytest.mark.parametrize(
    ("name", "policy", "mask"),
    [
        ("DOMAIN_SUSPEND", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_RESUME", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_LOOKUP_BY_NAME", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_LOOKUP_BY_UUID", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_GET_INFO", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_GET_STATE", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_GET_JOB_INFO", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_GET_JOB_STATS", ReadOnlyPolicy.ALLOW, 0),
        ("CONNECT_LIST_ALL_DOMAINS", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_MIGRATE_GET_MAX_DOWNTIME", ReadOnlyPolicy.ALLOW, 0),
        ("DOMAIN_MIGRATE_GET_MAX_SPEED", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_MIGRATE_SET_MAX_SPEED", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_MIGRATE_SET_MAX_DOWNTIME", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_MIGRATE_START_POST_COPY", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_ABORT_JOB", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_ABORT_JOB_FLAGS", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_MIGRATE_BEGIN3_PARAMS", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_MIGRATE_CONFIRM3_PARAMS", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_MIGRATE_PREPARE2", ReadOnlyPolicy.DENY, 0),
        ("DOMAIN_GET_XML_DESC", ReadOnlyPolicy.DENY_FLAGS, 0x9),
        ("DOMAIN_GET_VCPUS_FLAGS", ReadOnlyPolicy.DENY_FLAGS, 0x8),
        ("DOMAIN_SNAPSHOT_GET_XML_DESC", ReadOnlyPolicy.DENY_FLAGS, 0x1),
        ("CONNECT_OPEN", ReadOnlyPolicy.ALLOW, 0),
        ("AUTH_LIST", ReadOnlyPolicy.ALLOW, 0),
        ("CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY", ReadOnlyPolicy.ALLOW, 0),
    ],
)
def test_known_policies(remote: ModuleType, name: str, policy: ReadOnlyPolicy, mask: int) -> None:
    proc = remote.PROCEDURES_BY_NAME[name]
    assert (proc.readonly, proc.deny_flags) == (policy, mask)


def test_deny_flags_use_a_flags_argument(remote: ModuleType) -> None:
    for proc in remote.PROCEDURES.values():
        if proc.readonly is ReadOnlyPolicy.DENY_FLAGS:
            assert proc.args is not None and "flags" in proc.args.__match_args__, proc.name
            assert not proc.denies(0) and proc.denies(proc.deny_flags), proc.name


def _spec_policies(remote: ModuleType) -> dict[str, str]:
    def text(p: Any) -> str:
        if p.readonly is ReadOnlyPolicy.DENY_FLAGS:
            return f"deny-flags {p.deny_flags:#x}"
        return "deny" if p.readonly is ReadOnlyPolicy.DENY else "allow"

    return {p.name: text(p) for p in remote.PROCEDURES.values()}


def test_justification_list_matches_spec(remote: ModuleType) -> None:
    rows = re.findall(
        r"^\| (\d+) \| (\w+) \| (\w+) \| (deny(?:-flags 0x[0-9a-f]+)?) \|",
        (TOOLS / "readonly-policy.md").read_text(encoding="utf-8"),
        re.M,
    )
    listed = {name: policy for _num, name, _api, policy in rows}
    refused = {name: policy for name, policy in _spec_policies(remote).items() if policy != "allow"}
    assert listed == refused
    for num, name, api, _policy in rows:
        assert remote.PROCEDURES[int(num)].name == name and remote.PROCEDURES[int(num)].api == api


_FILE_ERROR_DOMAIN = {
    "libvirt-domain": 20,
    "libvirt-host": 20,
    "libvirt-network": 19,
    "libvirt-storage": 18,
    "libvirt-nodedev": 22,
    "libvirt-interface": 26,
    "libvirt-secret": 30,
    "libvirt-nwfilter": 33,
    "libvirt-domain-snapshot": 35,
    "libvirt-domain-checkpoint": 69,
}


def test_policy_is_what_libvirt_so_enforces(remote: ModuleType) -> None:
    """Ask the installed libvirt.so (9.0) itself, API by API and flag by flag."""
    _need(API_XML)
    try:
        ctypes.CDLL("libvirt.so.0")
    except OSError as err:
        unavailable(f"libvirt.so.0 cannot be loaded: {err}")
    probe = _import_path("vw_probe_readonly", TOOLS / "probe_readonly.py")
    by_api: dict[str, str] = {}
    for proc in remote.PROCEDURES.values():
        if proc.api and proc.api not in probe.NOT_PROBED:
            by_api[proc.api] = _spec_policies(remote)[proc.name]
    measured = probe.measure(sorted(by_api), probe.signatures(API_XML))
    assert {api: m.policy for api, m in measured.items() if m.policy != by_api[api]} == {}
    # A refusal is reported under the VIR_FROM_THIS of the defining file (readonly-policy.md).
    files = dict(re.findall(r"<function name='(\w+)' file='([\w-]+)'", API_XML.read_text(encoding="utf-8")))
    wrong_domain = {
        api: (files.get(api), m.refusal.domain)
        for api, m in measured.items()
        if m.refusal is not None and m.refusal.domain != _FILE_ERROR_DOMAIN[files.get(api, "libvirt-domain")]
    }
    assert wrong_domain == {}
    # ... and our generated table and error builder give exactly libvirt.so's refusal.
    by_name = {p.api: p for p in remote.PROCEDURES.values() if p.api}
    ours_differ = {
        api: (m.refusal.domain, m.refusal.message)
        for api, m in measured.items()
        if m.refusal is not None
        and (
            read_only_denial(by_name[api]).get_error_domain(),
            read_only_denial(by_name[api]).get_error_message(),
        )
        != (m.refusal.domain, m.refusal.message)
    }
    assert ours_differ == {}
    suspend = measured["virDomainSuspend"].refusal
    assert suspend is not None and suspend.domain == 20
    assert suspend.message == "operation forbidden: read only access prevents virDomainSuspend"
    secure = measured["virDomainGetXMLDesc"].refusal
    assert (
        secure is not None and secure.message == "operation forbidden: virDomainGetXMLDesc with secure flag"
    )


# ----------------------------------------------------------------- virnet limits


def test_virnet_limits(virnet: ModuleType) -> None:
    assert virnet.VIR_NET_MESSAGE_MAX == 33554432
    assert virnet.VIR_NET_MESSAGE_HEADER_MAX == 24
    assert (
        virnet.VIR_NET_MESSAGE_PAYLOAD_MAX == virnet.VIR_NET_MESSAGE_MAX - virnet.VIR_NET_MESSAGE_HEADER_MAX
    )
    assert virnet.VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX == 262120
    assert virnet.VIR_NET_MESSAGE_INITIAL == 65536
    assert virnet.VIR_NET_MESSAGE_LEN_MAX == 4
    assert virnet.VIR_NET_MESSAGE_STRING_MAX == 4194304
    assert virnet.VIR_NET_MESSAGE_NUM_FDS_MAX == 32
    assert virnet.VIR_NET_MESSAGE_HEADER_XDR_LEN == 4
    assert [m.value for m in virnet.virNetMessageType] == [0, 1, 2, 3, 4, 5, 6]
    assert [m.value for m in virnet.virNetMessageStatus] == [0, 1, 2]


def test_remote_error_golden_vector(virnet: ModuleType) -> None:
    """The error payload of libvirt's tests/virnetmessagetest.c (116-byte packet)."""
    packet = bytes.fromhex(
        "00000074"
        "11223344"
        "00000001"
        "00000666"
        "00000002"
        "00000099"
        "00000001"
        "00000001"
        "00000007"
        "00000001"
        "0000000b"
        "48656c6c6f20576f726c6400"
        "00000002"
        "00000000"
        "00000001"
        "00000003"
        "4f6e6500"
        "00000001"
        "00000003"
        "54776f00"
        "00000001"
        "00000005"
        "5468726565000000"
        "00000001"
        "00000002"
        "00000000"
    )
    assert len(packet) == 0x74
    header = virnet.virNetMessageHeader.from_bytes(packet[4:28])
    assert (header.prog, header.proc, header.serial) == (0x11223344, 0x666, 0x99)
    assert header.type == virnet.virNetMessageType.VIR_NET_MESSAGE
    assert header.status == virnet.virNetMessageStatus.VIR_NET_ERROR
    err = virnet.remote_error.from_bytes(packet[28:])
    assert (err.code, err.domain, err.message, err.level) == (1, 7, "Hello World", 2)
    assert (err.dom, err.str1, err.str2, err.str3, err.int1, err.int2, err.net) == (
        None,
        "One",
        "Two",
        "Three",
        1,
        2,
        None,
    )
    assert err.to_bytes() == packet[28:]


# ----------------------------------------------------------------- event names

# @event of an object's events is "<object>_<id>"; a domain event is just "<id>".
_EVENT_FAMILIES = {
    "DOMAIN": "",
    "NETWORK": "network_",
    "STORAGE_POOL": "storage_pool_",
    "NODE_DEVICE": "node_device_",
    "SECRET": "secret_",
}


def test_every_libvirt_event_id_has_one_callback_procedure(remote: ModuleType) -> None:
    """@event names follow VIR_<FAMILY>_EVENT_ID_<NAME>, one callbackID-form procedure each."""
    _need(API_XML)
    ids = re.findall(
        r"<enum name='VIR_(DOMAIN|NETWORK|STORAGE_POOL|NODE_DEVICE|SECRET)_EVENT_ID_(\w+)'",
        API_XML.read_text(encoding="utf-8"),
    )
    expected = {_EVENT_FAMILIES[family] + name.lower() for family, name in ids if name != "LAST"}
    assert len(expected) == 27 + 1 + 2 + 2 + 2
    callback_form: dict[str, list[str]] = {}
    for proc in remote.PROCEDURES.values():
        if proc.event is None or proc.event == "connection_closed":
            continue
        fields = list(proc.msg.__match_args__)
        if fields[0] == "callbackID":
            callback_form.setdefault(proc.event, []).append(proc.name)
        else:  # a legacy form: it must have a callback twin under the same event name
            assert proc.name.startswith("DOMAIN_EVENT_") and proc.number < 316, proc.name
    assert set(callback_form) == expected
    assert all(len(names) == 1 for names in callback_form.values()), callback_form
    legacy = sorted(
        p.number
        for p in remote.PROCEDURES.values()
        if p.event and p.msg and p.msg.__match_args__[0] != "callbackID" and p.event != "connection_closed"
    )
    assert legacy == [107, 169, 170, 171, 172, 173, 195, 224, 241, 248, 268, 269, 270, 276, 292, 311]
