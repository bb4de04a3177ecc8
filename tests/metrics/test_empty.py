"""Empty periods and zero denominators: every measured KPI gives "—" (None) with a note, never
NaN, inf or an exception, whether the store holds nothing, only data from before the period,
or the period has no planned busy time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from config.loader import load_site
from config.models import SiteConfig
from metrics.catalogue import CATALOGUE
from metrics.engine import KpiValue, compute_period, compute_table
from metrics.periods import TimeRange, parse_range
from metrics.table import records, to_csv, to_text, to_xlsx
from tests.metrics.memreader import MemReader
from tests.metrics.sites import machine, site
from tests.metrics.test_table import DEMO, _fill

MEASURED = [k.id for k in CATALOGUE if k.provenance.startswith("measured")]


@pytest.fixture(scope="module")
def demo_site() -> SiteConfig:
    return load_site(DEMO)


@pytest.fixture(scope="module")
def periods(demo_site: SiteConfig) -> tuple[TimeRange, TimeRange]:
    tz = demo_site.site.timezone
    return parse_range("2025-12-01..2025-12-07", tz), parse_range("2026-01-05..2026-01-11", tz)


@pytest.fixture(scope="module")
def before_only(periods: tuple[TimeRange, TimeRange]) -> MemReader:
    """Data in the baseline week only: the current week is empty (its prior samples are old)."""
    rd = MemReader()
    _fill(rd, periods[0].start_ns, periods[0].end_ns, 1, 0.6)
    return rd


def _json_safe(d: object) -> None:
    json.dumps(d, allow_nan=False)  # raises on NaN / inf


# rates over the asset register keep their value when nothing is recorded: 0 of N devices
# (tests/metrics/test_variants.py: "no data: not networked"), with the note
REGISTER_RATES = ("cnc_rate", "network_rate", "digital_equipment_rate")


def _no_value(v: KpiValue, kpi_id: str = "") -> None:
    if kpi_id in REGISTER_RATES:
        assert v.value == 0.0
        assert any(n.startswith("no recorded data in this period") for n in v.notes), v.notes
        return
    assert v.value is None
    assert any(n.startswith("no value") for n in v.notes), v.notes


def test_measured_kpis_listed() -> None:
    assert set(MEASURED) >= {
        "cnc_rate",
        "network_rate",
        "production_efficiency",
        "defect_rate",
        "oee",
        "apc_rate",
        "energy_per_value",
        "co2_per_value",
        "water_reuse",
        "digital_equipment_rate",
    }


@pytest.mark.parametrize("kpi_id", MEASURED)
def test_empty_store(kpi_id: str, demo_site: SiteConfig, periods: tuple) -> None:  # type: ignore[type-arg]
    res = compute_period(MemReader(), demo_site, periods[1])
    _no_value(res.kpis[kpi_id], kpi_id)
    _json_safe(res.to_dict())


@pytest.mark.parametrize("kpi_id", MEASURED)
def test_current_period_after_the_data(
    kpi_id: str,
    demo_site: SiteConfig,
    periods: tuple,  # type: ignore[type-arg]
    before_only: MemReader,
) -> None:
    t = compute_table(before_only, demo_site, *periods)
    row = t.row(kpi_id)
    _no_value(row.after, kpi_id)
    if kpi_id not in ("energy_per_value", "co2_per_value"):  # need a declared output value
        assert row.before.value is not None
    if kpi_id in REGISTER_RATES:
        assert row.change == -1.0  # 100 % -> 0 %: the bad way, flagged
        assert row.worse is True
    else:
        assert row.change is None
        assert row.worse is False
    _json_safe(t.to_dict())


def test_empty_current_period_exports(
    demo_site: SiteConfig,
    periods: tuple,  # type: ignore[type-arg]
    before_only: MemReader,
) -> None:
    t = compute_table(before_only, demo_site, *periods)
    recs = {r[0]: r for r in records(t)}
    assert recs["*设备综合利用率"][2] == "—"
    assert recs["*设备综合利用率"][3] == "—"
    assert "nan" not in to_text(t, notes=True).lower()
    assert "nan" not in to_csv(t).lower()
    assert to_xlsx(t)[:2] == b"PK"


def test_measured_output_value_without_counts_is_none() -> None:
    s = site([machine("m1", unit_price_wan=0.01)], kpi={"output_value_source": "measured"})
    res = compute_period(MemReader(), s, parse_range("2026-01-05..2026-01-05", "UTC"))
    _no_value(res.kpis["output_value"])
    _no_value(res.kpis["energy_per_value"])


def test_no_planned_busy_time() -> None:
    """A period that is all holiday: data exist but PBT is 0, so OEE has no value."""
    s = site([machine("m1")], calendar={"holidays": ["2026-01-05"]})
    rd = MemReader()
    ts = np.arange(0, 24 * 3600, 600, dtype=np.int64) * 1_000_000_000
    p = parse_range("2026-01-05..2026-01-05", "UTC")
    rd.add("m1", "state", p.start_ns + ts, np.zeros(ts.size))
    rd.add("m1", "good", p.start_ns + ts, np.arange(ts.size, dtype=float))
    rd.add("m1", "scrap", p.start_ns + ts, np.zeros(ts.size))
    res = compute_period(rd, s, p)
    oee = res.kpis["oee"]
    _no_value(oee)
    assert "no value: no planned busy time in this period" in oee.notes
    assert res.kpis["network_rate"].value == 0.0  # recorded, but no busy time to be networked in
    # 143 parts (144 samples 10 min apart) over 23 h 50 min producing: the last sample (23:50) is
    # the data horizon, the state is not held past it
    assert res.kpis["production_efficiency"].value == pytest.approx(143 / (23 + 50 / 60))
    _json_safe(res.to_dict())
