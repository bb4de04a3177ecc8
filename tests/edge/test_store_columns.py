"""SqliteStore.write_batch_columns (the writer's columns hook): the same rows, byte for byte,
and the same reads as write_batches; bad input refused with nothing written."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.sqlite import BatchConflict, SqliteStore, StoreError
from metrics.evidence.canonical import SampleColumns

NAN = math.nan


def cols(batches: Sequence[Batch]) -> SampleColumns:
    return SampleColumns.of([b.samples for b in batches])


def _one_device(dev: str, seq: int, n: int, t0: int, step: int = 10) -> Batch:
    return Batch(
        dev, seq, tuple(Sample(dev, f"p{i % 3}", t0 + i * step, i * 0.5) for i in range(n))
    )


# each case: the write calls (a list of batches per call)
CASES: dict[str, list[list[Batch]]] = {
    "one device per batch, several per call": [
        [_one_device("m1", 1, 7, 100), _one_device("m2", 1, 5, 105)],
        [_one_device("m1", 2, 4, 200)],
    ],
    "multi-device batches (an import)": [
        [
            Batch(
                "import:line",
                1,
                (
                    Sample("m1", "a", 5, 1.0),
                    Sample("m2", "a", 3, 2.0),
                    Sample("m1", "b", 4, 3.0),
                    Sample("m3", "a", 6, 4.0),
                    Sample("m2", "a", 9, 5.0),
                ),
            ),
            _one_device("m1", 1, 3, 50),
        ],
        [Batch("import:line", 2, (Sample("m3", "a", 1, 7.0), Sample("m1", "a", 2, 8.0)))],
    ],
    "statuses, NaN and bad quality": [
        [
            Batch(
                "m1",
                1,
                (
                    Sample("m1", "a", 10, 1.5),
                    Sample("m1", "a", 20, NAN, Quality.BAD, "modbus_exception_2"),
                    Sample("m1", "b", 21, 2.0, Quality.UNCERTAIN, "超量程 over range"),
                    Sample("m1", "b", 30, NAN, Quality.BAD, ""),
                ),
            ),
            Batch(
                "m2",
                1,
                (
                    Sample("m2", "a", 11, NAN, Quality.BAD, "timeout"),
                    Sample("m2", "b", 12, 3.0),
                ),
            ),
        ],
        [Batch("m1", 2, (Sample("m1", "a", 40, 2.5), Sample("m1", "c", 41, -0.0)))],
    ],
    "out-of-order and equal timestamps": [
        [
            Batch(
                "m1",
                1,
                (
                    Sample("m1", "a", 300, 3.0),
                    Sample("m1", "a", 100, 1.0),
                    Sample("m1", "b", 200, 2.0),
                    Sample("m1", "a", 100, 1.1),
                    Sample("m1", "b", 150, 1.5),
                ),
            )
        ],
        [
            Batch("m1", 2, (Sample("m1", "a", 50, 0.5), Sample("m1", "a", 400, 4.0))),
            Batch(
                "import:m1",
                1,
                (Sample("m1", "b", 10, 0.1), Sample("m1", "a", 5, 0.0, Quality.BAD, "gap")),
            ),
        ],
    ],
}

_CHUNKS = (
    "SELECT device, first_ts, last_ts, count, source, seq, sorted, sidx, sid, ts, val, qual, "
    "status FROM chunks ORDER BY rowid"
)


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            "chunks": db.execute(_CHUNKS).fetchall(),
            "batches": db.execute(
                "SELECT source, seq, first_ts, last_ts, count FROM batches ORDER BY source, seq"
            ).fetchall(),
            "series": db.execute("SELECT id, device, point FROM series ORDER BY id").fetchall(),
            "devices": db.execute("SELECT * FROM devices ORDER BY device").fetchall(),
            "latest": db.execute("SELECT * FROM latest ORDER BY device").fetchall(),
        }
    finally:
        db.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SqliteStore, SqliteStore]]:
    a = SqliteStore(tmp_path / "rows.db", synchronous="NORMAL")
    c = SqliteStore(tmp_path / "cols.db", synchronous="NORMAL")
    # every write updates the latest table at once, in both
    a.latest_interval_s = c.latest_interval_s = 0.0
    yield a, c
    a.close()
    c.close()


@pytest.mark.parametrize("case", list(CASES))
def test_columns_write_the_same_rows_and_reads(
    pair: tuple[SqliteStore, SqliteStore], case: str
) -> None:
    by_rows, by_cols = pair
    for call in CASES[case]:
        by_rows.write_batches(call)
        by_cols.write_batch_columns(call, cols(call))
    rows, got = _tables(by_rows.path), _tables(by_cols.path)
    assert rows["chunks"], "nothing written"
    for table in rows:
        assert got[table] == rows[table], table
    keys = {(s.device, s.point) for call in CASES[case] for b in call for s in b.samples}
    for dev, pt in sorted(keys):
        x, y = by_rows.read(dev, pt, 0, 10_000), by_cols.read(dev, pt, 0, 10_000)
        assert y.ts.tolist() == x.ts.tolist()
        assert np.array_equal(y.values, x.values, equal_nan=True)
        assert y.quality.tolist() == x.quality.tolist()
        assert len(x.ts) == sum(
            1
            for call in CASES[case]
            for b in call
            for s in b.samples
            if (s.device, s.point) == (dev, pt)
        )
    for call in CASES[case]:
        for b in call:
            back, ref = by_cols.batch(b.source, b.seq), by_rows.batch(b.source, b.seq)
            assert back is not None
            assert ref is not None
            # repr: NaN values compare equal
            assert list(map(repr, back.samples)) == list(map(repr, ref.samples))
            assert sorted(map(repr, back.samples)) == sorted(map(repr, b.samples))
    assert [(s.device, s.point, s.ts, s.status) for s in by_cols.latest()] == [
        (s.device, s.point, s.ts, s.status) for s in by_rows.latest()
    ]


def test_columns_of_other_batches_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", synchronous="NORMAL")
    try:
        one = [_one_device("m1", 1, 4, 100)]
        other = [_one_device("m1", 1, 5, 100)]
        with pytest.raises(ValueError, match="not those of these batches"):
            store.write_batch_columns(one, cols(other))
        with pytest.raises(ValueError, match="not those of these batches"):
            store.write_batch_columns([*one, _one_device("m2", 1, 2, 0)], cols(one))
        with pytest.raises(ValueError, match="not those of these batches"):
            store.write_batch_columns([], cols(one))
        with pytest.raises(ValueError, match="no samples"):
            store.write_batch_columns([Batch("m1", 1, ())], cols([Batch("m1", 1, ())]))
        store.write_batch_columns([], cols([]))  # nothing to write, no error
        assert store.last_seq("m1") == 0
        assert store.read("m1", "p0", 0, 10**6).ts.tolist() == []
        # then a good write, and the same batch again is a conflict that writes nothing
        store.write_batch_columns(one, cols(one))
        with pytest.raises(BatchConflict, match="m1#1"):
            store.write_batch_columns(one, cols(one))
        assert [r[:5] for r in store.batch_records()] == [("m1", 1, 100, 130, 4)]
    finally:
        store.close()
    ro = SqliteStore.open_readonly(tmp_path / "s.db")
    try:
        batch = [_one_device("m1", 2, 2, 500)]
        with pytest.raises(StoreError, match="read-only"):
            ro.write_batch_columns(batch, cols(batch))
    finally:
        ro.close()


class Counting(SqliteStore):
    """A subclass overriding write_batches (like the tests' fault-injecting stores)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.calls = 0

    def write_batches(self, batches: Sequence[Batch]) -> None:
        self.calls += 1
        super().write_batches(batches)


def test_an_overridden_write_batches_is_kept(tmp_path: Path) -> None:
    store = Counting(tmp_path / "s.db")
    try:
        batch = [_one_device("m1", 1, 3, 0)]
        store.write_batch_columns(batch, cols(batch))
        assert store.calls == 1
        assert store.read("m1", "p1", 0, 100).ts.tolist() == [10]
    finally:
        store.close()


def test_series_ids_of_a_failed_write_are_forgotten(tmp_path: Path) -> None:
    """A write that fails after adding series (here: a batch already stored) leaves no id
    behind in the store's maps: the next write adds them again and reads back right."""
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_batches([Batch("a", 1, (Sample("a", "p", 1, 1.0),))])
        with pytest.raises(BatchConflict):
            store.write_batches([Batch("a", 1, (Sample("a", "q", 2, 2.0),))])
        assert store.series_id("a", "q") is None
        store.write_batches([Batch("b", 1, (Sample("b", "r", 3, 3.0),))])
        store.write_batches([Batch("a", 2, (Sample("a", "q", 4, 4.0),))])
        assert store.read("a", "q", 0, 10).values.tolist() == [4.0]
        assert store.read("b", "r", 0, 10).values.tolist() == [3.0]
        assert store.read("a", "p", 0, 10).values.tolist() == [1.0]
    with SqliteStore(tmp_path / "s.db") as again:
        assert again.read("a", "q", 0, 10).values.tolist() == [4.0]
