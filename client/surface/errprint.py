"""libvirt's default error report on stderr (virDefaultErrorFunc).

libvirt-python prints every error of a libvirt call this way while no Python
error handler is registered: ``libvirt: <module> <level> : <message>``.  The
module names are libvirt's (virErrorDomain in src/util/virerror.c), keyed
here by the VIR_FROM_* constants.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from virtwire.protocol.generated import constants as c

MODULE_NAMES: Final = {
    c.VIR_FROM_NONE: "",
    c.VIR_FROM_XEN: "Xen Driver",
    c.VIR_FROM_XEND: "Xen Daemon",
    c.VIR_FROM_XENSTORE: "Xen Store",
    c.VIR_FROM_SEXPR: "S-Expression",
    c.VIR_FROM_XML: "XML Util",
    c.VIR_FROM_DOM: "Domain",
    c.VIR_FROM_RPC: "XML-RPC",
    c.VIR_FROM_PROXY: "Proxy Daemon",
    c.VIR_FROM_CONF: "Config File",
    c.VIR_FROM_QEMU: "QEMU Driver",
    c.VIR_FROM_NET: "Network",
    c.VIR_FROM_TEST: "Test Driver",
    c.VIR_FROM_REMOTE: "Remote Driver",
    c.VIR_FROM_OPENVZ: "OpenVZ Driver",
    c.VIR_FROM_XENXM: "Xen XM Driver",
    c.VIR_FROM_STATS_LINUX: "Linux Statistics",
    c.VIR_FROM_LXC: "LXC Driver",
    c.VIR_FROM_STORAGE: "Storage Driver",
    c.VIR_FROM_NETWORK: "Network Driver",
    c.VIR_FROM_DOMAIN: "Domain Config",
    c.VIR_FROM_UML: "User Mode Linux Driver",
    c.VIR_FROM_NODEDEV: "Node Device Driver",
    c.VIR_FROM_XEN_INOTIFY: "Xen Inotify Driver",
    c.VIR_FROM_SECURITY: "Security Driver",
    c.VIR_FROM_VBOX: "VirtualBox Driver",
    c.VIR_FROM_INTERFACE: "Network Interface Driver",
    c.VIR_FROM_ONE: "Open Nebula Driver",
    c.VIR_FROM_ESX: "ESX Driver",
    c.VIR_FROM_PHYP: "Power Hypervisor Driver",
    c.VIR_FROM_SECRET: "Secrets Driver",
    c.VIR_FROM_CPU: "CPU Driver",
    c.VIR_FROM_XENAPI: "XenAPI Driver",
    c.VIR_FROM_NWFILTER: "Network Filter Driver",
    c.VIR_FROM_HOOK: "Lifecycle Hook",
    c.VIR_FROM_DOMAIN_SNAPSHOT: "Domain Snapshot",
    c.VIR_FROM_AUDIT: "Audit Utils",
    c.VIR_FROM_SYSINFO: "Sysinfo Utils",
    c.VIR_FROM_STREAMS: "I/O Stream Utils",
    c.VIR_FROM_VMWARE: "VMware Driver",
    c.VIR_FROM_EVENT: "Event Loop",
    c.VIR_FROM_LIBXL: "Xen Light Driver",
    c.VIR_FROM_LOCKING: "Lock Driver",
    c.VIR_FROM_HYPERV: "Hyper-V Driver",
    c.VIR_FROM_CAPABILITIES: "Capabilities Utils",
    c.VIR_FROM_URI: "URI Utils",
    c.VIR_FROM_AUTH: "Authentication Utils",
    c.VIR_FROM_DBUS: "DBus Utils",
    c.VIR_FROM_PARALLELS: "Parallels Cloud Server",
    c.VIR_FROM_DEVICE: "Device Config",
    c.VIR_FROM_SSH: "SSH transport layer",
    c.VIR_FROM_LOCKSPACE: "Lock Space",
    c.VIR_FROM_INITCTL: "Init control",
    c.VIR_FROM_IDENTITY: "Identity",
    c.VIR_FROM_CGROUP: "Cgroup",
    c.VIR_FROM_ACCESS: "Access Manager",
    c.VIR_FROM_SYSTEMD: "Systemd",
    c.VIR_FROM_BHYVE: "Bhyve",
    c.VIR_FROM_CRYPTO: "Crypto",
    c.VIR_FROM_FIREWALL: "Firewall",
    c.VIR_FROM_POLKIT: "Polkit",
    c.VIR_FROM_THREAD: "Thread jobs",
    c.VIR_FROM_ADMIN: "Admin Interface",
    c.VIR_FROM_LOGGING: "Log Manager",
    c.VIR_FROM_XENXL: "Xen XL Config",
    c.VIR_FROM_PERF: "Perf",
    c.VIR_FROM_LIBSSH: "Libssh transport layer",
    c.VIR_FROM_RESCTRL: "Resource control",
    c.VIR_FROM_FIREWALLD: "FirewallD",
    c.VIR_FROM_DOMAIN_CHECKPOINT: "Domain Checkpoint",
    c.VIR_FROM_TPM: "TPM",
    c.VIR_FROM_BPF: "BPF",
    c.VIR_FROM_CH: "Cloud-Hypervisor Driver",
}
_LEVELS: Final = {c.VIR_ERR_NONE: "", c.VIR_ERR_WARNING: "warning", c.VIR_ERR_ERROR: "error"}


def line(err: tuple[Any, ...]) -> str | None:
    """The text virDefaultErrorFunc writes for an error tuple (None for no error)."""
    code, domain, message, level, _s1, _s2, _s3, int1, _i2 = err
    if code == c.VIR_ERR_OK:
        return None
    module = MODULE_NAMES.get(domain, "Unknown")
    lvl = _LEVELS.get(level, "")
    text = message or ""
    # The remote protocol carries no object names with an error: the domain
    # and network name parts of libvirt's format are empty.
    if domain == c.VIR_FROM_XML and code == c.VIR_ERR_XML_DETAIL and int1:
        return f"libvirt: {module} {lvl} : line {int1}: {text}"
    if not text.endswith("\n"):
        text += "\n"
    return f"libvirt: {module} {lvl} : {text}"


def print_default(err: tuple[Any, ...]) -> None:
    text = line(err)
    if text is not None:
        sys.stderr.write(text)
