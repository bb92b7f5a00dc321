"""Module-level behaviour of virtwire.libvirt compared with the real
libvirt-python on the same daemon: the per-thread last error, the error
handler, objects keeping their connection open, libvirtmod."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import virtwire.libvirt as ours


def _last_error_story(module: Any, uri: str) -> list[Any]:
    seen: list[Any] = []
    module.registerErrorHandler(lambda ctx, err: seen.append((ctx, err)), "ctx")
    try:
        conn = module.open(uri)
        story: list[Any] = [module.virGetLastError()]
        try:
            conn.lookupByName("no-such-domain")
        except module.libvirtError as exc:
            story.append(exc.err)
        story += [
            module.virGetLastError(),
            module.virGetLastErrorCode(),
            module.virGetLastErrorDomain(),
            module.virGetLastErrorMessage(),
            conn.virConnGetLastError(),
        ]
        conn.getHostname()  # a successful call forgets the error
        story.append(module.virGetLastError())
        with contextlib.suppress(module.libvirtError):
            conn.lookupByName("no-such-domain")
        module.virResetLastError()
        story += [module.virGetLastError(), module.virGetLastErrorCode(), module.virGetLastErrorMessage()]
        story.append(seen)
        conn.close()
        return story
    finally:
        module.registerErrorHandler(None, None)


def test_last_error_and_error_handler(real_libvirtd: Any, real_libvirt: ModuleType) -> None:
    expected = _last_error_story(real_libvirt, real_libvirtd.unix_uri)
    got = _last_error_story(ours, real_libvirtd.unix_uri)
    assert got == expected


def test_objects_keep_their_connection_open(real_libvirtd: Any) -> None:
    conn = ours.open(real_libvirtd.unix_uri)
    net = conn.networkLookupByName("default")
    pool = conn.storagePoolLookupByName("default-pool")
    assert conn.close() == 2  # one reference per live object, as libvirt counts
    assert net.connect() is conn and pool.connect() is conn
    assert net.name() == "default" and net.isActive() == 1
    assert pool.info()[0] == ours.VIR_STORAGE_POOL_RUNNING
    assert isinstance(net.c_pointer(), int)


def test_object_handles_are_made_by_the_library_only() -> None:
    try:
        ours.virNetwork(None)
    except Exception as exc:  # libvirt-python: "Expected a wrapped C Object but got <class 'NoneType'>"
        assert "Expected a wrapped C Object" in str(exc)
    else:
        raise AssertionError("a handle without a wire reference was accepted")


def _user_events_story(module: Any) -> list[Any]:
    """A descriptor and a timer in the default event loop, driven by this thread."""
    module.virEventRegisterDefaultImpl()
    a, b = socket.socketpair()
    log: list[Any] = []

    def on_fd(watch: int, fd: int, events: int, opaque: Any) -> None:
        log.append(("fd", fd == a.fileno(), events, opaque, a.recv(100)))

    def on_timer(timer: int, opaque: Any) -> None:
        log.append(("timer", opaque))
        module.virEventUpdateTimeout(timer, -1)  # once

    watch = module.virEventAddHandle(a.fileno(), module.VIR_EVENT_HANDLE_READABLE, on_fd, "h")
    timer = module.virEventAddTimeout(0, on_timer, "t")
    b.send(b"x")
    for _ in range(100):  # bounded: each iteration returns once something ran
        if len(log) >= 2:
            break
        module.virEventRunDefaultImpl()
    story: list[Any] = [sorted(log, key=str)]
    story.append(module.virEventRemoveHandle(watch))
    story.append(module.virEventRemoveTimeout(timer))
    try:
        module.virEventRemoveTimeout(timer)
    except module.libvirtError as exc:
        story.append(str(exc))
    a.close()
    b.close()
    return story


def test_user_handles_and_timers_on_the_default_loop(real_libvirt: ModuleType) -> None:
    expected = _user_events_story(real_libvirt)
    assert expected[0][0][0] == "fd"
    assert _user_events_story(ours) == expected


STDERR_SCRIPT = """
import sys
import {module} as libvirt

conn = libvirt.openReadOnly(sys.argv[1])
for call in (
    lambda: conn.lookupByName("nope"),
    lambda: conn.lookupByUUIDString("bad"),
    lambda: conn.networkLookupByName("nope"),
    lambda: conn.lookupByName("test").suspend(),
):
    try:
        call()
    except libvirt.libvirtError:
        pass
libvirt.registerErrorHandler(lambda ctx, err: None, None)
try:
    conn.lookupByName("nope")
except libvirt.libvirtError:
    pass
"""


def test_errors_printed_on_stderr_without_a_handler(
    real_libvirtd: Any, real_libvirt: ModuleType, tmp_path: Path
) -> None:
    # libvirt-python prints libvirt's report of each error while no handler is
    # registered; a subprocess each, as the handler is process-wide.
    outputs = []
    for module in (real_libvirt.__name__, "virtwire.libvirt"):
        script = tmp_path / "errors.py"
        script.write_text(STDERR_SCRIPT.format(module=module))
        proc = subprocess.run(
            [sys.executable, str(script), real_libvirtd.unix_ro_uri],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs.append(proc.stderr)
    assert outputs[0].count("libvirt: ") == 4
    assert outputs[1] == outputs[0]
