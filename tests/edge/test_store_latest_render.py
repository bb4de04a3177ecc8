"""SqliteStore renders a device's latest row from the columns alone (no per-point Python state
between flushes, issue 16 memory): every point of a touched device is in the row, untouched
devices keep theirs, and a latest entry without a series (older files) is kept."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore


def _rows(path: Path) -> dict[str, dict[str, list[object]]]:
    with sqlite3.connect(path) as db:
        return {d: json.loads(p) for d, p in db.execute("SELECT device, points FROM latest")}


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


def test_an_entry_without_a_series_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.write_batches([Batch("m1", 1, (Sample("m1", "a", 10, 1.0),))])
    with sqlite3.connect(path) as db:
        (points,) = db.execute("SELECT points FROM latest WHERE device = 'm1'").fetchone()
        row = json.loads(points)
        row["old"] = [5, 7.0, 0, ""]
        db.execute("UPDATE latest SET points = ? WHERE device = 'm1'", (json.dumps(row),))
    with SqliteStore(path) as store:
        store.latest_interval_s = 0.0
        store.write_batches([Batch("m1", 2, (Sample("m1", "a", 30, 2.0),))])
        latest = {(s.device, s.point): (s.ts, s.value) for s in store.latest()}
    assert latest == {("m1", "a"): (30, 2.0), ("m1", "old"): (5, 7.0)}
