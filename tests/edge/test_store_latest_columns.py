"""SqliteStore's latest table kept as columns by series id (issue 16): same answers as the
per-write dictionaries it replaced: the newest per point, the last written on equal times, a
backfilled older sample never replaces it, a status cleared by a newer good sample, a
rolled-back write leaves nothing behind, and the values survive a reopen."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from connectors.base import NAN, Quality, Sample
from edge.store.base import Batch
from edge.store.sqlite import BatchConflict, SqliteStore


def _latest(store: SqliteStore) -> dict[tuple[str, str], tuple[int, float, Quality, str]]:
    return {(s.device, s.point): (s.ts, s.value, s.quality, s.status) for s in store.latest()}


def test_newest_per_point_across_writes_and_equal_times(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.latest_interval_s = 3600.0  # held back until latest() flushes
    try:
        store.write_batches(
            [Batch("m1", 1, (Sample("m1", "a", 10, 1.0), Sample("m1", "b", 5, 2.0)))]
        )
        # equal time: the last written wins; older backfill does not replace
        store.write_batches(
            [Batch("m1", 2, (Sample("m1", "a", 10, 1.5), Sample("m1", "b", 4, 9.0)))]
        )
        # within one write: b twice, the later one in write order at the same time wins
        store.write_batches(
            [
                Batch(
                    "m2",
                    1,
                    (
                        Sample("m2", "x", 7, 1.0),
                        Sample("m2", "x", 7, 3.0),
                        Sample("m2", "x", 6, 8.0),
                    ),
                )
            ]
        )
        got = _latest(store)
    finally:
        store.close()
    assert got[("m1", "a")] == (10, 1.5, Quality.GOOD, "")
    assert got[("m1", "b")] == (5, 2.0, Quality.GOOD, "")
    assert got[("m2", "x")] == (7, 3.0, Quality.GOOD, "")


def test_status_is_cleared_by_a_newer_good_sample_and_kept_otherwise(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        bad = Sample("m1", "a", 10, NAN, Quality.BAD, "link_lost")
        store.write_batches(
            [Batch("m1", 1, (bad, Sample("m1", "b", 10, NAN, Quality.BAD, "timeout")))]
        )
        store.write_batches([Batch("m1", 2, (Sample("m1", "a", 20, 4.0),))])
        got = _latest(store)
    finally:
        store.close()
    assert got[("m1", "a")] == (20, 4.0, Quality.GOOD, "")
    ts, value, quality, status = got[("m1", "b")]
    assert (ts, quality, status) == (10, Quality.BAD, "timeout")
    assert math.isnan(value)


def test_a_rolled_back_write_leaves_the_latest_values_as_they_were(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.latest_interval_s = 3600.0
    try:
        store.write_batches([Batch("m1", 1, (Sample("m1", "a", 10, 1.0),))])
        with pytest.raises(BatchConflict):
            store.write_batches([Batch("m1", 1, (Sample("m1", "a", 99, 9.0, Quality.BAD, "x"),))])
        got = _latest(store)
    finally:
        store.close()
    assert got[("m1", "a")] == (10, 1.0, Quality.GOOD, "")


def test_latest_values_survive_a_reopen_and_older_samples_do_not_replace_them(
    tmp_path: Path,
) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_batches(
            [
                Batch(
                    "m1",
                    1,
                    (Sample("m1", "a", 10, 1.0), Sample("m1", "b", 10, NAN, Quality.BAD, "t")),
                )
            ]
        )
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_batches(
            [Batch("m1", 2, (Sample("m1", "a", 5, 7.0), Sample("m1", "c", 1, 2.0)))]
        )
        got = _latest(store)
    assert got[("m1", "a")] == (10, 1.0, Quality.GOOD, "")
    assert got[("m1", "b")][2:] == (Quality.BAD, "t")
    assert got[("m1", "c")] == (1, 2.0, Quality.GOOD, "")
