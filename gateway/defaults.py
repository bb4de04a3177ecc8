"""The table page's default periods, from what the store recorded (pure but for the read).

* 建成后 (current): the latest complete days recorded live — up to seven days ending the day
  before the newest sample's day; a fresh recording with no complete day yet: exactly what was
  recorded (``FROM..TO`` as local date-times, from the first live sample to 1 s after the newest),
  never the whole day (its hours before the first sample would read as offline: a networking
  rate of 0 % while every device is connected);
* 建设前 (baseline): the days of the imported history (sources ``import:*``) when there is
  one, else the first recorded days (at least the first day), as many as the current period
  has, before it; when nothing was recorded before the current period, the same days a year
  earlier (the period of the previous year's declared figures; its measured KPIs then show
  "—" with the reason).

Never a calendar year mostly in the future; today (site zone) only for an empty store.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

CURRENT_DAYS = 7
IMPORT_PREFIX = "import:"


def _day(ts_ns: int, tz: zoneinfo.ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ns // 10**9, tz).date()  # floor: an exclusive end - 1 ns


def _rng(a: dt.date, b: dt.date) -> str:
    return f"{a.isoformat()}..{b.isoformat()}"


def _span(first_ns: int, newest_ns: int, tz: zoneinfo.ZoneInfo) -> str:
    """Local date-times from the first sample's second to 1 s after the newest one's."""
    a = dt.datetime.fromtimestamp(first_ns // 10**9, tz).replace(tzinfo=None)
    b = dt.datetime.fromtimestamp(newest_ns // 10**9 + 1, tz).replace(tzinfo=None)
    return f"{a.isoformat()}..{b.isoformat()}"


def default_periods(
    spans: Sequence[tuple[str, int, int]], tz_name: str, today: dt.date
) -> tuple[str, str]:
    """(baseline, current) as ``FROM..TO`` texts from the stored sources' spans
    (``SqliteStore.source_spans``)."""
    tz = zoneinfo.ZoneInfo(tz_name)
    live = [(a, b) for s, a, b in spans if not s.startswith(IMPORT_PREFIX)]
    imported = [(a, b) for s, a, b in spans if s.startswith(IMPORT_PREFIX)]
    if not live and not imported:
        return _rng(today, today), _rng(today, today)
    if live:
        first = _day(min(a for a, _ in live), tz)
        newest = _day(max(b for _, b in live), tz)
        end = newest - dt.timedelta(days=1) if first < newest else newest
        # without an import the first recorded day is kept for the baseline
        keep = dt.timedelta(days=0 if imported or first == end else 1)
        start = max(first + keep, end - dt.timedelta(days=CURRENT_DAYS - 1))
    else:
        first = start = end = _day(max(b for _, b in imported) - 1, tz)
    fresh = bool(live) and first == newest
    current = _span(min(a for a, _ in live), max(b for _, b in live), tz) if fresh else None
    if imported:
        # the imported range's end is exclusive (its import_end markers lie at the end)
        b_from = _day(min(a for a, _ in imported), tz)
        b_to = _day(max(b for _, b in imported) - 1, tz)
        return _rng(b_from, b_to), current or _rng(start, end)
    length = end - start
    b_to = min(first + length, start - dt.timedelta(days=1))
    if b_to < first:  # no day recorded before the current period: the same days a year before
        return _rng(_year_before(start), _year_before(end)), current or _rng(start, end)
    return _rng(first, b_to), _rng(start, end)


def _year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)
