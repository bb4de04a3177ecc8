"""InfluxDB store benchmarks against a private local influxd (Debian's InfluxDB 1.x).

1. sustained write rate: samples written through ``write_batches`` (outbox commit) and confirmed
   by InfluxDB (outbox drained), points/s end to end;
2. replay rate of a 1,000,000-point backlog: the outbox filled while InfluxDB is away, then
   replayed into it (points/s);
3. time to read one device-week of 1 s data (604,800 points) through ``read()``.

usage: .venv/bin/python bench/bench_influx.py [--runs 3] [--send-batch 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.storage import InfluxStorage
from connectors.base import Sample
from edge.store.base import Batch
from edge.store.influx.store import InfluxStore
from tests.support.influxd import Influxd
from tests.support.net import free_port

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
SEC = 1_000_000_000
WEEK = 604_800


def _kw(i: int) -> float:
    return 10.0 + (i % 97) / 8


def week_batches(device: str, per_batch: int = 5000) -> list[Batch]:
    """One device-week of 1 s power readings, in batches like the writer makes them."""
    out: list[Batch] = []
    for seq, start in enumerate(range(0, WEEK, per_batch), 1):
        n = min(per_batch, WEEK - start)
        samples = tuple(
            Sample(device, "power_kw", T0 + (start + i) * SEC, _kw(start + i)) for i in range(n)
        )
        out.append(Batch(device, seq, samples))
    return out


def plant_batches(n_samples: int, devices: int = 20, points: int = 10) -> list[Batch]:
    """``n_samples`` spread over devices x points, 1 s apart per point, 5000 per batch."""
    per_dev = n_samples // devices
    out: list[Batch] = []
    for d in range(devices):
        dev = f"dev{d:02d}"
        for seq, start in enumerate(range(0, per_dev, 5000), 1):
            n = min(5000, per_dev - start)
            samples = tuple(
                Sample(
                    dev,
                    f"p{(start + i) % points}",
                    T0 + ((start + i) // points) * SEC,
                    float((start + i) % 1000),
                )
                for i in range(n)
            )
            out.append(Batch(dev, seq, samples))
    return out


def cfg(url: str, db: str, outbox: Path, send_batch: int) -> InfluxStorage:
    return InfluxStorage(
        url=url,
        database=db,
        outbox_path=outbox,
        outbox_max_samples=5_000_000,
        batch_max_samples=send_batch,
        replay_backoff_max_s=0.5,
        timeout_s=60.0,
    )


def run_once(server: Influxd, run: int, work: Path, send_batch: int) -> dict[str, float]:
    fig: dict[str, float] = {}
    # 1. sustained writes, InfluxDB up
    db = server.create_database(f"sustained{run}")
    batches = plant_batches(500_000)
    n = sum(len(b.samples) for b in batches)
    with InfluxStore(cfg(server.url, db, work / f"o-s{run}.db", send_batch)) as store:
        t = time.perf_counter()
        for i in range(0, len(batches), 4):  # the writer hands over a few batches per call
            store.write_batches(batches[i : i + 4])
        t_ack = time.perf_counter() - t
        assert store.wait_drained(600)
        t_all = time.perf_counter() - t
    fig["outbox_ack_sps"] = n / t_ack
    fig["sustained_sps"] = n / t_all

    # 2. a 1,000,000-point backlog: one device-week of 1 s data + 395,200 other points
    db = server.create_database(f"replay{run}")
    backlog = week_batches("cnc1") + plant_batches(395_200)
    n = sum(len(b.samples) for b in backlog)
    assert n == 1_000_000, n
    outbox = work / f"o-r{run}.db"
    server.stop()
    down = InfluxStore(cfg(f"http://127.0.0.1:{free_port()}", db, outbox, send_batch))
    for i in range(0, len(backlog), 4):
        down.write_batches(backlog[i : i + 4])
    assert down.status().pending_samples == n
    down.close(drain_s=0)
    server.start()
    with InfluxStore(cfg(server.url, db, outbox, send_batch)) as store:
        t = time.perf_counter()
        assert store.wait_drained(900)
        fig["replay_sps"] = n / (time.perf_counter() - t)
        # 3. one device-week through read()
        t = time.perf_counter()
        s = store.read("cnc1", "power_kw", T0, T0 + WEEK * SEC)
        fig["read_week_s"] = time.perf_counter() - t
        assert len(s) == WEEK, len(s)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--send-batch", type=int, default=5000, help="samples per HTTP write")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-influx-") as tmp:
        work = Path(tmp)
        server = Influxd(root=work / "influxd")
        server.start()
        try:
            results = [run_once(server, r, work, args.send_batch) for r in range(args.runs)]
        finally:
            server.stop()
    print(f"influxd 1.6.7 local, python {sys.version.split()[0]}, send batch {args.send_batch}")
    for key, unit in (
        ("outbox_ack_sps", "samples/s acknowledged (outbox commit)"),
        ("sustained_sps", "points/s sustained into InfluxDB (write -> confirmed)"),
        ("replay_sps", "points/s replaying a 1,000,000-point backlog"),
        ("read_week_s", "s to read one device-week of 1 s data (604,800 points)"),
    ):
        values = [r[key] for r in results]
        print(
            f"{key:16s} median {statistics.median(values):12,.2f}  runs "
            + ", ".join(f"{v:,.2f}" for v in values)
            + f"  {unit}"
        )


if __name__ == "__main__":
    main()
