"""Property tests: ratios stay <= 1; splitting a period and recombining summed parts is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics.engine import compute_period
from metrics.periods import TimeRange, parse_range
from metrics.timemodel import TIME_FIELDS
from tests.metrics.memreader import MemReader
from tests.metrics.sites import machine, site

S = 1_000_000_000
PERIOD = parse_range("2026-01-05..2026-01-06", "UTC")
SITE = site(
    [machine("m1", ideal=30.0), machine("m2", ideal=45.0), machine("m3", ideal=20.0)],
    calendar={
        "shifts": [
            {"name": "a", "start": "06:00", "end": "14:00"},
            {"name": "b", "start": "22:00", "end": "02:00"},
        ],
        "breaks": [{"name": "meal", "start": "10:00", "end": "10:45"}],
        "planned_downtime": [
            {
                "start": "2026-01-06T07:00:00",
                "end": "2026-01-06T09:00:00",
                "reason": "pm",
                "devices": ["m2"],
            }
        ],
    },
    kpi={"stale_after_s": 5400},
)
SPAN = PERIOD.end_ns - PERIOD.start_ns
TIMES = TIME_FIELDS[1:]  # every extensive time but the period length

machine_data = st.lists(
    st.tuples(
        st.integers(-3 * 3600, 2 * 86400),  # seconds from period start (some before it)
        st.sampled_from([0, 0, 0, 1, 2, 3, 4, 9]),  # 9 is unmapped
        st.booleans(),  # bad quality
        st.integers(0, 40),  # good increment
        st.integers(0, 5),  # scrap increment
    ),
    min_size=1,
    max_size=40,
)


def _reader(
    data: list[list[tuple[int, int, bool, int, int]]], beats: tuple[int, ...] = ()
) -> MemReader:
    """``beats``: instants (ns) where m1's scrap counter repeats its value (no increment), as a
    live recorder's heartbeat would, so that the data horizon reaches just before them."""
    rd = MemReader()
    for i, rows in enumerate(data):
        rows = sorted(rows)
        ts = [PERIOD.start_ns + r[0] * S for r in rows]
        rd.add(f"m{i + 1}", "state", ts, [r[1] for r in rows], [2 if r[2] else 0 for r in rows])
        rd.add(f"m{i + 1}", "good", ts, np.cumsum([r[3] for r in rows]).tolist())
        scrap = [(t, float(v)) for t, v in zip(ts, np.cumsum([r[4] for r in rows]), strict=True)]
        if i == 0 and beats:
            for b in beats:
                before = [v for t, v in scrap if t <= b]
                scrap.append((b, before[-1] if before else 0.0))
            scrap.sort(key=lambda tv: tv[0])
        rd.add(f"m{i + 1}", "scrap", [t for t, _ in scrap], [v for _, v in scrap])
    return rd


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(machine_data, min_size=3, max_size=3))
def test_ratios_at_most_one(data: list[list[tuple[int, int, bool, int, int]]]) -> None:
    res = compute_period(_reader(data), SITE, PERIOD)
    for m in [*res.machines, res.fleet]:
        for k in (
            "availability",
            "quality_ratio",
            "setup_rate",
            "technical_efficiency",
            "coverage",
        ):
            v = m[k]
            assert v is None or 0 <= v <= 1 + 1e-12, (k, v)
        t = m["times_s"]
        parts = t["apt"] + t["asut"] + t["idle"] + t["adet"] + t["offline"]
        assert math.isclose(parts, t["pbt"], rel_tol=1e-12, abs_tol=1e-6)
        assert math.isclose(t["pbt_covered"], t["pbt"] - t["offline"], abs_tol=1e-6)
        if m["availability"] is not None:
            assert math.isclose(m["availability"], t["apt"] / t["pbt_covered"], rel_tol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(machine_data, min_size=3, max_size=3), st.integers(1, SPAN // S - 1))
def test_split_and_recombine(data: list[list[tuple[int, int, bool, int, int]]], cut: int) -> None:
    # recorded up to 1 ns before each part's end: the data horizon cuts 1 ns (within abs_tol)
    at = PERIOD.start_ns + cut * S
    rd = _reader(data, beats=(at - 1, PERIOD.end_ns - 1))
    whole = compute_period(rd, SITE, PERIOD)
    a, b = PERIOD.split(at)
    halves = [compute_period(rd, SITE, p) for p in (a, b)]
    for i, m in enumerate(whole.machines):
        for k in TIMES:
            parts = sum(h.machines[i]["times_s"][k] for h in halves)
            assert math.isclose(parts, m["times_s"][k], rel_tol=1e-12, abs_tol=1e-6), (k, i)
        for q in ("pq", "gq", "sq"):
            assert sum(h.machines[i]["quantities"][q] for h in halves) == m["quantities"][q]
    # fleet figures from the recombined sums equal the whole period's
    apt = sum(h.fleet["times_s"]["apt"] for h in halves)
    # the site's reading (default exclude): availability over PBT - offline
    pbt = sum(h.fleet["times_s"]["pbt_covered"] for h in halves)
    pq = sum(h.fleet["quantities"]["pq"] for h in halves)
    gq = sum(h.fleet["quantities"]["gq"] for h in halves)
    ideal = sum(
        h.machines[i]["ideal_cycle_s"] * h.machines[i]["quantities"]["pq"]
        for h in halves
        for i in range(3)
    )
    f = whole.fleet
    # (rel_tol 1e-6: each half's horizon cuts 1 ns, the whole period's once)
    if f["availability"] is not None:
        assert math.isclose(apt / pbt, f["availability"], rel_tol=1e-6)
    if f["quality_ratio"] is not None:
        assert math.isclose(gq / pq, f["quality_ratio"], rel_tol=1e-12)
    if f["effectiveness"] is not None:
        assert math.isclose(ideal / apt, f["effectiveness"], rel_tol=1e-6)


def test_split_rejects_outside() -> None:
    with pytest.raises(ValueError, match="outside"):
        TimeRange(0, 10, "x").split(0)
