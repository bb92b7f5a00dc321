"""A node description in libvirt's test-driver format (what ``test:///path/node.xml`` opens).

``<node>`` holds ``<domain>``, ``<network>``, ``<interface>``, ``<pool>`` (with
``<volume>`` children), ``<device>`` elements, inline or as ``file='...'``
relative to the node file, the host's ``<cpu>`` (nodes, sockets, cores,
threads, active, mhz, model) and ``<memory>`` (KiB), and ``<auth><user>``.
A domain may carry the test driver's namespace
(``xmlns:test='http://libvirt.org/schemas/domain/test/1.0'``): ``test:runstate``
(a virDomainState number), ``test:transient``, ``test:hasmanagedsave`` and
``test:domainsnapshot`` children (whose own children are a snapshot, with
``<active>`` saying which is current, or ``file=`` naming a ``<domainsnapshot>``).
Parsing follows src/test/test_driver.c (testOpenParse) and its error messages;
the families read their parts from the ``NodeDescription`` when they seed a
fresh host.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from virtwire.protocol.generated import constants as C

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
_T = f"{{{TEST_NS}}}"


class NodeXMLError(ValueError):
    """The node description cannot be used; the message says why, as libvirt words it."""


@dataclass(frozen=True, slots=True)
class NodeCPU:
    """virNodeInfo overrides (None keeps the test driver's default)."""

    nodes: int | None = None
    sockets: int | None = None
    cores: int | None = None
    threads: int | None = None
    active: int | None = None
    mhz: int | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    xml: str  # a <domainsnapshot> document, as a redefinition takes it
    current: bool


@dataclass(frozen=True, slots=True)
class NodeDomain:
    xml: str  # the <domain> without the test: namespace elements
    name: str
    runstate: int = C.VIR_DOMAIN_RUNNING
    transient: bool = False
    has_managed_save: bool = False
    snapshots: tuple[NodeSnapshot, ...] = ()  # in file order


@dataclass(frozen=True, slots=True)
class NodePool:
    xml: str
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeDescription:
    source: Path
    cpu: NodeCPU = field(default_factory=NodeCPU)
    memory_kib: int | None = None
    domains: tuple[NodeDomain, ...] = ()
    networks: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    pools: tuple[NodePool, ...] = ()
    devices: tuple[str, ...] = ()
    users: tuple[tuple[str, str | None], ...] = ()


def _text(elem: ET.Element) -> str:
    return ET.tostring(elem, encoding="unicode").strip()


def _resolve(elem: ET.Element, base: Path) -> ET.Element:
    """An element, or the document its ``file`` attribute names (relative to the node file)."""
    name = elem.get("file")
    if name is None:
        return elem
    path = base / name
    try:
        root = ET.parse(path).getroot()
    except OSError as exc:
        raise NodeXMLError(f"failed to read file '{path}': {exc.strerror}") from None
    except ET.ParseError as exc:
        raise NodeXMLError(f"{path}: XML error: {exc}") from None
    if root.tag != elem.tag:
        raise NodeXMLError(f"XML error: expected root element '{elem.tag}', got '{root.tag}' in '{path}'")
    return root


def _uint(node: ET.Element, path: str, what: str) -> int | None:
    text = node.findtext(path)
    if text is None:
        return None
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise NodeXMLError(f"XML error: invalid node {what} value") from None
    if value < 0:
        raise NodeXMLError(f"XML error: invalid node {what} value")
    return value


def _snapshot(elem: ET.Element, base: Path) -> NodeSnapshot:
    """A ``test:domainsnapshot``: its children are the snapshot, or ``file`` names a <domainsnapshot>."""
    if elem.get("file") is not None:
        doc = _resolve(ET.Element("domainsnapshot", {"file": elem.get("file", "")}), base)
    else:
        doc = ET.Element("domainsnapshot")
        doc.extend(list(elem))
    # The test driver parses snapshots as libvirt's own saved ones: <active> says which is current.
    active = doc.find("active")
    try:
        current = int((active.text or "").strip(), 10) != 0 if active is not None else None
    except ValueError:
        current = None
    if current is None:
        raise NodeXMLError("internal error: Could not find 'active' element")
    if active is not None:
        doc.remove(active)
    return NodeSnapshot(_text(doc), current)


def _domain(elem: ET.Element, base: Path) -> NodeDomain:
    runstate = C.VIR_DOMAIN_RUNNING
    text = elem.findtext(f"{_T}runstate")
    if text is not None:
        try:
            runstate = int(text.strip(), 10)
        except ValueError:
            raise NodeXMLError("XML error: invalid runstate") from None
        if not 0 <= runstate < C.VIR_DOMAIN_LAST:
            raise NodeXMLError(f"XML error: runstate '{runstate}' out of range'")
    transient = elem.find(f"{_T}transient") is not None
    managed = elem.find(f"{_T}hasmanagedsave") is not None
    if transient and runstate == C.VIR_DOMAIN_SHUTOFF:
        raise NodeXMLError("XML error: transient domain cannot have runstate 'shutoff'")
    if managed and runstate != C.VIR_DOMAIN_SHUTOFF:
        raise NodeXMLError("XML error: domain with managedsave data can only have runstate 'shutoff'")
    snapshots = [_snapshot(snap, base) for snap in elem.findall(f"{_T}domainsnapshot")]
    for child in list(elem):
        if child.tag.startswith(_T):
            elem.remove(child)
    return NodeDomain(_text(elem), elem.findtext("name", ""), runstate, transient, managed, tuple(snapshots))


def load(path: Path) -> NodeDescription:
    """Read and check a node file; NodeXMLError says what is wrong with it."""
    try:
        root = ET.parse(path).getroot()
    except OSError as exc:
        raise NodeXMLError(f"failed to read file '{path}': {exc.strerror}") from None
    except ET.ParseError as exc:
        raise NodeXMLError(f"{path}: XML error: {exc}") from None
    if root.tag != "node":
        raise NodeXMLError(f"XML error: expected root element 'node', got '{root.tag}'")
    base = path.resolve().parent
    cpu = NodeCPU(
        nodes=_uint(root, "cpu/nodes", "cpu nodes"),
        sockets=_uint(root, "cpu/sockets", "cpu sockets"),
        cores=_uint(root, "cpu/cores", "cpu cores"),
        threads=_uint(root, "cpu/threads", "cpu threads"),
        active=_uint(root, "cpu/active", "cpu active"),
        mhz=_uint(root, "cpu/mhz", "cpu mhz"),
        model=root.findtext("cpu/model"),
    )
    if cpu.model is not None and len(cpu.model.encode()) >= 32:
        raise NodeXMLError(f"internal error: Model {cpu.model} too big for destination")
    users: list[tuple[str, str | None]] = []
    for user in root.findall("auth/user"):
        name = (user.text or "").strip()
        if not name:
            raise NodeXMLError("XML error: missing username in /node/auth/user field")
        users.append((name, user.get("password")))
    pools = []
    for elem in root.findall("pool"):
        pool = _resolve(elem, base)
        # The volumes of the pool element; a <pool file=...> reference is replaced by the file's
        # root, so libvirt never sees volumes written beside the reference.
        volumes = tuple(_text(_resolve(v, base)) for v in pool.findall("volume"))
        for v in pool.findall("volume"):
            pool.remove(v)
        pools.append(NodePool(_text(pool), volumes))
    return NodeDescription(
        source=path,
        cpu=cpu,
        memory_kib=_uint(root, "memory", "memory"),
        domains=tuple(_domain(_resolve(e, base), base) for e in root.findall("domain")),
        networks=tuple(_text(_resolve(e, base)) for e in root.findall("network")),
        interfaces=tuple(_text(_resolve(e, base)) for e in root.findall("interface")),
        pools=tuple(pools),
        devices=tuple(_text(_resolve(e, base)) for e in root.findall("device")),
        users=tuple(users),
    )
