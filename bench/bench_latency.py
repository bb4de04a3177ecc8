"""End-to-end latency: a value change at the device (an OPC UA server write) -> the sample
acknowledged by the SQLite store.

An asyncua server in a child process (its own core) writes a new value every ``--every-ms``
to one variable; the value is the wall-clock time of the write. The gateway is the real edge
``Collector`` (OPC UA connector -> SampleQueue -> recording -> batching writer -> SqliteStore,
WAL, synchronous FULL) with a batch observer that sees each batch once the store acknowledged
it (durable). Latency = acknowledgement time - write time, for every change. The default
settings are the product's: publishing interval 200 ms (as in the demo), flush interval 200 ms.

    .venv/bin/python bench/bench_latency.py                       # 100 changes, 3 runs
    .venv/bin/python bench/bench_latency.py --publish-ms 50 --flush-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asyncua import ua

from config.loader import load_site_text
from connectors.simulators.cnc import new_server
from edge.runtime import Collector
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.net import free_port, wait_port


def serve(port: int, changes: int, every_ms: int, ready: Any, go: Any, done: Any) -> None:
    """Child process: after ``go``, write ``changes`` values (each its own write time)."""

    async def main() -> None:
        server = new_server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/lat")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:lat")
        folder = await server.nodes.objects.add_folder(ua.NodeId("L", idx), f"{idx}:L")
        var = await folder.add_variable(ua.NodeId("L.v", idx), f"{idx}:v", 0.0)
        await server.start()
        ready.set()
        while not go.is_set():  # noqa: ASYNC110 (a multiprocessing event)
            await asyncio.sleep(0.01)
        for _ in range(changes):
            now = time.time()
            await server.write_attribute_value(
                var.nodeid,
                ua.DataValue(
                    ua.Variant(now, ua.VariantType.Double),
                    SourceTimestamp=dt.datetime.fromtimestamp(now, dt.UTC),
                ),
            )
            await asyncio.sleep(every_ms / 1000.0)
        done.set()
        await asyncio.sleep(2.0)
        await server.stop()

    asyncio.run(main())


class Acks:
    """Batch observer: the acknowledgement time of every stored sample of the point."""

    def __init__(self) -> None:
        self.latencies: list[float] = []

    def stored(self, batches: Sequence[Batch]) -> None:
        now = time.time()
        for b in batches:
            for s in b.samples:
                if s.point == "v" and s.value > 1e9:
                    self.latencies.append(now - s.value)


def site_text(port: int, db: Path, publish_ms: int, flush_ms: int) -> str:
    return f"""
version: 1
site: {{id: lat, name: latency}}
runtime: {{flush_interval_ms: {flush_ms}}}
storage: {{kind: sqlite, path: {db}}}
evidence: {{enabled: false}}
devices:
  - id: m
    name: m
    opcua: {{endpoint: "opc.tcp://127.0.0.1:{port}/lat", publishing_interval_ms: {publish_ms}}}
    points:
      - id: v
        datatype: float64
        opcua: {{node_id: "ns=2;s=L.v", sampling_ms: 0, queue_size: 10}}
"""


async def gateway(site_yaml: str, db: Path, go: Any, done: Any) -> list[float]:
    site = load_site_text(site_yaml)
    acks = Acks()
    store = SqliteStore(db)
    collector = Collector(site, store=store, observers=[acks], evidence=False)
    stop = asyncio.Event()
    run = asyncio.create_task(collector.run(stop))
    await asyncio.sleep(1.5)  # session and subscription up
    go.set()
    while not done.is_set():  # noqa: ASYNC110 (a multiprocessing event)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    stop.set()
    await run
    return acks.latencies


def one_run(changes: int, every_ms: int, publish_ms: int, flush_ms: int) -> list[float]:
    port = free_port()
    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Event(), ctx.Event(), ctx.Event()
    proc = ctx.Process(target=serve, args=(port, changes, every_ms, ready, go, done), daemon=True)
    proc.start()
    try:
        if not ready.wait(300):
            raise RuntimeError("server did not start")
        wait_port(port)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "lat.db"
            return asyncio.run(gateway(site_text(port, db, publish_ms, flush_ms), db, go, done))
    finally:
        proc.join(15)
        if proc.is_alive():
            proc.kill()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--every-ms", type=int, default=150)
    ap.add_argument("--publish-ms", type=int, default=200)
    ap.add_argument("--flush-ms", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}; publishing {args.publish_ms} ms, "
        f"flush {args.flush_ms} ms"
    )
    p50s, p95s = [], []
    for i in range(args.runs):
        lat = one_run(args.changes, args.every_ms, args.publish_ms, args.flush_ms)
        if not lat:
            print(f"run {i + 1}: no sample reached the store")
            return 1
        p50, p95 = pct(lat, 50) * 1000, pct(lat, 95) * 1000
        p50s.append(p50)
        p95s.append(p95)
        print(
            f"run {i + 1}: {len(lat)} changes stored, p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms"
        )
    print(
        f"median of runs: p50 {statistics.median(p50s):.0f} ms, "
        f"p95 {statistics.median(p95s):.0f} ms (server write -> store acknowledgement)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
