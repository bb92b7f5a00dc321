"""Bulk domain stats reuse each record's encoding; it must follow every change of the domain.

connectGetAllDomainStats joins prebuilt record bytes (domain_stats._record_wire).
After each change that alters a record (start, suspend, stop, rename, an added
IOThread, a stats mask) the reply's bytes must equal the generic encoding of
the reply's records, and those records must say what the domain now is.
"""

from __future__ import annotations

import trio
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R
from virtwire.server.driver.base import ConnectionContext
from virtwire.server.driver.memory.core import dom_ref
from virtwire.server.driver.memory.driver import MemoryDriver

CTX = ConnectionContext(conn_id=1, peer="127.0.0.1:1", transport="tcp")


def _stats(driver: MemoryDriver, stats: int = 0) -> dict[str, dict[str, object]]:
    args = R.remote_connect_get_all_domain_stats_args(doms=[], stats=stats, flags=0)
    ret = trio.run(driver.connect_get_all_domain_stats, args, CTX)
    plain = R.remote_connect_get_all_domain_stats_ret(retStats=list(ret.retStats))
    assert ret.to_bytes() == R.encode_remote_connect_get_all_domain_stats_ret(plain)
    decoded = R.decode_remote_connect_get_all_domain_stats_ret(ret.to_bytes())
    return {
        rec.dom.name: {"id": rec.dom.id, **{p.field: p.value.value for p in rec.params}}
        for rec in decoded.retStats
    }


def test_records_follow_every_change() -> None:
    driver = MemoryDriver(hostname="stats")
    dom = driver.define_domain(
        "<domain type='test'><name>s1</name><memory>1024</memory><os><type>hvm</type></os></domain>",
        persistent=True,
    )
    assert _stats(driver)["s1"] == {"id": -1, "state.state": C.VIR_DOMAIN_SHUTOFF, "state.reason": 0}
    assert _stats(driver)["s1"]["state.state"] == C.VIR_DOMAIN_SHUTOFF  # the reused bytes
    driver.start_domain(dom)
    started = _stats(driver)["s1"]
    assert started["state.state"] == C.VIR_DOMAIN_RUNNING and started["id"] == dom.id != -1
    trio.run(driver.domain_suspend, R.remote_domain_suspend_args(dom=dom_ref(dom)), CTX)
    assert _stats(driver)["s1"]["state.state"] == C.VIR_DOMAIN_PAUSED
    trio.run(driver.domain_resume, R.remote_domain_resume_args(dom=dom_ref(dom)), CTX)
    add = R.remote_domain_add_iothread_args(dom=dom_ref(dom), iothread_id=7, flags=C.VIR_DOMAIN_AFFECT_LIVE)
    trio.run(driver.domain_add_iothread, add, CTX)
    with_iothread = _stats(driver)["s1"]
    assert with_iothread["iothread.count"] == 1 and "iothread.7.poll-max-ns" in with_iothread
    assert set(_stats(driver, C.VIR_DOMAIN_STATS_STATE)["s1"]) == {"id", "state.state", "state.reason"}
    driver.stop_domain(dom, reason=C.VIR_DOMAIN_SHUTOFF_DESTROYED, detail=0)
    stopped = _stats(driver)["s1"]
    assert (stopped["id"], stopped["state.reason"]) == (-1, C.VIR_DOMAIN_SHUTOFF_DESTROYED)
    rename = R.remote_domain_rename_args(dom=dom_ref(dom), new_name="s2", flags=0)
    trio.run(driver.domain_rename, rename, CTX)
    assert "s2" in _stats(driver) and "s1" not in _stats(driver)
