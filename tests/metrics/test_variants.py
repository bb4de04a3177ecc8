"""Two-reading KPIs: the configured variant is used and the other one is shown; factors."""

from __future__ import annotations

from typing import Any

import pytest

from metrics.engine import compute_period
from metrics.periods import parse_range
from tests.metrics.memreader import MemReader
from tests.metrics.sites import machine, site

H = 3_600_000_000_000
P = parse_range("2026-01-05..2026-01-05", "UTC")


def _furnace(points: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "f1",
        "name": "furnace",
        "key_equipment": True,
        "control": "dcs",
        "modbus": {"host": "127.0.0.1", "port": 50201},
        "points": points,
    }


def _mb(pid: str, role: str, addr: int) -> dict[str, Any]:
    return {"id": pid, "role": role, "modbus": {"table": "holding", "address": addr}}


def _figs(*rows: tuple[str, float, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "value": v,
            "unit": u,
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "source": "fin",
        }
        for i, v, u in rows
    ]


def _reader() -> MemReader:
    rd = MemReader()
    s = P.start_ns
    rd.add("m1", "state", [s], [0])
    rd.add("m1", "good", [s, s + 10 * H], [0, 300])
    rd.add("m1", "scrap", [s, s + 10 * H], [0, 30])
    # loop a: APC on 18 of 24 h; loop b: on 6 h
    rd.add("f1", "apc_a", [s, s + 18 * H], [1, 0])
    rd.add("f1", "apc_b", [s, s + 6 * H], [1, 0])
    rd.add("f1", "gas", [s, s + 12 * H], [100, 200])
    rd.add("f1", "steam", [s, s + 12 * H], [0, 1000])
    rd.add("f1", "kwh", [s, s + 12 * H], [0, 1000])
    return rd


def _site(**kpi: Any) -> Any:
    f = _furnace(
        [
            _mb("apc_a", "apc_mode", 0),
            _mb("apc_b", "apc_mode", 1),
            _mb("gas", "gas_m3", 2),
            _mb("steam", "steam_mj", 4),
            _mb("kwh", "energy_kwh", 6),
        ]
    )
    m = machine("m1", unit_price_wan=0.01)
    return site(
        [m, f],
        kpi={"stale_after_s": 86400, **kpi},
        declared={
            "figures": _figs(
                ("output_value", 3650, "万元"),
                ("value_added", 730, "万元"),
                ("headcount", 10, "人"),
                ("operating_cost", 365, "万元"),
            )
        },
    )


def test_apc_time_and_count() -> None:
    t = compute_period(_reader(), _site(), P).kpis["apc_rate"]
    assert t.variant == "time"
    # (18 + 6) h in APC / 36 h of running loops: the latest sample (apc_a at 18:00) is the data
    # horizon, later time is outside the window
    assert t.value == pytest.approx(100 * 24 / 36)
    assert "count-based: 50.00%" in t.notes[0]
    c = compute_period(_reader(), _site(apc_rate_basis="count"), P).kpis["apc_rate"]
    assert c.variant == "count"
    assert c.value == pytest.approx(50.0)  # loop a >= 0.5 in use, loop b not
    c2 = compute_period(_reader(), _site(apc_rate_basis="count", apc_in_use_min_share=0.2), P)
    assert c2.kpis["apc_rate"].value == pytest.approx(100.0)


def test_defect_rate_readings() -> None:
    with_rework = compute_period(_reader(), _site(), P).kpis["defect_rate"]
    assert with_rework.value == pytest.approx(100 * 30 / 330)
    only = compute_period(_reader(), _site(defect_rate_includes_rework=False), P)
    assert only.kpis["defect_rate"].variant == "scrap_only"


def test_output_value_declared_measured_and_energy_factors() -> None:
    res = compute_period(_reader(), _site(), P)
    ov = res.kpis["output_value"]
    assert ov.variant == "declared"
    assert ov.value == pytest.approx(10.0)  # 3650 a year, one day of it
    assert any("3.00 万元" in n for n in ov.notes)  # measured: 300 good x 0.01
    meas = compute_period(_reader(), _site(output_value_source="measured"), P)
    assert meas.kpis["output_value"].value == pytest.approx(3.0)
    assert meas.kpis["output_value"].provenance == "measured"
    # energy: 1000 kWh x 0.1229 + 100 m3 x 1.2143 + 1000 MJ x 0.03412 kgce
    kgce = 1000 * 0.1229 + 100 * 1.2143 + 1000 * 0.03412
    e = res.kpis["energy_per_value"]
    assert e.value == pytest.approx(kgce / 1000 / 10.0)
    assert e.provenance == "mixed"
    parts = e.inputs[0].detail["parts"]
    assert {p["factor"]["id"] for p in parts} == {
        "elec_kgce_gbt2589_2020",
        "gas_kgce_gbt2589_2020",
        "steam_kgce_mj_gbt2589_2020",
    }
    co2 = res.kpis["co2_per_value"]
    assert co2.value == pytest.approx((1000 * 0.5306 + 100 * 2.162) / 1000 / 10.0)
    grid = _site(
        factors={
            "grid_co2_kg_per_kwh": {
                "id": "grid_co2_cn_2023_nonfossil_excl",
                "value": 0.6096,
                "unit": "kgCO2/kWh",
                "source": "MEE 2023",
                "year": 2023,
            }
        }
    )
    co2b = compute_period(_reader(), grid, P).kpis["co2_per_value"]
    assert co2b.value == pytest.approx((1000 * 0.6096 + 100 * 2.162) / 1000 / 10.0)
    assert any("grid_co2_cn_2023_nonfossil_excl" in n for n in co2b.notes)


def test_labour_productivity_and_operating_cost_bases() -> None:
    va = compute_period(_reader(), _site(), P).kpis["labour_productivity"]
    assert va.variant == "value_added"
    assert va.value == pytest.approx(73.0)  # 730 万元 a year / 10 people
    ov = compute_period(_reader(), _site(labour_productivity_basis="output_value"), P)
    assert ov.kpis["labour_productivity"].variant == "output_value"
    assert ov.kpis["labour_productivity"].value == pytest.approx(365.0)
    oc = compute_period(_reader(), _site(operating_cost_basis="per_output_value"), P)
    cost = oc.kpis["operating_cost"]
    assert cost.variant == "per_output_value"
    assert cost.value == pytest.approx(0.1)  # 1 万元 of cost per 10 万元 of output that day


def test_missing_declared_and_no_meters() -> None:
    s = site([machine("m1")])
    res = compute_period(MemReader(), s, P)
    assert res.kpis["sales_per_capita"].value is None
    assert "not declared for this period: sales, headcount" in res.kpis["sales_per_capita"].notes[0]
    assert res.kpis["energy_per_value"].value is None
    assert res.kpis["water_reuse"].value is None
    assert res.kpis["network_rate"].value == 0.0  # no data: not networked
    assert res.kpis["cnc_rate"].value == 0.0  # controller per register but nothing recorded


def test_period_totals_of_different_length_are_annualised() -> None:
    # Before: the table compared a day's total (10) with two days' (20) and read +100 %; both are
    # now on the form's per-year basis (the site runs around the clock: POT = calendar time).
    from metrics.engine import compute_table

    two = parse_range("2026-01-06..2026-01-07", "UTC")
    t = compute_table(_reader(), _site(), P, two)
    ov = t.row("output_value")
    assert ov.unit == "万元/年"
    assert ov.before.value == pytest.approx(3650.0)
    assert ov.after.value == pytest.approx(3650.0)
    assert ov.change == pytest.approx(0.0)
    totals = [i for i in ov.after.inputs if i.name.startswith("period total")]
    assert len(totals) == 1
    assert totals[0].value == pytest.approx(20.0)  # the raw two-day total is kept
    assert totals[0].detail["annualisation_basis"] == "planned_operating_time"
    assert totals[0].detail["annualisation_factor"] == pytest.approx(365 / 2)
    assert any("annualised by planned operating time" in n for n in ov.after.notes)
    # operating cost (absolute) is a flow total too
    oc = t.row("operating_cost")
    assert oc.unit == "万元/年"
    assert oc.before.value == pytest.approx(365.0)
    assert oc.after.value == pytest.approx(365.0)


def test_unknown_quality_device_is_reported() -> None:
    res = compute_period(_reader(), _site(quality_devices=["m1", "ghost"]), P)
    d = res.kpis["defect_rate"]
    assert d.value == pytest.approx(100 * 30 / 330)
    assert any("not in the site file: ghost" in n for n in d.notes)
