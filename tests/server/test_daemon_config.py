"""`virtwire serve --config FILE`: libvirtd.conf syntax, keys and semantics.

The syntax and type errors are checked against the real libvirtd 9.0, which
reports them when it loads a broken file (and exits before doing anything
else); ours name the same line and say the same words, with the line added
where libvirt names only the file.  The sample libvirtd.conf is the one Debian
12 ships with libvirt 9.0 (package libvirt-daemon-system, /etc/libvirt).
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from virtwire.protocol.errors import libvirtError
from virtwire.server import daemonconf
from virtwire.server.cli import build_parser, config_from_args
from virtwire.server.config import Endpoint
from virtwire.server.tls import ServerTlsFiles
from virtwire.server.virconf import ConfFile, ValueKind
from vwtestkit import client_pkipath, free_ports, port_accepts
from vwtestkit.activation import NotifyReceiver, spawn_serve, stop
from vwtestkit.env import LIBVIRTD, unavailable

SAMPLE = Path(__file__).parent / "data" / "libvirtd.conf"
RunVirsh = Callable[..., subprocess.CompletedProcess[str]]

# name -> file text; each is refused by libvirtd 9.0 (and by us) while loading the file.
BROKEN = {
    "only_newlines": "\n\n",
    "missing_value": "listen_tcp = 1\n\nmax_clients = \n",
    "no_assign": "# c\nlisten_tcp 1\n",
    "bad_name": "listen_tcp = 1\n9abc = 2\n",
    "unterminated_dq": 'listen_addr = "abc\n',
    "unterminated_sq": "listen_addr = 'abc\n",
    "unterminated_triple": 'log_outputs = """abc\n\n\ndef\n',
    "list_no_sep": 'tls_allowed_dn_list = [ "a"\n "b" ]\n',
    "list_unclosed": 'tls_allowed_dn_list = [ "a",\n "b",\n',
    "list_comment": 'tls_allowed_dn_list = [ "a", # x\n "b" ]\n',
    "two_on_line": "listen_tcp = 1 listen_tls = 0\n",
    "sign_only": "keepalive_interval = -\n",
    "bare_word": "listen_tcp = yes\n",
    "bool_string": 'listen_tcp = "1"\n',
    "bool_two": "\nlisten_tls = 2\n",
    "bool_negative": "listen_tls = -1\n",
    "string_number": "listen_addr = 5\n",
    "uint_negative": "max_clients = -5\n",
    "uint_too_big": "max_clients = 4294967296\n",
    "int_too_big": "keepalive_interval = 2147483648\n",
    "int_string": 'keepalive_interval = "5"\n',
    "list_of_ints": "tls_allowed_dn_list = [ 1, 2 ]\n",
    "list_as_string": 'tls_allowed_dn_list = "CN=a"\n',
    "auth_unknown": 'auth_tcp = "krb5"\n',
    "ssf_too_low": "tcp_min_ssf = 56\n",
    "max_workers_zero": "max_workers = 0\n",
    "first_entry_wins": 'listen_tcp = "x"\nlisten_tcp = 1\n',
    "semicolons": "listen_tcp = 1; listen_tls = 'no'\n",
    "crlf": 'listen_tcp = 1\r\nlisten_tls = "a"\r\n',
    "triple_quoted_lines": 'log_outputs = """a\nb\nc"""\nmax_clients = "x"\n',
}
# Where our message puts the line libvirt leaves out (value errors).
VALUE_ERROR_LINES = {
    "bool_two": 2,
    "first_entry_wins": 1,
    "crlf": 2,
    "triple_quoted_lines": 4,
    "ssf_too_low": 1,
}


def _libvirtd_error(conf: Path, tmp_path: Path) -> str:
    """The message the real libvirtd logs for a config file it cannot load."""
    if not LIBVIRTD.exists():
        unavailable("libvirtd is not installed (scripts/test.sh installs libvirt-daemon)")
    proc = subprocess.run(
        [str(LIBVIRTD), "--config", str(conf), "--pid-file", str(tmp_path / "libvirtd.pid")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stderr
    found = re.search(r"Can't load config file: (.*): " + re.escape(str(conf)) + "$", proc.stderr, re.M)
    assert found, proc.stderr
    return found.group(1)


def _our_error(conf: Path) -> libvirtError:
    with pytest.raises(libvirtError) as info:
        daemonconf.load(conf)
    return info.value


def test_broken_files_refused_as_libvirtd_refuses_them(tmp_path: Path) -> None:
    mismatches = []
    for name, text in BROKEN.items():
        conf = tmp_path / f"{name}.conf"
        conf.write_text(text)
        ours = str(_our_error(conf))  # refused by us first: libvirtd never gets a file it would run with
        theirs = _libvirtd_error(conf, tmp_path)
        line = re.search(re.escape(str(conf)) + r":(\d+):", ours)
        assert line, ours
        if name in VALUE_ERROR_LINES:
            assert int(line.group(1)) == VALUE_ERROR_LINES[name], (name, ours)
        if f"{conf}:{line.group(1)}" not in theirs:
            # libvirt names only the file (or nothing): drop the line we add.
            ours = ours.replace(f"{conf}:{line.group(1)}", str(conf))
            if str(conf) not in theirs:
                ours = ours.replace(f"{conf}: ", "")
        if ours != theirs:
            mismatches.append(f"{name}:\n  ours:     {ours}\n  libvirtd: {theirs}")
    assert not mismatches, "\n".join(mismatches)


def test_shipped_sample_file_sets_nothing() -> None:
    conf = ConfFile.read(SAMPLE)
    assert conf.entries == []  # every setting in it is commented out
    settings = daemonconf.load(SAMPLE)
    assert settings == daemonconf.DaemonSettings()


def _uncommented_sample() -> str:
    """The sample with every `#key = value` line made a setting."""
    return re.sub(r"(?m)^#([a-z_]+ *=)", r"\1", SAMPLE.read_text())


def test_every_key_of_the_sample_is_known_and_read(tmp_path: Path) -> None:
    text = _uncommented_sample()
    conf = ConfFile.parse(text, "sample")
    names = conf.names()
    assert len(names) >= 50 and {"listen_tcp", "tls_allowed_dn_list", "ovs_timeout"} <= set(names)
    assert set(names) <= daemonconf.KNOWN_KEYS, set(names) - daemonconf.KNOWN_KEYS
    # As shipped, it asks for what virtwire cannot do: polkit first (libvirtd's key order).
    path = tmp_path / "libvirtd.conf"
    path.write_text(text)
    assert "auth_unix_ro" not in str(_our_error(path))  # auth_unix_rw is read first, as libvirtd does
    assert str(_our_error(path)) == (
        f"unsupported configuration: {path}:183: auth_unix_rw: auth polkit is not available"
        " in virtwire (it serves: none, sasl)"
    )
    # What it can do: same file, auth none, no access driver, a group this machine has.
    root_group = grp.getgrgid(0).gr_name
    text = re.sub(r'(?m)^(auth_\w+) = "\w+"', r'\1 = "none"', text)
    text = text.replace('access_drivers = [ "polkit" ]', "access_drivers = [ ]")
    text = text.replace('unix_sock_group = "libvirt"', f'unix_sock_group = "{root_group}"')
    path.write_text(text)
    settings = daemonconf.load(path)
    assert settings.warnings == []
    assert any("'min_workers' ignored" in note for note in settings.notes)
    assert any("'keepalive_required' ignored: libvirt 9.0 no longer reads it" in n for n in settings.notes)
    assert (settings.listen_tcp, settings.listen_tls) == (True, False)
    assert (settings.tcp_port, settings.tls_port, settings.listen_addr) == (16509, 16514, "192.168.0.1")
    assert settings.tcp_endpoints() == [Endpoint("192.168.0.1", 16509)]
    assert settings.tls_endpoints() == []
    assert (settings.unix_ro_mode, settings.unix_rw_mode, settings.unix_admin_mode) == (0o777, 0o770, 0o700)
    assert settings.unix_group == 0
    assert settings.unix_sock_dir == Path("/run/libvirt")
    assert settings.tls_allowed_dn == ["DN1", "DN2"]
    assert settings.tls_verify_client is False and settings.tls_sanity_check is False
    assert settings.tls_priority == "NORMAL"
    assert settings.sasl_allowed_username_list == ["joe@EXAMPLE.COM", "fred@EXAMPLE.COM"]
    assert settings.tls_files is None  # listen_tls = 0: libvirtd does not look at them either
    assert (settings.max_clients, settings.max_anonymous_clients, settings.max_client_requests) == (
        5000,
        20,
        5,
    )
    assert (settings.keepalive_interval, settings.keepalive_count) == (5, 5)
    assert settings.log_level == 3
    assert settings.log_filters == "1:qemu 1:libvirt 4:object 4:json 4:event 1:util"
    assert settings.log_outputs == "3:syslog:libvirtd"


def test_syntax_forms() -> None:
    conf = ConfFile.parse(
        "a = 'single' # trailing\n"
        'b = "double"; c = -7\n'
        "d = +8\n"
        'e = """multi\nline"""\n'
        "f = [\n  'x',\n  \"y\",\n\n] # a comment after the list\n"
        "\n\t  g = []\n"
        "h = [ 1, 'two', [ 3 ] ]\n",
        "t.conf",
    )
    values = {e.name: e.value for e in conf.entries}
    assert values["a"].text == "single" and values["b"].text == "double"
    assert (values["c"].kind, values["c"].number) == (ValueKind.LLONG, -7)
    assert (values["d"].kind, values["d"].number) == (ValueKind.ULLONG, 8)
    assert values["e"].text == "multi\nline"
    assert [i.text for i in values["f"].items] == ["x", "y"]
    assert values["g"].items == []
    assert [i.kind for i in values["h"].items] == [ValueKind.ULLONG, ValueKind.STRING, ValueKind.LIST]
    assert [e.line for e in conf.entries] == [1, 2, 2, 3, 4, 6, 12, 13]


def test_comment_inside_list_is_a_syntax_error() -> None:
    with pytest.raises(libvirtError, match=r"t.conf:2: expecting a value"):
        ConfFile.parse("f = [\n  'x', # no\n]\n", "t.conf")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tcp_port = "http-alt-nope"', "2: tcp_port: invalid port 'http-alt-nope'"),
        ('tls_port = "70000"', "2: tls_port: invalid port '70000'"),
        ('unix_sock_rw_perms = "0x1ff"', "2: Failed to parse mode '0x1ff'"),
        ('unix_sock_ro_perms = "0888"', "2: Failed to parse mode '0888'"),
        ('unix_sock_admin_perms = "10000"', "2: Failed to parse mode '10000'"),
        ('unix_sock_group = "no-such-group-here"', "2: Failed to parse group 'no-such-group-here'"),
        ('auth_tls = "polkit"', "2: auth_tls: auth polkit is not available in virtwire"),
        ('access_drivers = [ "polkit" ]', "2: access_drivers: polkit is not available in virtwire"),
        ("max_clients = 0", "2: 'max_clients' must be greater than 0"),
        ("log_level = 5", "2: Failed to set logging priority, argument '5' is invalid"),
        ('listen_tls = 1\ncert_file = "/c.pem"', "3: No CA certificate path set to match server key/cert"),
        ('listen_tls = 1\nca_file = "/a"\nkey_file = "/k"', "4: No server certificate path set"),
    ],
)
def test_values_virtwire_cannot_use_are_refused_with_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "libvirtd.conf"
    path.write_text(f"# a comment\n{text}\n")
    assert f"{path}:{message}" in str(_our_error(path))


def test_values_that_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "libvirtd.conf"
    path.write_text(
        'tcp_port = "ssh"\nunix_sock_rw_perms = "770"\nunix_sock_group = "+4321"\n'
        'listen_tls = 1\nca_file = "/a"\ncert_file = "/c"\nkey_file = "/k"\ncrl_file = "/r"\n'
        'keepalive_interval = -1\nfrobnicate = "x"\n'
    )
    s = daemonconf.load(path)
    assert (s.tcp_port, s.unix_rw_mode, s.unix_group) == (22, 0o770, 4321)
    assert s.tls_files == ServerTlsFiles(Path("/a"), Path("/c"), Path("/k"), Path("/r"))
    assert s.keepalive_interval == -1
    assert s.warnings == [f"{path}:10: unknown setting 'frobnicate' ignored"]


def test_auth_settings_and_their_flags(tmp_path: Path) -> None:
    path = tmp_path / "libvirtd.conf"
    path.write_text('auth_tls = "sasl"\nauth_unix_rw = "sasl"\nsasl_allowed_username_list = [ "joe*" ]\n')
    settings = daemonconf.load(path)
    config = config_from_args(build_parser().parse_args(["serve", "--config", str(path)]), settings)
    assert (config.auth_tls, config.auth_unix_rw, config.auth_tcp) == ("sasl", "sasl", "none")
    assert config.sasl_allowed_username_list == ["joe*"]
    args = build_parser().parse_args(
        ["serve", "--auth-tls", "none", "--auth-tcp", "sasl", "--sasl-allowed-username", "ann"]
    )
    config = config_from_args(args, settings)
    assert (config.auth_tls, config.auth_unix_rw, config.auth_tcp) == ("none", "sasl", "sasl")
    assert config.sasl_allowed_username_list == ["ann"]


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "libvirtd.conf"
    path.write_text(
        'listen_tcp = 1\nlisten_addr = "127.0.0.1"\ntcp_port = "1234"\nmax_clients = 7\n'
        f'max_client_requests = 9\nkeepalive_count = 2\nunix_sock_dir = "{tmp_path}"\n'
        'tls_allowed_dn_list = [ "CN=a" ]\n'
    )
    settings = daemonconf.load(path)
    args = build_parser().parse_args(["serve", "--config", str(path), "--max-clients", "3"])
    config = config_from_args(args, settings)
    assert config.tcp == [Endpoint("127.0.0.1", 1234)]
    assert config.unix == [tmp_path / "libvirt-sock"] and config.unix_ro == [tmp_path / "libvirt-sock-ro"]
    assert (config.max_clients, config.max_client_requests, config.keepalive_count) == (3, 9, 2)
    assert config.tls_allowed_dn == ["CN=a"]
    args = build_parser().parse_args(
        ["serve", "--tcp", "127.0.0.1:99", "--unix", "/x/s", "--tls-allowed-dn", "CN=b"]
    )
    config = config_from_args(args, settings)
    assert config.tcp == [Endpoint("127.0.0.1", 99)]
    assert (config.unix, config.unix_ro) == ([Path("/x/s")], [])
    assert config.tls_allowed_dn == ["CN=b"]
    assert (config.auth_tls, config.auth_unix_rw) == ("none", "none")
    # Without key_file & co. nor --pki-dir, TLS uses libvirtd's default files.
    assert config.tls_credentials() == ServerTlsFiles.locate(None)


@pytest.fixture
def rundir() -> Iterator[Path]:
    # Short: unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="vw-cfg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_with_config_file_and_virsh(run_virsh: RunVirsh, pki: Path, rundir: Path) -> None:
    tcp_port, tls_port = free_ports(2)
    sockdir = rundir / "sockets"
    conf = rundir / "libvirtd.conf"
    conf.write_text(
        "# virtwire serve --config, as libvirtd reads it\n"
        "listen_tcp = 1\nlisten_tls = 1\n"
        f'listen_addr = "127.0.0.1"\ntcp_port = "{tcp_port}"\ntls_port = "{tls_port}"\n'
        f'unix_sock_dir = "{sockdir}"\nunix_sock_rw_perms = "0770"\nunix_sock_ro_perms = "0666"\n'
        f'unix_sock_group = "+{os.getgid()}"\n'
        f'ca_file = "{pki}/cacert.pem"\ncert_file = "{pki}/servercert.pem"\n'
        f'key_file = "{pki}/serverkey.pem"\n'
        'tls_allowed_dn_list = [\n  "O=virtwire-test,CN=*",\n]\n'
        "max_clients = 20 # plenty\nkeepalive_interval = 3\nmin_workers = 2\nfrobnicate = 1\n"
    )
    log = rundir / "serve.log"
    with NotifyReceiver() as notify:
        server = spawn_serve(["--config", str(conf)], log_path=log, env={"NOTIFY_SOCKET": str(notify.path)})
        try:
            notify.wait_for("READY=1")
            assert port_accepts(tcp_port) and port_accepts(tls_port)
            out = run_virsh(f"test+tcp://127.0.0.1:{tcp_port}/default", "list", "--all", check=True).stdout
            assert "test" in out
            tls_uri = f"test+tls://127.0.0.1:{tls_port}/default?pkipath={client_pkipath(pki)}"
            assert run_virsh(tls_uri, "hostname", check=True).stdout.strip()
            rw, ro = sockdir / "libvirt-sock", sockdir / "libvirt-sock-ro"
            assert stat.S_IMODE(rw.stat().st_mode) == 0o770 and stat.S_IMODE(ro.stat().st_mode) == 0o666
            run_virsh(f"test+unix:///default?socket={rw}", "suspend", "test", check=True)
            ro_out = run_virsh(f"test+unix:///default?socket={ro}", "domstate", "test", ro=True, check=True)
            assert ro_out.stdout.strip() == "paused"
            # The other DN the test PKI has is refused, as the file's list says.
            intruder = f"test+tls://127.0.0.1:{tls_port}/default?pkipath={client_pkipath(pki, 'other')}"
            assert run_virsh(intruder, "hostname", timeout=60).returncode != 0
        finally:
            status = stop(server)
        assert status == 0, log.read_text()
        assert notify.wait_for("STOPPING=1")[-1] == "STOPPING=1"
    text = log.read_text()
    assert f"{conf}:20: unknown setting 'frobnicate' ignored" in text
    assert f"{conf}:19: 'min_workers' ignored: no effect in virtwire" in text
    assert not (sockdir / "libvirt-sock").exists()


def test_serve_refuses_a_broken_file(rundir: Path) -> None:
    conf = rundir / "broken.conf"
    conf.write_text("listen_tcp = 1\nmax_clients = 'many'\n")
    log = rundir / "broken.log"
    process = spawn_serve(["--config", str(conf)], log_path=log)
    assert process.wait(timeout=60) == 2
    assert (
        f"virtwire serve: internal error: {conf}:2: expected an unsigned integer for 'max_clients' parameter"
        in log.read_text()
    )
    missing = spawn_serve(["--config", str(rundir / "nope.conf")], log_path=log)
    assert missing.wait(timeout=60) == 2
    assert f"cannot read config file {rundir / 'nope.conf'}: No such file or directory" in log.read_text()


@given(
    st.text(alphabet=st.sampled_from(list("ab_=1-+\"'[],;# \t\n\r\\\udcff\0")), max_size=60)
    | st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape"))
)
def test_any_text_parses_or_is_refused_with_a_line(text: str) -> None:
    """Whatever the file holds: entries, or libvirt's syntax error naming a line of it."""
    try:
        conf = ConfFile.parse(text, "f")
    except libvirtError as exc:
        found = re.match(r"configuration file syntax error: f:(\d+): ", str(exc))
        assert found, str(exc)
        assert 1 <= int(found.group(1)) <= text.count("\n") + 1
        return
    for entry in conf.entries:
        assert entry.name.isascii() and entry.name[0].isalpha()


_VALUES = st.sampled_from(
    [
        "0",
        "1",
        "-1",
        "70000",
        "4294967296",
        '"none"',
        '"sasl"',
        '"0777"',
        '"x"',
        '"16509"',
        '""',
        "[]",
        '[ "a" ]',
    ]
)


@given(st.lists(st.tuples(st.sampled_from(sorted(daemonconf.KNOWN_KEYS)), _VALUES), max_size=8))
def test_any_known_key_with_any_value_is_read_or_refused_with_its_line(pairs: list[tuple[str, str]]) -> None:
    text = "".join(f"{key} = {value}\n" for key, value in pairs)
    conf = ConfFile.parse(text, "f")
    try:
        daemonconf.settings_from(conf)
    except libvirtError as exc:
        assert re.search(r"\bf:\d+: ", str(exc)), str(exc)


def test_virsh_over_tls_with_tls_no_verify_certificate(run_virsh: RunVirsh, pki: Path, rundir: Path) -> None:
    """libvirtd ignores a bad client certificate (and DN) at the user's request; so do we."""
    (tls_port,) = free_ports(1)
    conf = rundir / "libvirtd.conf"
    conf.write_text(
        f'listen_tls = 1\nlisten_addr = "127.0.0.1"\ntls_port = "{tls_port}"\nunix_sock_dir = "{rundir}"\n'
        f'ca_file = "{pki}/cacert.pem"\ncert_file = "{pki}/servercert.pem"\n'
        f'key_file = "{pki}/serverkey.pem"\ntls_allowed_dn_list = [ "CN=nobody" ]\n'
        "tls_no_verify_certificate = 1\n"
    )
    log = rundir / "serve.log"
    with NotifyReceiver() as notify:
        server = spawn_serve(["--config", str(conf)], log_path=log, env={"NOTIFY_SOCKET": str(notify.path)})
        try:
            notify.wait_for("READY=1")
            for identity in ("client", "other"):
                uri = f"test+tls://127.0.0.1:{tls_port}/default?pkipath={client_pkipath(pki, identity)}"
                assert run_virsh(uri, "domstate", "test", check=True).stdout.strip() == "running"
        finally:
            status = stop(server)
        assert status == 0, log.read_text()
