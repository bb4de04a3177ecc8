"""Deduplicator with blocks (issue 16): a block of rows newer than every point's newest passes
untouched with one array compare; redelivered rows are dropped, newer rows kept, a row at the
same time with another value kept; the result equals the per-sample path and a naive model."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from connectors.base import Quality, Sample, SampleBlock
from edge.dedupe import Deduplicator
from edge.store.sqlite import SqliteStore
from metrics.series import Series

POINTS = ("a", "b", "c")


def blk(ts: list[int], values: list[float], points: tuple[str, ...] = POINTS) -> SampleBlock:
    n = len(points)
    return SampleBlock(
        "d",
        points,
        np.array(ts, dtype=np.int64),
        np.array(values, dtype=np.float64),
        np.zeros(n, dtype=np.uint8),
    )


class _Memory:
    """A store that holds what it is told (latest and exact-time reads)."""

    def __init__(self) -> None:
        self.rows: list[Sample] = []

    def latest(self, device: str | None = None) -> list[Sample]:
        newest: dict[str, Sample] = {}
        for s in self.rows:
            if s.device == device and (s.point not in newest or s.ts >= newest[s.point].ts):
                newest[s.point] = s
        return list(newest.values())

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        got = [s for s in self.rows if s.device == device and s.point == point]
        got = [s for s in got if start <= s.ts < end]
        return Series(
            np.array([s.ts for s in got], dtype=np.int64),
            np.array([s.value for s in got], dtype=np.float64),
            np.array([int(s.quality) for s in got], dtype=np.uint8),
        )


def test_redelivered_block_dropped_newer_kept_conflict_kept(tmp_path: Path) -> None:
    from edge.store.base import Batch

    with SqliteStore(tmp_path / "s.db") as store:
        first = blk([10, 10, 10], [1.0, 2.0, math.nan])
        store.write_batches([Batch("d", 1, block=first)])
        dd = Deduplicator(store)
        assert dd.filter_block(first) is None  # redelivered: every row is stored
        assert dd.dropped == 3
        newer = blk([11, 11, 11], [1.0, 2.0, 3.0])
        assert dd.filter_block(newer) is newer  # the fast path hands the block itself
        # same time as stored, another value for b: a conflict, kept; a and c are duplicates
        mixed = blk([11, 10, 11], [1.0, 9.0, 3.0])
        kept = dd.filter_block(mixed)
        assert kept is not None
        assert (kept.points, kept.values.tolist()) == (("b",), [9.0])
        assert dd.dropped == 5


def test_repeated_points_in_one_block() -> None:
    mem = _Memory()
    dd = Deduplicator(mem)
    two = blk([1, 1, 2, 2], [0.0, 5.0, 0.0, 5.0], ("a", "b", "a", "b"))
    assert dd.filter_block(two) is two
    mem.rows += two.samples()  # written
    again = blk([2, 3, 2, 3], [0.0, 1.0, 0.0, 1.0], ("a", "a", "a", "a"))
    kept = dd.filter_block(again)
    assert kept is not None
    # 2 is a's newest with the same value: dropped; 3 is new; the second 2 is older and in
    # the store (dropped), the second 3 is equal to the newest (dropped)
    assert kept.ts.tolist() == [3]


@pytest.mark.parametrize("seed", range(6))
def test_blocks_equal_samples_and_a_naive_model(seed: int) -> None:
    rng = random.Random(seed)
    mem_b, mem_s = _Memory(), _Memory()
    dd_b, dd_s = Deduplicator(mem_b), Deduplicator(mem_s)
    stored: set[tuple[str, int, str, int]] = set()  # (point, ts, value text, quality)
    plan = tuple(rng.sample(["a", "b", "c", "e", "f"], rng.randint(1, 5)))
    for _ in range(60):
        if rng.random() < 0.5:
            points = plan  # a connector's read plan: the same tuple every time
        else:
            points = tuple(rng.choice("abcef") for _ in range(rng.randint(1, 6)))
        n = len(points)
        ts = [rng.randint(0, 12) for _ in range(n)]
        vals = [rng.choice([0.0, 1.0, math.nan]) for _ in range(n)]
        qual = [rng.choice([0, 0, 2]) for _ in range(n)]
        block = SampleBlock(
            "d",
            points,
            np.array(ts, dtype=np.int64),
            np.array(vals),
            np.array(qual, dtype=np.uint8),
        )
        samples = block.samples()
        kept_b = dd_b.filter_block(block)
        kept_s = dd_s.filter("d", samples)
        rows_b = kept_b.samples() if kept_b is not None else []
        assert rows_b == kept_s or all(
            (x.point, x.ts, x.quality, str(x.value)) == (y.point, y.ts, y.quality, str(y.value))
            for x, y in zip(rows_b, kept_s, strict=True)
        )
        model = []
        for s in samples:
            key = (s.point, s.ts, str(s.value), int(s.quality))
            if key not in stored:
                stored.add(key)
                model.append(key)
        assert [(s.point, s.ts, str(s.value), int(s.quality)) for s in rows_b] == model
        mem_b.rows += rows_b
        mem_s.rows += kept_s
    assert dd_b.dropped == dd_s.dropped > 0


def test_unchecked_when_the_store_cannot_answer() -> None:
    class Away(_Memory):
        def read(self, *a: object, **k: object) -> Series:
            raise OSError("unreachable")

    store = Away()
    store.rows = [Sample("d", "a", 5, 1.0), Sample("d", "a", 3, 1.0, Quality.GOOD)]
    dd = Deduplicator(store)
    kept = dd.filter_block(blk([3, 6, 6], [1.0, 1.0, 1.0]))  # a@3 cannot be checked: kept
    assert kept is not None
    assert kept.ts.tolist() == [3, 6, 6]
    assert dd.unchecked == 1
