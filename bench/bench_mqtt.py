"""MQTT messages/s into the store: private mosquitto -> MqttConnector -> SampleQueue -> Writer
-> SqliteStore (WAL, synchronous FULL), over loopback.

Each message is a quality-station inspection document (the demo's shape: 5 points by JSON
pointer plus a payload timestamp) on ``factory/<station>/inspection``; the connector reads the
stations with one template device (``factory/+/inspection``, device from topic level 1).

Two modes, both counted from the first message decoded to the last sample acknowledged by the
store (every message's 5 samples stored):

* ``backlog`` (default): ``--messages`` are published with QoS 1 while the gateway is away; its
  persistent session holds them at the broker; then the connector starts and drains them. This
  measures the gateway alone (the publisher is not in the way).
* ``live``: a publisher in a child process (its own core) publishes while the gateway runs.

    .venv/bin/python bench/bench_mqtt.py                      # backlog, 100k msgs, 5 runs
    .venv/bin/python bench/bench_mqtt.py --mode live --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.models import SiteConfig
from connectors.mqtt import MqttConnector, build
from connectors.simulators.broker import MosquittoBroker
from edge.queue import SampleQueue
from edge.store.sqlite import SqliteStore
from edge.writer import Writer

POINTS = {
    "inspected": ("/totals/inspected", "count_total", "uint32"),
    "passed": ("/totals/passed", "count_good", "uint32"),
    "rejected": ("/totals/rejected", "count_scrap", "uint32"),
    "reworked": ("/totals/reworked", "count_rework", "uint32"),
    "diameter_mm": ("/measure/diameter_mm", "measurement", "float32"),
}


_TCK = os.sysconf("SC_CLK_TCK")


def _thread_cpu(tid: int | None) -> float:
    """CPU seconds (user + system) of one thread of this process, from /proc (Linux)."""
    if tid is None:
        return 0.0
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TCK


def make_site(port: int, client_id: str) -> SiteConfig:
    points = [
        {
            "id": pid,
            "role": role,
            "datatype": dtype,
            "mqtt": {"topic": "factory/+/inspection", "pointer": ptr, "ts_pointer": "/ts"},
        }
        for pid, (ptr, role, dtype) in POINTS.items()
    ]
    device = {
        "id": "stations",
        "name": "quality stations",
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "qos": 1,
            "client_id": client_id,
            "clean_session": False,
            "topic_device_level": 1,
        },
        "points": points,
    }
    return SiteConfig.model_validate(
        {"site": {"id": "bench", "name": "bench"}, "devices": [device]}
    )


def payloads(n: int, stations: int) -> list[tuple[str, bytes]]:
    t0 = 1_767_225_600_000
    out = []
    for i in range(n):
        st = i % stations
        k = i // stations
        doc = {
            "ts": t0 + k * 1000,
            "station": f"qs{st}",
            "part": f"qs{st}-{k:08d}",
            "result": "ok",
            "totals": {"inspected": k + 1, "passed": k, "rejected": 1, "reworked": 0},
            "measure": {"diameter_mm": 25.0 + (k % 7) / 1000},
        }
        out.append((f"factory/qs{st}/inspection", json.dumps(doc).encode()))
    return out


def publish(port: int, n: int, stations: int, qos: int) -> float:
    """Publish n messages; returns the seconds it took (all acknowledged for QoS 1)."""
    msgs = payloads(n, stations)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    t = time.perf_counter()
    infos = [client.publish(topic, body, qos=qos) for topic, body in msgs]
    for info in infos:
        info.wait_for_publish(60)
    took = time.perf_counter() - t
    client.disconnect()
    client.loop_stop()
    return took


def _publisher_process(port: int, n: int, stations: int, qos: int, delay: float) -> None:
    time.sleep(delay)
    publish(port, n, stations, qos)


async def run_once(mode: str, n: int, stations: int, folder: Path, run: int) -> dict[str, float]:
    broker = MosquittoBroker()
    await broker.start()
    store = SqliteStore(folder / f"bench-{run}.db")
    try:
        client_id = f"bench-{run}"
        site = make_site(broker.port, client_id)
        (conn,) = build(site)
        assert isinstance(conn, MqttConnector)
        queue = SampleQueue(2_000_000, "drop_newest")
        writer = Writer(store, queue, batch_max_samples=20_000, flush_interval_ms=50)
        proc: mp.Process | None = None
        pub_s = 0.0
        if mode == "backlog":
            # register the persistent session, leave, then publish while the gateway is away
            reg = asyncio.create_task(conn.run(queue))
            for _ in range(1000):
                if conn.connected:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            reg.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reg
            pub_s = await asyncio.to_thread(publish, broker.port, n, stations, 1)
        else:
            proc = mp.get_context("spawn").Process(
                target=_publisher_process, args=(broker.port, n, stations, 1, 0.5)
            )
            proc.start()
        writer_task = asyncio.create_task(writer.run())
        conn_task = asyncio.create_task(conn.run(queue))
        first: float | None = None
        cpu0 = 0.0
        paho_tid: int | None = None
        t0 = (0.0, 0.0)
        want = n * len(POINTS)
        deadline = time.monotonic() + 600
        while writer.acked_samples < want:
            if first is None and conn.messages > 0:
                first = time.perf_counter()
                cpu0 = time.process_time()
                client = conn._client  # paho's thread, to split the CPU time by thread
                paho_tid = client._thread.native_id if client and client._thread else None
                t0 = _thread_cpu(paho_tid), _thread_cpu(threading.get_native_id())
            if time.monotonic() > deadline or conn_task.done():
                raise RuntimeError(
                    f"stalled: {conn.messages} messages, {writer.acked_samples} samples stored"
                )
            await asyncio.sleep(0.001 if first is None else 0.01)
        end = time.perf_counter()
        cpu = time.process_time() - cpu0
        paho_cpu = _thread_cpu(paho_tid) - t0[0]
        loop_cpu = _thread_cpu(threading.get_native_id()) - t0[1]
        conn_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await conn_task
        queue.close()
        await writer_task
        await writer.close()
        if proc is not None:
            await asyncio.to_thread(proc.join, 30)
        assert first is not None
        elapsed = end - first
        return {
            "msgs_per_s": n / elapsed,
            "samples_per_s": writer.acked_samples / elapsed,
            "elapsed_s": elapsed,
            "publish_s": pub_s,
            "batches": float(writer.acked_batches),
            "cpu_us_per_msg": cpu / n * 1e6,
            "paho_us": paho_cpu / n * 1e6,
            "loop_us": loop_cpu / n * 1e6,
            "other_us": (cpu - paho_cpu - loop_cpu) / n * 1e6,
        }
    finally:
        store.close()
        await broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["backlog", "live"], default="backlog")
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--stations", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(
        f"# bench_mqtt mode={args.mode} messages={args.messages} stations={args.stations} "
        f"points/message={len(POINTS)} | python {platform.python_version()} | "
        f"{os.cpu_count()} cores | {platform.machine()}"
    )
    rates: list[float] = []
    cpu_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        for run in range(args.runs):
            r = asyncio.run(run_once(args.mode, args.messages, args.stations, Path(tmp), run))
            rates.append(r["msgs_per_s"])
            cpu_rates.append(1e6 / r["cpu_us_per_msg"])
            print(
                f"run {run + 1}: {r['msgs_per_s']:,.0f} msgs/s into the store "
                f"({r['samples_per_s']:,.0f} samples/s, {r['elapsed_s']:.2f} s, "
                f"{r['batches']:.0f} batches, {r['cpu_us_per_msg']:.0f} us CPU/msg "
                f"[paho thread {r['paho_us']:.0f}, event loop {r['loop_us']:.0f}, "
                f"writer/other {r['other_us']:.0f}] "
                f"= {1e6 / r['cpu_us_per_msg']:,.0f} msgs per CPU-second"
                + (f"; publish took {r['publish_s']:.2f} s" if r["publish_s"] else "")
                + ")"
            )
    print(
        f"median: {statistics.median(rates):,.0f} msgs/s into the store (target >= 10,000); "
        f"{statistics.median(cpu_rates):,.0f} msgs per CPU-second of the gateway process"
    )


if __name__ == "__main__":
    main()
