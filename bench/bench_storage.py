#!/usr/bin/env python3
"""Benchmark storage on `virtwire serve` against a real libvirtd, side by side, in one run.

1. listAllStoragePools + listAllVolumes of a pool with 1,000 volumes: calls per
   second, virtwire and a real libvirtd with the test driver (test:///default).
2. Volume upload and download of 256 MiB (libvirt-python sendAll/recvAll): MiB/s,
   virtwire and a real libvirtd with its storage driver (the test driver has no
   upload/download), a transient dir pool in a temporary directory, over the unix
   socket on both sides.

The client is the real libvirt-python in this process.  Ratios are virtwire /
libvirtd (higher is better).  A script, not a test: a shared 2-core box moves
numbers by ±15 %.

    .venv/bin/python bench/bench_storage.py [--duration 3] [--reps 3] [--volumes 1000] [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import libvirt  # noqa: E402
from vwtestkit import start_libvirtd, start_server, stop_libvirtd, stop_servers  # noqa: E402

MIB = 1 << 20
STORAGE_DRIVER = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_storage.so")


def listing_rate(uri: str, duration: float) -> float:
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolLookupByName("default-pool")
        calls = 0
        stop_at = time.perf_counter() + duration
        start = time.perf_counter()
        while time.perf_counter() < stop_at:
            conn.listAllStoragePools(0)
            pool.listAllVolumes(0)
            calls += 1
        return calls / (time.perf_counter() - start)
    finally:
        conn.close()


def fill(uri: str, count: int) -> None:
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolLookupByName("default-pool")
        for i in range(count):
            pool.createXML(f"<volume><name>v{i:05d}</name><capacity>1024</capacity></volume>", 0)
    finally:
        conn.close()


def transfer(uri: str, pool_name: str, mib: int) -> tuple[float, float]:
    """Seconds to upload, then download, ``mib`` MiB through one volume."""
    conn = libvirt.open(uri)
    block = os.urandom(MIB)
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        vol = pool.createXML(f"<volume><name>big</name><capacity unit='M'>{mib}</capacity></volume>", 0)
        sent = 0

        def source(_st: Any, nbytes: int, _o: Any) -> bytes:
            nonlocal sent
            if sent >= mib * MIB:
                return b""
            offset = sent % MIB
            chunk = block[offset : offset + min(nbytes, mib * MIB - sent)]
            sent += len(chunk)
            return chunk

        stream = conn.newStream(0)
        t0 = time.perf_counter()
        vol.upload(stream, 0, mib * MIB, 0)
        stream.sendAll(source, None)
        stream.finish()
        up = time.perf_counter() - t0
        received = 0

        def sink(_st: Any, buf: bytes, _o: Any) -> int:
            nonlocal received
            received += len(buf)
            return len(buf)

        stream = conn.newStream(0)
        t0 = time.perf_counter()
        vol.download(stream, 0, mib * MIB, 0)
        stream.recvAll(sink, None)
        stream.finish()
        down = time.perf_counter() - t0
        assert received == mib * MIB, received
        vol.delete(0)
        return up, down
    finally:
        conn.close()


class StorageLibvirtd:
    """A libvirtd that loads only its storage driver, on a unix socket in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir()
        drivers = workdir / "drivers"
        drivers.mkdir()
        (drivers / STORAGE_DRIVER.name).symlink_to(STORAGE_DRIVER)
        sockets = workdir / "sock"
        sockets.mkdir()
        conf = workdir / "libvirtd.conf"
        conf.write_text(
            f'unix_sock_dir = "{sockets}"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            "listen_tls = 0\nlisten_tcp = 0\n"
        )
        env = dict(os.environ, LIBVIRT_DRIVER_DIR=str(drivers), XDG_RUNTIME_DIR=str(workdir))
        self.pidfile = workdir / "libvirtd.pid"
        self.proc = subprocess.Popen(
            ["/usr/sbin/libvirtd", "-f", str(conf), "-p", str(self.pidfile)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.uri = f"storage:///system?socket={sockets / 'libvirt-sock'}"
        for _ in range(100):
            if (sockets / "libvirt-sock").exists():
                break
            time.sleep(0.1)
        conn = libvirt.open(self.uri)
        target = workdir / "pool"
        target.mkdir()
        pool_xml = f"<pool type='dir'><name>bench</name><target><path>{target}</path></target></pool>"
        conn.storagePoolCreateXML(pool_xml, 0)
        conn.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--volumes", type=int, default=1000)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    libvirt.registerErrorHandler(lambda *_: None, None)

    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        work = Path(tmp)
        stops: list[Any] = []  # every daemon started is stopped, whatever fails
        try:
            real = start_libvirtd(work / "libvirtd", hold=True)
            stops.append(lambda: stop_libvirtd(real))
            ours = start_server(pki=None, tls=False, ro=False)
            stops.append(lambda: stop_servers([ours]))
            storage = StorageLibvirtd(work / "storage-libvirtd")
            stops.append(storage.stop)
            fill(real.tcp_uri, args.volumes)
            fill(ours.tcp_uri, args.volumes)
            rates: dict[str, list[float]] = {"virtwire": [], "libvirtd": []}
            for _ in range(args.reps):
                rates["virtwire"].append(listing_rate(ours.tcp_uri, args.duration))
                rates["libvirtd"].append(listing_rate(real.tcp_uri, args.duration))
            ups: dict[str, list[float]] = {"virtwire": [], "libvirtd": []}
            downs: dict[str, list[float]] = {"virtwire": [], "libvirtd": []}
            for _ in range(args.reps):
                for label, uri, pool in (
                    ("virtwire", ours.unix_uri, "default-pool"),
                    ("libvirtd", storage.uri, "bench"),
                ):
                    up, down = transfer(uri, pool, args.mib)
                    ups[label].append(args.mib / up)
                    downs[label].append(args.mib / down)
        finally:
            for stop in reversed(stops):
                stop()

    def row(name: str, unit: str, values: dict[str, list[float]]) -> None:
        mine, theirs = statistics.median(values["virtwire"]), statistics.median(values["libvirtd"])
        print(f"{name:<44} {mine:>10.1f} {theirs:>10.1f} {unit:<8} {mine / theirs:>6.2f}")

    title = f"workload (median of {args.reps})"
    print(f"{title:<44} {'virtwire':>10} {'libvirtd':>10} {'unit':<8} {'ratio':>6}")
    row(f"listAllStoragePools+listAllVolumes ({args.volumes} vols)", "calls/s", rates)
    row(f"upload {args.mib} MiB", "MiB/s", ups)
    row(f"download {args.mib} MiB", "MiB/s", downs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
