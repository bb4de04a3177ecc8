"""Fleet benchmark: N simulated gateways (separate processes, one InfluxStore each, the same
device ids everywhere, their own site tag) writing to one private local influxd (Debian's 1.x).

Each gateway writes ``--points`` samples (20 devices x 10 points, 1 s apart, batches of 5,000
like the collector's writer) through ``write_batches`` (outbox commit) and waits until influxd
confirmed every one. Reported: points/s accepted by influxd over all gateways (first write to
last confirmation), the gateways' CPU seconds per 1,000 points (user+system of each gateway
process: encoding, outbox, sending), and a check that influxd holds N x points points, every
gateway's series intact (per-site count).

usage: .venv/bin/python bench/bench_fleet.py [--gateways 10] [--points 200000] [--runs 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_influx import plant_batches
from config.storage import InfluxStorage
from edge.store.influx.store import InfluxStore
from tests.support.influxd import Influxd


def gateway(i: int, url: str, db: str, work: str, points: int, start: Any, out: Any) -> None:
    cfg = InfluxStorage(
        url=url,
        database=db,
        outbox_path=Path(work) / f"outbox-{i}.db",
        outbox_max_samples=5_000_000,
        replay_backoff_max_s=0.5,
        timeout_s=60.0,
    )
    batches = plant_batches(points)
    start.wait()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    with InfluxStore(cfg, site=f"plant-{i:02d}") as store:
        for b in batches:
            store.write_batches([b])
        if not store.wait_drained(600):
            raise SystemExit(f"gateway {i}: not drained: {store.status()}")
        t1 = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out.put((i, t0, t1, cpu, points))


def run_once(server: Influxd, work: Path, n: int, points: int, run: int) -> dict[str, float]:
    db = server.create_database(f"fleet{run}")
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=gateway, args=(i, server.url, db, str(work), points, start, out))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    time.sleep(3.0)  # every child built its batches (spawn + imports)
    start.set()
    results = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a gateway failed (exit {p.exitcode})")
    first = min(r[1] for r in results)
    last = max(r[2] for r in results)
    total = sum(r[4] for r in results)
    cpu = sum(r[3] for r in results)
    counts = server.rows('SELECT count("quality") FROM "samples" GROUP BY "site"', db)
    stored = server.query('SELECT count("quality") FROM "samples" GROUP BY "site"', db)
    per_site = {
        s["tags"]["site"]: int(s["values"][0][1]) for s in stored["results"][0].get("series", [])
    }
    assert len(per_site) == n, per_site
    assert all(v == points for v in per_site.values()), per_site
    assert sum(int(r[1]) for r in counts) == total
    return {
        "pps": total / (last - first),
        "cpu_ms_per_kpt": cpu / total * 1e6,
        "wall": last - first,
    }


def outbox_bytes_per_sample(work: Path, n: int = 1_000_000) -> float:
    """Bytes per sample of the outbox file holding ``n`` tagged samples (InfluxDB never
    reached: everything stays queued)."""
    from edge.store.disk import sqlite_bytes
    from tests.support.net import free_port

    cfg = InfluxStorage(
        url=f"http://127.0.0.1:{free_port()}",
        database="d",
        outbox_path=work / "size.db",
        outbox_max_samples=5_000_000,
    )
    with InfluxStore(cfg, site="plant-01", start_sender=False) as store:
        for b in plant_batches(n):
            store.write_batches([b])
        store.close(drain_s=0)
    return sqlite_bytes(work / "size.db") / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateways", type=int, default=10)
    ap.add_argument("--points", type=int, default=200_000, help="per gateway")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--outbox-size", action="store_true", help="also: outbox bytes per sample")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = Influxd(root=work / "influxd")
        server.start()
        try:
            rows = [run_once(server, work, args.gateways, args.points, r) for r in range(args.runs)]
        finally:
            server.stop()
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"{args.gateways} gateways x {args.points:,} points -> one influxd: "
        f"{med['pps']:,.0f} points/s accepted (wall {med['wall']:.1f} s), "
        f"gateway CPU {med['cpu_ms_per_kpt']:.1f} ms per 1,000 points; "
        f"runs: {[round(r['pps']) for r in rows]}; every site's series intact"
    )
    if args.outbox_size:
        with tempfile.TemporaryDirectory() as tmp:
            per = outbox_bytes_per_sample(Path(tmp))
        print(f"outbox with site/gateway tags: {per:.1f} bytes per sample (1,000,000 samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
