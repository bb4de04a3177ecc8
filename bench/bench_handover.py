"""The writer path alone (issue 16): queue -> writer -> SQLite store + evidence ledger.

A Modbus-shaped load without the network: ``--points`` series (1,000 per device, blocks of 125
points, as one 125-register read each) polled ``--polls`` times, handed to the queue either as
:class:`connectors.base.SampleBlock` columns (``put_block``, what the Modbus connector does) or
as :class:`connectors.base.Sample` objects (``put_many``, the pre-columnar hand-over). The
store (``synchronous=FULL``) and the ledger (on its own thread) are the collector's defaults;
the first poll (which creates every series) is not measured. Reports CPU-seconds of the whole
process (all threads) per stored sample, medians of ``--runs``.

    .venv/bin/python bench/bench_handover.py --points 100000 --polls 5 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Sample, SampleBlock
from edge.health import HealthTracker
from edge.queue import SampleQueue
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from edge.writer import Writer

PER_DEVICE = 1000
PER_READ = 125


async def one_run(points: int, polls: int, mode: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = SqliteStore(tmp / "store.db")
        led = Ledger(tmp / "ledger.db", background=True)
        q = SampleQueue(max(200_000, 2 * points))
        w = Writer(store, q, observers=[led], health=HealthTracker())
        plans = [
            (
                f"m{k // PER_DEVICE:03d}",
                tuple(f"r{a}" for a in range(k % PER_DEVICE, k % PER_DEVICE + PER_READ)),
            )
            for k in range(0, points, PER_READ)
        ]
        values = np.arange(PER_READ, dtype=np.float64)
        task = asyncio.create_task(w.run())

        def poll(ts: int) -> None:
            for dev, pts in plans:
                if mode == "blocks":
                    q.put_block(
                        SampleBlock(
                            dev,
                            pts,
                            np.full(PER_READ, ts, np.int64),
                            values + ts,
                            np.zeros(PER_READ, np.uint8),
                        )
                    )
                else:
                    vals = (values + ts).tolist()
                    q.put_many([Sample(dev, p, ts, v) for p, v in zip(pts, vals, strict=True)])

        total = len(plans) * PER_READ
        poll(1)
        while w.acked_samples < total:  # noqa: ASYNC110 (a counter of the store thread)
            await asyncio.sleep(0.02)
        assert led.flush(60)
        c0, s0 = time.process_time(), w.acked_samples
        for i in range(polls):
            poll(2 + i)
            while len(q):  # noqa: ASYNC110 (the writer empties it)
                await asyncio.sleep(0.005)
        while w.acked_samples < s0 + polls * total:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        assert led.flush(60)
        cpu = time.process_time() - c0
        n = w.acked_samples - s0
        q.close()
        await task
        await w.close()
        led.close()
    return cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--polls", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["blocks", "samples"])
    a = ap.parse_args()
    print(
        f"bench_handover: {a.points:,} points, {a.polls} polls, store (FULL) + ledger; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    for mode in a.modes:
        got = [asyncio.run(one_run(a.points, a.polls, mode)) for _ in range(a.runs)]
        spread = ", ".join(f"{x:.2f}" for x in got)
        print(f"  {mode:7s}: {statistics.median(got):.2f} us CPU per sample (runs: {spread})")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
