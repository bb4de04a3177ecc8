"""The Modbus connector alone (no queue, store or ledger): CPU per sample of each TCP client.

``--points`` uint16 points (1,000 per unit, 10 units per port) are polled back to back
(interval 10 ms, 125-register reads) from ``bench/fast_modbus_server.py`` in a child process;
the sink only counts what it is given. For each run and client (``lean``, ``pymodbus``,
alternated) it prints the connector process's CPU-seconds per sample, samples/s and requests/s
over ``--seconds`` after a one-second warm-up, then the medians. This is the read side the
whole-collector figures of ``bench_sizing.py`` include.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_wire.py --points 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.models import Device
from connectors.base import Sample, SampleBlock
from connectors.modbus import ModbusConnector

PER_UNIT = 1000
PER_PORT = 10


class CountingSink:
    def __init__(self) -> None:
        self.samples = 0

    def put(self, sample: Sample) -> None:
        self.samples += 1

    def put_many(self, samples: Any) -> None:
        self.samples += sum(1 for _ in samples)

    def put_block(self, block: SampleBlock) -> None:
        self.samples += len(block.points)

    def link(self, device: str, connected: bool) -> None:
        pass

    def error(self, device: str, kind: str) -> None:
        pass


def devices(ports: list[int], points: int, client: str) -> list[Device]:
    out = []
    for u in range(1, (points + PER_UNIT - 1) // PER_UNIT + 1):
        out.append(
            Device.model_validate(
                {
                    "id": f"m{u:03d}",
                    "name": f"m{u}",
                    "modbus": {
                        "host": "127.0.0.1",
                        "port": ports[(u - 1) // PER_PORT],
                        "unit": (u - 1) % PER_PORT + 1,
                        "poll_interval_ms": 10,
                        "timeout_s": 5.0,
                        "client": client,
                    },
                    "points": [
                        {"id": f"r{a}", "datatype": "uint16", "modbus": {"address": a}}
                        for a in range(PER_UNIT)
                    ],
                }
            )
        )
    return out


def serve(ports: list[int], ready: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fast_modbus_server import run

    run(ports, PER_PORT, PER_UNIT, ready)


async def one(ports: list[int], points: int, client: str, seconds: float) -> tuple[float, ...]:
    devs = devices(ports, points, client)
    conns = [ModbusConnector(devs[i : i + PER_PORT]) for i in range(0, len(devs), PER_PORT)]
    sink = CountingSink()
    tasks = [asyncio.ensure_future(c.run(sink)) for c in conns]
    try:
        await asyncio.sleep(1.0)
        s0, r0, c0, t0 = (
            sink.samples,
            sum(c.stats.requests for c in conns),
            time.process_time(),
            time.monotonic(),
        )
        await asyncio.sleep(seconds)
        s1, r1, c1, t1 = (
            sink.samples,
            sum(c.stats.requests for c in conns),
            time.process_time(),
            time.monotonic(),
        )
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
    n = s1 - s0
    return (c1 - c0) / n * 1e6, n / (t1 - t0), (r1 - r0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tests.support.net import free_port

    units = (args.points + PER_UNIT - 1) // PER_UNIT
    ports = [free_port() for _ in range((units + PER_PORT - 1) // PER_PORT)]
    ctx = mp.get_context("spawn")
    ready, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=serve, args=(ports, child_end))
    proc.start()
    child_end.close()
    print(f"bench_wire: {args.points} uint16 points, interval 10 ms; load {os.getloadavg()[0]:.2f}")
    results: dict[str, list[tuple[float, ...]]] = {"lean": [], "pymodbus": []}
    try:
        if not ready.poll(60) or ready.recv() != "ready":
            raise SystemExit("the simulator did not start")
        for i in range(args.runs):
            for client in results:
                r = asyncio.run(one(ports, args.points, client, args.seconds))
                results[client].append(r)
                print(
                    f"  run {i + 1} {client:8}: {r[0]:.2f} us CPU per sample, "
                    f"{r[1]:,.0f} samples/s, {r[2]:,.0f} requests/s"
                )
    finally:
        proc.terminate()
        proc.join()
    for client, rs in results.items():
        print(
            f"{client:8}: median {statistics.median(r[0] for r in rs):.2f} us CPU per sample, "
            f"{statistics.median(r[1] for r in rs):,.0f} samples/s, "
            f"{statistics.median(r[2] for r in rs):,.0f} requests/s; "
            f"load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
