"""libvirt-python 9.0's rules from a C API name to its Python class and method.

libvirt-python's generator puts a C function into the class of its first
argument (or, failing that, its second), and strips the class prefix in a long
list of special cases.  The rules below reproduce its results (the method names
of `import libvirt`); the coverage tests compare both ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The object classes, in the order libvirt-python matches argument types.
CLASSES: Final = (
    "virDomain",
    "virNetwork",
    "virNetworkPort",
    "virInterface",
    "virStoragePool",
    "virStorageVol",
    "virConnect",
    "virNodeDevice",
    "virSecret",
    "virNWFilter",
    "virNWFilterBinding",
    "virStream",
    "virDomainCheckpoint",
    "virDomainSnapshot",
)
MODULE: Final = "libvirt"  # module-level functions

# C functions libvirt-python never binds as they are: reference counting, the
# back-pointers each class answers in Python, C-only helpers for typed
# parameters and freeing, and calls its override layer writes differently.
SKIPPED: Final = frozenset(
    {
        "virConnectListDomains",
        "virConnSetErrorFunc",
        "virResetError",
        "virGetVersion",
        "virSetErrorFunc",
        "virConnCopyLastError",
        "virCopyLastError",
        "virConnectOpenAuth",
        "virDefaultErrorFunc",
        "virSaveLastError",
        "virFreeError",
        "virStreamFree",
        "virStreamRecvAll",
        "virStreamSendAll",
        "virStreamRecv",
        "virStreamSend",
        "virStreamRecvHole",
        "virStreamSendHole",
        "virStreamRecvFlags",
        "virStreamSparseRecvAll",
        "virStreamSparseSendAll",
        "virNetworkDHCPLeaseFree",
        "virDomainStatsRecordListFree",
        "virDomainFSInfoFree",
        "virDomainIOThreadInfoFree",
        "virDomainInterfaceFree",
        "virDomainGetConnect",
        "virInterfaceGetConnect",
        "virNetworkGetConnect",
        "virNetworkPortGetNetwork",
        "virSecretGetConnect",
        "virNWFilterGetConnect",
        "virStoragePoolGetConnect",
        "virStorageVolGetConnect",
        "virDomainCheckpointGetConnect",
        "virDomainCheckpointGetDomain",
        "virDomainSnapshotGetConnect",
        "virDomainSnapshotGetDomain",
        # Event registration and the time setter: libvirt-python's own Python code.
        "virConnectDomainEventRegister",
        "virConnectDomainEventDeregister",
        "virConnectDomainEventRegisterAny",
        "virConnectDomainEventDeregisterAny",
        "virConnectNetworkEventRegisterAny",
        "virConnectNetworkEventDeregisterAny",
        "virConnectStoragePoolEventRegisterAny",
        "virConnectStoragePoolEventDeregisterAny",
        "virConnectNodeDeviceEventRegisterAny",
        "virConnectNodeDeviceEventDeregisterAny",
        "virConnectSecretEventRegisterAny",
        "virConnectSecretEventDeregisterAny",
        "virDomainSetTime",
    }
)
_SKIPPED_SUFFIXES: Final = ("Ref", "Free")
_SKIPPED_PREFIXES: Final = ("virTypedParams",)  # C-only helpers: Python uses dicts

# Functions libvirt-python's override layer binds under another class or name
# than its rules give.
REBOUND: Final = {
    "virDomainListGetStats": ("virConnect", "domainListGetStats"),
    "virConnectListAllNodeDevices": ("virConnect", "listAllDevices"),
    "virDomainFSFreeze": ("virDomain", "fsFreeze"),
    "virDomainFSThaw": ("virDomain", "fsThaw"),
    "virDomainGetTime": ("virDomain", "getTime"),
    "virDomainFDAssociate": ("virDomain", "FDAssociate"),
    "virDomainRevertToSnapshot": ("virDomain", "revertToSnapshot"),
    # Hand-written in libvirt-python's virConnect (the object argument is second).
    "virConnectDomainEventRegisterAny": ("virConnect", "domainEventRegisterAny"),
    "virConnectNetworkEventRegisterAny": ("virConnect", "networkEventRegisterAny"),
    "virConnectStoragePoolEventRegisterAny": ("virConnect", "storagePoolEventRegisterAny"),
}

# Argument types that are C callbacks: libvirt-python writes these functions by
# hand (event registration) or not at all.
CALLBACK_TYPES: Final = frozenset(
    {
        "virConnectDomainEventCallback",
        "virConnectDomainEventGenericCallback",
        "virConnectDomainQemuMonitorEventCallback",
        "virStreamEventCallback",
        "virEventHandleCallback",
        "virEventTimeoutCallback",
        "virConnectCloseFunc",
        "virConnectNetworkEventGenericCallback",
        "virConnectStoragePoolEventGenericCallback",
        "virConnectNodeDeviceEventGenericCallback",
        "virConnectSecretEventGenericCallback",
        "virConnectAuthPtr",
        "virFreeCallback",
        "virStreamSinkFunc",
        "virStreamSourceFunc",
        "virStreamSinkHoleFunc",
        "virStreamSourceHoleFunc",
        "virStreamSourceSkipFunc",
        "virEventAddHandleFunc",
        "virEventUpdateHandleFunc",
        "virEventRemoveHandleFunc",
        "virEventAddTimeoutFunc",
        "virEventUpdateTimeoutFunc",
        "virEventRemoveTimeoutFunc",
    }
)

# Arguments libvirt-python's override-api.xml declares optional (default None)
# where libvirt-api.xml does not say so.
OPTIONAL_ARGS: Final = {
    "virConnectGetDomainCapabilities": frozenset({"emulatorbin", "arch", "machine", "virttype"}),
}

# Functions whose class comes from the first argument only.
_FIRST_ARG_ONLY: Final = frozenset({"virDomainRevertToSnapshot"})

# C name prefix -> (characters to drop, how many leading characters to lower).
# Checked in order: the first prefix that matches wins (libvirt-python's
# nameFixup).
_PREFIX_RULES: Final[tuple[tuple[str, int, int], ...]] = (
    ("virNetworkDefine", 3, 1),
    ("virNetworkCreateXML", 3, 1),
    ("virNetworkLookup", 3, 1),
    ("virNetworkPortCreateXML", 10, 1),
    ("virNetworkPortLookup", 10, 1),
    ("virInterfaceDefine", 3, 1),
    ("virInterfaceCreateXML", 3, 1),
    ("virInterfaceLookup", 3, 1),
    ("virSecretDefine", 3, 1),
    ("virSecretLookup", 3, 1),
    ("virNWFilterBindingCreateXML", 3, 3),
    ("virNWFilterBindingLookup", 3, 3),
    ("virNWFilterBindingDefine", 3, 3),
    ("virNWFilterDefine", 3, 3),
    ("virNWFilterLookup", 3, 3),
    ("virStoragePoolDefine", 3, 1),
    ("virStoragePoolCreateXML", 3, 1),
    ("virStoragePoolLookup", 3, 1),
    ("virStorageVolDefine", 3, 1),
    ("virStorageVolLookup", 3, 1),
    ("virDomainGetCPUStats", 9, 1),
    ("virDomainGetIOThreadInfo", 12, 2),
    ("virDomainGetFSInfo", 12, 2),
    ("virDomainGet", 12, 1),
    ("virDomainCheckpointLookupByName", 9, 1),
    ("virDomainCheckpointCreateXML", 9, 1),
    ("virDomainCheckpoint", 19, 1),
    ("virDomainSnapshotLookupByName", 9, 1),
    ("virDomainSnapshotListNames", 9, 1),
    ("virDomainSnapshotNumChildren", 17, 1),
    ("virDomainSnapshotNum", 9, 1),
    ("virDomainSnapshotCreateXML", 9, 1),
    ("virDomainSnapshotCurrent", 9, 1),
    ("virDomainSnapshot", 17, 1),
    ("virDomain", 9, 1),
    ("virNetworkPortGet", 17, 1),
    ("virNetworkGet", 13, 1),
    ("virNetworkPort", 14, 1),
    ("virNetwork", 10, 1),
    ("virInterfaceGet", 15, 1),
    ("virInterface", 12, 1),
    ("virSecretGet", 12, 1),
    ("virSecret", 9, 1),
    ("virNWFilterBindingGet", 21, 1),
    ("virNWFilterBinding", 18, 1),
    ("virNWFilterGet", 14, 1),
    ("virNWFilter", 11, 1),
    ("virStreamNew", -1, 0),  # "newStream", below
    ("virStream", 9, 1),
    ("virStoragePoolGet", 17, 1),
    ("virStoragePool", 14, 1),
    ("virStorageVolGet", 16, 1),
    ("virStorageVol", 13, 1),
    ("virNodeDeviceGet", 16, 1),
    ("virNodeDeviceLookup", 3, 1),
    ("virNodeDeviceCreateXML", 3, 1),
    ("virNodeDeviceDefine", 3, 1),
    ("virNodeDevice", 13, 1),
    ("virNode", 7, 1),
    ("virConnect", 10, 1),
)

# Lower-casing the first letter spoils these; libvirt-python puts them back.
_CAPITALISED: Final = {
    "iD": "ID",
    "uUID": "UUID",
    "uUIDString": "UUIDString",
    "oSType": "OSType",
    "xMLDesc": "XMLDesc",
    "mACString": "MACString",
}


@dataclass(frozen=True, slots=True)
class Binding:
    """Where libvirt-python puts one C function."""

    cname: str
    klass: str  # a class of CLASSES, or MODULE
    method: str
    self_index: int  # which C argument is the object (-1 for module functions)


def _lower(text: str, count: int) -> str:
    return text[:count].lower() + text[count:]


def method_name(cname: str, klass: str) -> str:
    """libvirt-python's Python name of `cname` bound into `klass` (or MODULE)."""
    if klass != MODULE and cname.startswith(klass + "List"):
        return _lower(cname[len(klass) :], 1)
    func = cname
    for prefix, drop, lower in _PREFIX_RULES:
        if cname.startswith(prefix):
            if drop < 0:
                func = "newStream"
            else:
                func = _lower(cname[drop:], lower)
                if prefix == "virNetworkGet":
                    func = func.replace("dHCP", "DHCP")
            break
    return _CAPITALISED.get(func, func)


def skipped(cname: str, arg_types: list[str], ret_type: str) -> bool:
    """True for C functions libvirt-python has no generated binding for."""
    if cname in SKIPPED or cname.startswith(_SKIPPED_PREFIXES):
        return True
    if cname.endswith(_SKIPPED_SUFFIXES) and any(cname == k + s for k in CLASSES for s in _SKIPPED_SUFFIXES):
        return True
    types = [t.removeprefix("const ") for t in (*arg_types, ret_type)]
    return any(t in CALLBACK_TYPES for t in types)


def bind(cname: str, arg_types: list[str]) -> Binding:
    """The class (by the object argument's type) and method name of a C function."""
    if cname in REBOUND:
        klass, method = REBOUND[cname]
        return Binding(cname, klass, method, -1)
    if cname.startswith("vir"):
        for klass in CLASSES:
            ptr = (f"{klass}Ptr", f"{klass} *")
            if arg_types and arg_types[0] in ptr:
                return Binding(cname, klass, method_name(cname, klass), 0)
            if len(arg_types) >= 2 and arg_types[1] in ptr and cname not in _FIRST_ARG_ONLY:
                return Binding(cname, klass, method_name(cname, klass), 1)
    return Binding(cname, MODULE, method_name(cname, MODULE), -1)
