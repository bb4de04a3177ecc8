from __future__ import annotations

import datetime as dt

import pytest

from metrics.periods import PeriodError, TimeRange, calendar_years, parse_range

NS = 1_000_000_000


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=dt.UTC).timestamp()) * NS


def test_dates_are_inclusive_local_days() -> None:
    r = parse_range("2026-01-01..2026-03-31", "Asia/Shanghai")
    # local midnight in Shanghai is 16:00 UTC the day before
    assert r.start_ns == _utc(2025, 12, 31, 16)
    assert r.end_ns == _utc(2026, 3, 31, 16)
    assert r.label == "2026-01-01..2026-03-31"


def test_single_day_and_datetimes() -> None:
    day = parse_range("2026-01-05..2026-01-05", "UTC")
    assert day.duration_ns == 86_400 * NS
    r = parse_range("2026-01-05T08:00..2026-01-05T16:30", "UTC")
    assert (r.start_ns, r.end_ns) == (_utc(2026, 1, 5, 8), _utc(2026, 1, 5, 16, 30))
    off = parse_range("2026-01-05T08:00+08:00..2026-01-05T09:00+08:00", "UTC")
    assert off.start_ns == _utc(2026, 1, 5, 0)


def test_dst_day_is_23_hours() -> None:
    r = parse_range("2026-03-29..2026-03-29", "Europe/Berlin")
    assert r.duration_ns == 23 * 3600 * NS


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("2026-01-01", "FROM..TO"),
        ("2026-01-01..", "both"),
        ("2026-13-01..2026-12-31", "not a date"),
        ("2026-03-01..2026-01-01", "before"),
        ("2026-01-01..2026-02-01..2026-03-01", "FROM..TO"),
        ("yesterday..today", "not a date or datetime"),
        ("2026-01-05T10:00..2026-01-05T10:00", "before"),
    ],
)
def test_bad_periods(text: str, msg: str) -> None:
    with pytest.raises(PeriodError, match=msg):
        parse_range(text, "UTC")


def test_unknown_zone() -> None:
    with pytest.raises(PeriodError, match="time zone"):
        parse_range("2026-01-01..2026-01-02", "Mars/Olympus")


def test_calendar_years() -> None:
    assert calendar_years(parse_range("2024-01-01..2024-12-31", "UTC"), "UTC") == pytest.approx(1)
    assert calendar_years(
        parse_range("2025-01-01..2025-12-31", "Asia/Shanghai"), "Asia/Shanghai"
    ) == (pytest.approx(1))
    q = calendar_years(parse_range("2026-01-01..2026-03-31", "UTC"), "UTC")
    assert q == pytest.approx(90 / 365)


def test_split_and_round_trip() -> None:
    r = parse_range("2026-01-01..2026-01-02", "UTC")
    a, b = r.split(r.start_ns + 3600 * NS)
    assert a.end_ns == b.start_ns
    assert a.start_ns == r.start_ns
    assert b.end_ns == r.end_ns
    assert TimeRange.from_dict(r.to_dict()) == r
    with pytest.raises(PeriodError):
        r.split(r.end_ns)
