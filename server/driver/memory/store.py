"""Persistent objects on disk (``--state-dir``), for every object family.

One ``ObjectStore`` per family and directory: domains in the state directory
itself, the other families in a subdirectory each (``networks/``, ``pools/``,
...).  One file per persistent object, ``<key>.xml``, holding its definition
wrapped in ``<virtwire-KIND attr='...'>`` (the attributes carry what is not in
libvirt's XML, such as autostart).  Blobs (a secret's value, a saved memory
image, a volume's bytes) live beside it as ``<key>.<name>.bin``, so values stay
out of the XML.

Writes are atomic: a temp file in the same directory is written and fsynced,
renamed over the old file, and the directory is fsynced, so a crash at any
point leaves either the old or the new content, never a torn one.  Leftover
temp files are ignored and removed.  A ``.seeded`` marker says the family's
default objects were written once; from then on the directory rules.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_SUFFIX = ".xml"
_BLOB_SUFFIX = ".bin"
_TMP_PREFIX = ".tmp-"
_SEEDED_MARKER = ".seeded"


def quoteattr(value: str) -> str:
    """An attribute value, escaped and quoted as xml.sax.saxutils.quoteattr does.

    Ours, because importing xml.sax.saxutils pulls in urllib.request, http and
    email: megabytes of a server's start that no call needs.
    """
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return '"{}"'.format(value.replace('"', "&quot;"))


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A definition read back from a store."""

    key: str
    xml: str
    attrs: Mapping[str, str] = field(default_factory=dict)

    @property
    def autostart(self) -> bool:
        return self.attrs.get("autostart") == "1"


def _attr_text(value: str | bool | int) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


class ObjectStore:
    """One family's directory: save, delete and load definitions and their blobs."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.directory = directory
        self.kind = kind  # the root element of the wrapped XML: "domain", "network", ...
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def seeded(self) -> bool:
        """True once the default objects were written; the directory then rules."""
        return (self.directory / _SEEDED_MARKER).exists()

    def mark_seeded(self) -> None:
        self._write_atomic(self.directory / _SEEDED_MARKER, b"")

    def save(self, key: str, xml: str, **attrs: str | bool | int) -> None:
        """Store ``xml`` under ``key`` (a UUID string or a name), replacing what was there."""
        attr_text = "".join(f" {name}={quoteattr(_attr_text(value))}" for name, value in attrs.items())
        if not xml.endswith("\n"):
            xml += "\n"
        wrapper = f"<virtwire-{self.kind}{attr_text}>\n{xml}</virtwire-{self.kind}>\n"
        self._write_atomic(self._path(key, _SUFFIX), wrapper.encode())

    def delete(self, key: str) -> None:
        """Forget ``key``'s definition and every blob stored with it."""
        removed = False
        for path in [self._path(key, _SUFFIX), *self.directory.glob(f"{_glob_escape(key)}.*{_BLOB_SUFFIX}")]:
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                continue
        if removed:
            self._fsync_dir()

    def load(self) -> list[StoredObject]:
        """Every stored definition, by key; unreadable files are logged and skipped."""
        found: list[StoredObject] = []
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(_TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write that never reached its rename
                continue
            if path.suffix != _SUFFIX or not path.is_file():
                continue
            try:
                raw = path.read_bytes()
                wrapper = ET.fromstring(raw)
                inner = wrapper.find(self.kind)
                if wrapper.tag != f"virtwire-{self.kind}" or inner is None:
                    raise ValueError(f"not a virtwire {self.kind} file")
                # The definition as written, not re-serialised: ElementTree would
                # rename namespace prefixes (ns0:) in metadata.
                text = raw.decode()
                xml = text[text.index(">") + 1 : text.rindex(f"</virtwire-{self.kind}>")].strip("\n")
            except (OSError, ValueError, ET.ParseError) as exc:
                log.warning("skipping unreadable state file %s: %s", path, exc)
                continue
            found.append(StoredObject(path.stem, xml, dict(wrapper.attrib)))
        return found

    # --- blobs ---------------------------------------------------------------------------

    def save_blob(self, key: str, name: str, data: bytes) -> None:
        self._write_atomic(self._blob_path(key, name), data)

    def load_blob(self, key: str, name: str) -> bytes | None:
        try:
            return self._blob_path(key, name).read_bytes()
        except FileNotFoundError:
            return None

    def delete_blob(self, key: str, name: str) -> None:
        try:
            self._blob_path(key, name).unlink()
        except FileNotFoundError:
            return
        self._fsync_dir()

    # --- files ---------------------------------------------------------------------------

    def _path(self, key: str, suffix: str) -> Path:
        if not key or "/" in key or key.startswith(".") or "\0" in key:
            raise ValueError(f"unusable store key {key!r}")
        return self.directory / f"{key}{suffix}"

    def _blob_path(self, key: str, name: str) -> Path:
        if not name.isidentifier():
            raise ValueError(f"unusable blob name {name!r}")
        return self._path(key, f".{name}{_BLOB_SUFFIX}")

    def _write_atomic(self, target: Path, data: bytes) -> None:
        tmp = target.with_name(f"{_TMP_PREFIX}{target.name}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


class DomainStore(ObjectStore):
    """Domains: the state directory's own ``<uuid>.xml`` files, with their autostart flag."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "domain")
