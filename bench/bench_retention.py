"""Store size per million samples (raw, and as per-minute aggregates) and the retention pass
time on a year of data: ``POINTS`` points at one sample a minute for ``DAYS`` days, written in
hourly batches per device (store + evidence ledger), compacted, then one retention pass that
keeps the last 30 days raw.

    PYTHONPATH=. .venv/bin/python bench/bench_retention.py [DAYS] [POINTS] [PER_MIN] [KEEP_DAYS]

(``PER_MIN`` samples a minute per point, default 1; ``KEEP_DAYS`` raw, default 30.)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.ledger import Ledger
from edge.store.retention import DAY_NS, retain
from edge.store.sqlite import SqliteStore

T0 = 1_735_689_600 * 10**9  # 2025-01-01T00:00Z
MIN = 60 * 10**9


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 365
    points = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    per_min = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    keep = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    step = MIN // per_min
    with tempfile.TemporaryDirectory() as tmp:
        sp, lp = Path(tmp) / "s.db", Path(tmp) / "l.db"
        store = SqliteStore(sp, synchronous="NORMAL")
        ledger = Ledger(lp, durable=False)
        seq = 0
        total = 0
        t_write = time.perf_counter()
        for day in range(days):
            group: list[Batch] = []
            for hour in range(24):
                seq += 1
                base = T0 + day * DAY_NS + hour * 60 * MIN
                samples = tuple(
                    Sample(
                        "m1", f"p{p}", base + m * step, float((m * 7 + p) % 100), Quality.GOOD, ""
                    )
                    for m in range(60 * per_min)
                    for p in range(points)
                )
                group.append(Batch("m1", seq, samples))
                total += len(samples)
            store.write_batches(group)
            ledger.append_batches(group, now_ns=T0 + (day + 1) * DAY_NS)
        t_write = time.perf_counter() - t_write
        now = T0 + days * DAY_NS
        t_c = time.perf_counter()
        store.compact(now, small=10_000, max_samples=50_000, max_span_ns=24 * 3600 * 10**9)
        t_c = time.perf_counter() - t_c
        store.close()
        store = SqliteStore(sp, synchronous="NORMAL")
        store._db.execute("VACUUM")
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw_size = _size(sp)
        t_r = time.perf_counter()
        res = retain(store, ledger, keep, now_ns=now)
        t_r = time.perf_counter() - t_r
        store._db.execute("VACUUM")
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = store._db.execute("SELECT COUNT(*) FROM minutes").fetchone()[0]
        store.close()
        ledger.close()
        after = _size(sp)
        print(f"samples: {total} ({days} days x {points} points at {per_min}/min)")
        print(f"write+ledger: {t_write:.1f} s; compaction: {t_c:.1f} s")
        print(f"store raw (compacted): {raw_size / 1e6:.1f} MB = {raw_size / total:.1f} B/sample")
        print(
            f"retention pass: {t_r:.1f} s; removed {res.samples_removed} samples "
            f"in {res.chunks_removed} chunks"
        )
        print(f"store after ({keep:g} days raw + minute aggregates): {after / 1e6:.1f} MB")
        print(f"minute aggregate rows: {rows}")
        print(f"ledger: {_size(lp) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
