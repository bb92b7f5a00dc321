# ruff: noqa: E501  (the case tables read best one case per line)
"""Bad specifications: every error is an XdrcError `file:line:col: found X, expected Y`.
Also the command line's behaviour on errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from virtwire.protocol.xdrc import XdrcError, compile_source
from virtwire.protocol.xdrc.__main__ import main as xdrc_main


def error_of(source: str) -> XdrcError:
    with pytest.raises(XdrcError) as info:
        compile_source(source, "bad.x")
    return info.value


@pytest.mark.parametrize(
    ("source", "where", "message"),
    [
        # syntax
        ("struct s { int a }", "1:18", "found '}', expected ';'"),
        ("struct s {\n  int a;\n  int b\n};", "4:1", "found '}', expected ';'"),
        ("const A = ;", "1:11", "found ';', expected a number or a constant name"),
        ("struct s { int a; };\nfoo", "2:1", "found 'foo', expected a definition"),
        ("struct s { string x; };", "1:19", "found string x without '<...>', expected string x<N>"),
        ("struct s { opaque x; };", "1:19", "found opaque x without a size"),
        ("struct s { };", "1:12", "expected at least one struct member"),
        ("enum e { A = 1 B = 2 };", "1:16", "found 'B', expected ',' or '}' in an enum body"),
        ("union u switch (int d) { };", "1:26", "expected at least one 'case' arm"),
        ("struct s { int a; }", "1:20", "found end of file, expected ';'"),
        ("/* open", "1:1", "found an unterminated comment, expected '*/'"),
        ("const A = 09;", "1:11", "found '09', expected an octal number"),
        ("const A = 12ab;", "1:11", "found '12ab', expected a decimal, hex (0x...) or octal number"),
        ("struct s { int a; };\n  $", "2:3", "found unexpected character '$'"),
        ("#define X 1", "1:1", "found a preprocessor directive"),
        ("struct s { quadruple q; };", "1:12", "found 'quadruple'"),
        # names
        ("struct s { foo a; };", "1:12", "found unknown type 'foo', expected a type defined in this file"),
        ("struct s { int a[N]; };", "1:18", "found unknown constant 'N'"),
        ("const A = 1;\nconst A = 2;", "2:7", "found a second definition of 'A', expected a new name (first defined at bad.x:1:7)"),
        ("struct s { int a; };\nenum s { X = 1 };", "2:6", "found a second definition of 's'"),
        ("enum a { X = 1 };\nenum b { X = 2 };", "2:10", "found a second definition of 'X'"),
        ("struct s { int a; int a; };", "1:23", "found a second member 'a' in struct s"),
        ("struct s { int a; };\nstruct t { int x[s]; };", "2:18", "found struct 's', expected a constant"),
        ("const A = B;\nconst B = A;", "2:11", "found a cycle through constant 'A'"),
        ("struct class { int a; };", "1:8", "found struct name 'class', expected a name that is not a Python keyword"),
        ("enum e { None = 0 };", "1:10", "found member name 'None', expected a name that is not a Python keyword"),
        ("const xdr = 1;", "1:7", "found const name 'xdr', expected a name that does not start with '_'"),
        ("typedef int _hidden;", "1:13", "found typedef name '_hidden', expected a name that does not start"),
        ("struct n1 { int a; };", "1:8", "found struct name 'n1', expected a name that is not a local variable name"),
        ("union pos switch (int d) { case 0: void; };", "1:7", "found union name 'pos', expected a name that is not a local"),
        # values and types
        ("struct s { int a<-1>; };", "1:18", "found an array bound -1, expected 0 .. 4294967295"),
        ("enum e { A = 0x100000000 };", "1:14", "found enum value 4294967296, expected a 32-bit signed int"),
        ("union u switch (int d) { case 1: int a; case 1: int b; };", "1:46", "found case 1 again in union u"),
        ("enum e { A = 1 };\nunion u switch (e d) { case 2: int a; };", "2:29", "found case 2, expected a value of the"),
        ("union u switch (string d<>) { case 1: void; };", "1:24", "found discriminant type 'string<>'"),
        ("union u switch (int value) { case 1: void; };", "1:21", "found discriminant named 'value'"),
        ("struct s { s inner; };", "1:8", "found 's' containing itself through 's.inner', expected the recursion to go through"),
        ("struct s { int a; };\nstruct t { s x[2]; t y; };", "2:8", "found 't' containing itself"),
    ],
)  # fmt: skip
def test_spec_errors_name_file_line_col(source: str, where: str, message: str) -> None:
    err = error_of(source)
    assert str(err).startswith(f"bad.x:{where}: "), str(err)
    assert message in str(err), str(err)


_HEAD = """
const P = 7;
/**
 * @program: P
 * @version: 1
 * @structprefix: x_
 * @procprefix: X_PROC_
 */
enum x_procedure {
"""


@pytest.mark.parametrize(
    ("entries", "where", "message"),
    [
        ("/**\n * @api: f\n */\nX_PROC_A = 1", "13:1", "found X_PROC_A without @readonly, expected @readonly"),
        ("/**\n * @readonly: allow\n */\nX_PROC_A = 1", "13:1", "found X_PROC_A without @api, expected @api"),
        ("X_PROC_A = 1", "10:1", "found X_PROC_A without @readonly"),
        ("/**\n * @api: f\n * @readonly: allow\n * @priority: low\n */\nX_PROC_A = 1", "13:4",
         "found unknown annotation @priority on procedure X_PROC_A, expected one of @acl, @aclfilter, @api,"
         " @event, @readonly, @void"),
        ("/**\n * @api: f\n * @readonly: allow\n * @acl: domain\n */\nX_PROC_A = 1", "13:4",
         "found @acl rule 'domain', expected none, object:perm, object:perm:FLAG or object:perm::param:VALUE"),
        ("/**\n * @api: f\n * @readonly: allow\n * @acl: domain:read:lower\n */\nX_PROC_A = 1", "13:4",
         "found @acl rule 'domain:read:lower'"),
        ("/**\n * @api: f\n * @readonly: allow\n * @aclfilter: domain\n */\nX_PROC_A = 1", "13:4",
         "found @aclfilter 'domain', expected object:permission"),
        ("/**\n * @api: f\n * @readonly: sometimes\n */\nX_PROC_A = 1", "12:4",
         "found @readonly: 'sometimes', expected allow, deny or deny-flags MASK"),
        ("/**\n * @api: f\n * @readonly: deny-flags zero\n */\nX_PROC_A = 1", "12:4", "found deny-flags mask 'zero'"),
        ("/**\n * @api: f\n * @api: g\n * @readonly: deny\n */\nX_PROC_A = 1", "12:4", "found @api a second time"),
        ("/**\n * @api: f\n * @readonly: deny\n * @void: yes\n */\nX_PROC_A = 1", "13:4",
         "found @void: 'yes', expected @void without a value"),
        ("/**\n * @api: f\n * @readonly: deny\n */\nY_A = 1", "14:1",
         "found procedure Y_A, expected a name starting with X_PROC_"),
        ("/**\n * @api: f(x)\n * @readonly: deny\n */\nX_PROC_A = 1", "11:4", "found @api: 'f(x)', expected a C function name"),
        ("/**\n * @api: f\n * @readonly: deny\n * @ bad\n */\nX_PROC_A = 1", "13:4", "expected an annotation '@key: value'"),
    ],
)  # fmt: skip
def test_annotation_errors(entries: str, where: str, message: str) -> None:
    err = error_of(_HEAD + entries + "\n};")
    assert str(err).startswith(f"bad.x:{where}: "), str(err)
    assert message in str(err), str(err)


def test_void_with_a_payload_type_and_enum_header_errors() -> None:
    err = error_of(
        "struct x_a_args { int a; };"
        + _HEAD
        + "/**\n * @api: f\n * @readonly: deny\n * @void\n */\nX_PROC_A = 1\n};"
    )
    assert "found @void on X_PROC_A which has x_a_args" in str(err)
    err = error_of("/**\n * @version: 1\n * @procprefix: P_\n */\nenum p { P_A = 1 };")
    assert str(err).startswith("bad.x:1:1: found a procedure enum without @program")
    err = error_of(
        "/**\n * @program: 1\n * @version: 1\n * @procprefix: P_\n * @colour: red\n */\nenum p { P_A = 1 };"
    )
    assert str(err).startswith("bad.x:5:4: found unknown annotation @colour on enum p")
    err = error_of("/**\n * @program: NOPE\n * @version: 1\n * @procprefix: P_\n */\nenum p { P_A = 1 };")
    assert str(err).startswith("bad.x:2:4: found unknown constant 'NOPE'")


def test_one_procedure_enum_per_file_and_plain_doc_comments_are_not_annotations() -> None:
    head = "/**\n * @program: 1\n * @version: 1\n * @procprefix: P_\n */\n"
    entry = "/**\n * @api: f\n * @readonly: deny\n */\n"
    err = error_of(head + "enum p {\n" + entry + "P_A = 1 };\n" + head + "enum q {\n" + entry + "P_B = 2 };")
    assert str(err).startswith("bad.x:17:6: found a second procedure enum q, expected one per file")
    text = compile_source("/** Mail me: a@b.c */\nenum plain { A = 1 };", "ok.x")
    assert "PROCEDURES" not in text


def test_procedure_numbers_are_unique() -> None:
    entry = "/**\n * @api: f\n * @readonly: deny\n */\n"
    err = error_of(_HEAD + entry + "X_PROC_A = 1,\n" + entry + "X_PROC_B = 1\n};")
    assert str(err).startswith("bad.x:19:1: found X_PROC_B = 1 again (also X_PROC_A at bad.x:14:1)")


def test_codec_type_must_be_a_struct_or_union() -> None:
    err = error_of(
        "typedef int x_a_args;" + _HEAD + "/**\n * @api: f\n * @readonly: deny\n */\nX_PROC_A = 1\n};"
    )
    assert "found x_a_args as a typedef, expected a struct or union for X_PROC_A" in str(err)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtwire.protocol.xdrc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_cli_reports_errors_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.x"
    bad.write_text("struct s {\n  int a\n};\n")
    result = _cli(str(bad), "-o", str(tmp_path / "out.py"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{bad}:3:1: found '}}', expected ';'"
    assert not (tmp_path / "out.py").exists()


def test_cli_compiles_one_file_and_all_with_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # in-process (the subprocess test above covers `python -m`): same main(), much faster
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec").mkdir()
    (tmp_path / "protocol" / "generated").mkdir(parents=True)
    (tmp_path / "spec" / "demo.x").write_text("struct demo { int a; };\n")
    assert xdrc_main(["spec/demo.x", "-o", "one.py"]) == 0
    assert "class demo(xdr.XdrStruct):" in (tmp_path / "one.py").read_text()
    assert xdrc_main(["spec/demo.x"]) == 0
    assert "class demo(xdr.XdrStruct):" in capsys.readouterr().out

    assert xdrc_main(["--all", "--check"]) == 1  # nothing generated yet
    assert xdrc_main(["--all"]) == 0
    generated = tmp_path / "protocol" / "generated" / "demo.py"
    assert generated.read_text().startswith(
        '"""Generated by virtwire.protocol.xdrc from spec/demo.x; do not edit."""'
    )
    assert xdrc_main(["--all", "--check"]) == 0
    generated.write_text(generated.read_text() + "# edited\n")
    capsys.readouterr()
    assert xdrc_main(["--all", "--check"]) == 1
    assert "protocol/generated/demo.py" in capsys.readouterr().err
    (tmp_path / "spec" / "demo.x").unlink()
    assert xdrc_main(["--all"]) == 1
    assert "no spec/*.x here" in capsys.readouterr().err


def test_compiler_runs_without_the_protocol_package(tmp_path: Path) -> None:
    """Bootstrapping: regenerating must work even if a generated module is broken,
    so the compiler imports nothing outside protocol/xdrc."""
    root = Path(__file__).resolve().parents[2]
    spec = tmp_path / "demo.x"
    spec.write_text("struct demo { int a; };\n")
    result = subprocess.run(
        [sys.executable, "-m", "xdrc", str(spec), "-o", str(tmp_path / "out.py")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root / "protocol"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "class demo(xdr.XdrStruct):" in (tmp_path / "out.py").read_text()
