"""SqliteStore: round trip, ranges, prior, out-of-order chunks, latest, health, batches."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from connectors.base import Quality, Sample
from edge.store.base import Batch, DeviceHealth
from edge.store.sqlite import BatchConflict, SqliteStore, StoreError


def b(source: str, seq: int, *samples: Sample) -> Batch:
    return Batch(source, seq, tuple(samples))


def S(point: str, ts: int, v: float, q: Quality = Quality.GOOD, st: str = "") -> Sample:
    return Sample("m1", point, ts, v, q, st)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    st = SqliteStore(tmp_path / "s.db")
    yield st  # type: ignore[misc]
    st.close()


def test_round_trip_keeps_values_quality_and_status(store: SqliteStore) -> None:
    batch = b(
        "m1",
        1,
        S("a", 10, 1.5),
        S("b", 11, 7.0),
        S("a", 20, math.nan, Quality.BAD, "modbus_exception_2"),
        S("a", 30, 2.5, Quality.UNCERTAIN),
    )
    store.write_batches([batch])
    ser = store.read("m1", "a", 0, 100)
    assert ser.ts.tolist() == [10, 20, 30]
    assert ser.values[0] == 1.5
    assert math.isnan(ser.values[1])
    assert ser.values[2] == 2.5
    assert ser.quality.tolist() == [0, 2, 1]
    assert ser.ts.dtype == np.int64
    assert ser.values.dtype == np.float64
    assert ser.quality.dtype == np.uint8
    # the stored batch comes back in its order, statuses restored
    back = store.batch("m1", 1)
    assert back is not None
    assert [(x.point, x.ts, x.status) for x in back.samples] == [
        ("a", 10, ""),
        ("b", 11, ""),
        ("a", 20, "modbus_exception_2"),
        ("a", 30, ""),
    ]
    assert store.last_seq("m1") == 1
    assert store.last_seq("other") == 0
    assert store.series() == [("m1", "a"), ("m1", "b")]
    assert store.read("m1", "zzz", 0, 100).ts.size == 0
    assert store.read("nobody", "a", 0, 100).ts.size == 0


def test_ranges_are_half_open_and_span_chunks(store: SqliteStore) -> None:
    for seq in range(1, 11):
        store.write_batches(
            [b("m1", seq, *(S("a", seq * 100 + i * 10, seq + i) for i in range(10)))]
        )
    full = store.read("m1", "a", 0, 10_000)
    assert full.ts.tolist() == sorted(full.ts.tolist())
    assert len(full) == 100
    part = store.read("m1", "a", 250, 520)
    assert part.ts.tolist() == [x for x in full.ts.tolist() if 250 <= x < 520]
    assert store.read("m1", "a", 520, 520).ts.size == 0
    with_prior = store.read("m1", "a", 250, 520, prior=True)
    assert with_prior.ts.tolist()[0] == 240
    assert with_prior.ts.tolist()[1:] == part.ts.tolist()
    # prior found in an earlier chunk when the range starts in a gap between chunks
    gap = store.read("m1", "a", 195, 205, prior=True)
    assert gap.ts.tolist() == [190, 200]
    # no sample before the first one
    assert store.read("m1", "a", 0, 105, prior=True).ts.tolist() == [100]
    # a range after everything yields only the prior
    after = store.read("m1", "a", 5000, 6000, prior=True)
    assert after.ts.tolist() == [1090]
    assert after.values.tolist() == [19.0]


def test_out_of_order_and_late_chunks_are_sorted_stably(store: SqliteStore) -> None:
    store.write_batches([b("m1", 1, S("a", 100, 1.0), S("a", 300, 3.0))])
    # a late (backfilled) chunk overlapping the first one, itself out of order
    store.write_batches([b("m1", 2, S("a", 250, 2.5), S("a", 200, 2.0), S("a", 300, 3.1))])
    ser = store.read("m1", "a", 0, 1000)
    assert ser.ts.tolist() == [100, 200, 250, 300, 300]
    assert ser.values.tolist() == [1.0, 2.0, 2.5, 3.0, 3.1]  # equal ts: storage order
    pri = store.read("m1", "a", 260, 1000, prior=True)
    assert pri.ts.tolist() == [250, 300, 300]
    # latest is the newest timestamp, last written on ties
    assert [(x.ts, x.value) for x in store.latest("m1")] == [(300, 3.1)]
    # a late old batch does not move latest back
    store.write_batches([b("m1", 3, S("a", 50, 0.5))])
    assert [(x.ts, x.value) for x in store.latest()] == [(300, 3.1)]


def test_latest_keeps_bad_reading_as_nan(store: SqliteStore) -> None:
    store.write_batches([b("m1", 1, S("a", 1, 1.0), S("a", 2, math.nan, Quality.BAD, "timeout"))])
    (lat,) = store.latest("m1")
    assert math.isnan(lat.value)
    assert lat.quality == Quality.BAD
    assert lat.status == "timeout"
    assert store.latest("nobody") == []


def test_duplicate_batch_is_refused_and_nothing_is_written(store: SqliteStore) -> None:
    store.write_batches([b("m1", 1, S("a", 1, 1.0))])
    with pytest.raises(BatchConflict, match="m1#1"):
        store.write_batches([b("m1", 2, S("a", 2, 2.0)), b("m1", 1, S("a", 3, 3.0))])
    assert store.read("m1", "a", 0, 10).ts.tolist() == [1]
    assert store.last_seq("m1") == 1
    with pytest.raises(ValueError, match="no samples"):
        store.write_batches([b("m1", 2)])
    # still usable after the failures
    store.write_batches([b("m1", 2, S("a", 2, 2.0))])
    assert store.read("m1", "a", 0, 10).ts.tolist() == [1, 2]


def test_batches_listing_and_reconstruction(store: SqliteStore) -> None:
    store.write_batches([b("m1", 1, S("a", 10, 1.0)), b("import:m1", 1, S("a", 1, 0.1))])
    store.write_batches([b("m1", 2, S("a", 20, 2.0), S("b", 25, 5.0))])
    recs = store.batch_records("m1")
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in recs] == [
        ("m1", 1, 10, 10, 1),
        ("m1", 2, 20, 25, 2),
    ]
    assert [r[1] for r in store.batch_records("m1", 15, 100)] == [2]
    assert sorted(store.sources()) == ["import:m1", "m1"]
    got = list(store.batches_for("m1", 0, 100))
    assert [x.seq for x in got] == [1, 2]
    assert got[1].samples == (S("a", 20, 2.0), S("b", 25, 5.0))
    assert store.batch("m1", 99) is None


def test_health_round_trip(store: SqliteStore) -> None:
    h = DeviceHealth(
        "m1",
        connected=True,
        last_good_ts=5,
        last_sample_ts=6,
        samples=9,
        errors={"timeout": 2},
        restarts=1,
        drops=3,
        updated_ts=7,
        extra={"q": 1},
    )
    store.write_health([h])
    store.write_health([DeviceHealth("m2", updated_ts=8)])
    assert store.health() == [h, DeviceHealth("m2", updated_ts=8)]


def test_readonly_view_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(StoreError, match="no store"):
        SqliteStore.open_readonly(path)
    w = SqliteStore(path)
    w.write_batches([b("m1", 1, S("a", 1, 1.0))])
    r = SqliteStore.open_readonly(path)
    assert r.read("m1", "a", 0, 10).ts.tolist() == [1]
    w.write_batches([b("m1", 2, S("a", 2, 2.0))])
    assert r.read("m1", "a", 0, 10).ts.tolist() == [1, 2]  # sees the writer's new commits
    with pytest.raises(StoreError, match="read-only"):
        r.write_batches([b("m1", 3, S("a", 3, 3.0))])
    r.close()
    w.close()
    again = SqliteStore(path)
    assert again.last_seq("m1") == 2
    again.write_batches([b("m1", 3, S("a", 300, 3.0))])
    assert again.read("m1", "a", 0, 1000).ts.tolist() == [1, 2, 300]
    again.close()


def test_not_a_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a shopfloor store"):
        SqliteStore(junk)
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.db", synchronous="OFF")


def test_prior_with_wide_chunks_and_other_points(store: SqliteStore) -> None:
    # a wide (late, backfilled) chunk makes max_span large
    store.write_batches([b("m1", 1, S("a", 0, 0.0), S("a", 10_000, 1.0))])
    # a narrow chunk just before the range start, entirely before it
    store.write_batches([b("m1", 2, S("a", 11_000, 2.0), S("a", 11_500, 2.5))])
    got = store.read("m1", "a", 12_000, 20_000, prior=True)
    assert got.ts.tolist() == [11_500]
    assert got.values.tolist() == [2.5]
    # many later chunks without the point: prior walks back past them
    store.write_batches(
        [b("m1", seq, S("busy", 20_000 + seq, float(seq))) for seq in range(3, 300)]
    )
    got = store.read("m1", "a", 50_000, 60_000, prior=True)
    assert got.ts.tolist() == [11_500]
    assert store.read("m1", "busy", 20_100, 20_103).ts.tolist() == [20_100, 20_101, 20_102]


def test_batch_of_several_devices(store: SqliteStore) -> None:
    mixed = Batch(
        "import:line",
        1,
        (
            Sample("m1", "a", 5, 1.0),
            Sample("m2", "a", 3, 2.0, Quality.BAD, "timeout"),
            Sample("m1", "a", 4, 3.0),
            Sample("m2", "b", 6, 4.0, Quality.GOOD, "x"),
        ),
    )
    store.write_batches([mixed])
    assert store.read("m1", "a", 0, 10).ts.tolist() == [4, 5]
    assert store.read("m2", "a", 0, 10).quality.tolist() == [2]
    back = store.batch("import:line", 1)
    assert back is not None
    assert sorted(back.samples, key=lambda x: x.ts) == sorted(mixed.samples, key=lambda x: x.ts)
    assert {(x.device, x.point, x.status) for x in store.latest()} == {
        ("m1", "a", ""),
        ("m2", "a", "timeout"),
        ("m2", "b", "x"),
    }


@pytest.mark.parametrize(("mode", "pragma"), [("full", 2), ("normal", 1)])
def test_open_store_from_the_site_file(tmp_path: Path, mode: str, pragma: int) -> None:
    from config.loader import load_site_text
    from edge.store.factory import open_store

    site = load_site_text(
        f"site: {{id: s, name: S}}\nstorage: {{kind: sqlite, path: d/x.db, synchronous: {mode}}}\n"
    ).with_source_dir(tmp_path)
    store = open_store(site)
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "d" / "x.db"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == pragma
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    store.close()  # idempotent


def test_compaction_merges_small_chunks_and_keeps_every_sample(store: SqliteStore) -> None:
    statuses = {7: "timeout", 33: "clamped"}
    for seq in range(1, 41):
        samples = []
        for k in range(3):
            i = (seq - 1) * 3 + k
            q = Quality.BAD if i in statuses else Quality.GOOD
            samples.append(S("abc"[k], 1000 * i, float(i), q, statuses.get(i, "")))
        store.write_batches([b("m1", seq, *samples)])
    # a late batch overlapping the others, and a recent one that is not settled yet
    store.write_batches([b("m1", 41, S("a", 1500, -1.0)), b("m1", 42, S("a", 10**9, 9.0))])
    before = {p: store.read("m1", p, 0, 2 * 10**9) for p in "abc"}
    prior = store.read("m1", "a", 50_000, 60_000, prior=True)
    records = store.batch_records("m1")
    latest = store.latest("m1")
    rows = store._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    removed = store.compact(10**8, max_span_ns=60_000)
    assert removed > 0
    assert store._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == rows - removed
    for p in "abc":
        after = store.read("m1", p, 0, 2 * 10**9)
        assert after.ts.tolist() == before[p].ts.tolist()
        assert after.values.tolist() == before[p].values.tolist()
        assert after.quality.tolist() == before[p].quality.tolist()
    got = store.read("m1", "a", 50_000, 60_000, prior=True)
    assert got.ts.tolist() == prior.ts.tolist()
    assert store.batch_records("m1") == records
    assert store.latest("m1") == latest
    assert store.batch("m1", 42) is not None  # not compacted: still reconstructable
    assert store.compact(10**8, max_span_ns=60_000) == 0  # nothing small left to merge
    # statuses followed their samples
    merged = store._db.execute("SELECT status FROM chunks WHERE seq = 0 AND status IS NOT NULL")
    found = {st for row in merged for _, st in json.loads(row[0])}
    assert found == {"timeout", "clamped"}
