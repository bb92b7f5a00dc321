"""Recursive-descent parser: tokens -> `ast.Specification`.

Grammar: RFC 4506 section 6.3 plus what rpcgen and libvirt's .x files use:
rpcgen's small integer types, `unsigned` alone, `struct NAME` as a type
reference, `%` pass-through lines, doc comments on enums and their members,
and `program`/`version` blocks.
"""

from __future__ import annotations

from . import ast
from .errors import XdrcError
from .lexer import Kind, Token, tokenize

# rpcgen spellings -> canonical builtin names; every one is a single XDR word
# except hyper (8 bytes) and double (8 bytes).
_SIGNED_WORDS = {"int": "int", "long": "int", "char": "int", "short": "int"}
_UNSIGNED_WORDS = {"int": "uint", "long": "uint", "char": "uint", "short": "uint", "hyper": "uhyper"}
_SIMPLE = {
    "hyper": "hyper",
    "float": "float",
    "double": "double",
    "bool": "bool",
    "bool_t": "bool",
    "u_int": "uint",
    "u_long": "uint",
    "u_char": "uint",
    "u_short": "uint",
    "u_hyper": "uhyper",
    "u_quad_t": "uhyper",
    "quad_t": "hyper",
}
_SIMPLE.update(_SIGNED_WORDS)

RESERVED = frozenset(
    {
        "bool", "case", "const", "default", "double", "quadruple", "enum", "float", "hyper",
        "int", "opaque", "string", "struct", "switch", "typedef", "union", "unsigned", "void",
        "program", "version", "char", "short", "long",
    }
)  # fmt: skip


class Parser:
    def __init__(self, source: str, file: str) -> None:
        self.file = file
        self.tokens: list[Token] = []
        # docs[i]: the doc comment directly before tokens[i] (None if there is none)
        self.docs: list[Token | None] = []
        pending: Token | None = None
        for tok in tokenize(source, file):
            if tok.kind is Kind.DOC:
                pending = tok
                continue
            self.tokens.append(tok)
            self.docs.append(pending)
            pending = None
        self.i = 0

    # --- token helpers -------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Kind.EOF:
            self.i += 1
        return tok

    def error(self, expected: str, tok: Token | None = None) -> XdrcError:
        tok = tok or self.tok
        return XdrcError(tok.loc, f"found {tok.describe()}, expected {expected}")

    def is_punct(self, text: str) -> bool:
        return self.tok.kind is Kind.PUNCT and self.tok.text == text

    def is_word(self, text: str) -> bool:
        return self.tok.kind is Kind.IDENT and self.tok.text == text

    def expect_punct(self, text: str) -> Token:
        if not self.is_punct(text):
            raise self.error(repr(text))
        return self.advance()

    def expect_word(self, text: str) -> Token:
        if not self.is_word(text):
            raise self.error(repr(text))
        return self.advance()

    def identifier(self, what: str = "an identifier") -> Token:
        tok = self.tok
        if tok.kind is not Kind.IDENT or tok.text in RESERVED:
            raise self.error(what)
        return self.advance()

    # --- values ---------------------------------------------------------------------

    def value(self) -> ast.Value:
        tok = self.tok
        if self.is_punct("-"):
            self.advance()
            num = self.tok
            if num.kind is not Kind.NUMBER:
                raise self.error("a number after '-'")
            self.advance()
            return ast.Number(-num.value, tok.loc, _is_hex(num))
        if tok.kind is Kind.NUMBER:
            self.advance()
            return ast.Number(tok.value, tok.loc, _is_hex(tok))
        if tok.kind is Kind.IDENT and tok.text not in RESERVED:
            self.advance()
            return ast.ConstRef(tok.text, tok.loc)
        raise self.error("a number or a constant name")

    # --- specification -------------------------------------------------------------

    def specification(self) -> ast.Specification:
        defs: list[ast.Definition] = []
        while self.tok.kind is not Kind.EOF:
            defs.append(self.definition())
        return ast.Specification(self.file, tuple(defs))

    def definition(self) -> ast.Definition:
        tok = self.tok
        doc = self.docs[self.i]
        if tok.kind is Kind.PERCENT:
            self.advance()
            return ast.PassThrough(tok.text, tok.loc)
        if tok.kind is not Kind.IDENT:
            raise self.error("a definition (const, typedef, enum, struct, union or program)")
        match tok.text:
            case "const":
                self.advance()
                name = self.identifier("a constant name")
                self.expect_punct("=")
                val = self.value()
                self.expect_punct(";")
                return ast.ConstDef(name.text, val, name.loc)
            case "typedef":
                self.advance()
                decl = self.declaration()
                if isinstance(decl, ast.VoidDeclaration):
                    raise XdrcError(decl.loc, "found 'void', expected a declaration to name in a typedef")
                self.expect_punct(";")
                return ast.TypedefDef(decl, tok.loc)
            case "enum":
                self.advance()
                name = self.identifier("an enum name")
                body = self.enum_body()
                self.expect_punct(";")
                return ast.EnumDef(
                    name.text, body, doc.text if doc else None, doc.loc if doc else None, name.loc
                )
            case "struct":
                self.advance()
                name = self.identifier("a struct name")
                sbody = self.struct_body()
                self.expect_punct(";")
                return ast.StructDef(name.text, sbody, name.loc)
            case "union":
                self.advance()
                name = self.identifier("a union name")
                ubody = self.union_body()
                self.expect_punct(";")
                return ast.UnionDef(name.text, ubody, name.loc)
            case "program":
                return self.program()
        raise self.error("a definition (const, typedef, enum, struct, union or program)")

    # --- bodies ----------------------------------------------------------------------

    def enum_body(self) -> ast.EnumBody:
        self.expect_punct("{")
        members: list[ast.EnumMember] = []
        previous: ast.Value | None = None
        while True:
            doc = self.docs[self.i]
            name = self.identifier("an enum member name")
            if self.is_punct("="):
                self.advance()
                val = self.value()
            elif previous is None:
                val = ast.Number(0, name.loc)  # rpcgen: implicit values count from 0
            elif isinstance(previous, ast.Number):
                val = ast.Number(previous.value + 1, name.loc)
            else:
                raise self.error(f"'=' and a value for {name.text} (the previous member's value is a name)")
            previous = val
            members.append(
                ast.EnumMember(name.text, val, doc.text if doc else None, doc.loc if doc else None, name.loc)
            )
            if self.is_punct(","):
                self.advance()
                if self.is_punct("}"):
                    break
                continue
            if self.is_punct("}"):
                break
            raise self.error("',' or '}' in an enum body")
        self.expect_punct("}")
        return ast.EnumBody(tuple(members))

    def struct_body(self) -> ast.StructBody:
        self.expect_punct("{")
        fields: list[ast.Declaration] = []
        while not self.is_punct("}"):
            decl = self.declaration()
            if isinstance(decl, ast.VoidDeclaration):
                raise XdrcError(decl.loc, "found 'void', expected a struct member declaration")
            self.expect_punct(";")
            fields.append(decl)
        if not fields:
            raise self.error("at least one struct member")
        self.expect_punct("}")
        return ast.StructBody(tuple(fields))

    def union_body(self) -> ast.UnionBody:
        self.expect_word("switch")
        self.expect_punct("(")
        disc = self.declaration()
        if isinstance(disc, ast.VoidDeclaration):
            raise XdrcError(disc.loc, "found 'void', expected a discriminant declaration")
        self.expect_punct(")")
        self.expect_punct("{")
        arms: list[ast.UnionArm] = []
        default: ast.UnionArm | None = None
        while not self.is_punct("}"):
            start = self.tok
            if self.is_word("default"):
                if default is not None:
                    raise self.error("one 'default' arm only")
                self.advance()
                self.expect_punct(":")
                decl = self.declaration()
                self.expect_punct(";")
                default = ast.UnionArm((), decl, start.loc)
                continue
            if not self.is_word("case"):
                raise self.error("'case', 'default' or '}' in a union body")
            cases: list[ast.Value] = []
            while self.is_word("case"):
                self.advance()
                cases.append(self.value())
                self.expect_punct(":")
            decl = self.declaration()
            self.expect_punct(";")
            arms.append(ast.UnionArm(tuple(cases), decl, start.loc))
        if not arms:
            raise self.error("at least one 'case' arm")
        self.expect_punct("}")
        return ast.UnionBody(disc, tuple(arms), default)

    # --- declarations ----------------------------------------------------------------

    def type_specifier(self) -> ast.TypeSpec:
        tok = self.tok
        if tok.kind is not Kind.IDENT:
            raise self.error("a type")
        word = tok.text
        if word == "unsigned":
            self.advance()
            nxt = self.tok
            if nxt.kind is Kind.IDENT and nxt.text in _UNSIGNED_WORDS:
                self.advance()
                return ast.BuiltinType(_UNSIGNED_WORDS[nxt.text], f"unsigned {nxt.text}", tok.loc)
            return ast.BuiltinType("uint", "unsigned", tok.loc)
        if word in _SIMPLE:
            self.advance()
            return ast.BuiltinType(_SIMPLE[word], word, tok.loc)
        if word == "quadruple":
            raise XdrcError(tok.loc, "found 'quadruple', expected a type Python can represent")
        if word in ("enum", "struct", "union"):
            self.advance()
            if self.tok.kind is Kind.IDENT and self.tok.text not in RESERVED:
                # `struct NAME x;` is a reference to a named type (C style)
                ref = self.advance()
                return ast.NamedType(ref.text, ref.loc)
            if word == "enum":
                return ast.InlineEnum(self.enum_body(), tok.loc)
            if word == "struct":
                return ast.InlineStruct(self.struct_body(), tok.loc)
            return ast.InlineUnion(self.union_body(), tok.loc)
        if word == "string":
            self.advance()
            return ast.StringType(tok.loc)
        if word == "opaque":
            self.advance()
            return ast.OpaqueType(tok.loc)
        if word in RESERVED:
            raise self.error("a type")
        self.advance()
        return ast.NamedType(word, tok.loc)

    def declaration(self) -> ast.Declaration | ast.VoidDeclaration:
        if self.is_word("void"):
            return ast.VoidDeclaration(self.advance().loc)
        tspec = self.type_specifier()
        if self.is_punct("*"):
            self.advance()
            name = self.identifier("a member name after '*'")
            shape: ast.Shape = ast.OptionalData()
        else:
            name = self.identifier("a member name")
            if self.is_punct("["):
                self.advance()
                shape = ast.FixedArray(self.value())
                self.expect_punct("]")
            elif self.is_punct("<"):
                self.advance()
                bound = None if self.is_punct(">") else self.value()
                self.expect_punct(">")
                shape = ast.VarArray(bound)
            else:
                shape = ast.Scalar()
        if isinstance(tspec, ast.StringType) and not isinstance(shape, ast.VarArray):
            raise XdrcError(
                name.loc, f"found string {name.text} without '<...>', expected string {name.text}<N>"
            )
        if isinstance(tspec, ast.OpaqueType) and not isinstance(shape, ast.FixedArray | ast.VarArray):
            raise XdrcError(name.loc, f"found opaque {name.text} without a size, expected '[N]' or '<N>'")
        return ast.Declaration(name.text, tspec, shape, name.loc)

    # --- program / version -----------------------------------------------------------

    def program(self) -> ast.ProgramDef:
        self.expect_word("program")
        name = self.identifier("a program name")
        self.expect_punct("{")
        versions: list[ast.VersionDef] = []
        while self.is_word("version"):
            versions.append(self.version())
        if not versions:
            raise self.error("'version'")
        self.expect_punct("}")
        self.expect_punct("=")
        num = self.value()
        self.expect_punct(";")
        return ast.ProgramDef(name.text, tuple(versions), num, name.loc)

    def version(self) -> ast.VersionDef:
        self.expect_word("version")
        name = self.identifier("a version name")
        self.expect_punct("{")
        procs: list[ast.ProcedureDef] = []
        while not self.is_punct("}"):
            procs.append(self.procedure())
        if not procs:
            raise self.error("a procedure")
        self.expect_punct("}")
        self.expect_punct("=")
        num = self.value()
        self.expect_punct(";")
        return ast.VersionDef(name.text, tuple(procs), num, name.loc)

    def procedure(self) -> ast.ProcedureDef:
        result: ast.TypeSpec | None
        if self.is_word("void"):
            self.advance()
            result = None
        else:
            result = self.type_specifier()
        name = self.identifier("a procedure name")
        self.expect_punct("(")
        args: list[ast.TypeSpec] = []
        if self.is_word("void"):
            self.advance()
        else:
            args.append(self.type_specifier())
            while self.is_punct(","):
                self.advance()
                args.append(self.type_specifier())
        self.expect_punct(")")
        self.expect_punct("=")
        num = self.value()
        self.expect_punct(";")
        return ast.ProcedureDef(name.text, result, tuple(args), num, name.loc)


def _is_hex(tok: Token) -> bool:
    return tok.text[:2] in ("0x", "0X")


def parse(source: str, file: str) -> ast.Specification:
    """Parse one .x file; raises XdrcError on the first syntax error."""
    return Parser(source, file).specification()
