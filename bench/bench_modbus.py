"""Modbus registers/s read by the connector from the simulated meters, over loopback.

A site of ``--units`` simulated meters (one unit each) with ``--registers`` holding registers of
float32 CDAB points is served by ``connectors.simulators.meters.build_meters`` in a child
process (its own core); the connector polls them back to back (interval 10 ms, requests
coalesced to 125 registers) for ``--seconds``. Prints registers/s, samples/s and requests/s per
run and the median of the runs.

    .venv/bin/python bench/bench_modbus.py                # 10 units x 1000 registers, 5 runs
    .venv/bin/python bench/bench_modbus.py --static       # fixed registers (no value model)
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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.models import SiteConfig
from connectors.base import Sample, SampleBlock
from connectors.modbus import ModbusConnector, build

ROLES = ("energy_kwh", "power_kw", "measurement")


def make_site(port: int, units: int, registers: int) -> SiteConfig:
    devices: list[dict[str, Any]] = []
    for u in range(1, units + 1):
        points = [
            {
                "id": f"p{a}",
                "role": ROLES[(a // 2) % len(ROLES)],
                "datatype": "float32",
                "modbus": {"address": a, "order": "CDAB"},
            }
            for a in range(0, registers, 2)
        ]
        devices.append(
            {
                "id": f"meter{u}",
                "name": f"meter {u}",
                "modbus": {
                    "host": "127.0.0.1",
                    "port": port,
                    "unit": u,
                    "poll_interval_ms": 10,
                    "timeout_s": 2.0,
                },
                "points": points,
            }
        )
    return SiteConfig.model_validate({"site": {"id": "bench", "name": "bench"}, "devices": devices})


def serve(port: int, units: int, registers: int, static: bool, ready: Any) -> None:
    """The simulator process: serves until the parent terminates it."""
    from connectors.simulators.base import SimClock
    from connectors.simulators.meters import MeterServer, UnitImage, build_meters

    async def main() -> None:
        if static:
            images = {
                u: UnitImage(holding={a: a for a in range(registers)}) for u in range(1, units + 1)
            }
            servers = [MeterServer(images, port=port)]
        else:
            servers = list(build_meters(make_site(port, units, registers), 7, SimClock(speed=60)))
        for s in servers:
            await s.start()
        ready.send("ready")
        ready.close()
        await asyncio.Event().wait()

    asyncio.run(main())


class CountingSink:
    def __init__(self) -> None:
        self.samples = 0
        self.bad = 0

    def put(self, sample: Sample) -> None:
        self.samples += 1

    def put_many(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            self.samples += 1
            self.bad += int(s.quality)

    def put_block(self, block: SampleBlock) -> None:
        self.samples += len(block)
        self.bad += int(block.quality.sum())

    def link(self, device: str, connected: bool) -> None:
        return None

    def error(self, device: str, kind: str) -> None:
        self.bad += 1


async def one_run(site: SiteConfig, seconds: float) -> dict[str, float]:
    (conn,) = build(site)
    assert isinstance(conn, ModbusConnector)
    sink = CountingSink()
    task = asyncio.create_task(conn.run(sink))
    await asyncio.sleep(0.5)  # connect and warm up
    r0, s0, q0 = conn.stats.registers, sink.samples, conn.stats.requests
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    r1, s1, q1 = conn.stats.registers, sink.samples, conn.stats.requests
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if sink.bad:
        raise SystemExit(f"{sink.bad} bad samples/errors during the run: fix the setup first")
    return {
        "registers_s": (r1 - r0) / elapsed,
        "samples_s": (s1 - s0) / elapsed,
        "requests_s": (q1 - q0) / elapsed,
        "requests_per_cycle": len(conn.requests),
        "cpu_us_per_request": cpu / max(1, q1 - q0) * 1e6,
        "registers_per_cpu_s": (r1 - r0) / max(cpu, 1e-9),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--units", type=int, default=10)
    ap.add_argument("--registers", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--static", action="store_true", help="serve fixed registers, no meter model")
    args = ap.parse_args()
    port = free_port()
    ctx = mp.get_context("spawn")
    ready, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=serve, args=(port, args.units, args.registers, args.static, child_end)
    )
    proc.start()
    child_end.close()
    try:
        if not ready.poll(120) or ready.recv() != "ready":
            raise SystemExit("the simulator did not start")
        site = make_site(port, args.units, args.registers)
        mode = "static registers" if args.static else "simulated meters (model on each read)"
        print(
            f"bench_modbus: {args.units} units x {args.registers} registers (float32 CDAB), "
            f"{mode}; python {platform.python_version()}, {os.cpu_count()} cores"
        )
        results = []
        for i in range(args.runs):
            r = asyncio.run(one_run(site, args.seconds))
            results.append(r)
            print(
                f"run {i + 1}: {r['registers_s']:,.0f} registers/s, "
                f"{r['samples_s']:,.0f} samples/s, {r['requests_s']:,.0f} requests/s "
                f"({r['requests_per_cycle']:.0f} requests per cycle); connector CPU "
                f"{r['cpu_us_per_request']:,.0f} us/request, "
                f"{r['registers_per_cpu_s']:,.0f} registers per CPU-second"
            )
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"median: {med['registers_s']:,.0f} registers/s, {med['samples_s']:,.0f} samples/s, "
            f"{med['requests_s']:,.0f} requests/s; connector CPU {med['cpu_us_per_request']:,.0f} "
            f"us/request, {med['registers_per_cpu_s']:,.0f} registers per CPU-second"
        )
    finally:
        proc.terminate()
        proc.join(10)


if __name__ == "__main__":
    main()
