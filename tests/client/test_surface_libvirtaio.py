"""libvirt-python's libvirtaio.py (asyncio event loop) with virtwire.libvirt
as `libvirt`: register the asyncio implementation, receive domain events in
the asyncio loop, deregister and drain.  The same script runs with the real
libvirt-python on another fresh daemon; both must see the same events.
libvirtaio.py is imported from libvirt-python's source distribution.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from vwtestkit import libvirt_python_src, lpshim

SHIM = lpshim.RUNNER

SCRIPT = """
import asyncio
import json
import sys
import threading

import libvirt
import libvirtaio


async def main():
    impl = libvirtaio.virEventRegisterAsyncIOImpl()
    conn = libvirt.open("test:///default")
    dom = conn.lookupByName("test")
    seen = []
    got = asyncio.Event()
    loop_thread = threading.current_thread()

    def lifecycle(conn_, dom_, event, detail, opaque):
        seen.append([conn_ is conn, dom_.name(), event, detail, opaque,
                     threading.current_thread() is loop_thread])
        got.set()

    cb_id = conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, "opaque")
    dom.suspend()
    await asyncio.wait_for(got.wait(), 30)
    got.clear()
    dom.resume()
    await asyncio.wait_for(got.wait(), 30)
    conn.domainEventDeregisterAny(cb_id)
    del dom  # a domain keeps its connection open after close(), in libvirt too
    conn.close()
    await impl.drain()
    json.dump({"seen": seen, "idle": impl.is_idle()}, sys.stdout)


asyncio.run(main())
"""


def _run(impl: str, uri: str, tmp_path: Path) -> Any:
    script = tmp_path / f"aio_{impl}.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [
            sys.executable,
            str(SHIM),
            "--impl",
            impl,
            "--uri",
            uri,
            "--src",
            str(libvirt_python_src()),
            "--script",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_libvirtaio_delivers_domain_events(fresh_libvirtd: Any, tmp_path: Path, real_libvirt: Any) -> None:
    ours = _run("ours", fresh_libvirtd().unix_uri, tmp_path)
    suspended = [True, "test", real_libvirt.VIR_DOMAIN_EVENT_SUSPENDED, 0, "opaque", True]
    resumed = [True, "test", real_libvirt.VIR_DOMAIN_EVENT_RESUMED, 0, "opaque", True]
    assert ours["seen"] == [suspended, resumed]
    theirs = _run("real", fresh_libvirtd().unix_uri, tmp_path)
    assert ours == theirs
