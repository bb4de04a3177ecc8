"""Live update latency, store write -> SSE client, and memory of the whole demo.

1. A real `shopfloor serve` process (live poll 250 ms, the default) and 10 SSE clients on
   loopback. This process writes one changed value into the SQLite store every 0.3 s (as the
   collector's writer does) and times until each client received it. The poll interval
   bounds the latency: expect about half of it on average. The collector's store also holds
   its `latest` table back for up to 0.5 s (edge.store.sqlite latest_interval_s); the bench
   measures the service's part (interval 0) and prints that bound beside it.
2. `shopfloor demo` (simulators + collector + gateway in one process, plus the private MQTT
   broker) for --demo-seconds; the resident memory of the process tree is sampled every
   second. Then the same with --no-services (no gateway) for the gateway's share.

    .venv/bin/python bench/bench_live.py [--writes 40] [--clients 10] [--demo-seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.base import Sample  # noqa: E402
from tests.gateway.support import Writer, start_gateway, stop_gateway  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def live_latency(url: str, token: str, store: Path, writes: int, clients: int) -> list[float]:
    sent: dict[float, float] = {}
    got: list[float] = []
    ready = asyncio.Event()
    connected = 0

    async def client() -> None:
        nonlocal connected
        mine = 0
        async with (
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=None
            ) as c,
            c.stream("GET", "/api/v1/live") as r,
        ):
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    if event == "snapshot":
                        connected += 1
                        if connected == clients:
                            ready.set()
                    elif event == "latest":
                        now = time.perf_counter()
                        for s in json.loads(line[6:])["samples"]:
                            if s["device"] == "cnc1" and s["point"] == "spindle_kw":
                                t0 = sent.get(s["value"])
                                if t0 is not None:
                                    got.append(now - t0)
                                    mine += 1
                        if mine >= writes:
                            return

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1.0)  # the first poll publishes everything once
    w = Writer(store)  # latest_interval_s = 0: every write reaches the latest table
    try:
        for i in range(writes):
            value = 1000.0 + i
            sent[value] = time.perf_counter()
            await asyncio.to_thread(w.write, [Sample("cnc1", "spindle_kw", time.time_ns(), value)])
            await asyncio.sleep(0.3)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        except TimeoutError:
            print(f"warning: {len(got)} of {writes * clients} updates arrived", file=sys.stderr)
    finally:
        for t in tasks:
            t.cancel()
        w.close()
    return got


def tree_rss_kb(pid: int) -> int:
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            continue
    return total


def demo_rss(seconds: float, services: bool) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "edge.cli.main",
            "demo",
            "--data",
            tmp,
            "--duration",
            str(seconds),
            "--history-days",
            "1",
        ]
        if not services:
            cmd.append("--no-services")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: list[int] = []
        try:
            while proc.poll() is None:
                samples.append(tree_rss_kb(proc.pid))
                time.sleep(1.0)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)
    steady = samples[len(samples) // 2 :] or [0]
    return max(samples or [0]), int(statistics.median(steady))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=40)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--demo-seconds", type=float, default=40.0)
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        gw = start_gateway(Path(tmp), live_poll_ms=250)
        try:
            lat = asyncio.run(
                live_latency(gw.url, gw.tokens["viewer"], gw.store_path, args.writes, args.clients)
            )
            service_kb = tree_rss_kb(gw.proc.pid)
        finally:
            stop_gateway(gw)
    ms = [x * 1000 for x in lat]
    print(
        f"live latency store write -> SSE client ({args.clients} clients, {args.writes} "
        f"writes, poll 250 ms): n={len(ms)} p50 {statistics.median(ms):.0f} ms  "
        f"p99 {pct(ms, 99):.0f} ms  max {max(ms):.0f} ms"
    )
    print("  + the collector's latest-table throttle: up to 500 ms (edge.store.sqlite)")
    print(
        f"`shopfloor serve` alone after the run (4 readers, {args.clients} streams): "
        f"RSS {service_kb / 1024:.0f} MB"
    )
    if args.demo_seconds > 0:
        peak, steady = demo_rss(args.demo_seconds, services=True)
        print(
            f"demo RSS (simulators + collector + gateway + broker): peak {peak / 1024:.0f} MB, "
            f"steady {steady / 1024:.0f} MB"
        )
        peak2, steady2 = demo_rss(args.demo_seconds, services=False)
        print(
            f"demo RSS without the gateway (--no-services): peak {peak2 / 1024:.0f} MB, "
            f"steady {steady2 / 1024:.0f} MB -> gateway share about "
            f"{(steady - steady2) / 1024:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
