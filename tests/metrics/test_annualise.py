"""Declared flows prorated by planned operating time, period totals annualised for the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.calendar import Calendar
from config.declared import DeclaredFigure
from config.loader import load_site
from metrics.annualise import annualisation, pot_ns
from metrics.declared import declared_value
from metrics.engine import compute_table
from metrics.periods import parse_range
from tests.metrics.test_golden import GOLDEN, _reader

TZ = "Asia/Shanghai"
CAL = Calendar.model_validate(
    {
        "shifts": [{"name": "day", "start": "08:00", "end": "16:00", "weekdays": [1, 2, 3, 4, 5]}],
        "holidays": ["2026-01-01"],
    }
)
H = 3_600_000_000_000


def _fig(did: str, value: float, start: str, end: str) -> DeclaredFigure:
    return DeclaredFigure.model_validate(
        {
            "id": did,
            "value": value,
            "unit": "万元",
            "period": {"start": start, "end": end},
            "source": "s",
        }
    )


def test_pot_of_a_year_and_a_day() -> None:
    year = parse_range("2026-01-01..2026-12-31", TZ)
    assert pot_ns(CAL, TZ, year.start_ns, year.end_ns) == 2080 * H  # 260 weekdays x 8 h
    sunday = parse_range("2026-01-04..2026-01-04", TZ)
    assert pot_ns(CAL, TZ, sunday.start_ns, sunday.end_ns) == 0
    assert pot_ns(CAL, TZ, 10, 10) == 0


def test_annualisation_bases() -> None:
    whole = annualisation(parse_range("2026-01-01..2026-12-31", TZ), CAL, TZ)
    assert whole.basis == "calendar_years"
    assert whole.factor == 1.0  # exactly: an annual figure over its year is unchanged
    two = annualisation(parse_range("2025-01-01..2026-12-31", TZ), CAL, TZ)
    assert two.factor == pytest.approx(0.5)
    hour = annualisation(parse_range("2026-01-05T09:00..2026-01-05T10:00", TZ), CAL, TZ)
    assert hour.basis == "planned_operating_time"
    assert hour.factor == pytest.approx(2080.0)
    assert hour.ref_year == 2026
    assert "2080.00 h (POT of 2026) / 1.00 h" in hour.note("x")
    night = annualisation(parse_range("2026-01-05T20:00..2026-01-05T21:00", TZ), CAL, TZ)
    assert night.factor is None
    assert "no planned operating time" in night.note("x")
    # around the clock (no shifts): POT is calendar time, a day is 1/365 of the year
    day = annualisation(parse_range("2026-03-02..2026-03-02", TZ), Calendar(), TZ)
    assert day.factor == pytest.approx(365.0)


def test_declared_flow_prorated_by_planned_operating_time() -> None:
    figs = [_fig("output_value", 20800, "2026-01-01", "2026-12-31")]
    hour = parse_range("2026-01-05T09:00..2026-01-05T10:00", TZ)
    by_pot = declared_value(figs, "output_value", hour, TZ, CAL)
    assert by_pot is not None
    assert by_pot.value == pytest.approx(10.0)  # 20800 / 2080 h
    assert by_pot.figures[0]["share_basis"] == "planned_operating_time"
    assert any("1.00 h of 2080.00 h" in n for n in by_pot.notes)
    by_time = declared_value(figs, "output_value", hour, TZ)  # no calendar: calendar time
    assert by_time is not None
    assert by_time.value == pytest.approx(20800 / 8760)
    assert by_time.figures[0]["share_basis"] == "calendar_time"
    night = declared_value(
        figs, "output_value", parse_range("2026-01-05T20:00..2026-01-05T21:00", TZ), TZ, CAL
    )
    assert night is not None
    assert night.value == 0.0
    # a figure of the whole period is used whole; averages are not prorated
    whole = declared_value(figs, "output_value", parse_range("2026-01-01..2026-12-31", TZ), TZ, CAL)
    assert whole is not None
    assert whole.value == 20800
    assert whole.figures[0]["share_basis"] == "whole"
    hc = declared_value(
        [_fig("headcount", 100, "2026-01-01", "2026-12-31")], "headcount", hour, TZ, CAL
    )
    assert hc is not None
    assert hc.value == 100
    assert "share_basis" not in hc.figures[0]


def test_declared_flow_over_a_figure_without_planned_time_falls_back_to_calendar_time() -> None:
    # the figure covers a Sunday only: no planned operating time to prorate by
    figs = [_fig("sales", 24, "2026-01-04", "2026-01-04")]
    half = parse_range("2026-01-04T00:00..2026-01-04T12:00", TZ)
    v = declared_value(figs, "sales", half, TZ, CAL)
    assert v is not None
    assert v.value == pytest.approx(12.0)
    assert v.figures[0]["share_basis"] == "calendar_time"
    assert any("no planned operating time" in n for n in v.notes)


def test_table_compares_a_day_with_a_morning_on_the_annual_basis() -> None:
    folder: Path = GOLDEN / "energy_pot_declared"
    site = load_site(folder / "site.yaml")
    rd = _reader(folder, TZ)
    day = parse_range("2026-01-05..2026-01-05", TZ)
    # the meter's increment 50000 -> 55000 is stamped 12:00: in the period
    morning = parse_range("2026-01-05T00:00..2026-01-05T13:00", TZ)
    t = compute_table(rd, site, day, morning)
    ov = t.row("output_value")
    assert ov.unit == "万元/年"
    # day: 20800 x 8/2080 = 80 万元, x 2080/8; until 13:00: 50 万元, x 2080/5: the annual figure
    assert ov.before.value == pytest.approx(20800.0)
    assert ov.after.value == pytest.approx(20800.0)
    assert ov.change == pytest.approx(0.0)
    assert not ov.worse
    raw = {v.inputs[-1].name: v.inputs[-1].value for v in (ov.after,)}
    assert raw == {"period total (before annualisation)": pytest.approx(50.0)}
    assert ov.before.inputs[-1].value == pytest.approx(80.0)
    # energy: the day's 10000 kWh = 1.229 tce over 80 万元; until 13:00 5000 kWh = 0.6145 tce
    # over 50 万元 (5 h of the shift)
    e = t.row("energy_per_value")
    assert e.before.value == pytest.approx(0.0153625)
    assert e.after.value == pytest.approx(0.01229)
    assert e.change == pytest.approx(-0.2)
    assert any("prorated by planned operating time: 5.00 h" in n for n in e.after.notes)
    assert t.row("labour_productivity").after.value == pytest.approx(52.0)


def test_table_over_a_period_without_planned_time_has_no_per_year_value() -> None:
    folder: Path = GOLDEN / "energy_pot_declared"
    site = load_site(folder / "site.yaml")
    rd = _reader(folder, TZ)
    t = compute_table(
        rd,
        site,
        parse_range("2026-01-05..2026-01-05", TZ),
        parse_range("2026-01-04..2026-01-04", TZ),
    )
    ov = t.row("output_value")
    assert ov.after.value is None
    assert ov.change is None
    assert any("no per-year figure" in n for n in ov.after.notes)
    assert ov.after.inputs[-1].value == 0.0  # the raw (zero) total of the Sunday stays
    lp = t.row("labour_productivity")
    assert lp.after.value is None
    assert t.row("energy_per_value").after.value is None
