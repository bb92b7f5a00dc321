"""Tokeniser for the XDR language (RFC 4506) plus rpcgen's extras.

Comments are dropped except doc comments (`/** ... */`), which become DOC
tokens because the procedure annotations live in them.  `%` lines become
PERCENT tokens (rpcgen pass-through) so the syntax tree can keep them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from .ast import Location
from .errors import XdrcError


class Kind(Enum):
    IDENT = "identifier"
    NUMBER = "number"
    PUNCT = "punctuation"
    DOC = "doc comment"
    PERCENT = "pass-through line"
    EOF = "end of file"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # identifier / punctuation text, or the comment body
    value: int  # numeric value for NUMBER tokens, else 0
    loc: Location

    def describe(self) -> str:
        match self.kind:
            case Kind.EOF:
                return "end of file"
            case Kind.DOC:
                return "doc comment"
            case Kind.PERCENT:
                return "'%' line"
            case _:
                return repr(self.text)


_PUNCT = frozenset("{}()[]<>;,=*:-")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|[0-9]+")
_ALNUM_TAIL = re.compile(r"[A-Za-z0-9_]+")


def _number_value(text: str, loc: Location) -> int:
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16)
    if len(text) > 1 and text[0] == "0":
        if any(c in "89" for c in text):
            raise XdrcError(loc, f"found {text!r}, expected an octal number (digits 0-7 after a leading 0)")
        return int(text[1:], 8)
    return int(text)


def tokenize(source: str, file: str) -> Iterator[Token]:
    """Yield the tokens of `source`; the last one is EOF."""
    pos = 0
    line = 1
    line_start = 0
    n = len(source)

    def here() -> Location:
        return Location(file, line, pos - line_start + 1)

    while pos < n:
        c = source[pos]
        if c == "\n":
            pos += 1
            line += 1
            line_start = pos
            continue
        if c in " \t\r\f\v":
            pos += 1
            continue
        if c == "%" and source[line_start:pos].strip() == "":
            loc = here()
            eol = source.find("\n", pos)
            eol = n if eol < 0 else eol
            yield Token(Kind.PERCENT, source[pos + 1 : eol], 0, loc)
            pos = eol
            continue
        if c == "#" and source[line_start:pos].strip() == "":
            raise XdrcError(here(), "found a preprocessor directive, expected XDR (run cpp first)")
        if source.startswith("//", pos):
            eol = source.find("\n", pos)
            pos = n if eol < 0 else eol
            continue
        if source.startswith("/*", pos):
            loc = here()
            close = source.find("*/", pos + 2)
            if close < 0:
                raise XdrcError(loc, "found an unterminated comment, expected '*/' before end of file")
            body = source[pos + 2 : close]
            is_doc = body.startswith("*") and body != "*"
            for ch in source[pos:close]:
                if ch == "\n":
                    line += 1
            last_nl = source.rfind("\n", pos, close)
            if last_nl >= 0:
                line_start = last_nl + 1
            pos = close + 2
            if is_doc:
                yield Token(Kind.DOC, body[1:], 0, loc)
            continue
        if c.isdigit():
            loc = here()
            m = _NUMBER.match(source, pos)
            assert m is not None
            text = m.group()
            tail = _ALNUM_TAIL.match(source, m.end())
            if tail is not None:
                bad = text + tail.group()
                raise XdrcError(loc, f"found {bad!r}, expected a decimal, hex (0x...) or octal number")
            pos = m.end()
            yield Token(Kind.NUMBER, text, _number_value(text, loc), loc)
            continue
        m = _IDENT.match(source, pos)
        if m is not None:
            loc = here()
            pos = m.end()
            yield Token(Kind.IDENT, m.group(), 0, loc)
            continue
        if c in _PUNCT:
            loc = here()
            pos += 1
            yield Token(Kind.PUNCT, c, 0, loc)
            continue
        raise XdrcError(here(), f"found unexpected character {c!r}, expected XDR text")
    yield Token(Kind.EOF, "", 0, here())
