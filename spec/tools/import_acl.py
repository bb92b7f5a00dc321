"""Copy libvirt's access-control annotations into spec/remote.x.

    python spec/tools/import_acl.py PATH/TO/libvirt/src/remote/remote_protocol.x [--check]

libvirt declares, in the doc comment of each procedure of its own
remote_protocol.x, the permissions an API needs (``@acl: object:perm``,
``@acl: object:perm:FLAG``, ``@acl: object:perm::param:VALUE``) and the filter
applied to the objects a listing returns (``@aclfilter: object:perm``).  This
tool carries them over to our spec as one ``@acl:`` line (the checks, comma
separated, in libvirt's order) and one ``@aclfilter:`` line per procedure, next
to its ``@readonly:`` line.  It is run by hand when the spec follows a new
libvirt; the server never reads libvirt's files.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "remote.x"

# A procedure member with the doc comment right above it.
_MEMBER = re.compile(r"/\*\*(?P<doc>(?:(?!\*/).)*)\*/\s*(?P<name>REMOTE_PROC_[A-Z0-9_]+)\s*=", re.S)
_ACL_LINE = re.compile(r"^\s*\*\s*@(?P<key>acl|aclfilter):\s*(?P<value>\S+)\s*$", re.M)


def libvirt_acls(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """REMOTE_PROC_X -> ([acl checks], [acl filters]) as libvirt's spec gives them."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for m in _MEMBER.finditer(text):
        checks: list[str] = []
        filters: list[str] = []
        for line in _ACL_LINE.finditer(m.group("doc")):
            (checks if line.group("key") == "acl" else filters).append(line.group("value"))
        found[m.group("name")] = (checks, filters)
    return found


def rewrite(spec: str, acls: dict[str, tuple[list[str], list[str]]]) -> tuple[str, list[str]]:
    """The spec with every procedure's @acl/@aclfilter lines set; and the procedures libvirt lacks."""
    missing: list[str] = []

    def one(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in acls:
            missing.append(name)
            return m.group(0)
        checks, filters = acls[name]
        doc = _ACL_LINE.sub("", m.group("doc"))
        doc = re.sub(r"\n(?:[ \t]*\n)+", "\n", doc)
        lines = doc.split("\n")
        at = next(i for i, line in enumerate(lines) if "@readonly:" in line)
        indent = lines[at][: lines[at].index("*")]
        extra = [f"{indent}* @acl: {', '.join(checks)}"] if checks else []
        extra += [f"{indent}* @aclfilter: {', '.join(filters)}"] if filters else []
        lines[at + 1 : at + 1] = extra
        head = m.group(0)[: m.start("doc") - m.start(0)]
        tail = m.group(0)[m.end("doc") - m.start(0) :]
        return head + "\n".join(lines) + tail

    return _MEMBER.sub(one, spec), missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("libvirt_spec", type=Path, help="libvirt's src/remote/remote_protocol.x")
    ap.add_argument("--check", action="store_true", help="only report whether spec/remote.x would change")
    args = ap.parse_args(argv)
    acls = libvirt_acls(args.libvirt_spec.read_text(encoding="utf-8"))
    current = SPEC.read_text(encoding="utf-8")
    new, missing = rewrite(current, acls)
    for name in missing:
        print(f"import_acl: {name} is not in {args.libvirt_spec}; left as it is", file=sys.stderr)
    if args.check:
        return int(new != current)
    if new != current:
        SPEC.write_text(new, encoding="utf-8")
        print(f"import_acl: wrote {SPEC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
