"""``make demo`` twice is as good as once (the applicant's first steps): the second run's
factory clock starts inside a shift, and the printed KPI command covers exactly what the store
recorded — the imported baseline days and the live time of every run."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from config.loader import load_site
from connectors.base import Sample
from edge.cli.demo import default_start, kpi_command, next_in_shift, packaged_demo, recorded_spans
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=TZ).timestamp()) * 10**9


def test_next_in_shift_of_the_demo_calendar() -> None:
    site = load_site(packaged_demo())  # 08-16 and 16-24, Monday to Saturday
    assert next_in_shift(site, at(2026, 3, 3, 9)) == at(2026, 3, 3, 9)  # inside: kept
    assert next_in_shift(site, at(2026, 3, 3, 23, 59)) == at(2026, 3, 3, 23, 59)
    assert next_in_shift(site, at(2026, 3, 4, 1)) == at(2026, 3, 4, 8)  # night: the morning
    assert next_in_shift(site, at(2026, 3, 8, 10)) == at(2026, 3, 9, 8)  # Sunday: Monday
    assert next_in_shift(site, at(2026, 9, 30, 23, 59, 59) + 10**9) == at(2026, 10, 5, 8)


def test_a_second_run_after_the_evening_shift_starts_in_the_next_shift(tmp_path: Path) -> None:
    site = load_site(packaged_demo())
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    try:  # the first run went on to Saturday 23:59:59.5 (factory time) and stopped
        ran_to = at(2026, 3, 7, 23, 59, 59) + 500_000_000
        store.write_batches([Batch("cnc1", 1, (Sample("cnc1", "state", ran_to, 0.0),))])
    finally:
        store.close()
    # the wall clock says Saturday 10:00: the factory continues on Monday's first shift
    assert default_start(site, db, at(2026, 3, 7, 10)) == at(2026, 3, 9, 8)


def test_kpi_command_covers_what_the_store_recorded(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    try:
        store.write_batches(
            [
                Batch("import:cnc1", 1, (Sample("cnc1", "state", at(2025, 2, 24, 0, 5), 0.0),)),
                Batch("import:cnc1", 2, (Sample("cnc1", "state", at(2025, 3, 2, 23, 55), 0.0),)),
                Batch("cnc1", 1, (Sample("cnc1", "state", at(2026, 3, 2, 8, 0, 3), 0.0),)),
                Batch("cnc1", 2, (Sample("cnc1", "state", at(2026, 3, 2, 9, 0), 0.0),)),
            ]
        )
    finally:
        store.close()
    recorded, imported = recorded_spans(db)
    assert recorded == at(2026, 3, 2, 8, 0, 3)
    assert imported == (at(2025, 2, 24, 0, 5), at(2025, 3, 2, 23, 55))
    # the second run (started 10:00, a different week a year earlier) still names the first
    # run's baseline and current start
    cmd = kpi_command(
        Path("d.yaml"),
        "Asia/Shanghai",
        at(2026, 3, 2, 10),
        at(2026, 3, 2, 11),
        7,
        recorded_from=recorded,
        imported=imported,
    )
    assert " --baseline 2025-02-24..2025-03-02 " in cmd
    assert cmd.endswith(" --current 2026-03-02T08:00:03..2026-03-02T11:00:00")
    assert recorded_spans(tmp_path / "none.db") == (None, None)
