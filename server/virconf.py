"""libvirt's configuration file syntax (virconf), as libvirtd.conf is written.

A file is statements ``name = value`` separated by newlines or ``;``; ``#``
starts a comment.  A value is a string ("..." or '...' on one line, or a
\"\"\"...\"\"\" block over several), an integer with an optional sign, or a list
``[ value, value, ]`` that may span lines.  The parser follows
src/util/virconf.c step by step, so the same files are accepted and a syntax
error names the same line with the same words (``FILE:LINE: expecting a
value``).  The typed getters give libvirt's type errors (``expected a bool for
'listen_tcp' parameter``) with the entry's line added, which libvirt omits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from virtwire.protocol.errors import libvirtError, make_error
from virtwire.protocol.generated.constants import (
    VIR_ERR_CONF_SYNTAX,
    VIR_ERR_INTERNAL_ERROR,
    VIR_FROM_CONF,
)

# virConfReadFile's sanity limit on the file size.
MAX_CONFIG_FILE_SIZE = 10 * 1024 * 1024

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
UINT_MAX = 2**32 - 1


class ValueKind(Enum):
    """virConfType: a number written with a leading '-' is signed, any other unsigned."""

    LLONG = "long"
    ULLONG = "unsigned long"
    STRING = "string"
    LIST = "list"


@dataclass(slots=True)
class Value:
    kind: ValueKind
    number: int = 0
    text: str = ""
    items: list[Value] = field(default_factory=list)


@dataclass(slots=True)
class Entry:
    name: str
    value: Value
    line: int  # where the name is


def syntax_error(filename: str, line: int, info: str) -> libvirtError:
    return make_error(VIR_ERR_CONF_SYNTAX, VIR_FROM_CONF, f"{filename}:{line}: {info}")


class _Parser:
    """virConfParse: one pass over the text with libvirt's cursor rules.

    Past the end the cursor reads NUL, as the C parser reads the string's terminator.
    """

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.text = text
        self.pos = 0
        self.line = 1
        self.entries: list[Entry] = []

    # -- cursor helpers (CUR, NEXT, SKIP_BLANKS, SKIP_BLANKS_AND_EOL) --
    @property
    def cur(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else "\0"

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def next(self) -> None:
        if self.pos < len(self.text):
            self.pos += 1

    def skip_blanks(self) -> None:
        while not self.at_end and self.cur in " \t":
            self.pos += 1

    def skip_blanks_and_eol(self) -> None:
        while not self.at_end and self.cur in " \t\n\r":
            if self.cur == "\n":
                self.line += 1
            self.pos += 1

    def error(self, info: str) -> libvirtError:
        return syntax_error(self.filename, self.line, info)

    # -- grammar --
    def parse(self) -> list[Entry]:
        while not self.at_end:
            self.statement()
            self.separator()
        return self.entries

    def statement(self) -> None:
        self.skip_blanks_and_eol()
        if self.cur == "#":
            self.to_eol()
            return
        line = self.line
        name = self.name()
        self.skip_blanks()
        if self.cur != "=":
            raise self.error("expecting an assignment")
        self.next()
        self.skip_blanks()
        value = self.value()
        self.skip_blanks()
        if self.cur == "#":
            self.to_eol()
        self.entries.append(Entry(name, value, line))

    def to_eol(self) -> None:
        while not self.at_end and self.cur not in "\n\r":
            self.pos += 1

    def separator(self) -> None:
        self.skip_blanks()
        if self.at_end:
            return
        if self.cur in "\n\r":
            self.skip_blanks_and_eol()
        elif self.cur == ";":
            self.next()
            self.skip_blanks_and_eol()
        else:
            raise self.error("expecting a separator")

    def name(self) -> str:
        self.skip_blanks()
        start = self.pos
        if not (self.cur.isascii() and self.cur.isalpha()):
            raise self.error("expecting a name")
        while not self.at_end and self.cur.isascii() and (self.cur.isalnum() or self.cur == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def value(self) -> Value:
        self.skip_blanks()
        if self.at_end:
            raise self.error("expecting a value")
        c = self.cur
        if c in "\"'":
            return Value(ValueKind.STRING, text=self.string())
        if c == "[":
            return Value(ValueKind.LIST, items=self.list_items())
        if c.isascii() and (c.isdigit() or c in "+-"):
            kind = ValueKind.LLONG if c == "-" else ValueKind.ULLONG
            return Value(kind, number=self.number())
        raise self.error("expecting a value")

    def list_items(self) -> list[Value]:
        self.next()  # '['
        self.skip_blanks_and_eol()
        items: list[Value] = []
        if not self.at_end and self.cur != "]":
            items.append(self.value())
            self.skip_blanks_and_eol()
        while not self.at_end and self.cur != "]":
            if self.cur != ",":
                raise self.error("expecting a separator in list")
            self.next()
            self.skip_blanks_and_eol()
            if self.cur == "]":
                break
            items.append(self.value())
            self.skip_blanks_and_eol()
        if self.cur != "]":
            raise self.error("list is not closed with ]")
        self.next()
        return items

    def number(self) -> int:
        negative = self.cur == "-"
        if self.cur in "+-":
            self.next()
        if self.at_end or not (self.cur.isascii() and self.cur.isdigit()):
            raise self.error("unterminated number")
        start = self.pos
        while not self.at_end and self.cur.isascii() and self.cur.isdigit():
            self.pos += 1
        number = int(self.text[start : self.pos])
        return -number if negative else number

    def string(self) -> str:
        if self.cur == "'" or (self.cur == '"' and not self.triple_quote_ahead()):
            quote = self.cur
            self.next()
            start = self.pos
            while not self.at_end and self.cur != quote and self.cur not in "\n\r":
                self.pos += 1
            if self.cur != quote:
                raise self.error("unterminated string")
            text = self.text[start : self.pos]
            self.next()
            return text
        # """...""" may span lines (each counted).
        self.pos += 3
        start = self.pos
        while self.pos + 2 < len(self.text) and not self.text.startswith('"""', self.pos):
            if self.cur == "\n":
                self.line += 1
            self.pos += 1
        if not self.text.startswith('"""', self.pos):
            raise self.error("unterminated string")
        text = self.text[start : self.pos]
        self.pos += 3
        return text

    def triple_quote_ahead(self) -> bool:
        # libvirt looks for """ only when at least 7 characters remain.
        return self.pos + 6 < len(self.text) and self.text.startswith('"""', self.pos)


class ConfFile:
    """A parsed file: its entries in order; lookups see the first entry of a name, as libvirt's."""

    def __init__(self, filename: str, entries: list[Entry]) -> None:
        self.filename = filename
        self.entries = entries
        self._first: dict[str, Entry] = {}
        for entry in entries:
            self._first.setdefault(entry.name, entry)

    @classmethod
    def parse(cls, text: str, filename: str = "memory conf") -> ConfFile:
        return cls(filename, _Parser(filename, text).parse())

    @classmethod
    def read(cls, path: Path) -> ConfFile:
        """Read and parse a file; OSError when it cannot be read."""
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_FILE_SIZE + 1)
        if len(data) > MAX_CONFIG_FILE_SIZE:
            raise OSError(f"file {path} is larger than {MAX_CONFIG_FILE_SIZE} bytes")
        return cls.parse(data.decode("utf-8", "surrogateescape"), str(path))

    def names(self) -> list[str]:
        return list(self._first)

    def entry(self, name: str) -> Entry | None:
        return self._first.get(name)

    def _error(self, entry: Entry, info: str, code: int = VIR_ERR_INTERNAL_ERROR) -> libvirtError:
        return make_error(code, VIR_FROM_CONF, f"{self.filename}:{entry.line}: {info}")

    # -- typed getters (virConfGetValue*): None when the name is absent --
    def get_string(self, name: str) -> str | None:
        entry = self.entry(name)
        if entry is None:
            return None
        if entry.value.kind is not ValueKind.STRING:
            raise self._error(entry, f"expected a string for '{name}' parameter")
        return entry.value.text

    def get_string_list(self, name: str) -> list[str] | None:
        entry = self.entry(name)
        if entry is None:
            return None
        value = entry.value
        if value.kind is not ValueKind.LIST:
            raise self._error(entry, f"expected a string list for '{name}' parameter")
        if any(item.kind is not ValueKind.STRING for item in value.items):
            raise self._error(
                entry, f"expected a string list for '{name}' parameter", code=VIR_ERR_CONF_SYNTAX
            )
        return [item.text for item in value.items]

    def get_bool(self, name: str) -> bool | None:
        entry = self.entry(name)
        if entry is None:
            return None
        if entry.value.kind is not ValueKind.ULLONG:
            raise self._error(entry, f"expected a bool for '{name}' parameter")
        if entry.value.number > 1:
            raise self._error(entry, f"value for '{name}' parameter must be 0 or 1")
        return entry.value.number == 1

    def get_int(self, name: str) -> int | None:
        entry = self.entry(name)
        if entry is None:
            return None
        if entry.value.kind not in (ValueKind.LLONG, ValueKind.ULLONG):
            raise self._error(entry, f"expected a signed integer for '{name}' parameter")
        if not INT_MIN <= entry.value.number <= INT_MAX:
            raise self._error(entry, f"value for '{name}' parameter must be in range {INT_MIN}:{INT_MAX}")
        return entry.value.number

    def get_uint(self, name: str) -> int | None:
        entry = self.entry(name)
        if entry is None:
            return None
        if entry.value.kind is not ValueKind.ULLONG:
            raise self._error(entry, f"expected an unsigned integer for '{name}' parameter")
        if entry.value.number > UINT_MAX:
            raise self._error(entry, f"value for '{name}' parameter must be in range 0:{UINT_MAX}")
        return entry.value.number
