"""SqliteStore.newest: where each series ends (newest sample, newest good sample), read from the
chunks, imports left out; what the collector's restart record and the OPC UA resume read."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from connectors.base import NAN, Quality, Sample
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore


def _b(source: str, seq: int, *samples: Sample) -> Batch:
    return Batch(source, seq, samples)


def test_newest_and_newest_good_per_series(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        store.write_batches(
            [
                _b("m1", 1, Sample("m1", "a", 10, 1.0), Sample("m1", "b", 10, 5.0)),
                _b(
                    "m1",
                    2,
                    Sample("m1", "a", 30, 3.0),
                    Sample("m1", "b", 20, NAN, Quality.BAD, "link_lost"),
                ),
                # a backfilled (older) sample written later does not become the newest
                _b("m1", 3, Sample("m1", "a", 20, 2.0)),
                # equal timestamps: the last written wins
                _b("m1", 4, Sample("m1", "c", 7, 1.0), Sample("m1", "c", 7, 2.0)),
                # an import newer than the live data is left out
                _b("import:m1", 1, Sample("m1", "a", 99, 9.0), Sample("m1", "d", 5, 1.0)),
            ]
        )
        got = store.newest([("m1", "a"), ("m1", "b"), ("m1", "c"), ("m1", "d"), ("m1", "x")])
    finally:
        store.close()
    assert set(got) == {("m1", "a"), ("m1", "b"), ("m1", "c")}
    a = got[("m1", "a")]
    assert (a.last.ts, a.last.value) == (30, 3.0)
    assert a.good == a.last
    b = got[("m1", "b")]
    assert (b.last.ts, b.last.quality, b.last.status) == (20, Quality.BAD, "link_lost")
    assert math.isnan(b.last.value)
    assert b.good is not None
    assert (b.good.ts, b.good.value) == (10, 5.0)
    assert got[("m1", "c")].last.value == 2.0


def test_newest_walks_back_through_many_chunks_and_sees_past_a_stale_latest_table(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        # the good sample of "p" lies 500 chunks back; "q" reports every chunk
        batches = [_b("m1", 1, Sample("m1", "p", 0, 1.5), Sample("m1", "q", 0, 0.0))]
        batches += [_b("m1", k + 2, Sample("m1", "q", k + 1, float(k))) for k in range(500)]
        batches.append(_b("m1", 502, Sample("m1", "p", 600, NAN, Quality.BAD, "gateway_down")))
        store.write_batches(batches)
    finally:
        store.close()
    # the latest table lags the chunks after a kill -9 (written at most every 0.5 s): here it
    # is simply emptied
    db = sqlite3.connect(tmp_path / "s.db")
    try:
        db.execute("DELETE FROM latest")
        db.commit()
    finally:
        db.close()
    ro = SqliteStore.open_readonly(tmp_path / "s.db")
    try:
        got = ro.newest([("m1", "p"), ("m1", "q")])
        assert ro.latest("m1") == []
    finally:
        ro.close()
    p = got[("m1", "p")]
    assert p.last.status == "gateway_down"
    assert p.good is not None
    assert (p.good.ts, p.good.value) == (0, 1.5)
    assert got[("m1", "q")].last.ts == 500
