"""The demo's factory clock: it starts at the most recent shift start of a working day (or
after an earlier run's data) and the printed KPI command covers exactly the time that ran."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from config.loader import load_site, load_site_text
from connectors.base import Sample
from edge.cli.demo import (
    DemoClock,
    baseline_period,
    default_start,
    kpi_command,
    last_shift_start,
    packaged_demo,
)
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from metrics.periods import parse_range

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=TZ).timestamp()) * 10**9


def test_last_shift_start_of_the_demo_calendar() -> None:
    site = load_site(packaged_demo())  # 08:00-16:00 and 16:00-24:00, Mon-Sat; 10-01..03 off
    # Tuesday 07:30, before the day shift: Monday's evening shift
    assert last_shift_start(site, at(2026, 3, 3, 7, 30)) == at(2026, 3, 2, 16)
    # Monday 09:00 and exactly 16:00
    assert last_shift_start(site, at(2026, 3, 2, 9)) == at(2026, 3, 2, 8)
    assert last_shift_start(site, at(2026, 3, 2, 16)) == at(2026, 3, 2, 16)
    # Sunday (no shift) 10:00: Saturday evening
    assert last_shift_start(site, at(2026, 11, 22, 10)) == at(2026, 11, 21, 16)
    # 2026-10-02 (Friday, a holiday) 10:00: back to 2026-09-30 (Wednesday) 16:00
    assert last_shift_start(site, at(2026, 10, 2, 10)) == at(2026, 9, 30, 16)


def test_around_the_clock_starts_now() -> None:
    site = load_site_text("site: {id: a, name: b}")
    now = at(2026, 3, 3, 7, 30, 12)
    assert last_shift_start(site, now) == now


def test_a_second_run_continues_after_the_data_of_the_first(tmp_path: Path) -> None:
    site = load_site(packaged_demo())
    db = tmp_path / "s.db"
    now = at(2026, 3, 2, 9, 30)
    assert default_start(site, db, now) == at(2026, 3, 2, 8)  # no store yet
    store = SqliteStore(db)
    try:
        ran_to = at(2026, 3, 2, 10, 15, 7) + 123_456_789  # the first run went ahead of the wall
        store.write_batches([Batch("cnc1", 1, (Sample("cnc1", "state", ran_to, 0.0),))])
    finally:
        store.close()
    assert default_start(site, db, now) == at(2026, 3, 2, 10, 15, 8)
    # data older than the shift start does not move it
    assert default_start(site, db, at(2026, 3, 2, 17)) == at(2026, 3, 2, 16)


def test_kpi_command_covers_the_time_that_ran() -> None:
    start = at(2026, 3, 2, 8, 2, 15) + 400_000_000
    end = at(2026, 3, 2, 9, 2, 16) + 900_000_000
    cmd = kpi_command(Path("/d/demo-site.yaml"), "Asia/Shanghai", start, end, 7)
    # the baseline: the same calendar week a year earlier (2025 vs 2026, the default periods)
    assert cmd.startswith("shopfloor kpi -c /d/demo-site.yaml --baseline 2025-02-24..2025-03-02 ")
    assert "imported" not in cmd  # provenance comes from the recorded batches
    base = parse_range(cmd.split("--baseline ")[1].split()[0], "Asia/Shanghai")
    assert (base.start_ns, base.end_ns) == baseline_period(start, "Asia/Shanghai", 7)
    one = kpi_command(Path("x.yaml"), "Asia/Shanghai", start, end, 1)
    assert "--baseline 2025-03-02..2025-03-02 " in one
    current = cmd.split("--current ")[1].split()[0]
    assert current == "2026-03-02T08:02:16..2026-03-02T09:02:16"
    rng = parse_range(current, "Asia/Shanghai")
    assert start <= rng.start_ns < start + 10**9
    assert end - 10**9 < rng.end_ns <= end
    # a run shorter than a second still gives a valid range
    short = kpi_command(Path("x.yaml"), "Asia/Shanghai", start, start + 1000, 7)
    parse_range(short.split("--current ")[1].split()[0], "Asia/Shanghai")


def test_demo_clock_runs_only_once_started() -> None:
    clock = DemoClock(60.0, at(2026, 3, 2, 8))
    assert clock.now_ns() == at(2026, 3, 2, 8)
    sim = clock.start()
    assert sim.speed == 60.0
    assert sim.start_ns == at(2026, 3, 2, 8)
    assert clock.now_ns() >= at(2026, 3, 2, 8)
