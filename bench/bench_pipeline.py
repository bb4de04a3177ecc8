"""Pipeline throughput: SampleQueue -> Writer (recording, per-device batches) -> SqliteStore.

Samples are built beforehand (building them is the connector's cost); the clock runs from the
first put until the store acknowledged the last batch (synchronous=FULL, WAL). The process is
pinned to one core. Prints samples/s of wall time (includes fsync waits and whatever else
runs on that core) and samples per CPU-second of the process (what one dedicated core
sustains when the disk keeps up).

With ``--ledger`` the evidence ledger observes the writer as the collector runs it (its own
thread, ``synchronous=FULL``) and the clock stops once the ledger logged the last batch too.

    .venv/bin/python bench/bench_pipeline.py [--samples N] [--runs R] [--ledger]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from config.models import Deadband
from connectors.base import Sample
from edge.health import HealthTracker
from edge.queue import SampleQueue
from edge.recording import Recorder, rule_for
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from edge.writer import Writer


def make_samples(n: int, devices: int, points: int) -> list[Sample]:
    t0 = time.time_ns()
    out = []
    for i in range(n):
        d = i % devices
        p = (i // devices) % points
        out.append(Sample(f"dev{d:03d}", f"p{p:02d}", t0 + i * 1000, float(i % 977) * 0.5))
    return out


async def one_run(
    samples: list[Sample], db: Path, deadband: bool, chunk: int, ledger: Ledger | None = None
) -> tuple[float, float]:
    store = SqliteStore(db)
    q = SampleQueue(len(samples) + 1)
    rec = Recorder({})
    if deadband:
        keys = {(s.device, s.point) for s in samples[:10_000]}
        rec = Recorder({k: rule_for(Deadband(value=0.25), 300.0) for k in keys})
    health = HealthTracker()
    w = Writer(store, q, recorder=rec, health=health, batch_max_samples=5000,
               flush_interval_ms=200, observers=[ledger] if ledger else [])  # fmt: skip
    task = asyncio.create_task(w.run())
    t0 = time.perf_counter()
    c0 = time.process_time()
    put, put_many = q.put, q.put_many
    for i in range(0, len(samples), 1000):
        part = samples[i : i + 1000]
        if chunk == 1:
            for s in part:
                put(s)
        else:
            put_many(part)
        await asyncio.sleep(0)  # let the writer run, as connectors do between reads
    q.close()
    await task
    if ledger is not None:
        await asyncio.to_thread(ledger.flush)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert w.received == len(samples)
    await w.close()
    return len(samples) / elapsed, len(samples) / cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ledger", action="store_true", help="with the evidence ledger")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    shapes = [
        ("100 devices x 10 points, put_many(1000)", 100, 10, False, 1000),
        ("100 devices x 10 points, put() per sample", 100, 10, False, 1),
        ("100 devices x 10 points, deadband on every point", 100, 10, True, 1000),
        ("10 devices x 100 points, put_many(1000)", 10, 100, False, 1000),
    ]
    what = "SQLite + evidence ledger" if args.ledger else "SQLite"
    print(f"pipeline queue -> writer -> {what}, {args.samples:,} samples, {args.runs} runs, 1 core")
    for label, devices, points, deadband, chunk in shapes:
        samples = make_samples(args.samples, devices, points)
        rates: list[float] = []
        cpu_rates: list[float] = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                led = Ledger(Path(tmp) / "l.db", background=True) if args.ledger else None
                try:
                    wall, cpu = asyncio.run(
                        one_run(samples, Path(tmp) / "b.db", deadband, chunk, led)
                    )
                finally:
                    if led is not None:
                        led.close()
            rates.append(wall)
            cpu_rates.append(cpu)
        print(
            f"{label:52s} median {statistics.median(rates):>9,.0f} samples/s wall "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f}); "
            f"{statistics.median(cpu_rates):>9,.0f} samples per CPU-second"
        )


if __name__ == "__main__":
    main()
