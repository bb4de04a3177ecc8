"""Sparkplug B messages/s into the store: private mosquitto -> SparkplugConnector (paho 2.x,
protobuf) -> SampleQueue -> Writer -> SqliteStore (WAL, synchronous FULL), over loopback.

An edge node ``plant/edge1`` with one device ``press``: NBIRTH and DBIRTH (5 metrics with
aliases), then ``--messages`` DDATA, each with the 5 metrics by alias (Int32 state, two UInt32
counters, Float and Double measurements), a metric timestamp each, and ``seq`` running 0-255.
The host application is connected and subscribed first (a Sparkplug host keeps no persistent
session: it asks for a rebirth instead), then the publisher — a child process writing
pre-built MQTT PUBLISH packets on a raw socket, QoS 1 (it reads the PUBACKs in a thread) —
sends everything. The clock runs from the first message decoded until the store has
acknowledged every sample; the gateway's CPU time (this process) is counted over the same span.

    .venv/bin/python bench/bench_sparkplug.py --runs 5 --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mqtt import _remaining, publish_packet  # the MQTT bench's packet writer

from config.models import SiteConfig
from connectors.simulators.broker import MosquittoBroker
from connectors.sparkplug.connector import SparkplugConnector
from connectors.sparkplug.schema import Payload
from edge.queue import SampleQueue
from edge.store.sqlite import SqliteStore
from edge.writer import Writer

T0_MS = 1_767_225_600_000
METRICS = (  # name, alias, datatype, oneof field
    ("Machine/State", 1, 3, "int_value"),
    ("Counters/Good", 2, 7, "int_value"),
    ("Counters/Scrap", 3, 7, "int_value"),
    ("Motor/Load", 4, 9, "float_value"),
    ("Die/Temp", 5, 10, "double_value"),
)
NODE = "spBv1.0/plant/{}/edge1"
DEV = NODE + "/press"


def site(port: int) -> SiteConfig:
    conn = {"host": "127.0.0.1", "port": port, "group_id": "plant", "edge_node_id": "edge1"}
    points = [{"id": f"p{alias}", "sparkplug": {"metric": name}} for name, alias, _t, _f in METRICS]
    dev = {"id": "press", "name": "press", "sparkplug": {**conn, "device_id": "press"}}
    return SiteConfig.model_validate(
        {"site": {"id": "b", "name": "b"}, "devices": [{**dev, "points": points}]}
    )


def messages(n: int) -> list[tuple[str, bytes]]:
    nbirth = Payload(timestamp=T0_MS, seq=0)
    nbirth.metrics.add(name="bdSeq", datatype=4, long_value=0)
    dbirth = Payload(timestamp=T0_MS, seq=1)
    for name, alias, dtype, field in METRICS:
        m = dbirth.metrics.add(name=name, alias=alias, timestamp=T0_MS, datatype=dtype)
        setattr(m, field, 0)
    out = [
        (NODE.format("NBIRTH"), nbirth.SerializeToString()),
        (DEV.format("DBIRTH"), dbirth.SerializeToString()),
    ]
    for i in range(n):
        ts = T0_MS + (i + 1) * 1000
        p = Payload(timestamp=ts, seq=(i + 2) % 256)
        for _name, alias, _dtype, field in METRICS:
            m = p.metrics.add(alias=alias, timestamp=ts)
            setattr(m, field, (i % 4) if alias == 1 else (i if field == "int_value" else i / 7))
        out.append((DEV.format("DDATA"), p.SerializeToString()))
    return out


def raw_publish(port: int, n: int) -> float:
    packets = [
        publish_packet(topic, body, 1, i % 65535 + 1) for i, (topic, body) in enumerate(messages(n))
    ]
    sock = socket.create_connection(("127.0.0.1", port))
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
    sock.sendall(b"\x10" + _remaining(len(connect)) + connect)
    connack = b""
    while len(connack) < 4:
        connack += sock.recv(4 - len(connack))
    acked = threading.Event()

    def read_acks() -> None:
        want, got = 4 * len(packets), 0
        while got < want:
            data = sock.recv(1 << 16)
            if not data:
                return
            got += len(data)
        acked.set()

    reader = threading.Thread(target=read_acks, name="pubacks")
    reader.start()
    t = time.perf_counter()
    for i in range(0, len(packets), 1000):
        sock.sendall(b"".join(packets[i : i + 1000]))
    if not acked.wait(600):
        raise RuntimeError("the broker did not acknowledge every message")
    took = time.perf_counter() - t
    sock.sendall(b"\xe0\x00")
    sock.shutdown(socket.SHUT_WR)
    reader.join(10)
    sock.close()
    return took


def _publisher(port: int, n: int, out: Any) -> None:
    out.put(raw_publish(port, n))


async def run_once(n: int, folder: Path, run: int) -> dict[str, float]:
    broker = MosquittoBroker()
    await broker.start()
    store = SqliteStore(folder / f"bench-{run}.db")
    try:
        (dev,) = site(broker.port).devices
        conn = SparkplugConnector(dev.sparkplug, [dev], client_id=f"bench-{run}")  # type: ignore[arg-type]
        queue = SampleQueue(2_000_000, "drop_newest")
        writer = Writer(store, queue, batch_max_samples=20_000, flush_interval_ms=50)
        writer_task = asyncio.create_task(writer.run())
        conn_task = asyncio.create_task(conn.run(queue))
        for _ in range(1000):
            if conn.rebirths:  # subscribed: it asked for a rebirth
                break
            await asyncio.sleep(0.01)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=_publisher, args=(broker.port, n, out))
        proc.start()
        want = (n + 1) * len(METRICS)  # the DBIRTH's values too
        while conn.messages == 0:  # noqa: ASYNC110 (a counter, no event to wait on)
            await asyncio.sleep(0.001)
        cpu0 = time.process_time()
        start = time.perf_counter()
        deadline = time.monotonic() + 600
        while writer.acked_samples < want:
            if time.monotonic() > deadline or conn_task.done():
                if conn_task.done():
                    conn_task.result()
                raise RuntimeError(f"stalled: {conn.messages} messages")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        conn_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await conn_task
        queue.close()
        await writer_task
        await writer.close()
        pub_s = await asyncio.to_thread(out.get, True, 600)
        await asyncio.to_thread(proc.join, 30)
        return {
            "msgs_per_s": n / elapsed,
            "elapsed_s": elapsed,
            "publish_s": pub_s,
            "cpu_us_per_msg": cpu / n * 1e6,
            "cpu_us_per_sample": cpu / writer.acked_samples * 1e6,
        }
    finally:
        store.close()
        await broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(
        f"# bench_sparkplug messages={args.messages} metrics/message={len(METRICS)} "
        f"| python {platform.python_version()} | {os.cpu_count()} cores | {platform.machine()} "
        "| publisher: child process, raw socket, QoS 1 | nothing pinned"
    )
    rates: list[float] = []
    per_msg: list[float] = []
    per_sample: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-spb-") as tmp:
        for run in range(args.runs):
            r = asyncio.run(run_once(args.messages, Path(tmp), run))
            rates.append(r["msgs_per_s"])
            per_msg.append(r["cpu_us_per_msg"])
            per_sample.append(r["cpu_us_per_sample"])
            print(
                f"run {run + 1}: {r['msgs_per_s']:,.0f} messages/s ({r['elapsed_s']:.2f} s; "
                f"publisher {r['publish_s']:.2f} s), {r['cpu_us_per_msg']:.1f} µs CPU per "
                f"message, {r['cpu_us_per_sample']:.1f} µs per sample, "
                f"load {os.getloadavg()[0]:.1f}"
            )
    print(
        f"median: {statistics.median(rates):,.0f} messages/s "
        f"({min(rates):,.0f}-{max(rates):,.0f}), {statistics.median(per_msg):.1f} µs gateway CPU "
        f"per message, {statistics.median(per_sample):.1f} µs per sample"
    )


if __name__ == "__main__":
    main()
