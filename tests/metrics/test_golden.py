"""Golden KPI cases: each folder of tests/golden/kpi has site.yaml, samples.csv, expected.json
(values worked out by hand, the working in README.md)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_site
from metrics.engine import compute_period
from metrics.periods import local_ns, parse_range, zone
from tests.metrics.memreader import MemReader

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "kpi"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "expected.json").exists())


def _reader(folder: Path, tz: str) -> MemReader:
    import datetime as dt

    rows: dict[tuple[str, str], tuple[list[int], list[float], list[int]]] = {}
    with (folder / "samples.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            key = (r["device"], r["point"])
            ts = local_ns(dt.datetime.fromisoformat(r["ts"]), zone(tz))
            lst = rows.setdefault(key, ([], [], []))
            lst[0].append(ts)
            lst[1].append(float(r["value"]))
            lst[2].append(int(r.get("quality") or 0))
    reader = MemReader()
    for (dev, pt), (ts_, vals, q) in rows.items():
        reader.add(dev, pt, ts_, vals, q)
    return reader


def _lookup(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


def _result(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = GOLDEN / case
    site = load_site(folder / "site.yaml")
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    period = parse_range(expected["period"], site.site.timezone)
    res = compute_period(_reader(folder, site.site.timezone), site, period).to_dict()
    res["machines"] = {m["name"]: m for m in res["machines"]}
    return res, expected


@pytest.mark.parametrize("case", CASES)
def test_golden_case(case: str) -> None:
    res, expected = _result(case)
    assert (GOLDEN / case / "README.md").exists(), "every golden case explains its working"
    for path, want in expected["expect"].items():
        got = _lookup(res, path)
        assert got is not None, f"{case}: {path} is None"
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{case}: {path} = {got}"
    for path, text in expected.get("flags", {}).items():
        assert any(text in f for f in _lookup(res, path)), f"{case}: no flag {text!r} in {path}"


def test_golden_cases_present() -> None:
    assert {
        "iso22400_shift_day",
        "planned_outside_shift",
        "counters_reset_rollover",
        "gap_and_boundary",
        "fleet_vs_mean",
        "product_mix",
        "counter_old_prior",
        "counter_gap_jump",
        "counter_reset_in_gap",
        "link_lost_offline",
        "energy_pot_declared",
        "energy_measured_value",
        "oee_offline_exclude",
        "max_hold_state",
        "data_horizon",
        # issue 10: one time model
        "horizon_past_period",
        "horizon_change_at_end",
        "counter_at_break_start",
        "counter_midnight_readings",
        "import_change_only_end",
        "link_lost_resend",
        "counter_backfill_healed",
        # scrap measured from total and good counters
        "defect_from_total_and_good",
    } <= set(CASES)


def test_oee_offline_include_reading_on_exclude_case() -> None:
    """The same data read with ``kpi.oee_offline: include``: offline stays in PBT (README of
    oee_offline_exclude, data horizon 19:30: fleet availability 45 000 / 82 800, OEE
    43 200 / 82 800); coverage and times unchanged."""
    folder = GOLDEN / "oee_offline_exclude"
    site = load_site(folder / "site.yaml")
    inc = site.model_copy(update={"kpi": site.kpi.model_copy(update={"oee_offline": "include"})})
    period = parse_range("2026-01-05T08:00..2026-01-05T20:00", "UTC")
    reader = _reader(folder, "UTC")
    ex = compute_period(reader, site, period)
    res = compute_period(reader, inc, period)
    assert math.isclose(res.fleet["availability"], 45000 / 82800, rel_tol=1e-12)
    assert math.isclose(res.fleet["oee"], 43200 / 82800, rel_tol=1e-12)
    assert math.isclose(res.machines[0]["availability"], 10800 / 41400, rel_tol=1e-12)
    assert math.isclose(res.machines[0]["oee"], 10800 / 41400, rel_tol=1e-12)
    assert res.fleet["times_s"] == ex.fleet["times_s"]
    assert res.kpis["oee"].coverage == ex.kpis["oee"].coverage == 50400 / 82800
    assert res.kpis["oee"].variant == "fleet_summed, offline included"
    assert ex.kpis["oee"].variant == "fleet_summed, offline excluded"
    assert any("offline 9.00 h included in PBT" in n for n in res.kpis["oee"].notes)
    pbt_inputs = {i.name: i.value for i in res.kpis["oee"].inputs}
    assert pbt_inputs["PBT"] == 23.0
    assert {i.name: i.value for i in ex.kpis["oee"].inputs}["PBT covered (PBT - offline)"] == 14.0


def test_max_hold_not_applied_to_imported_history() -> None:
    """An imported period (change-only logs) keeps the hold; the live reading caps it at 24 h
    (README of max_hold_state)."""
    folder = GOLDEN / "max_hold_state"
    site = load_site(folder / "site.yaml")
    period = parse_range("2026-01-05T08:00..2026-01-05T12:00", "UTC")
    reader = _reader(folder, "UTC")
    live = compute_period(reader, site, period)
    imp = compute_period(reader, site, period, imported=True)
    assert live.machines[0]["times_s"]["offline"] == 7200
    assert imp.machines[0]["times_s"]["apt"] == 14400
    assert imp.machines[1]["times_s"]["idle"] == 14400
    assert imp.fleet["times_s"]["offline"] == 0


@pytest.mark.parametrize(
    "kpi",
    [{"oee_offline": "covered"}, {"oee_offline": None}, {"max_hold_s": 0}, {"max_hold_s": -5}],
)
def test_bad_oee_offline_settings_refused(kpi: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from config.kpi import KpiSettings

    with pytest.raises(ValidationError):
        KpiSettings.model_validate(kpi)
