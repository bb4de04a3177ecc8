"""Sizing of the whole collector on OPC UA or MQTT: points, interval, CPU %, memory.

The same shape as ``bench/bench_sizing.py`` (Modbus TCP): the real
:class:`edge.runtime.Collector` with the defaults (queue, writer, SQLite store with
``synchronous=FULL``, evidence ledger) holds ``--points`` points that all change every
``--interval-ms``, fed by a simulator in a child process (or, for MQTT, a broker process and a
publisher process). After a warm-up it measures, over ``--seconds``: the collector process's
CPU-seconds (all threads) as % of one core and per stored sample (and the event loop's
thread alone: the connectors' decoding), samples stored per second
(``writer.acked_samples``), the resident memory (max VmRSS) and the queue's drops.

* ``--protocol opcua``: one asyncua server in a child process with the points as Double
  variables, all changing once per interval; one device, one subscription (publishing interval
  half the interval, ``--publish-ms``, so that no round is replaced before it is published;
  queue size 1). ``--server prebuilt`` (default): every round's DataChangeNotification bytes are
  written in place with numpy (``bench/bench_opcua.py``'s ``PrebuiltRound``), so that the
  server is not the limit; ``direct``: asyncua notification objects put in its queues.
* ``--protocol mqtt``: a private mosquitto and ``bench/mqtt_loadgen.py`` in a child process
  (pre-encoded PUBLISH packets on raw sockets, under a microsecond per message) sending, every
  interval, one JSON document per station and tick with 5 points (``bench/bench_mqtt.py``'s
  inspection document, payload timestamp in ms), ``--qos`` 0 or 1, ``points / 5`` messages per
  interval (or ``--messages`` per second) spread over ``--stations`` (``factory/<station>/
  inspection``, one template device). The broker gets ``max_inflight_messages --inflight``
  (default 1,000; mosquitto's own default is 20; 0 is unlimited).

Besides the collector, it reports the CPU % of the side processes over the same window
(broker, publisher, server) and the rates they reached (messages sent, changes made): when
those fall short of what was offered, the limit was outside the collector.

    .venv/bin/python bench/bench_sizing_protocols.py --protocol opcua --points 10000 50000 100000
    .venv/bin/python bench/bench_sizing_protocols.py --protocol mqtt --points 10000 50000 100000
    .venv/bin/python bench/bench_sizing_protocols.py --protocol mqtt --messages 10000 50000 --qos 0
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mqtt import POINTS
from bench_opcua import serve as opcua_serve
from bench_opcua import site_text as opcua_site_text
from bench_sizing import dir_bytes, print_allocations, rss_mb
from mqtt_loadgen import publish as mqtt_publish

from config.loader import load_site_text
from config.models import SiteConfig
from edge.runtime import Collector

STATIONS = 100
PROFILE: list[Path] = []  # --profile: a cProfile of the event loop thread over the window
TRACE = [0]  # --tracemalloc: how many allocation sites to print at the window's end (0: none)


def storage_yaml(tmp: Path) -> str:
    return (
        f"storage: {{kind: sqlite, path: '{tmp / 'store.db'}'}}\n"
        f"evidence: {{ledger_path: '{tmp / 'ledger.db'}', key_dir: '{tmp / 'keys'}'}}\n"
    )


def mqtt_site(port: int, interval_ms: int, tmp: Path, qos: int = 1) -> SiteConfig:
    points = "".join(
        f"      - {{id: {pid}, role: {role}, datatype: {dtype}, mqtt: {{topic: "
        f"'factory/+/inspection', pointer: '{ptr}', ts_pointer: /ts}}}}\n"
        for pid, (ptr, role, dtype) in POINTS.items()
    )
    text = (
        "version: 1\nsite: {id: sizing, name: sizing}\ndevices:\n"
        "  - id: stations\n    name: quality stations\n"
        f"    mqtt: {{host: 127.0.0.1, port: {port}, qos: {qos}, client_id: sizing, "
        "clean_session: false, topic_device_level: 1}\n"
        "    points:\n" + points + storage_yaml(tmp)
    )
    return load_site_text(text)


_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU-seconds (user + system, all threads) of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TCK


async def measure(
    site: SiteConfig,
    tmp: Path,
    warmup: float,
    seconds: float,
    others: dict[str, int] | None = None,
    counters: dict[str, Any] | None = None,
    settle: int = 0,
    points: int = 1,
) -> dict[str, float]:
    """The collector's figures over the window; ``others``: name -> pid of the processes
    (broker, publisher, server) whose CPU % over the same window is reported as
    ``cpu_<name>``; ``counters``: name -> shared counter whose rate is reported as
    ``<name>_s``; ``settle``: the warm-up starts once this many samples are stored (an OPC
    UA subscription of 50,000 items takes longer than the warm-up to create); ``points``: the
    configured points (``--tracemalloc`` prints bytes per point)."""
    others = others or {}
    counters = counters or {}
    col = Collector(site, evidence=True)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await col.ready.wait()
    assert col.writer is not None
    give_up = time.monotonic() + 600
    while col.writer.acked_samples < settle and time.monotonic() < give_up:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    await asyncio.sleep(warmup)
    w = col.writer
    s0, t0, c0 = w.acked_samples, time.perf_counter(), time.process_time()
    l0 = time.thread_time()  # this coroutine runs on the event loop's thread
    o0 = {name: proc_cpu(pid) for name, pid in others.items()}
    n0 = {name: v.value for name, v in counters.items()}
    load0 = os.getloadavg()[0]
    prof = cProfile.Profile() if PROFILE else None
    if prof is not None:
        prof.enable()
    rss = rss_mb()
    end = t0 + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.5)
        rss = max(rss, rss_mb())
    s1, elapsed, cpu = w.acked_samples, time.perf_counter() - t0, time.process_time() - c0
    loop_cpu = time.thread_time() - l0
    if prof is not None:
        prof.disable()
        prof.dump_stats(PROFILE[0])
    o1 = {name: proc_cpu(pid) for name, pid in others.items()}
    n1 = {name: v.value for name, v in counters.items()}
    load1 = os.getloadavg()[0]
    drops = col.queue.dropped
    if TRACE[0]:
        print_allocations(TRACE[0], points)
    stop.set()
    await task
    stored = w.acked_samples
    n = s1 - s0
    return {
        "samples_s": n / elapsed,
        "cpu_pct": cpu / elapsed * 100,
        "cpu_us_per_sample": cpu / max(n, 1) * 1e6,
        "loop_pct": loop_cpu / elapsed * 100,
        "loop_us_per_sample": loop_cpu / max(n, 1) * 1e6,
        "rss_mb": rss,
        "drops": float(drops),
        "store_b": dir_bytes(tmp / "store.db") / max(stored, 1),
        "ledger_b": dir_bytes(tmp / "ledger.db") / max(stored, 1),
        "peak_mb": rss_mb("VmHWM"),
        "load": max(load0, load1),
        **{f"cpu_{name}": (o1[name] - o0[name]) / elapsed * 100 for name in others},
        **{f"{name}_s": (n1[name] - n0[name]) / elapsed for name in counters},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_opcua(
    points: int,
    interval_ms: int,
    warmup: float,
    seconds: float,
    publish_ms: int,
    prebuilt: bool = True,
) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    made, overruns = ctx.Value("q", 0), ctx.Value("q", 0)
    port = free_port()
    args = (port, points, False, ready, stop, made, interval_ms / 1000, True, overruns, prebuilt)
    proc = ctx.Process(target=opcua_serve, args=args, daemon=True)
    proc.start()
    try:
        if not ready.wait(900):
            raise SystemExit("the OPC UA server did not start")
        assert proc.pid is not None
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            site = load_site_text(opcua_site_text(port, points, publish_ms, 1) + storage_yaml(tmp))
            counters = {"made": made, "overruns": overruns}
            pids = {"server": proc.pid}
            r = asyncio.run(measure(site, tmp, warmup, seconds, pids, counters, 2 * points, points))
        r["overruns"] = r["overruns_s"] * seconds  # rounds overrun in the window
        return r
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def run_mqtt(
    rate: float,
    interval_ms: int,
    warmup: float,
    seconds: float,
    inflight: int = 1000,
    qos: int = 1,
    connections: int = 1,
    stations: int = STATIONS,
) -> dict[str, float]:
    """``rate`` messages/s of 5 points each through a private mosquitto."""
    from connectors.simulators import broker as broker_module
    from connectors.simulators.broker import MosquittoBroker

    # live QoS 1 traffic to the gateway is bounded by the broker's unacknowledged messages per
    # client divided by the time to store them (a PUBACK waits for the commit); mosquitto's
    # default, 20, caps it below these rates: the broker is configured as a site would be
    # (its max_queued_messages is 100,000 in the simulator's configuration)
    stock_config = broker_module.mosquitto_config

    def config(port: int, host: str, data_dir: Path) -> str:
        return stock_config(port, host, data_dir) + f"max_inflight_messages {inflight}\n"

    broker_module.mosquitto_config = config

    async def main() -> dict[str, float]:
        broker = MosquittoBroker()
        await broker.start()
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        sent, acked = ctx.Value("q", 0), ctx.Value("q", 0)
        proc = ctx.Process(
            target=mqtt_publish,
            args=(broker.port, rate, interval_ms, qos, stop, sent, acked, stations, connections),
            daemon=True,
        )
        try:
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                site = mqtt_site(broker.port, interval_ms, tmp, qos)
                proc.start()
                assert proc.pid is not None
                assert broker._proc is not None
                pids = {"broker": broker._proc.pid, "publisher": proc.pid}
                points = int(rate * len(POINTS) * interval_ms / 1000)
                return await measure(
                    site, tmp, warmup, seconds, pids, {"sent": sent}, points=points
                )
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
    ap.add_argument(
        "--messages",
        type=int,
        nargs="+",
        help="(mqtt) messages per second offered instead of --points (5 points each)",
    )
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
    ap.add_argument("--qos", type=int, choices=(0, 1), default=1, help="(mqtt) QoS")
    ap.add_argument("--connections", type=int, default=1, help="(mqtt) publisher sockets")
    ap.add_argument("--stations", type=int, default=STATIONS, help="(mqtt) stations (topics)")
    ap.add_argument(
        "--publish-ms",
        type=int,
        help="(opcua) publishing interval (default: half the interval, so that no round is "
        "replaced before it is published)",
    )
    ap.add_argument(
        "--server",
        choices=("prebuilt", "direct"),
        default="prebuilt",
        help="(opcua) prebuilt: every round's DataChangeNotification bytes written in place "
        "with numpy (the server is not the limit); direct: asyncua notification objects "
        "injected into its queues (asyncua's own encoding, about 20-30k changes/s here)",
    )
    ap.add_argument("--profile", type=Path, help="cProfile of the event loop thread (window)")
    ap.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="N",
        help="trace Python allocations of the collector's process (slow; started before the "
        "site is loaded) and print the N largest live sites at the window's end, per point",
    )
    args = ap.parse_args()
    if args.profile:
        PROFILE.append(args.profile)
    TRACE[0] = args.tracemalloc
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    print(
        f"bench_sizing_protocols: {args.protocol}, interval {args.interval_ms} ms, store + "
        f"ledger (synchronous=FULL); python {platform.python_version()}, "
        f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
    )
    per_msg = len(POINTS)
    sizes = (
        [m * per_msg * args.interval_ms // 1000 for m in args.messages]
        if args.messages
        else args.points
    )
    for points in sizes:
        results = []
        offered = points * 1000 / args.interval_ms
        for i in range(args.runs):
            if args.protocol == "opcua":
                publish_ms = args.publish_ms or max(1, args.interval_ms // 2)
                r = run_opcua(
                    points,
                    args.interval_ms,
                    args.warmup,
                    args.seconds,
                    publish_ms,
                    args.server == "prebuilt",
                )
                extra = (
                    f"; server made {r['made_s']:,.0f} changes/s, overran {r['overruns']:.0f} "
                    f"rounds, server CPU {r['cpu_server']:.0f} %"
                )
            else:
                r = run_mqtt(
                    offered / per_msg,
                    args.interval_ms,
                    args.warmup,
                    args.seconds,
                    args.inflight,
                    args.qos,
                    args.connections,
                    args.stations,
                )
                extra = (
                    f"; messages sent {r['sent_s']:,.0f}/s (offered {offered / per_msg:,.0f}/s), "
                    f"stored {r['samples_s'] / per_msg:,.0f} msgs/s; CPU broker "
                    f"{r['cpu_broker']:.0f} %, publisher {r['cpu_publisher']:.0f} %"
                )
            results.append(r)
            print(
                f"  {points:,} points run {i + 1}: {r['samples_s']:,.0f} samples/s stored "
                f"(offered {offered:,.0f}/s), collector CPU {r['cpu_pct']:.1f} % "
                f"of a core, {r['cpu_us_per_sample']:.2f} us CPU per sample (event loop "
                f"thread {r['loop_pct']:.1f} %, {r['loop_us_per_sample']:.2f} us), RSS "
                f"{r['rss_mb']:.0f} MB (process peak {r['peak_mb']:.0f} MB), drops "
                f"{r['drops']:.0f}" + extra + f"; load {r['load']:.2f}",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"{args.protocol} {points:,} points @ {args.interval_ms} ms: median "
            f"{med['samples_s']:,.0f} samples/s, CPU {med['cpu_pct']:.1f} %, "
            f"{med['cpu_us_per_sample']:.2f} us/sample (event loop {med['loop_pct']:.1f} %, "
            f"{med['loop_us_per_sample']:.2f} us), RSS {med['rss_mb']:.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
