"""Each connection's identity record (server/identity.py), filled in by an
embedded server: unix peer credentials, the TLS client's DN, the SASL user."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Any

import pytest
import trio
import virtwire.client
from virtwire.server import embed
from virtwire.server.access_policy import Policy
from virtwire.server.config import Endpoint, ServerConfig
from virtwire.server.identity import Identity
from vwtestkit import client_pkipath, encode_packet
from vwtestkit.rawrpc import PROC_AUTH_LIST, REMOTE_PROGRAM
from vwtestkit.sasl import AUTHNAME, PASSPHRASE, make_users_file

import virtwire.libvirt


def _callback(creds: list[list[Any]], _: Any) -> int:
    for cred in creds:
        cred[4] = "alice" if cred[0] == AUTHNAME else "secret1"
    return 0


AUTH = [[AUTHNAME, PASSPHRASE], _callback, None]


async def test_identity_of_unix_tls_and_sasl_clients(tmp_path: Path, pki: Path) -> None:
    users = make_users_file(tmp_path / "users", {"alice": "secret1"})
    config = ServerConfig(
        tls=[Endpoint("127.0.0.1", 0)],
        unix=[tmp_path / "sock"],
        unix_ro=[tmp_path / "sock-ro"],
        pki_dir=pki,
        auth_unix_rw="sasl",
        auth_tls="sasl",
        sasl_users_file=users,
    )
    async with embed.serve(config=config) as host:

        def identities() -> list[Identity]:
            return [c.ctx.identity for c in sorted(host.service.connections, key=lambda c: c.ctx.conn_id)]

        unix_uri = f"test+unix:///default?socket={tmp_path / 'sock'}"
        ro_uri = f"test+unix:///default?socket={tmp_path / 'sock-ro'}"
        tls_uri = f"test+tls://{host.tls[0]}/default?pkipath={client_pkipath(pki)}"
        async with await virtwire.client.connect(unix_uri, auth=AUTH) as rw:
            assert await rw.get_hostname()
            async with await virtwire.client.connect(ro_uri, readonly=True) as ro:
                assert await ro.get_hostname()
                async with await virtwire.client.connect(tls_uri, auth=AUTH) as tls:
                    assert await tls.is_encrypted()
                    uid, gid = os.getuid(), os.getgid()
                    user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name

                    def unix(readonly: bool, sasl_user: str | None) -> Identity:
                        return Identity("unix", readonly, uid, gid, os.getpid(), None, sasl_user, user, group)

                    dn = "O=virtwire-test,CN=virtwire-client"
                    assert identities() == [
                        unix(False, "alice"),
                        unix(True, None),  # auth none: no SASL user
                        Identity("tls", False, x509_dname=dn, sasl_user_name="alice"),
                    ]
                    assert identities()[2].attributes() == {
                        "transport": "tls",
                        "x509_dname": dn,
                        "sasl_user_name": "alice",
                    }


async def test_unauthenticated_clients_count_as_anonymous(tmp_path: Path) -> None:
    """libvirtd's max_anonymous_clients covers clients that have not passed SASL yet:
    at the limit the server stops accepting until one authenticates or leaves."""
    users = make_users_file(tmp_path / "users", {"alice": "secret1"})
    sock = tmp_path / "sock"
    config = ServerConfig(unix=[sock], auth_unix_rw="sasl", sasl_users_file=users, max_anonymous_clients=2)
    auth_list = encode_packet(REMOTE_PROGRAM, 1, PROC_AUTH_LIST, 0, 0, 0, b"")
    async with embed.serve(config=config, tcp=()) as host:
        service = host.service
        lurkers = []
        for _ in range(2):
            stream = await trio.open_unix_socket(str(sock))
            await stream.send_all(auth_list)
            assert len(await stream.receive_some(4096)) == 36  # answered: AUTH_LIST [SASL]
            lurkers.append(stream)
        assert (service.handshaking, service.may_accept()) == (2, False)
        await lurkers.pop().aclose()
        while service.handshaking != 1:  # the server notices the close
            await trio.sleep(0.01)
        assert service.may_accept()
        async with await virtwire.client.connect(f"test+unix:///default?socket={sock}", auth=AUTH) as conn:
            assert await conn.get_hostname()
            assert service.handshaking == 1  # authenticated: no longer anonymous
        await lurkers.pop().aclose()
        while service.handshaking:
            await trio.sleep(0.01)


async def test_allowed_username_list(tmp_path: Path) -> None:
    """sasl_allowed_username_list: a user with the right password but not on the
    list is refused like a wrong password ("authentication failed")."""
    users = make_users_file(tmp_path / "users", {"alice": "secret1"})
    sock = tmp_path / "sock"
    config = ServerConfig(
        unix=[sock], auth_unix_rw="sasl", sasl_users_file=users, sasl_allowed_username_list=["b*"]
    )
    async with embed.serve(config=config, tcp=()):
        with pytest.raises(virtwire.libvirt.libvirtError) as info:
            await virtwire.client.connect(f"test+unix:///default?socket={sock}", auth=AUTH)
        assert info.value.get_error_code() == virtwire.libvirt.VIR_ERR_AUTH_FAILED
        assert info.value.get_error_message() == "authentication failed: authentication failed"


async def test_access_policy_sees_the_sasl_user(tmp_path: Path) -> None:
    """An access-policy rule on sasl_user_name applies once SASL names the user
    (the connection's first calls, before SASL, had no such name)."""
    users = make_users_file(tmp_path / "users", {"alice": "secret1", "bob": "hunter2"})
    sock = tmp_path / "sock"
    policy = Policy.from_mapping(
        {
            "default": "deny",
            "rule": [{"sasl_user_name": "alice", "permissions": ["*:*"], "allow": True}],
        }
    )
    config = ServerConfig(unix=[sock], auth_unix_rw="sasl", sasl_users_file=users, access_policy=policy)
    uri = f"test+unix:///default?socket={sock}"

    def as_user(user: str, password: str) -> list[Any]:
        def ask(creds: list[list[Any]], _: Any) -> int:
            for cred in creds:
                cred[4] = user if cred[0] == AUTHNAME else password
            return 0

        return [[AUTHNAME, PASSPHRASE], ask, None]

    async with embed.serve(config=config, tcp=()):
        async with await virtwire.client.connect(uri, auth=as_user("alice", "secret1")) as conn:
            assert [d.name for d in await conn.list_all_domains()] == ["test"]
        with pytest.raises(virtwire.libvirt.libvirtError) as info:
            await virtwire.client.connect(uri, auth=as_user("bob", "hunter2"))
        assert info.value.get_error_code() == virtwire.libvirt.VIR_ERR_ACCESS_DENIED
