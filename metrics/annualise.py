"""Annualisation of period totals and the planned operating time (POT) of a calendar.

The application form compares annual figures (工业总产值 in 万元 a year). A KPI period of the
gateway is often shorter (an imported week, a live hour), so an extensive figure (a flow total
such as output value or operating cost) is put on the form's basis before it is compared:

- a period of a whole calendar year or longer: ``total / calendar years``;
- a shorter period: ``total x POT(reference year) / POT(period)``, the reference year being the
  local calendar year in which the period starts and POT the calendar's shifts minus holidays
  (the whole day when no shifts are configured). A declared annual figure prorated into the
  period by planned operating time comes back exactly; a measured total is its rate per planned
  operating hour over the year's planned operating time.

A period without planned operating time has no per-year figure (``factor`` is ``None``).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from config.calendar import Calendar
from metrics.periods import NS_PER_S, TimeRange, calendar_years, day_start_ns, zone
from metrics.timemodel import site_windows

NS_PER_H = 3600 * NS_PER_S
WHOLE_YEAR = 1.0 - 1e-9


@functools.lru_cache(maxsize=4096)
def pot_ns(calendar: Calendar, tz: str, start_ns: int, end_ns: int) -> int:
    """Planned operating time (shifts minus holidays) of ``[start_ns, end_ns)`` in ns."""
    if end_ns <= start_ns:
        return 0
    return site_windows(calendar, tz, start_ns, end_ns).pot_ns


@dataclass(frozen=True)
class Annualisation:
    """How a period total becomes a figure per year: ``total x factor``."""

    factor: float | None
    basis: str  # calendar_years | planned_operating_time
    years: float  # calendar years of the period
    pot_h: float | None = None  # planned operating hours of the period
    ref_year: int | None = None
    ref_pot_h: float | None = None  # planned operating hours of the reference year

    def note(self, what: str) -> str:
        if self.factor is None:
            return (
                f"{what}: no per-year figure: the period has no planned operating time "
                "(calendar shifts minus holidays)"
            )
        if self.basis == "calendar_years":
            return (
                f"{what}: annualised over {self.years:.4f} calendar years "
                f"(period total / {self.years:.4f})"
            )
        return (
            f"{what}: annualised by planned operating time: period total x "
            f"{self.ref_pot_h:.2f} h (POT of {self.ref_year}) / {self.pot_h:.2f} h (POT of the "
            f"period, {self.years:.6f} calendar years)"
        )

    def detail(self) -> dict[str, Any]:
        return {
            "annualisation_factor": self.factor,
            "annualisation_basis": self.basis,
            "period_calendar_years": self.years,
            "period_pot_h": self.pot_h,
            "reference_year": self.ref_year,
            "reference_year_pot_h": self.ref_pot_h,
        }


def annualisation(period: TimeRange, calendar: Calendar, tz: str) -> Annualisation:
    """The factor putting a total of ``period`` on a per-year basis (see the module doc)."""
    years = calendar_years(period, tz)
    if years >= WHOLE_YEAR:
        # whole years exactly (the day sum of calendar_years is 1 - 1e-16 for a year), so an
        # annual figure over its own year is reported unchanged
        whole = round(years)
        yrs = float(whole) if abs(years - whole) < 1e-9 else years
        return Annualisation(1.0 / yrs, "calendar_years", yrs)
    zi = zone(tz)
    year = dt.datetime.fromtimestamp(period.start_ns / NS_PER_S, zi).year
    y0 = day_start_ns(dt.date(year, 1, 1), zi)
    y1 = day_start_ns(dt.date(year + 1, 1, 1), zi)
    pot_p = pot_ns(calendar, tz, period.start_ns, period.end_ns)
    pot_y = pot_ns(calendar, tz, y0, y1)
    factor = pot_y / pot_p if pot_p > 0 and pot_y > 0 else None
    return Annualisation(
        factor, "planned_operating_time", years, pot_p / NS_PER_H, year, pot_y / NS_PER_H
    )
