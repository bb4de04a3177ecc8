"""The embedded store's per-chunk series index: reads of one point fetch only that point's
range of each chunk and give exactly what the full decode gives (interleaved, out-of-order,
compacted and pre-index chunks)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore, _assemble, series_index
from metrics.series import Series


def full_decode(store: SqliteStore, device: str, point: str, start: int, end: int) -> Series:
    """The reference: every chunk of the device decoded whole, then masked (the old read)."""
    row = store._db.execute(
        "SELECT s.id FROM series s WHERE s.device = ? AND s.point = ?", (device, point)
    ).fetchone()
    rows = store._db.execute(
        "SELECT sid, ts, val, qual, sorted FROM chunks WHERE device = ? ORDER BY first_ts, rowid",
        (device,),
    ).fetchall()
    s = _assemble(rows, int(row[0]))
    lo = int(np.searchsorted(s.ts, start))
    hi = int(np.searchsorted(s.ts, end))
    return Series(s.ts[lo:hi], s.values[lo:hi], s.quality[lo:hi])


def same(a: Series, b: Series) -> None:
    assert a.ts.tolist() == b.ts.tolist()
    np.testing.assert_array_equal(a.values, b.values)  # NaN == NaN here
    assert a.quality.tolist() == b.quality.tolist()


def random_batches(rng: np.random.Generator, n_batches: int, points: int) -> list[Batch]:
    out = []
    t = 0
    for seq in range(1, n_batches + 1):
        samples = []
        for _ in range(int(rng.integers(1, 40))):
            t += int(rng.integers(0, 3))  # equal timestamps happen
            late = int(rng.integers(0, 50)) if rng.random() < 0.1 else 0  # late data
            p = f"p{int(rng.integers(0, points))}"
            bad = rng.random() < 0.05
            samples.append(
                Sample(
                    "m1",
                    p,
                    t - late,
                    float("nan") if bad else float(rng.normal()),
                    Quality.BAD if bad else Quality.GOOD,
                    "timeout" if bad else "",
                )
            )
        if rng.random() < 0.2:  # a batch of another device in the same call
            samples.append(Sample("m2", "p0", t, 1.0))
        out.append(Batch("m1", seq, tuple(samples)))
    return out


def test_series_index_lists_first_end_and_count_per_series() -> None:
    sids = np.array([5, 3, 5, 5, 9, 3], dtype=np.uint32)
    quads = np.frombuffer(series_index(sids), dtype=np.uint32).reshape(-1, 4).tolist()
    assert quads == [[3, 1, 6, 2], [5, 0, 4, 3], [9, 4, 5, 1]]
    one = np.frombuffer(series_index(np.array([7, 7, 7], dtype=np.uint32)), dtype=np.uint32)
    assert one.tolist() == [7, 0, 3, 3]
    assert series_index(np.array([], dtype=np.uint32)) == b""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indexed_reads_equal_the_full_decode(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    store = SqliteStore(tmp_path / "s.db")
    try:
        batches = random_batches(rng, 60, 6)
        for i in range(0, len(batches), 7):
            store.write_batches(batches[i : i + 7])
        assert store._read_indexed(1, ("m1", -(10**6), 10**9, -(10**6))) is not None
        for p in [f"p{i}" for i in range(6)] + ["absent"]:
            for start, end in [(-(10**6), 10**9), (100, 400), (250, 251)]:
                got = store.read("m1", p, start, end)
                if p == "absent":
                    assert len(got) == 0
                    continue
                same(got, full_decode(store, "m1", p, start, end))
        # after compaction (series grouped inside merged chunks) reads are unchanged
        before = {p: store.read("m1", p, -(10**6), 10**9) for p in ("p0", "p3", "p5")}
        prior = store.read("m1", "p2", 300, 500, prior=True)
        assert store.compact(10**9, max_span_ns=200) > 0
        merged = store._db.execute("SELECT COUNT(*) FROM chunks WHERE seq = 0").fetchone()[0]
        assert merged > 0
        for p, ser in before.items():
            same(store.read("m1", p, -(10**6), 10**9), ser)
            same(full_decode(store, "m1", p, -(10**6), 10**9), ser)
        same(store.read("m1", "p2", 300, 500, prior=True), prior)
    finally:
        store.close()


def test_compacted_chunks_hold_each_series_contiguously(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        for seq in range(1, 21):
            store.write_batches(
                [Batch("m1", seq, tuple(Sample("m1", p, seq * 10, float(seq)) for p in "abc"))]
            )
        assert store.compact(10**6) > 0
        (sidx,) = store._db.execute("SELECT sidx FROM chunks WHERE seq = 0").fetchone()
        quads = np.frombuffer(sidx, dtype=np.uint32).reshape(-1, 4)
        assert (quads[:, 2] - quads[:, 1] == quads[:, 3]).all()  # first..end holds only it
        same(store.read("m1", "b", 0, 10**6), full_decode(store, "m1", "b", 0, 10**6))
    finally:
        store.close()


def test_a_store_from_before_the_index_reads_and_gains_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    rng = np.random.default_rng(9)
    batches = random_batches(rng, 30, 4)
    store = SqliteStore(db)
    store.write_batches(batches[:15])
    store.close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE chunks DROP COLUMN sidx")  # the layout before the index
    con.commit()
    con.close()
    ro = SqliteStore.open_readonly(db)
    try:
        old = {p: ro.read("m1", p, -(10**6), 10**9) for p in ("p0", "p1")}
        assert len(old["p0"]) > 0
    finally:
        ro.close()
    store = SqliteStore(db)  # writable: adds the column, old rows stay NULL
    try:
        cols = [r[1] for r in store._db.execute("PRAGMA table_info(chunks)")]
        assert cols[-1] == "sidx"
        for p, ser in old.items():
            same(store.read("m1", p, -(10**6), 10**9), ser)
        store.write_batches(batches[15:])
        for p in ("p0", "p1", "p3"):
            same(
                store.read("m1", p, -(10**6), 10**9),
                full_decode(store, "m1", p, -(10**6), 10**9),
            )
        # ranges holding only new (indexed) rows use the index
        last = batches[-1].samples[-1].ts
        assert store._read_indexed(1, ("m1", last - 10**6, last + 1, last)) is not None
    finally:
        store.close()
