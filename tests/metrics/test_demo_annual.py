"""The demo's comparison of an imported week (建设前) with one live hour (建成后): extensive
figures on the form's annual basis, energy per value over output value of the same planned
hours."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import load_site
from connectors.simulators.history import generate_history
from metrics.annualise import annualisation
from metrics.engine import compute_table
from metrics.periods import parse_range
from tests.metrics.memreader import MemReader

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"


def test_imported_week_against_a_live_hour() -> None:
    site = load_site(DEMO)
    tz = site.site.timezone
    week = parse_range("2025-11-03..2025-11-09", tz)  # a whole week of 2025 (Mon..Sun)
    hour = parse_range("2026-03-03T09:00..2026-03-03T10:00", tz)  # a Tuesday, in the day shift
    rows: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for period, profile in ((week, "baseline"), (hour, "current")):
        samples = generate_history(
            site, 7, period.start_ns, period.end_ns, profile, analog_step_s=900, meter_step_s=900
        )
        for s in samples:
            ts, vs = rows.setdefault((s.device, s.point), ([], []))
            ts.append(s.ts)
            vs.append(s.value)
    rd = MemReader()
    for (dev, pt), (ts, vs) in rows.items():
        rd.add(dev, pt, ts, vs)
    t = compute_table(rd, site, week, hour, baseline_imported=True)
    ov = t.row("output_value")
    # demo.yaml declares 18600 万元 for 2025 and 21400 万元 for 2026: prorated into the periods
    # by planned operating time and annualised on the same basis, the annual figures come back
    # (before: 410.41 for the week against 2.44 for the hour, -99.4 %)
    assert ov.unit == "万元/年"
    assert ov.before.value == pytest.approx(18600.0)
    assert ov.after.value == pytest.approx(21400.0)
    assert ov.change == pytest.approx(21400 / 18600 - 1)
    assert not ov.worse
    ann = annualisation(hour, site.calendar, tz)
    assert ann.basis == "planned_operating_time"
    raw = ov.after.inputs[-1]
    assert raw.name == "period total (before annualisation)"
    assert ann.factor is not None
    assert raw.value == pytest.approx(21400.0 / ann.factor)
    assert raw.detail["period_pot_h"] == pytest.approx(1.0)
    # energy per value: the hour's meter energy over the hour's share of the year's POT
    e = t.row("energy_per_value")
    assert e.after.value is not None
    assert e.before.value is not None
    assert any("prorated by planned operating time: 1.00 h" in n for n in e.after.notes)
    total_tce = e.after.inputs[0].value
    assert total_tce is not None
    assert e.after.value == pytest.approx(total_tce / raw.value)
    # labour productivity and sales per capita stay per year
    lp = t.row("labour_productivity")
    assert lp.before.value == pytest.approx(5200 / lp.before.inputs[1].value)  # type: ignore[operator]
    assert lp.after.value == pytest.approx(6300 / lp.after.inputs[1].value)  # type: ignore[operator]
