"""Evidence ledger: append rate, and its cost on the ingest pipeline (same run).

1. Ledger alone: ``Ledger.append_batches`` of batches of ``--batch`` samples (canonical sample
   encoding, SHA-256, leaf + subtree hashes, one SQLite transaction per call), WAL with
   synchronous=FULL (durable) and NORMAL.
2. Ingest: SampleQueue -> Writer -> SqliteStore, without the ledger, with the ledger as the
   writer's BatchObserver appending in the writer's thread (``background=False``, the earlier
   design), and with the background hand-off (``background=True``, what the collector uses; the
   clock stops when the ledger thread appended the last batch too), all on the same samples in
   the same process, runs interleaved. ``background-recorder``: the background ledger seen
   through :class:`EvidenceRecorder`, the observer the collector plugs in.

    .venv/bin/python bench/bench_ledger.py [--batches N] [--batch S] [--samples N] [--runs R]
        [--skip-append] [--modes none,inline,background,background-raw,background-recorder]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from connectors.base import Sample
from edge.queue import SampleQueue
from edge.store.base import Batch
from edge.store.ledger import EvidenceRecorder, Ledger
from edge.store.sqlite import SqliteStore
from edge.writer import BatchObserver, Writer

# Device and point names are shared string objects, as connectors make samples (from the
# site's Device/Point objects), not a new string per sample.
DEVICES = [f"dev{i:02d}" for i in range(100)]
POINTS = [f"p{i}" for i in range(100)]


def make_batches(n: int, size: int, sources: int = 8) -> list[Batch]:
    t0 = 1_780_000_000_000_000_000
    out = []
    for i in range(n):
        src = DEVICES[i % sources]
        seq = i // sources + 1
        out.append(
            Batch(src, seq, tuple(
                Sample(src, POINTS[j % 10], t0 + i * 10**9 + j, float(j % 97)) for j in range(size)
            ))
        )  # fmt: skip
    return out


def bench_append(batches: list[Batch], durable: bool, group: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        led = Ledger(Path(d) / "l.db", durable=durable)
        t = time.perf_counter()
        for i in range(0, len(batches), group):
            led.append_batches(batches[i : i + group])
        dt = time.perf_counter() - t
        led.close()
    return len(batches) / dt


@dataclass
class Run:
    wall: float  # samples/s of wall time
    cpu: float  # samples per CPU-second of the process (every thread)
    ledger_cpu_us: float  # CPU of the ledger thread per sample (background modes)


async def _ingest(
    samples: list[Sample], db: Path, ledger: Ledger | None, recorder: bool = False
) -> Run:
    store = SqliteStore(db)
    q = SampleQueue(len(samples) + 10, "drop_newest")
    observers: list[BatchObserver] = []
    if ledger is not None:
        # the collector's observer is the EvidenceRecorder wrapping the ledger
        observers.append(EvidenceRecorder(ledger, None, "bench") if recorder else ledger)
    w = Writer(store, q, observers=observers, batch_max_samples=5000,
               flush_interval_ms=50)  # fmt: skip
    t = time.perf_counter()
    c = time.process_time()
    task = asyncio.create_task(w.run())
    q.put_many(samples)
    q.close()
    await task
    if ledger is not None:
        await asyncio.to_thread(ledger.flush)  # every batch logged, not only handed off
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    await w.close()
    if ledger is not None:
        n = sum(lf.count or 0 for lf in ledger.leaves(kind="batch"))
        assert n == len(samples), f"{n} samples logged of {len(samples)}"
    led_cpu = ledger.handoff.cpu_s / len(samples) * 1e6 if ledger is not None else 0.0
    return Run(len(samples) / dt, len(samples) / cpu, led_cpu)


MODES = {
    "none": "without ledger",
    "inline": "ledger appended in the writer's thread",
    "background": "ledger on its own thread (default)",
    "background-raw": "ledger on its own thread, copy not compressed",
    "background-recorder": "same, observed through the collector's EvidenceRecorder",
}


def bench_ingest(samples: list[Sample], mode: str) -> Run:
    """``mode``: one of :data:`MODES`."""
    with tempfile.TemporaryDirectory() as d:
        led = None
        if mode != "none":
            led = Ledger(Path(d) / "l.db", background=mode.startswith("background"),
                         compress=mode != "background-raw")  # fmt: skip
        try:
            recorder = mode == "background-recorder"
            return asyncio.run(_ingest(samples, Path(d) / "s.db", led, recorder))
        finally:
            if led:
                led.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100, help="samples per batch")
    ap.add_argument("--samples", type=int, default=400_000, help="ingest samples")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-append", action="store_true", help="only the ingest figures")
    ap.add_argument("--modes", default=",".join(MODES), help="ingest modes, comma-separated")
    a = ap.parse_args()
    batches = make_batches(a.batches, a.batch)
    for durable in () if a.skip_append else (True, False):
        for group in (1, 8):
            rates = [bench_append(batches, durable, group) for _ in range(a.runs)]
            med = statistics.median(rates)
            print(
                f"ledger append ({'FULL' if durable else 'NORMAL'}, {group} batch/txn, "
                f"{a.batch} samples/batch): {med:,.0f} batches/s ({med * a.batch:,.0f} samples/s)"
            )
    t0 = 1_780_000_000_000_000_000
    samples = [
        Sample(DEVICES[i % 20], POINTS[(i // 20) % 10], t0 + i * 1000, float(i % 977))
        for i in range(a.samples)
    ]
    modes = [m for m in MODES if m in a.modes.split(",")]
    runs: dict[str, list[Run]] = {m: [] for m in modes}
    for _ in range(a.runs):  # interleaved: same conditions for all
        for m in modes:
            runs[m].append(bench_ingest(samples, m))
    base = statistics.median(r.wall for r in runs[modes[0]])
    base_cpu = statistics.median(r.cpu for r in runs[modes[0]])
    print(f"ingest queue->writer->SQLite (FULL), {a.samples:,} samples, medians of {a.runs}:")
    for m in modes:
        wall = statistics.median(r.wall for r in runs[m])
        cpu = statistics.median(r.cpu for r in runs[m])
        each = ", ".join(f"{r.wall:,.0f}" for r in runs[m])
        rel = (
            ""
            if m == modes[0]
            else (
                f" ({(1 - wall / base) * 100:+.1f}% wall, {(1 - cpu / base_cpu) * 100:+.1f}% CPU)"
            )
        )
        led = statistics.median(r.ledger_cpu_us for r in runs[m])
        extra = f"; ledger thread {led:.2f} us CPU/sample" if m.startswith("background") else ""
        print(f"  {MODES[m]:48s} {wall:>9,.0f} samples/s wall, {cpu:>9,.0f} per CPU-s{rel}"
              f"{extra} [{each}]")  # fmt: skip


if __name__ == "__main__":
    main()
