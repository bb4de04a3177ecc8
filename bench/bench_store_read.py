"""Reading one point of a many-point device from the embedded store.

One device with ``--points`` points, one day of collector-like batches (every 200 ms a batch
holding a changed value of ``--per-batch`` random points), written through ``write_batches``,
then compacted as the collector does. For ``--reads`` random points it times
``SqliteStore.read`` (the series index: only the point's range of each chunk is fetched) against
the full decode of every chunk of the device (the read before the index), both on the raw
batches and after compaction, and prints medians (wall and CPU, ms per read).

    .venv/bin/python bench/bench_store_read.py [--points 500] [--per-batch 50] [--hours 2]
                                               [--reads 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.base import Sample  # noqa: E402
from edge.store.base import Batch  # noqa: E402
from edge.store.sqlite import SqliteStore, _assemble  # noqa: E402
from metrics.series import Series  # noqa: E402

SEC = 10**9


def fill(store: SqliteStore, points: int, per_batch: int, hours: float) -> int:
    rng = np.random.default_rng(7)
    n_batches = int(hours * 3600 * 5)
    t0 = 1_767_225_600 * SEC
    pending: list[Batch] = []
    total = 0
    for seq in range(1, n_batches + 1):
        ts = t0 + seq * SEC // 5
        chosen = rng.choice(points, size=per_batch, replace=False).tolist()
        vals = rng.normal(size=per_batch).tolist()
        samples = tuple(Sample("dev", f"p{p}", ts, v) for p, v in zip(chosen, vals, strict=True))
        total += len(samples)
        pending.append(Batch("dev", seq, samples))
        if len(pending) == 100:
            store.write_batches(pending)
            pending = []
    if pending:
        store.write_batches(pending)
    return total


def full_decode(store: SqliteStore, point: str) -> Series:
    db = store._db
    (sid,) = db.execute(
        "SELECT id FROM series WHERE device = 'dev' AND point = ?", (point,)
    ).fetchone()
    rows = db.execute(
        "SELECT sid, ts, val, qual, sorted FROM chunks WHERE device = 'dev' "
        "ORDER BY first_ts, rowid"
    ).fetchall()
    return _assemble(rows, int(sid))


def timed(fn: object, points: list[str]) -> tuple[float, float, int]:
    walls, cpus, n = [], [], 0
    for p in points:
        t, c = time.perf_counter(), time.process_time()
        s = fn(p)  # type: ignore[operator]
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        n += len(s)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--per-batch", type=int, default=50)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--reads", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "s.db", synchronous="NORMAL")
        try:
            t = time.perf_counter()
            total = fill(store, args.points, args.per_batch, args.hours)
            print(
                f"{total:,} samples of {args.points} points in "
                f"{args.hours * 3600 * 5:,.0f} batches written in {time.perf_counter() - t:.1f} s"
            )
            rng = np.random.default_rng(1)
            pts = [f"p{i}" for i in rng.choice(args.points, size=args.reads).tolist()]

            def indexed(p: str) -> Series:
                return store.read("dev", p, 0, 2**62)

            def full(p: str) -> Series:
                return full_decode(store, p)

            for label in ("raw batches", "compacted"):
                if label == "compacted":
                    t = time.perf_counter()
                    removed = store.compact(2**62)
                    print(
                        f"compaction removed {removed:,} chunk rows in "
                        f"{time.perf_counter() - t:.1f} s"
                    )
                rows = store._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
                iw, ic, n1 = timed(indexed, pts)
                fw, fc, n2 = timed(full, pts)
                assert n1 == n2, (n1, n2)
                print(
                    f"{label} ({rows:,} chunk rows): one point ({n1 // len(pts):,} samples): "
                    f"series index {iw:.1f} ms wall / {ic:.1f} ms CPU, full decode "
                    f"{fw:.1f} ms wall / {fc:.1f} ms CPU per read ({fc / max(ic, 1e-9):.1f}x CPU)"
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
