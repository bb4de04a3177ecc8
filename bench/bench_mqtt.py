"""MQTT messages/s into the store: private mosquitto -> MqttConnector -> SampleQueue -> Writer
-> SqliteStore (WAL, synchronous FULL), over loopback.

Each message is a quality-station inspection document (the demo's shape: 5 points by JSON
pointer plus a payload timestamp) on ``factory/<station>/inspection``; the connector reads the
stations with one template device (``factory/+/inspection``, device from topic level 1).

Two modes, both counted until the last sample is acknowledged by the store (every message's 5
samples stored); the gateway's CPU time is counted from the connector's start:

* ``backlog`` (default): ``--messages`` are published with QoS 1 while the gateway is away; its
  persistent session holds them at the broker; then the connector starts and drains them. This
  measures the gateway alone (the publisher has finished before the clock starts, at the
  connector's start: connecting is included).
* ``live``: the publisher publishes while the gateway runs (both compete for the 2 cores); the
  clock starts at the first message decoded. QoS 0
  is measured live only (mosquitto does not queue QoS 0 messages for an absent client).

The publisher always runs in a child process (not pinned to a core; neither is the gateway) and
writes pre-built MQTT PUBLISH packets on a raw socket (MQTT 3.1.1; for QoS 1 it reads the
broker's PUBACKs in a thread and finishes when all are in), so that a slow Python publisher
never limits the figure. Each run prints the gateway's CPU time per message split by thread
(paho's network thread, the event loop, the writer thread and the rest).

    .venv/bin/python bench/bench_mqtt.py --runs 5 --messages 50000            # backlog, QoS 1
    .venv/bin/python bench/bench_mqtt.py --mode live --runs 5 --messages 50000
    .venv/bin/python bench/bench_mqtt.py --mode live --qos 0 --runs 5 --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def make_site(port: int, client_id: str, qos: int = 1) -> SiteConfig:
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
            "qos": qos,
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


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    """One MQTT 3.1.1 PUBLISH packet."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _remaining(len(body)) + body


def raw_publish(port: int, n: int, stations: int, qos: int) -> float:
    """Publish n pre-built messages on a raw socket; the seconds it took (QoS 1: until every
    PUBACK is in)."""
    packets = [
        publish_packet(topic, body, qos, i % 65535 + 1)
        for i, (topic, body) in enumerate(payloads(n, stations))
    ]
    sock = socket.create_connection(("127.0.0.1", port))
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # clean session, keep-alive 60 s, id ""
    sock.sendall(b"\x10" + _remaining(len(connect)) + connect)
    connack = b""
    while len(connack) < 4:
        connack += sock.recv(4 - len(connack))
    if connack != b"\x20\x02\x00\x00":
        raise RuntimeError(f"broker refused the publisher: {connack!r}")
    acked = threading.Event()

    def read_acks() -> None:
        want = 4 * n  # PUBACKs are 4 bytes each; nothing else comes to this client
        got = 0
        while got < want:
            data = sock.recv(1 << 16)
            if not data:
                return
            got += len(data)
        acked.set()

    reader = threading.Thread(target=read_acks, name="pubacks")
    if qos:
        reader.start()
    t = time.perf_counter()
    for i in range(0, n, 1000):
        sock.sendall(b"".join(packets[i : i + 1000]))
    if qos and not acked.wait(600):
        raise RuntimeError("the broker did not acknowledge every message")
    took = time.perf_counter() - t
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.shutdown(socket.SHUT_WR)
    if qos:
        reader.join(10)
    sock.close()
    return took


def _publisher_process(port: int, n: int, stations: int, qos: int, out: Any) -> None:
    out.put(raw_publish(port, n, stations, qos))


def start_publisher(
    port: int, n: int, stations: int, qos: int
) -> tuple[mp.process.BaseProcess, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_publisher_process, args=(port, n, stations, qos, out))
    proc.start()
    return proc, out


async def run_once(
    mode: str, n: int, stations: int, qos: int, folder: Path, run: int
) -> dict[str, float]:
    broker = MosquittoBroker()
    await broker.start()
    store = SqliteStore(folder / f"bench-{run}.db")
    try:
        client_id = f"bench-{run}"
        site = make_site(broker.port, client_id, qos)
        (conn,) = build(site)
        assert isinstance(conn, MqttConnector)
        queue = SampleQueue(2_000_000, "drop_newest")
        writer = Writer(store, queue, batch_max_samples=20_000, flush_interval_ms=50)
        # register the persistent session (subscriptions at the broker), then leave
        reg = asyncio.create_task(conn.run(queue))
        for _ in range(1000):
            if conn.connected and conn._subscribed:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the SUBACK
        reg.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reg
        proc: mp.process.BaseProcess | None = None
        result: Any = None
        pub_s = 0.0
        if mode == "backlog":
            proc, result = start_publisher(broker.port, n, stations, qos)
            pub_s = await asyncio.to_thread(result.get, True, 600)
            await asyncio.to_thread(proc.join, 30)
            proc = None
        # CPU from here (the paho thread is created by this run: its whole life is counted);
        # wall clock: backlog from here (connecting included), live from the first message
        cpu0 = time.process_time()
        loop0 = _thread_cpu(threading.get_native_id())
        start = time.perf_counter()
        writer_task = asyncio.create_task(writer.run())
        conn_task = asyncio.create_task(conn.run(queue))
        if mode == "live":
            for _ in range(1000):
                if conn.connected:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            proc, result = start_publisher(broker.port, n, stations, qos)
        first: float | None = start if mode == "backlog" else None
        paho_tid: int | None = None
        want = n * len(POINTS)
        deadline = time.monotonic() + 600
        while writer.acked_samples < want:
            if first is None and conn.messages > 0:
                first = time.perf_counter()
            if paho_tid is None and conn.messages > 0:
                client = conn._client  # paho's thread, to split the CPU time by thread
                paho_tid = client._thread.native_id if client and client._thread else None
            if time.monotonic() > deadline or conn_task.done():
                raise RuntimeError(
                    f"stalled: {conn.messages} messages, {writer.acked_samples} samples stored"
                )
            await asyncio.sleep(0.001 if paho_tid is None else 0.01)
        end = time.perf_counter()
        cpu = time.process_time() - cpu0
        paho_cpu = _thread_cpu(paho_tid)
        loop_cpu = _thread_cpu(threading.get_native_id()) - loop0
        conn_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await conn_task
        queue.close()
        await writer_task
        await writer.close()
        if proc is not None:
            pub_s = await asyncio.to_thread(result.get, True, 600)
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
    ap.add_argument("--qos", type=int, choices=[0, 1], default=1)
    args = ap.parse_args()
    if args.qos == 0 and args.mode == "backlog":
        ap.error(
            "QoS 0 is measured with --mode live (the broker queues no QoS 0 for an absent client)"
        )
    print(
        f"# bench_mqtt mode={args.mode} qos={args.qos} messages={args.messages} "
        f"stations={args.stations} "
        f"points/message={len(POINTS)} | python {platform.python_version()} | "
        f"{os.cpu_count()} cores | {platform.machine()} | publisher: child process, raw socket, "
        "pre-built packets | nothing pinned"
    )
    rates: list[float] = []
    cpu_rates: list[float] = []
    splits: dict[str, list[float]] = {
        "cpu_us_per_msg": [],
        "paho_us": [],
        "loop_us": [],
        "other_us": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        for run in range(args.runs):
            r = asyncio.run(
                run_once(args.mode, args.messages, args.stations, args.qos, Path(tmp), run)
            )
            rates.append(r["msgs_per_s"])
            cpu_rates.append(1e6 / r["cpu_us_per_msg"])
            for key, values in splits.items():
                values.append(r[key])
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
    med = {key: statistics.median(values) for key, values in splits.items()}
    print(
        f"median CPU per message: {med['cpu_us_per_msg']:.0f} us [paho thread "
        f"{med['paho_us']:.0f}, event loop {med['loop_us']:.0f}, "
        f"writer/other {med['other_us']:.0f}]"
    )


if __name__ == "__main__":
    main()
