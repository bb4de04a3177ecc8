"""The columnar hand-over changes no stored byte (issue 16): the same rows put as Sample
objects (``put_many``), as blocks (``put_block``) and written the pre-block way (lists of
samples per device through ``Writer.persist``) give the same ledger leaves (records, hashes,
sample bytes) and the same stored series, through a real Writer, SqliteStore and Ledger; and
what is stored is exactly the rows minus their duplicates (a naive model). Random puts have
NaNs, bad qualities, statuses, duplicate timestamps and redeliveries over several devices."""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors.base import Quality, Sample, SampleBlock
from edge.queue import SampleQueue
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from edge.writer import Writer, group_by_device

TAKE = 7  # samples per take: blocks are split across takes and batches

POINTS = ["p0", "p1", "p2", "p3"]
VALUES = [0.0, -0.0, 1.5, 2.0, math.nan, math.inf]
STATUSES = ["", "", "timeout", "nan", "modbus_exception_2"]


def _puts(rng: random.Random) -> list[Any]:
    """Random puts: (device, rows) with few timestamps (duplicates, out-of-order rows), NaNs,
    infinities, -0.0, bad and uncertain qualities, statuses; then some put again."""
    puts = [
        (
            rng.choice(["d1", "d2", "d3"]),
            [
                (
                    rng.choice(POINTS),
                    rng.randint(0, 6),
                    rng.choice(VALUES),
                    rng.choice([0, 0, 1, 2]),
                    rng.choice(STATUSES),
                )
                for _ in range(rng.randint(1, 12))
            ],
        )
        for _ in range(rng.randint(1, 10))
    ]
    return puts + rng.sample(puts, len(puts) // 2)  # redeliveries


def _block(device: str, rows: list[tuple[str, int, float, int, str]]) -> SampleBlock:
    statuses = tuple(r[4] for r in rows)
    return SampleBlock(
        device,
        tuple(r[0] for r in rows),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.uint8),
        statuses if any(statuses) else None,
    )


def _samples(device: str, rows: list[tuple[str, int, float, int, str]]) -> list[Sample]:
    return [Sample(device, p, t, v, Quality(q), s) for p, t, v, q, s in rows]


async def _run(tmp: Path, puts: list[Any], how: str) -> tuple[list[Any], dict[Any, bytes]]:
    store = SqliteStore(tmp / f"{how}.db", synchronous="NORMAL")
    led = Ledger(tmp / f"{how}.ledger", durable=False)
    q = SampleQueue(10_000)
    w = Writer(store, q, observers=[led], batch_max_samples=TAKE, max_takes=1)
    if how == "samples":
        for dev, rows in puts:
            q.put_many(_samples(dev, rows))
    elif how == "blocks":
        for dev, rows in puts:
            q.put_block(_block(dev, rows))
    if how == "reference":
        # the pre-block writer: takes of TAKE samples, per device lists of Sample objects
        flat = [s for dev, rows in puts for s in _samples(dev, rows)]
        for i in range(0, len(flat), TAKE):
            await w.persist(list(group_by_device(flat[i : i + TAKE]).items()))
    else:
        q.close()
        await w.run()
    leaves = [
        (lf.record, lf.hash, led.batch_data(lf.idx) if lf.kind == "batch" else None)
        for lf in led.leaves()
    ]
    series: dict[Any, bytes] = {}
    for dev in ("d1", "d2", "d3"):
        for p in ("p0", "p1", "p2", "p3"):
            s = store.read(dev, p, -1, 100)
            if len(s.ts):
                series[(dev, p)] = s.ts.tobytes() + s.values.tobytes() + s.quality.tobytes()
    latest = sorted((s.device, s.point, s.ts, repr(s.value), s.status) for s in store.latest())
    series[("latest",)] = repr(latest).encode()
    led.close()
    await w.close()
    return leaves, series


def _model(puts: list[Any]) -> dict[tuple[str, str], list[tuple[int, str, int]]]:
    """What must be stored: every row but a repeat of a stored (device, point, ts, value,
    quality) (NaN equals NaN, -0.0 equals 0.0), per series, sorted."""
    seen: set[tuple[str, str, int, str, int]] = set()
    out: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
    for dev, rows in puts:
        for p, t, v, q, _ in rows:
            key = (dev, p, t, "nan" if v != v else repr(v + 0.0), q)
            if key not in seen:
                seen.add(key)
                out.setdefault((dev, p), []).append((t, key[3], q))
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(12))
def test_samples_blocks_and_the_reference_store_and_log_the_same_bytes(seed: int) -> None:
    puts = _puts(random.Random(seed))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ref = asyncio.run(_run(tmp, puts, "reference"))
        by_samples = asyncio.run(_run(tmp, puts, "samples"))
        by_blocks = asyncio.run(_run(tmp, puts, "blocks"))
        with SqliteStore(tmp / "blocks.db", readonly=True) as store:
            stored = {}
            for dev, p in _model(puts):
                s = store.read(dev, p, -1, 100)
                stored[(dev, p)] = [
                    (t, "nan" if v != v else repr(v + 0.0), q)
                    for t, v, q in zip(
                        s.ts.tolist(), s.values.tolist(), s.quality.tolist(), strict=True
                    )
                ]
    assert by_blocks[0] == by_samples[0] == ref[0]  # ledger leaves, byte for byte
    assert by_blocks[1] == by_samples[1] == ref[1]  # stored series and latest values
    assert any(leaf[2] for leaf in ref[0])
    assert {k: sorted(v) for k, v in stored.items()} == _model(puts)
