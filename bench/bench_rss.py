"""Collector memory with 10,000 configured points.

A site of 100 Modbus devices x 100 points (deadbands on half of them) runs in the Collector
with a synthetic connector per device (our Connector contract) that reads all its points once
per ``--interval`` seconds, i.e. 10,000 samples/s by default, into the embedded SQLite store.
Prints the process RSS (VmRSS) after start-up and at the end, and the peak (VmHWM).

    .venv/bin/python bench/bench_rss.py [--seconds 30] [--interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from config.models import SiteConfig
from connectors.base import Sample, Sink
from edge.runtime import Collector


def rss_mb() -> tuple[float, float]:
    fields: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def site(devices: int, points: int, db: Path) -> SiteConfig:
    devs: list[dict[str, Any]] = []
    for d in range(devices):
        pts = []
        for p in range(points):
            pt: dict[str, Any] = {"id": f"p{p:03d}", "modbus": {"address": 2 * p}}
            if p % 2:
                pt["deadband"] = {"value": 0.5}
            pts.append(pt)
        devs.append(
            {
                "id": f"dev{d:03d}",
                "name": f"设备 {d}",
                "modbus": {"host": "127.0.0.1", "port": 15020, "unit": 1},
                "points": pts,
            }
        )
    return SiteConfig.model_validate(
        {
            "site": {"id": "rss", "name": "RSS bench"},
            "devices": devs,
            "storage": {"kind": "sqlite", "path": str(db)},
            "evidence": {"enabled": False},
            "runtime": {"health_interval_s": 1.0},
        }
    )


class Synthetic:
    """Reads every point of one device each interval (a sine per point)."""

    def __init__(self, device: str, points: list[str], interval: float) -> None:
        self.name = f"synthetic:{device}"
        self.devices = (device,)
        self.points = points
        self.interval = interval

    async def run(self, sink: Sink) -> None:
        dev = self.devices[0]
        sink.link(dev, True)
        k = 0
        while True:
            now = time.time_ns()
            sink.put_many(
                [
                    Sample(dev, p, now, 100.0 * math.sin(k / 10 + i))
                    for i, p in enumerate(self.points)
                ]
            )
            k += 1
            await asyncio.sleep(self.interval)


async def main_async(seconds: float, interval: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = site(100, 100, Path(tmp) / "rss.db")
        conns = [Synthetic(d.id, [p.id for p in d.points], interval) for d in s.devices]
        col = Collector(s, connectors=conns)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        await asyncio.sleep(2.0)
        start_rss, _ = rss_mb()
        samples: list[float] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(1.0)
            samples.append(rss_mb()[0])
        stop.set()
        await task
        _, hwm = rss_mb()
        peak = max(hwm, *samples)  # the kernel updates VmHWM lazily
        w = col.writer
        assert w is not None
        print(
            f"collector, 100 devices x 100 points = 10,000 points, {1 / interval:g} reads/s each, "
            f"{seconds:g} s"
        )
        print(
            f"  samples received {w.received:,}, stored {w.acked_samples:,}, "
            f"dropped {col.queue.dropped:,}"
        )
        print(
            f"  RSS after start-up {start_rss:.1f} MB, max while running {max(samples):.1f} MB, "
            f"peak (VmHWM) {peak:.1f} MB"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    asyncio.run(main_async(args.seconds, args.interval))


if __name__ == "__main__":
    main()
