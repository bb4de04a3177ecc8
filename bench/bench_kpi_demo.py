"""The before/after KPI table of the demo factory (config/examples/demo.yaml) from the store.

Generates 30 days of baseline (建设前, December 2025) and 30 days of current (建成后, June 2026)
data for every point the KPI engine reads: CNC states (a change every 1-6 minutes), good and
scrap counters, meters and the quality station every minute, the furnace's APC mode every 10
minutes. The data goes once into a SQLite store (kept for later runs). Then it times
``compute_table`` and the CSV/XLSX exports, several runs, and prints the medians.

    .venv/bin/python bench/bench_kpi_demo.py [--runs 5] [--db /tmp/shopfloor-bench-kpi/store.db]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.loader import load_site  # noqa: E402
from config.models import SiteConfig  # noqa: E402
from connectors.base import Sample  # noqa: E402
from edge.store.base import Batch  # noqa: E402
from edge.store.sqlite import SqliteStore  # noqa: E402
from metrics.engine import compute_table  # noqa: E402
from metrics.periods import TimeRange, parse_range  # noqa: E402
from metrics.table import to_csv, to_text, to_xlsx  # noqa: E402

MIN = 60_000_000_000
BASELINE = "2025-12-01..2025-12-30"
CURRENT = "2026-06-01..2026-06-30"


def _series(period: TimeRange, rng: np.random.Generator, p_prod: float) -> dict[str, tuple]:
    """(device, point) -> (ts, values) for one period."""
    out: dict[str, tuple] = {}
    minutes = np.arange(period.start_ns, period.end_ns, MIN, dtype=np.int64)
    for dev in ("cnc1", "cnc2", "cnc3", "cnc4"):
        gaps = rng.integers(1, 7, size=minutes.size // 2)
        ts = period.start_ns + np.cumsum(gaps) * MIN
        ts = ts[ts < period.end_ns]
        st = np.where(rng.random(ts.size) < p_prod, 0, rng.choice([1, 2, 3, 4], ts.size))
        out[f"{dev}/state"] = (ts, st.astype(float))
        rate = 0.9 if dev in ("cnc1", "cnc2") else 0.45
        idx = np.searchsorted(ts, minutes, side="right") - 1
        producing = (idx >= 0) & (st[np.maximum(idx, 0)] == 0)
        made = producing & (rng.random(minutes.size) < rate)
        scrap = made & (rng.random(minutes.size) < 0.02 + 0.03 * (1 - p_prod))
        out[f"{dev}/good"] = (minutes, np.cumsum(made & ~scrap).astype(float))
        out[f"{dev}/scrap"] = (minutes, np.cumsum(scrap).astype(float))
    ten = minutes[::10]
    out["furnace1/apc"] = (ten, (rng.random(ten.size) < p_prod).astype(float))
    out["furnace1/temp_c"] = (minutes, 850 + rng.normal(0, 3, minutes.size))
    out["meter1/energy"] = (minutes, np.cumsum(rng.uniform(0.8, 1.6, minutes.size)))
    out["meter2/energy"] = (minutes, np.cumsum(rng.uniform(1.2, 2.0, minutes.size)))
    out["water1/fresh"] = (minutes, np.cumsum(rng.uniform(0.01, 0.03, minutes.size)))
    out["water1/reused"] = (minutes, np.cumsum(rng.uniform(0.02, 0.06, minutes.size) * p_prod))
    inspected = np.cumsum(rng.random(minutes.size) < 0.8)
    rejected = np.cumsum(rng.random(minutes.size) < 0.03 * (1.5 - p_prod))
    reworked = np.cumsum(rng.random(minutes.size) < 0.01)
    out["qs1/inspected"] = (minutes, inspected.astype(float))
    out["qs1/rejected"] = (minutes, rejected.astype(float))
    out["qs1/reworked"] = (minutes, reworked.astype(float))
    out["qs1/passed"] = (minutes, (inspected - rejected - reworked).astype(float))
    out["qs1/diameter_mm"] = (minutes, 25 + rng.normal(0, 0.01, minutes.size))
    return out


def generate(db: Path, site: SiteConfig) -> None:
    store = SqliteStore(db, synchronous="NORMAL")
    rng = np.random.default_rng(11)
    seqs: dict[str, int] = {}
    try:
        for text, p_prod in ((BASELINE, 0.55), (CURRENT, 0.72)):
            period = parse_range(text, site.site.timezone)
            per_dev: dict[str, list[Sample]] = {}
            for key, (ts, vals) in _series(period, rng, p_prod).items():
                dev, point = key.split("/")
                per_dev.setdefault(dev, []).extend(
                    Sample(dev, point, t, v)
                    for t, v in zip(ts.tolist(), vals.tolist(), strict=True)
                )
            batches = []
            for dev, samples in per_dev.items():
                samples.sort(key=lambda s: s.ts)
                for i in range(0, len(samples), 5000):
                    seqs[dev] = seqs.get(dev, 0) + 1
                    batches.append(Batch(dev, seqs[dev], tuple(samples[i : i + 5000])))
            store.write_batches(batches)
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--db", type=Path, default=Path("/tmp/shopfloor-bench-kpi/store.db"))
    args = ap.parse_args()
    site = load_site(ROOT / "config" / "examples" / "demo.yaml")
    tz = site.site.timezone
    marker = args.db.with_suffix(".ok")
    if not marker.exists():
        args.db.parent.mkdir(parents=True, exist_ok=True)
        for p in args.db.parent.glob(args.db.name + "*"):
            p.unlink()
        t = time.perf_counter()
        generate(args.db, site)
        marker.write_text("ok")
        print(f"generated 2 x 30 days of demo data in {time.perf_counter() - t:.1f} s")
    b, c = parse_range(BASELINE, tz), parse_range(CURRENT, tz)
    tables, csvs, xlsxs = [], [], []
    table = None
    for _ in range(args.runs):
        store = SqliteStore.open_readonly(args.db)
        t = time.perf_counter()
        table = compute_table(store, site, b, c, baseline_imported=True)
        tables.append(time.perf_counter() - t)
        store.close()
        t = time.perf_counter()
        to_csv(table)
        csvs.append(time.perf_counter() - t)
        t = time.perf_counter()
        to_xlsx(table)
        xlsxs.append(time.perf_counter() - t)
    assert table is not None
    print(to_text(table))
    n = sum(1 for r in table.reads)
    print(
        f"KPI table demo factory ({n} series reads, 2 x 30 days): median compute_table "
        f"{1000 * statistics.median(tables):.0f} ms, CSV {1000 * statistics.median(csvs):.1f} ms, "
        f"XLSX {1000 * statistics.median(xlsxs):.1f} ms over {args.runs} runs"
    )


if __name__ == "__main__":
    main()
