"""Persistent domain definitions on disk (``--state-dir``).

One file per persistent domain, ``<uuid>.xml``, holding its inactive definition
wrapped in ``<virtwire-domain autostart='0|1'>``.  Writes are atomic: a temp file
in the same directory is written and fsynced, renamed over the old file, and the
directory is fsynced, so a crash at any point leaves either the old or the new
definition, never a torn one.  Leftover temp files are ignored and removed.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SUFFIX = ".xml"
_TMP_PREFIX = ".tmp-"
_SEEDED_MARKER = ".seeded"


@dataclass(frozen=True, slots=True)
class StoredDomain:
    """A definition read back from the state directory."""

    xml: str
    autostart: bool


class DomainStore:
    """The state directory: save, delete and load persistent definitions."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def seeded(self) -> bool:
        """True once the default definitions were written; the directory then rules."""
        return (self.directory / _SEEDED_MARKER).exists()

    def mark_seeded(self) -> None:
        self._write_atomic(self.directory / _SEEDED_MARKER, b"")

    def save(self, uuid: str, xml: str, autostart: bool) -> None:
        wrapper = f"<virtwire-domain autostart='{int(autostart)}'>\n{xml}</virtwire-domain>\n"
        self._write_atomic(self.directory / f"{uuid}{_SUFFIX}", wrapper.encode())

    def delete(self, uuid: str) -> None:
        try:
            (self.directory / f"{uuid}{_SUFFIX}").unlink()
        except FileNotFoundError:
            return
        self._fsync_dir()

    def load(self) -> list[StoredDomain]:
        """Every stored definition; unreadable files are logged and skipped."""
        found: list[StoredDomain] = []
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(_TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write that never reached its rename
                continue
            if path.suffix != _SUFFIX:
                continue
            try:
                wrapper = ET.fromstring(path.read_bytes())
                inner = wrapper.find("domain")
                if wrapper.tag != "virtwire-domain" or inner is None:
                    raise ValueError("not a virtwire domain file")
            except (OSError, ValueError, ET.ParseError) as exc:
                log.warning("skipping unreadable state file %s: %s", path, exc)
                continue
            found.append(
                StoredDomain(ET.tostring(inner, encoding="unicode"), wrapper.get("autostart") == "1")
            )
        return found

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
