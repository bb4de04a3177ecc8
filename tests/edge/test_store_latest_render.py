"""SqliteStore renders a device's latest row from the columns alone (no per-point Python state
between flushes, issue 16 memory), as a binary row (:mod:`edge.store.latest_row`, schema 2):
every point of a touched device is in the row, untouched devices keep theirs, a latest entry
without a series (older files) is kept, rows of older files (JSON) are read and rewritten, and
a read-only view names the series another process added after it opened."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from connectors.base import Quality, Sample
from edge.store import latest_row
from edge.store.base import Batch
from edge.store.sqlite import SCHEMA_VERSION, SqliteStore


def _rows(path: Path) -> dict[str, dict[str, list[object]]]:
    """Every latest row decoded, by device then point name: [ts, value, quality, status]."""
    with sqlite3.connect(path) as db:
        names = {k: p for k, _d, p in db.execute("SELECT id, device, point FROM series")}
        out: dict[str, dict[str, list[object]]] = {}
        for dev, stored in db.execute("SELECT device, points FROM latest"):
            assert isinstance(stored, bytes)
            assert stored[:4] == latest_row.MAGIC
            row = latest_row.decode(stored)
            out[dev] = {
                names[k]: [t, v, q, row.status.get(k, "")]
                for k, t, v, q in zip(
                    row.sid.tolist(),
                    row.ts.tolist(),
                    row.val.tolist(),
                    row.qual.tolist(),
                    strict=True,
                )
            }
            out[dev].update(row.named)
    return out


def test_row_of_a_touched_device_has_all_its_points(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.latest_interval_s = 0.0  # every write renders
        store.write_batches(
            [
                Batch("m1", 1, (Sample("m1", "a", 10, 1.0), Sample("m1", "b", 11, 2.0))),
                Batch("m2", 1, (Sample("m2", "x", 12, 3.0, Quality.BAD, "timeout"),)),
            ]
        )
        store.write_batches([Batch("m1", 2, (Sample("m1", "b", 20, 5.0),))])
        rows = _rows(path)
    assert rows["m1"] == {"a": [10, 1.0, 0, ""], "b": [20, 5.0, 0, ""]}
    assert rows["m2"] == {"x": [12, 3.0, int(Quality.BAD), "timeout"]}


def test_nan_statuses_and_unicode_round_trip_through_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    samples = (
        Sample("压机1", "温度", 10, math.nan, Quality.BAD, "超时 timeout"),
        Sample("压机1", "p2", 11, -0.0),
        Sample("压机1", "p3", 12, 1e300, Quality.UNCERTAIN, "stale"),
    )
    with SqliteStore(path) as store:
        store.write_batches([Batch("压机1", 1, samples)])
    ro = SqliteStore.open_readonly(path)
    try:
        got = ro.latest("压机1")
    finally:
        ro.close()
    assert [(s.point, s.ts, s.quality, s.status) for s in got] == sorted(
        (s.point, s.ts, s.quality, s.status) for s in samples
    )
    by = {s.point: s.value for s in got}
    assert math.isnan(by["温度"])
    assert by["p3"] == 1e300
    assert math.copysign(1.0, by["p2"]) == -1.0


def test_a_reader_names_series_added_after_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    try:
        store.write_batches([Batch("m1", 1, (Sample("m1", "a", 10, 1.0),))])
        ro = SqliteStore.open_readonly(path)
        try:
            assert [s.point for s in ro.latest()] == ["a"]
            store.write_batches([Batch("m1", 2, (Sample("m1", "b", 20, 2.0),))])
            store.latest()  # writes the held-back row
            assert [(s.point, s.value) for s in ro.latest()] == [("a", 1.0), ("b", 2.0)]
        finally:
            ro.close()
    finally:
        store.close()


def _legacy_store(path: Path) -> None:
    """A store as schema 1 left it: the latest row as JSON text, one entry without a series."""
    with SqliteStore(path) as store:
        store.write_batches([Batch("m1", 1, (Sample("m1", "a", 10, 1.0),))])
    with sqlite3.connect(path) as db:
        legacy = {"a": [10, 1.0, 0, ""], "old": [5, None, 1, "gateway_down"]}
        db.execute("UPDATE latest SET points = ? WHERE device = 'm1'", (json.dumps(legacy),))
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")


def test_rows_of_older_files_are_read_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _legacy_store(path)
    ro = SqliteStore.open_readonly(path)  # a reader of the old file reads the JSON row
    try:
        got = {(s.point, s.ts, s.quality, s.status) for s in ro.latest()}
    finally:
        ro.close()
    assert got == {("a", 10, Quality.GOOD, ""), ("old", 5, Quality(1), "gateway_down")}
    with SqliteStore(path) as store:
        store.latest_interval_s = 0.0
        store.write_batches([Batch("m1", 2, (Sample("m1", "a", 30, 2.0),))])
        latest = {(s.device, s.point): (s.ts, s.value) for s in store.latest()}
    assert latest[("m1", "a")] == (30, 2.0)
    assert latest[("m1", "old")][0] == 5
    assert math.isnan(latest[("m1", "old")][1])
    assert _rows(path)["m1"]["old"] == [5, None, 1, "gateway_down"]  # kept, now in binary
    with sqlite3.connect(path) as db:
        (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    assert int(version) == SCHEMA_VERSION == 2


def test_an_unreadable_row_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.write_batches(
            [
                Batch("m1", 1, (Sample("m1", "a", 10, 1.0),)),
                Batch("m2", 1, (Sample("m2", "b", 10, 2.0),)),
            ]
        )
    with sqlite3.connect(path) as db:
        (good,) = db.execute("SELECT points FROM latest WHERE device = 'm1'").fetchone()
        db.execute("UPDATE latest SET points = ? WHERE device = 'm1'", (good[:20],))
    # opens (the chunks hold every sample)
    with caplog.at_level(logging.WARNING, logger="edge.store.sqlite"), SqliteStore(path) as store:
        assert [(s.device, s.point) for s in store.latest()] == [("m2", "b")]
        assert store.newest([("m1", "a")])[("m1", "a")] is not None
    assert "latest row of m1 unreadable" in caplog.text


def test_row_format_is_exact() -> None:
    sid = np.array([3, 7], dtype=np.int64)
    ts = np.array([1, -2], dtype=np.int64)
    val = np.array([0.5, math.nan])
    qual = np.array([0, 2], dtype=np.uint8)
    blob = latest_row.encode(sid, ts, val, qual, {7: "x"}, {})
    assert blob[:8] == b"SFL1\x02\x00\x00\x00"
    assert blob[8:24] == (1).to_bytes(8, "little") + (-2).to_bytes(8, "little", signed=True)
    assert blob[40:48] == b"\x03\x00\x00\x00\x07\x00\x00\x00"
    assert blob[48:50] == b"\x00\x02"
    assert blob[50:] == b'{"status":{"7":"x"}}'
    row = latest_row.decode(blob)
    assert row.sid.tolist() == [3, 7]
    assert row.status == {7: "x"}
    assert row.named == {}
    with pytest.raises(ValueError, match="cut short"):
        latest_row.decode(blob[:45])
    with pytest.raises(ValueError, match="neither"):
        latest_row.decode(b"XXXX\x00\x00\x00\x00")
