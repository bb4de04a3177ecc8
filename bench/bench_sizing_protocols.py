"""Sizing of the whole collector on OPC UA or MQTT: points, interval, CPU %, memory.

The same shape as ``bench/bench_sizing.py`` (Modbus TCP): the real
:class:`edge.runtime.Collector` with the defaults (queue, writer, SQLite store with
``synchronous=FULL``, evidence ledger) holds ``--points`` points that all change every
``--interval-ms``, fed by a simulator in a child process (or, for MQTT, a broker process and a
publisher process). After a warm-up it measures, over ``--seconds``: the collector process's
CPU-seconds (all threads) as % of one core and per stored sample, samples stored per second
(``writer.acked_samples``), the resident memory (max VmRSS) and the queue's drops.

* ``--protocol opcua``: one asyncua server (``bench/bench_opcua.py``'s, ``--direct``: every
  round's notifications go straight into its subscription queues, so that the server is not
  the limit) with the points as Double variables, all changing once per interval; one device,
  one subscription (publishing interval = the interval, queue size 1).
* ``--protocol mqtt``: a private mosquitto; a raw-socket publisher process sends, every
  interval, one JSON document per station and tick with 5 points (``bench/bench_mqtt.py``'s
  inspection document, payload timestamp in ms), QoS 1, ``points / 5`` messages per interval
  spread over 100 stations (``factory/<station>/inspection``, one template device). The broker
  gets ``max_inflight_messages --inflight`` (default 1,000; mosquitto's own default, 20,
  bounds live QoS 1 traffic to 20 messages per store commit, see docs/BENCHMARKS.md).

    .venv/bin/python bench/bench_sizing_protocols.py --protocol opcua --points 10000 50000 100000
    .venv/bin/python bench/bench_sizing_protocols.py --protocol mqtt --points 10000 50000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from bench_mqtt import POINTS, _remaining, publish_packet
from bench_opcua import serve as opcua_serve
from bench_opcua import site_text as opcua_site_text
from bench_sizing import dir_bytes, rss_mb

from config.loader import load_site_text
from config.models import SiteConfig
from edge.runtime import Collector

STATIONS = 100


def storage_yaml(tmp: Path) -> str:
    return (
        f"storage: {{kind: sqlite, path: '{tmp / 'store.db'}'}}\n"
        f"evidence: {{ledger_path: '{tmp / 'ledger.db'}', key_dir: '{tmp / 'keys'}'}}\n"
    )


def opcua_site(port: int, points: int, interval_ms: int, tmp: Path) -> SiteConfig:
    return load_site_text(opcua_site_text(port, points, interval_ms, 1) + storage_yaml(tmp))


def mqtt_site(port: int, interval_ms: int, tmp: Path) -> SiteConfig:
    points = "".join(
        f"      - {{id: {pid}, role: {role}, datatype: {dtype}, mqtt: {{topic: "
        f"'factory/+/inspection', pointer: '{ptr}', ts_pointer: /ts}}}}\n"
        for pid, (ptr, role, dtype) in POINTS.items()
    )
    text = (
        "version: 1\nsite: {id: sizing, name: sizing}\ndevices:\n"
        "  - id: stations\n    name: quality stations\n"
        f"    mqtt: {{host: 127.0.0.1, port: {port}, qos: 1, client_id: sizing, "
        "clean_session: false, topic_device_level: 1}\n"
        "    points:\n" + points + storage_yaml(tmp)
    )
    return load_site_text(text)


def mqtt_publisher(port: int, points: int, interval_ms: int, stop: Any) -> None:
    """Child process: every interval, ``points / 5`` messages (QoS 1) spread over the
    stations, each with its own payload time (ms); PUBACKs read and dropped by a thread."""
    per_tick = max(1, points // len(POINTS))
    stations = min(STATIONS, per_tick)
    per_station = per_tick // stations
    step_ms = max(1, interval_ms // per_station)
    sock = socket.create_connection(("127.0.0.1", port))
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
    sock.sendall(b"\x10" + _remaining(len(connect)) + connect)
    got = b""
    while len(got) < 4:
        got += sock.recv(4 - len(got))

    def drain() -> None:
        while sock.recv(1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    tick = time.time()
    mid = 0
    k = 0
    while not stop.is_set():
        base_ms = int(tick * 1000)
        packets = []
        for j in range(per_station):
            k += 1
            for st in range(stations):
                doc = {
                    "ts": base_ms + j * step_ms,
                    "station": f"qs{st}",
                    "totals": {"inspected": k, "passed": k - 1, "rejected": 1, "reworked": 0},
                    "measure": {"diameter_mm": 25.0 + (k % 7) / 1000},
                }
                mid = mid % 65535 + 1
                packets.append(
                    publish_packet(f"factory/qs{st}/inspection", json.dumps(doc).encode(), 1, mid)
                )
        sock.sendall(b"".join(packets))
        tick += interval_ms / 1000
        time.sleep(max(0.0, tick - time.time()))
    sock.sendall(b"\xe0\x00")
    sock.close()


async def measure(site: SiteConfig, tmp: Path, warmup: float, seconds: float) -> dict[str, float]:
    col = Collector(site, evidence=True)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await col.ready.wait()
    await asyncio.sleep(warmup)
    assert col.writer is not None
    w = col.writer
    s0, t0, c0 = w.acked_samples, time.perf_counter(), time.process_time()
    rss = rss_mb()
    end = t0 + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.5)
        rss = max(rss, rss_mb())
    s1, elapsed, cpu = w.acked_samples, time.perf_counter() - t0, time.process_time() - c0
    drops = col.queue.dropped
    stop.set()
    await task
    stored = w.acked_samples
    n = s1 - s0
    return {
        "samples_s": n / elapsed,
        "cpu_pct": cpu / elapsed * 100,
        "cpu_us_per_sample": cpu / max(n, 1) * 1e6,
        "rss_mb": rss,
        "drops": float(drops),
        "store_b": dir_bytes(tmp / "store.db") / max(stored, 1),
        "ledger_b": dir_bytes(tmp / "ledger.db") / max(stored, 1),
        "peak_mb": rss_mb("VmHWM"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_opcua(points: int, interval_ms: int, warmup: float, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    made, overruns = ctx.Value("q", 0), ctx.Value("q", 0)
    port = free_port()
    args = (port, points, False, ready, stop, made, interval_ms / 1000, True, overruns)
    proc = ctx.Process(target=opcua_serve, args=args, daemon=True)
    proc.start()
    try:
        if not ready.wait(900):
            raise SystemExit("the OPC UA server did not start")
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            r = asyncio.run(
                measure(opcua_site(port, points, interval_ms, tmp), tmp, warmup, seconds)
            )
        r["overruns"] = float(overruns.value)
        return r
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def run_mqtt(
    points: int, interval_ms: int, warmup: float, seconds: float, inflight: int = 1000
) -> dict[str, float]:
    from connectors.simulators import broker as broker_module
    from connectors.simulators.broker import MosquittoBroker

    # live QoS 1 traffic to the gateway is bounded by the broker's unacknowledged messages per
    # client divided by the time to store them (a PUBACK waits for the commit); mosquitto's
    # default, 20, caps it below these rates: the broker is configured as a site would be
    stock_config = broker_module.mosquitto_config

    def config(port: int, host: str, data_dir: Path) -> str:
        return stock_config(port, host, data_dir) + f"max_inflight_messages {inflight}\n"

    broker_module.mosquitto_config = config  # type: ignore[assignment]

    async def main() -> dict[str, float]:
        broker = MosquittoBroker()
        await broker.start()
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        proc = ctx.Process(
            target=mqtt_publisher, args=(broker.port, points, interval_ms, stop), daemon=True
        )
        try:
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                site = mqtt_site(broker.port, interval_ms, tmp)
                proc.start()
                return await measure(site, tmp, warmup, seconds)
        finally:
            stop.set()
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
            await broker.stop()

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--protocol", choices=("opcua", "mqtt"), required=True)
    ap.add_argument("--points", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument(
        "--inflight",
        type=int,
        default=1000,
        help="(mqtt) the broker's max_inflight_messages (mosquitto's default is 20)",
    )
    args = ap.parse_args()
    print(
        f"bench_sizing_protocols: {args.protocol}, interval {args.interval_ms} ms, store + "
        f"ledger (synchronous=FULL); python {platform.python_version()}, "
        f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
    )
    for points in args.points:
        results = []
        for i in range(args.runs):
            if args.protocol == "opcua":
                r = run_opcua(points, args.interval_ms, args.warmup, args.seconds)
            else:
                r = run_mqtt(points, args.interval_ms, args.warmup, args.seconds, args.inflight)
            results.append(r)
            print(
                f"  {points:,} points run {i + 1}: {r['samples_s']:,.0f} samples/s stored "
                f"(offered {points * 1000 / args.interval_ms:,.0f}/s), CPU {r['cpu_pct']:.1f} % "
                f"of a core, {r['cpu_us_per_sample']:.2f} us CPU per sample, RSS "
                f"{r['rss_mb']:.0f} MB (process peak {r['peak_mb']:.0f} MB), drops "
                f"{r['drops']:.0f}"
                + (f", server rounds overrun {r['overruns']:.0f}" if "overruns" in r else "")
                + f"; load {os.getloadavg()[0]:.2f}"
            )
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"{args.protocol} {points:,} points @ {args.interval_ms} ms: median "
            f"{med['samples_s']:,.0f} samples/s, CPU {med['cpu_pct']:.1f} %, "
            f"{med['cpu_us_per_sample']:.2f} us/sample, RSS {med['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
