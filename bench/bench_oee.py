"""OEE for 100 machines over one year at one state change per minute (52.6 M changes).

The data is generated once straight into the embedded SQLite store (one batch per machine and
day, 1 440 state samples each, plus an hourly good-parts counter) and kept for later runs.
Then the fleet OEE of the year is computed from the store, end to end, several times:

- end to end: ``metrics.engine.compute_period`` on ``SqliteStore.open_readonly`` (target < 30 s)
- store reads: time spent inside ``SqliteStore.read`` (measured by a wrapping reader)
- numpy part: end to end minus the reads (target < 3 s)

    .venv/bin/python bench/bench_oee.py [--machines 100] [--days 365] [--runs 3]
                                        [--db /tmp/shopfloor-bench-oee/store.db]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.models import SiteConfig  # noqa: E402
from connectors.base import Sample  # noqa: E402
from edge.store.base import Batch  # noqa: E402
from edge.store.sqlite import SqliteStore  # noqa: E402
from metrics.engine import compute_period  # noqa: E402
from metrics.periods import parse_range  # noqa: E402
from metrics.series import Series  # noqa: E402

MIN = 60_000_000_000
STATE_MAP = {"0": "producing", "1": "setup", "2": "idle", "3": "down", "4": "planned_stop"}


def site(machines: int, db: Path) -> SiteConfig:
    devices = [
        {
            "id": f"m{i:03d}",
            "name": f"machine {i}",
            "key_equipment": True,
            "control": "cnc",
            "ideal_cycle_s": 45,
            "opcua": {"endpoint": "opc.tcp://127.0.0.1:4841"},
            "points": [
                {
                    "id": "state",
                    "role": "state",
                    "state_map": STATE_MAP,
                    "opcua": {"node_id": f"ns=2;s=m{i}.state"},
                },
                {"id": "good", "role": "count_good", "opcua": {"node_id": f"ns=2;s=m{i}.good"}},
            ],
        }
        for i in range(machines)
    ]
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "bench", "name": "bench", "timezone": "Asia/Shanghai"},
            "calendar": {
                "shifts": [
                    {
                        "name": "day",
                        "start": "08:00",
                        "end": "16:00",
                        "weekdays": [1, 2, 3, 4, 5, 6],
                    },
                    {
                        "name": "eve",
                        "start": "16:00",
                        "end": "00:00",
                        "weekdays": [1, 2, 3, 4, 5, 6],
                    },
                ],
                "breaks": [{"name": "lunch", "start": "12:00", "end": "12:30"}],
                "holidays": ["2025-10-01", "2025-10-02", "2025-10-03"],
            },
            "devices": devices,
            "storage": {"kind": "sqlite", "path": str(db)},
            "kpi": {"stale_after_s": 900},
        }
    )


def generate(db: Path, machines: int, days: int, start_ns: int) -> None:
    store = SqliteStore(db, synchronous="NORMAL")
    rng = np.random.default_rng(7)
    per_day = 1440
    t0 = time.perf_counter()
    try:
        for i in range(machines):
            dev = f"m{i:03d}"
            codes = rng.choice(5, size=days * per_day, p=[0.62, 0.06, 0.14, 0.08, 0.10])
            good = np.cumsum(codes == 0)  # about one part per producing minute
            batches = []
            for d in range(days):
                ts = start_ns + (d * per_day + np.arange(per_day, dtype=np.int64)) * MIN
                c = codes[d * per_day : (d + 1) * per_day].tolist()
                samples = [
                    Sample(dev, "state", t, float(v)) for t, v in zip(ts.tolist(), c, strict=True)
                ]
                hours = ts[::60].tolist()
                g = good[d * per_day : (d + 1) * per_day : 60].tolist()
                samples += [Sample(dev, "good", t, float(v)) for t, v in zip(hours, g, strict=True)]
                batches.append(Batch(dev, d + 1, tuple(samples)))
                if len(batches) == 50:
                    store.write_batches(batches)
                    batches = []
            if batches:
                store.write_batches(batches)
            if (i + 1) % 10 == 0:
                print(f"  generated {i + 1}/{machines} machines ({time.perf_counter() - t0:.0f} s)")
    finally:
        store.close()


class TimedReader:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.cpu = 0.0
        self.samples = 0

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        t, c = time.perf_counter(), time.process_time()
        s: Series = self.inner.read(device, point, start, end, prior=prior)
        self.seconds += time.perf_counter() - t
        self.cpu += time.process_time() - c
        self.samples += len(s)
        return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", type=Path, default=Path("/tmp/shopfloor-bench-oee/store.db"))
    args = ap.parse_args()
    cfg = site(args.machines, args.db)
    period = parse_range("2025-01-01..2025-12-31", cfg.site.timezone)
    if args.days != 365:
        period = parse_range(f"2025-01-01..2025-01-{args.days:02d}", cfg.site.timezone)
    marker = args.db.with_suffix(f".{args.machines}x{args.days}.ok")
    if not marker.exists():
        args.db.parent.mkdir(parents=True, exist_ok=True)
        for p in args.db.parent.glob(args.db.name + "*"):
            p.unlink()
        print(f"generating {args.machines} machines x {args.days} days into {args.db} ...")
        t = time.perf_counter()
        generate(args.db, args.machines, args.days, period.start_ns)
        marker.write_text("ok")
        print(f"generated in {time.perf_counter() - t:.1f} s")
    changes = args.machines * args.days * 1440
    ends, reads, numpies, cpus, cpu_np = [], [], [], [], []
    for run in range(args.runs):
        t, c = time.perf_counter(), time.process_time()
        store = SqliteStore.open_readonly(args.db)
        reader = TimedReader(store)
        res = compute_period(reader, cfg, period)
        store.close()
        total = time.perf_counter() - t
        cpu = time.process_time() - c
        ends.append(total)
        reads.append(reader.seconds)
        numpies.append(total - reader.seconds)
        cpus.append(cpu)
        cpu_np.append(cpu - reader.cpu)
        f = res.fleet
        print(
            f"run {run + 1}: end to end {total:.2f} s (reads {reader.seconds:.2f} s, "
            f"numpy {total - reader.seconds:.2f} s; CPU {cpu:.2f} s, numpy CPU "
            f"{cpu - reader.cpu:.2f} s), {reader.samples:,} samples read; "
            f"fleet OEE {100 * (f['oee'] or 0):.2f}% (A {f['availability']:.4f}, "
            f"E {f['effectiveness']:.4f}, Q {f['quality_ratio']:.4f}), mean "
            f"{100 * (res.fleet_mean_oee or 0):.2f}%"
        )
    print(
        f"OEE {args.machines} machines x {args.days} days ({changes:,} state changes): "
        f"median end to end {statistics.median(ends):.2f} s, reads "
        f"{statistics.median(reads):.2f} s, numpy part {statistics.median(numpies):.2f} s "
        f"({changes / statistics.median(numpies) / 1e6:.1f} M changes/s); CPU time: end to end "
        f"{statistics.median(cpus):.2f} s, numpy part {statistics.median(cpu_np):.2f} s"
    )
    load = os.getloadavg()
    print(f"load average during the runs: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
