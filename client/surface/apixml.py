"""libvirt's API description (libvirt-api.xml): the C signature of every function.

Installed by libvirt-dev as /usr/share/libvirt/api/libvirt-api.xml.  Only the
generator reads it (at development time and in the drift test), never the
client at run time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DEFAULT_PATH: Final = Path("/usr/share/libvirt/api/libvirt-api.xml")


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    type: str
    info: str

    @property
    def optional(self) -> bool:
        # libvirt marks NULL-able arguments "(optional)" / "optional" in their info.
        return self.info.lstrip("(").startswith("optional")


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    ret_type: str
    args: tuple[Arg, ...]

    @property
    def arg_types(self) -> list[str]:
        return [a.type for a in self.args]


def load(path: Path = DEFAULT_PATH) -> dict[str, Function]:
    """Every exported function of the API file, by C name."""
    root = ET.parse(path).getroot()
    exported = {e.get("symbol") for e in root.iterfind("files/file/exports[@type='function']")}
    out: dict[str, Function] = {}
    for fn in root.iterfind("symbols/function"):
        name = fn.get("name", "")
        if name not in exported:
            continue
        ret = fn.find("return")
        args = tuple(Arg(a.get("name", ""), a.get("type", ""), a.get("info", "")) for a in fn.iterfind("arg"))
        out[name] = Function(name, "void" if ret is None else ret.get("type", "void"), args)
    return out
