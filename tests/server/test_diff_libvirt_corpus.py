"""libvirt's own domain XML test corpus, read as libvirt 9.0's test driver reads it.

libvirt tests its domain parser with hundreds of definitions
(tests/genericxml2xmlindata, tests/qemuxml2argvdata in its source tree; scripts/test.sh
unpacks them from Debian's orig tarball, see ``vwtestkit.env.libvirt_corpus``). Each file
is made a test-driver definition (domain type 'test', a name of its own), defined on
real libvirt-python's in-process test:///default and printed back with XMLDesc(0); our
parser and normaliser must print the same text, or refuse it with the same error code,
domain and message.

The files that still differ are listed in data/corpus_known_differences.txt with how
they differ. The test fails on a file that differs and is not listed (a regression, or
a new difference) and on a listed file that no longer differs or differs in another way
(the list must shrink as the differences are fixed), and on a file read as libvirt reads it
whose printed definition, defined again, then reads differently (a second round, which also
keeps normalising idempotent where libvirt's is); it names every such file at once.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.server.driver.memory.domsecure import hide_secrets
from virtwire.server.driver.memory.domxml import format_domain_xml, normalise, parse_domain_xml
from vwtestkit.env import libvirt_corpus

DIRECTORIES = ("genericxml2xmlindata", "qemuxml2argvdata")
KNOWN = Path(__file__).parent / "data" / "corpus_known_differences.txt"
# How a file differs: libvirt refuses it and we do not; we refuse what libvirt accepts;
# both refuse with different errors; both accept and print different XML.
CATEGORIES = ("we-accept", "we-refuse", "error-differs", "xml-differs")

_DOMAIN_TYPE = re.compile(r"<domain(\s+)type=(['\"])[^'\"]*\2")
_NAME = re.compile(r"<name>[^<]*</name>")
_UUID = re.compile(r"<uuid>[^<]*</uuid>")
_GENID = re.compile(r"<genid>[^<]*</genid>")
_GIVEN_GENID = re.compile(r"<genid>\s*[0-9a-fA-F]")
_MAC = re.compile(r"<mac address='([0-9a-fA-F:]+)'/>")

Outcome = tuple[str, Any]  # ("xml", text) or ("error", (code, domain, message))


def _as_test_domain(xml: str, name: str) -> str:
    """The definition with the test driver's domain type and a name no other test uses."""
    xml = _DOMAIN_TYPE.sub(r"<domain\1type='test'", xml, count=1)
    return _NAME.sub(f"<name>{name}</name>", xml, count=1)


def _masked(printed: str, given: str) -> str:
    """Generated parts masked: the UUID and genid (when the file gives none), MACs it did not give."""
    if "<uuid>" not in given:
        printed = _UUID.sub("<uuid/>", printed)
    if not _GIVEN_GENID.search(given):
        printed = _GENID.sub("<genid/>", printed)
    given_lower = given.lower()
    return _MAC.sub(lambda m: m.group(0) if m.group(1).lower() in given_lower else "<mac/>", printed)


def _theirs(libvirt: ModuleType, conn: Any, xml: str) -> Outcome:
    try:
        dom = conn.defineXML(xml)
    except libvirt.libvirtError as exc:
        return "error", (exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())
    try:
        return "xml", dom.XMLDesc(0)
    finally:
        dom.undefine()


def _ours(xml: str) -> Outcome:
    try:
        parsed = parse_domain_xml(xml)
        tree = normalise(parsed, parsed.uuid or uuidlib.uuid4().bytes)
        return "xml", hide_secrets(format_domain_xml(tree, domain_id=None))
    except libvirtError as exc:
        return "error", (exc.get_error_code(), exc.get_error_domain(), exc.get_error_message())


def _category(theirs: Outcome, ours: Outcome, given: str) -> str | None:
    if theirs[0] == "error":
        if ours[0] == "xml":
            return "we-accept"
        return None if ours[1] == theirs[1] else "error-differs"
    if ours[0] == "error":
        return "we-refuse"
    return None if _masked(ours[1], given) == _masked(theirs[1], given) else "xml-differs"


def _known() -> dict[str, str]:
    known: dict[str, str] = {}
    for line in KNOWN.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            path, category = line.split()
            assert category in CATEGORIES, line
            assert path not in known, f"listed twice: {path}"
            known[path] = category
    return known


def _differences(
    libvirt: ModuleType, conn: Any, directory: Path, unstable: list[str] | None = None
) -> dict[str, tuple[str, Outcome, Outcome]]:
    """How each file differs (files read as libvirt reads them left out). A file read as
    libvirt reads it is read again from libvirt's print: when the two sides then differ, it
    is added to ``unstable``."""
    found: dict[str, tuple[str, Outcome, Outcome]] = {}
    for n, path in enumerate(sorted(directory.glob("*.xml"))):
        given = _as_test_domain(path.read_text(), f"vwcorpus-{n}")
        theirs, ours = _theirs(libvirt, conn, given), _ours(given)
        category = _category(theirs, ours, given)
        if category is not None:
            found[f"{directory.name}/{path.name}"] = (category, theirs, ours)
        # libvirt's own print, defined again, must print the same on both sides
        again = unstable is not None and category is None and theirs[0] == "xml"
        if again and unstable is not None and _ours(theirs[1]) != _theirs(libvirt, conn, theirs[1]):
            unstable.append(f"{directory.name}/{path.name}")
    return found


def _brief(outcome: Outcome) -> str:
    return "accepted" if outcome[0] == "xml" else f"refused {outcome[1]!r}"


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_libvirt_corpus_reads_as_libvirt_reads_it(
    real_libvirt: ModuleType, libvirt_test_driver: Any, directory: str
) -> None:
    root = libvirt_corpus() / "tests" / directory
    files = sorted(root.glob("*.xml"))
    assert len(files) > 50, f"{root}: too few definitions ({len(files)})"
    known = {path: category for path, category in _known().items() if path.startswith(f"{directory}/")}
    unstable: list[str] = []
    differences = _differences(real_libvirt, libvirt_test_driver, root, unstable)
    problems = [f"{path}: as printed, defined again, it reads differently from libvirt" for path in unstable]
    for path, (category, theirs, ours) in sorted(differences.items()):
        if known.get(path) != category:
            listed = f" (listed as {known[path]})" if path in known else ""
            problems.append(f"{path} {category}{listed}: libvirt {_brief(theirs)}, we {_brief(ours)}")
    for path, category in sorted(known.items()):
        if path not in differences:
            problems.append(f"{path}: listed as {category} but now reads as libvirt reads it: unlist it")
    counts = Counter(category for category, _, _ in differences.values())
    summary = f"{len(files)} files, {len(files) - len(differences)} as libvirt, differing: {dict(counts)}"
    assert not problems, f"{summary}\n" + "\n".join(problems)
