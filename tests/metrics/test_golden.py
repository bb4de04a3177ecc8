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
        "counter_old_prior",
        "counter_gap_jump",
        "counter_reset_in_gap",
        "link_lost_offline",
        "energy_pot_declared",
        "energy_measured_value",
    } <= set(CASES)
