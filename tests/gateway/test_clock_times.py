"""The gateway's export -> verify path at several fixed clock times.

The suite once went red at a certain time of day: the fixture's two hours of data then fell
inside the demo's shifts, where counts that advanced in every state gave an effectiveness of
4.9. The store is filled at each pinned "now" below (inside a shift, across the evening shift's
end at midnight, over the lunch break, at the shift change, before the first shift, on a Sunday
and on a holiday), the signed bundle is exported for the day before and the day of that "now",
and it must verify, with every OEE component of a period that has planned time at most 1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from config.loader import load_site
from gateway.evidence import export_bundle, verify_bundle
from gateway.settings import Settings
from tests.gateway.support import TZ, fill, write_site

S = 1_000_000_000

TIMES = {
    "in the day shift": dt.datetime(2026, 3, 10, 10, 30, tzinfo=TZ),
    "midnight, end of the evening shift": dt.datetime(2026, 12, 5, 0, 0, tzinfo=TZ),
    "over the lunch break": dt.datetime(2026, 3, 10, 12, 45, tzinfo=TZ),
    "at the shift change": dt.datetime(2026, 3, 11, 17, 0, tzinfo=TZ),
    "before the first shift": dt.datetime(2026, 3, 12, 7, 0, tzinfo=TZ),
    "on a Sunday": dt.datetime(2026, 3, 15, 11, 0, tzinfo=TZ),
    "on a holiday": dt.datetime(2026, 10, 2, 9, 0, tzinfo=TZ),
}


@pytest.mark.parametrize("now", TIMES.values(), ids=list(TIMES))
def test_export_verifies_at_any_clock_time(tmp_path: Path, now: dt.datetime) -> None:
    site = load_site(write_site(tmp_path))
    fill(site, tmp_path / "store.db", int(now.timestamp()) * S)
    settings = Settings.from_site(site)
    day = now.date()
    current = f"{day - dt.timedelta(days=1)}..{day}"
    data, _name = export_bundle(settings, "2025-01-01..2025-12-31", current)
    ok, report, _source = verify_bundle(settings, data, None)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert ok, failed
    assert failed == []
