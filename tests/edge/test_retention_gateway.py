"""After a retention pass the gateway still answers for old data: ``/api/v1/history`` from the
per-minute aggregates (same buckets as from the raw samples) and the KPI table through the
store the gateway opens (raw samples read back from the ledger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.store.ledger import Ledger
from edge.store.retention import DAY_NS, retain
from edge.store.sqlite import SqliteStore
from gateway.data import open_readonly
from metrics.engine import compute_table
from metrics.periods import parse_range
from tests.gateway.support import PINNED_NOW_NS, start_gateway, stop_gateway

H = 3600 * 10**9


def _history(gw: object, device: str, point: str) -> dict[str, object]:
    with gw.client("viewer") as c:  # type: ignore[attr-defined]
        r = c.get(
            "/api/v1/history",
            params={
                "device": device,
                "point": point,
                "start": PINNED_NOW_NS - 3 * H,
                "end": PINNED_NOW_NS,
                "buckets": 12,  # 15-minute buckets: whole minutes
            },
        )
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out


def test_history_and_kpi_after_retention(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path)
    try:
        keys = [("meter1", "energy"), ("cnc1", "state"), ("cnc1", "spindle_kw")]
        before = {k: _history(gw, *k) for k in keys}
        site = gw.site
        tz = site.site.timezone
        day = parse_range("2026-03-10..2026-03-10", tz)
        base = parse_range("2026-03-09..2026-03-09", tz)
        reader = open_readonly(gw.store_path, tmp_path / "ledger.db")
        try:
            table_before = compute_table(reader, site, base, day).to_dict()  # type: ignore[arg-type]
        finally:
            reader.close()
        with (
            SqliteStore(gw.store_path) as store,
            Ledger.open_readonly(tmp_path / "ledger.db") as ledger,
        ):
            res = retain(store, ledger, 1.0, now_ns=PINNED_NOW_NS + 2 * DAY_NS)
            assert res.blocked_by is None
            assert res.samples_removed > 9 * 120
            assert len(store.read("meter1", "energy", 0, PINNED_NOW_NS)) == 0
        for k in keys:
            after = _history(gw, *k)
            for field in ("t", "count", "bad", "min", "max", "last"):
                assert after[field] == before[k][field], (k, field)
            assert after["mean"] == pytest.approx(before[k]["mean"], rel=1e-12)
        reader = open_readonly(gw.store_path, tmp_path / "ledger.db")
        try:
            table_after = compute_table(reader, site, base, day).to_dict()  # type: ignore[arg-type]
        finally:
            reader.close()
        assert table_after == table_before
        plain = open_readonly(gw.store_path)  # without the ledger the old period is empty
        try:
            assert compute_table(plain, site, base, day).to_dict() != table_before  # type: ignore[arg-type]
        finally:
            plain.close()
    finally:
        stop_gateway(gw)
