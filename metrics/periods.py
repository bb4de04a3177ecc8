"""Periods of the before/after table: ``FROM..TO`` text -> half-open ns range in UTC.

Dates are inclusive whole local days of the site (``2026-01-01..2026-03-31`` ends at the local
midnight that starts 2026-04-01); datetimes (``2026-01-05T08:00..2026-01-05T16:00``) are taken as
given, local time of the site unless they carry an offset, and the end is exclusive.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
_SEP = ".."


class PeriodError(ValueError):
    """A period text that cannot be used; the message says why."""


@dataclass(frozen=True)
class TimeRange:
    """Half-open ``[start_ns, end_ns)`` in ns UTC with the text it came from."""

    start_ns: int
    end_ns: int
    label: str

    def __post_init__(self) -> None:
        if self.end_ns <= self.start_ns:
            raise PeriodError(f"period {self.label!r}: the end is not after the start")

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def split(self, at_ns: int) -> tuple[TimeRange, TimeRange]:
        """Two adjacent ranges cut at ``at_ns`` (strictly inside the range)."""
        if not self.start_ns < at_ns < self.end_ns:
            raise PeriodError(f"cannot split {self.label!r} outside its range")
        return (
            TimeRange(self.start_ns, at_ns, f"{self.label}[:{at_ns}]"),
            TimeRange(at_ns, self.end_ns, f"{self.label}[{at_ns}:]"),
        )

    def to_dict(self) -> dict[str, object]:
        return {"start_ns": self.start_ns, "end_ns": self.end_ns, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TimeRange:
        return cls(int(str(data["start_ns"])), int(str(data["end_ns"])), str(data["label"]))


def zone(tz: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown time zone {tz!r}") from None


def local_ns(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> int:
    """ns UTC of a datetime; a naive one is local time of ``tz``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def day_start_ns(day: dt.date, tz: zoneinfo.ZoneInfo) -> int:
    return local_ns(dt.datetime.combine(day, dt.time(0, 0)), tz)


def _parse_end(text: str, tz: zoneinfo.ZoneInfo, label: str) -> int:
    if _is_date(text):
        return day_start_ns(_date(text, label) + dt.timedelta(days=1), tz)
    return local_ns(_datetime(text, label), tz)


def _parse_start(text: str, tz: zoneinfo.ZoneInfo, label: str) -> int:
    if _is_date(text):
        return day_start_ns(_date(text, label), tz)
    return local_ns(_datetime(text, label), tz)


def _is_date(text: str) -> bool:
    return len(text) == 10 and "T" not in text and " " not in text


def _date(text: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"period {label!r}: {text!r} is not a date (YYYY-MM-DD)") from None


def _datetime(text: str, label: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(
            f"period {label!r}: {text!r} is not a date or datetime (YYYY-MM-DD[THH:MM[:SS]])"
        ) from None


def parse_range(text: str, tz: str) -> TimeRange:
    """``"2026-01-01..2026-03-31"`` -> the half-open ns range of those local days.

    Either side may be a datetime instead (exclusive end). Raises :class:`PeriodError`.
    """
    label = text.strip()
    if label.count(_SEP) != 1:
        raise PeriodError(f"period {label!r}: write it FROM..TO, e.g. 2026-01-01..2026-03-31")
    left, right = (part.strip() for part in label.split(_SEP))
    if not left or not right:
        raise PeriodError(f"period {label!r}: both FROM and TO are needed")
    zi = zone(tz)
    start = _parse_start(left, zi, label)
    end = _parse_end(right, zi, label)
    if end <= start:
        raise PeriodError(f"period {label!r}: TO is before FROM")
    return TimeRange(start, end, label)


def calendar_years(period: TimeRange, tz: str) -> float:
    """Length of the period in calendar years: each local day weighs 1/days-of-its-year.

    A whole calendar year is exactly 1.0 (leap or not); partial days count pro rata.
    """
    zi = zone(tz)
    start = dt.datetime.fromtimestamp(period.start_ns / NS_PER_S, zi).date()
    end = dt.datetime.fromtimestamp((period.end_ns - 1) / NS_PER_S, zi).date()
    total = 0.0
    day = start
    while day <= end:
        lo = max(period.start_ns, day_start_ns(day, zi))
        hi = min(period.end_ns, day_start_ns(day + dt.timedelta(days=1), zi))
        nxt = day_start_ns(day + dt.timedelta(days=1), zi) - day_start_ns(day, zi)
        ydays = 366 if _leap(day.year) else 365
        total += (hi - lo) / nxt / ydays
        day += dt.timedelta(days=1)
    return total


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
