"""URI parsing: transports, default ports and sockets, the name sent in CONNECT_OPEN."""

from __future__ import annotations

import os

import pytest
from virtwire.client import uri as vuri
from virtwire.client.uri import Transport
from virtwire.protocol.errors import libvirtError


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("test+tcp://h:1/default", "test:///default"),
        ("test+tcp://h:1/default?foo=bar", "test:///default?foo=bar"),
        ("test+tcp://h:1/default#frag", "test:///default#frag"),
        ("test+tcp://h:1/default?no_verify=1&foo=bar&pkipath=/x", "test:///default?foo=bar"),
        ("test+tcp://h:1/default?name=test:///other", "test:///other"),
        ("qemu+tcp://user@h/system", "qemu:///system"),
        ("remote+tcp://h/", ""),
        ("test+unix:///default?socket=/tmp/s&mode=legacy&a=b", "test:///default?a=b"),
        (
            "test+tls://h/default?socket=x&no_tty=1&command=c&netcat=n&keyfile=k&sshauth=a"
            "&auth=x&authfile=f&known_hosts=k&known_hosts_verify=i&tls_priority=p&no_sanity=1&proxy=native",
            "test:///default",
        ),
    ],
)
def test_name_sent_in_open_drops_transport_and_its_params(text: str, name: str) -> None:
    assert vuri.parse(text).name == name


def test_tcp_defaults_and_explicit_port() -> None:
    t = vuri.parse("test+tcp://example.org/default")
    assert (t.transport, t.host, t.port) == (Transport.TCP, "example.org", 16509)
    t = vuri.parse("test+tcp://127.0.0.1:4242/default")
    assert (t.host, t.port, t.address) == ("127.0.0.1", 4242, "127.0.0.1:4242")
    t = vuri.parse("test+tcp:///default")
    assert t.address == "localhost:16509"


def test_ipv6_host() -> None:
    t = vuri.parse("test+tcp://[::1]:7/default")
    assert (t.host, t.port) == ("::1", 7)


def test_host_without_transport_means_tls() -> None:
    t = vuri.parse("qemu://h/system?pkipath=/p")
    assert (t.transport, t.port, t.name) == (Transport.TLS, 16514, "qemu:///system")
    assert t.tls == vuri.TlsFiles("/p/cacert.pem", "/p/clientcert.pem", "/p/clientkey.pem", "/p/cacrl.pem")


def test_no_host_no_transport_means_local_unix_socket() -> None:
    t = vuri.parse("test:///default")
    assert t.transport is Transport.UNIX
    assert t.name == "test:///default"
    assert t.socket_path.endswith("libvirt-sock")


def test_read_only_picks_the_ro_socket_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert vuri.parse("qemu:///system", readonly=True).socket_path == "/var/run/libvirt/libvirt-sock-ro"
    assert vuri.parse("qemu:///system").socket_path == "/var/run/libvirt/libvirt-sock"
    assert vuri.parse("qemu:///system?mode=direct").socket_path == "/var/run/libvirt/virtqemud-sock"


def test_session_socket_for_unprivileged_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert vuri.parse("qemu:///session").socket_path == "/run/user/1000/libvirt/libvirt-sock"


def test_tls_default_files_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    t = vuri.parse("test+tls://h/default")
    assert t.tls == vuri.TlsFiles(
        "/etc/pki/CA/cacert.pem",
        "/etc/pki/libvirt/clientcert.pem",
        "/etc/pki/libvirt/private/clientkey.pem",
        "/etc/pki/CA/cacrl.pem",
    )


def test_tls_default_files_for_user(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".pki" / "libvirt").mkdir(parents=True)  # type: ignore[operator]
    (tmp_path / ".pki" / "libvirt" / "cacert.pem").write_text("x")  # type: ignore[operator]
    t = vuri.parse("test+tls://h/default")
    assert t.tls is not None
    assert t.tls.cacert == f"{tmp_path}/.pki/libvirt/cacert.pem"
    assert t.tls.clientcert == "/etc/pki/libvirt/clientcert.pem"  # no user certificate and key pair
    assert t.tls.cacrl == "/etc/pki/CA/cacrl.pem"
    # a user certificate counts only with its key (libvirt checks them as a pair)
    (tmp_path / ".pki" / "libvirt" / "clientcert.pem").write_text("x")  # type: ignore[operator]
    assert vuri.parse("test+tls://h/default").tls.clientcert == "/etc/pki/libvirt/clientcert.pem"  # type: ignore[union-attr]
    (tmp_path / ".pki" / "libvirt" / "clientkey.pem").write_text("x")  # type: ignore[operator]
    assert vuri.parse("test+tls://h/default").tls.clientkey == f"{tmp_path}/.pki/libvirt/clientkey.pem"  # type: ignore[union-attr]


def test_no_verify() -> None:
    assert vuri.parse("test+tls://h/default?no_verify=1").no_verify
    assert not vuri.parse("test+tls://h/default?no_verify=0").no_verify


def test_no_sanity_and_tls_priority() -> None:
    t = vuri.parse("test+tls://h/default?no_sanity=1&tls_priority=SECURE256")
    assert (t.no_sanity, t.tls_priority) == (True, "SECURE256")
    assert not vuri.parse("test+tls://h/default").no_sanity


def _err(text: str) -> tuple[object, ...]:
    with pytest.raises(libvirtError) as info:
        vuri.parse(text)
    assert info.value.err is not None
    return info.value.err


def test_unknown_transport_is_libvirts_error() -> None:
    assert _err("test+foo://h/default") == (
        8,
        13,
        "invalid argument: remote_open: transport in URL not recognised "
        "(should be tls|unix|ssh|ext|tcp|libssh2|libssh)",
        2,
        "invalid argument: %s",
        "remote_open: transport in URL not recognised (should be tls|unix|ssh|ext|tcp|libssh2|libssh)",
        None,
        -1,
        -1,
    )


def test_unix_with_host_is_refused() -> None:
    err = _err("test+unix://host/default")
    assert err[:3] == (
        8,
        13,
        "invalid argument: using unix socket and remote server 'host' is not supported.",
    )


def test_bad_port_and_bad_flag_values() -> None:
    assert _err("test+tcp://127.0.0.1:abc/default")[:3] == (
        1,
        45,
        "internal error: Unable to parse URI test+tcp://127.0.0.1:abc/default",
    )
    assert _err("test+tcp://h:1/default?no_verify=xyz")[2] == (
        "invalid argument: Failed to parse value of URI component no_verify"
    )
    assert _err("test+unix:///default?mode=bogus")[2] == "invalid argument: Unknown remote mode 'bogus'"


def test_not_a_uri() -> None:
    assert _err("no-scheme-here")[0] == 1


def test_text_only_targets_are_reused_others_follow_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # An explicit socket: the text decides everything, one Target serves every open.
    explicit = "test+unix:///default?socket=/tmp/x/libvirt-sock"
    assert vuri.parse(explicit) is vuri.parse(explicit)
    assert vuri.parse(explicit, readonly=True).socket_path == "/tmp/x/libvirt-sock"
    # The session socket depends on $XDG_RUNTIME_DIR: looked up again on each open.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/a")
    first = vuri.parse("test+unix:///default")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/b")
    second = vuri.parse("test+unix:///default")
    assert first.socket_path == "/run/user/a/libvirt/libvirt-sock"
    assert second.socket_path == "/run/user/b/libvirt/libvirt-sock"
