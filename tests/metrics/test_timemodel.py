from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.calendar import Calendar
from metrics.engine import compute_period
from metrics.periods import parse_range
from metrics.series import Series
from metrics.timemodel import (
    OFFLINE,
    PRODUCING,
    device_windows,
    fast_times,
    machine_times,
    state_codes,
    timeline,
)
from tests.metrics.memreader import MemReader
from tests.metrics.sites import STATE_MAP, machine, site

H = 3_600_000_000_000
S = 1_000_000_000


def _t(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_night_shift_crossing_midnight_and_holiday() -> None:
    cal = Calendar.model_validate(
        {
            "shifts": [{"name": "night", "start": "22:00", "end": "06:00"}],
            "holidays": ["2026-01-06"],
        }
    )
    r = parse_range("2026-01-06..2026-01-07", "UTC")
    w = device_windows(cal, "UTC", r.start_ns, r.end_ns, None)
    # 01-05 22:00 -> 01-06 06:00 gives 00:00-06:00 inside; 01-06 is a holiday (its shift dropped);
    # 01-07 22:00 -> 01-08 06:00 gives 22:00-24:00 inside
    assert w.pot.pairs() == [
        (r.start_ns, r.start_ns + 6 * H),
        (_t("2026-01-07T22:00:00"), r.end_ns),
    ]


def test_weekdays_and_around_the_clock() -> None:
    cal = Calendar.model_validate(
        {"shifts": [{"name": "d", "start": "08:00", "end": "16:00", "weekdays": [1, 2, 3, 4, 5]}]}
    )
    r = parse_range("2026-01-05..2026-01-11", "UTC")  # Monday..Sunday
    assert device_windows(cal, "UTC", r.start_ns, r.end_ns, None).pot.total == 5 * 8 * H
    open_ = Calendar.model_validate({"holidays": ["2026-01-07"]})
    assert device_windows(open_, "UTC", r.start_ns, r.end_ns, None).pot.total == 6 * 24 * H


def test_unmapped_bad_and_nan_are_offline() -> None:
    s = Series(
        np.array([0, 10, 20, 30], dtype=np.int64),
        np.array([0.0, 7.0, np.nan, 3.0]),
        np.array([0, 0, 0, 2], dtype=np.uint8),
    )
    codes, unmapped, bad = state_codes(s, STATE_MAP)
    assert codes.tolist() == [PRODUCING, OFFLINE, OFFLINE, OFFLINE]
    assert (unmapped, bad) == (1, 2)


def test_no_samples_is_all_offline() -> None:
    tl = timeline(Series.empty(), STATE_MAP, 0, 100, 50)
    assert tl.codes.tolist() == [OFFLINE]
    assert tl.starts.tolist() == [0]
    assert tl.ends.tolist() == [100]


def test_effectiveness_above_one_is_flagged_not_clipped() -> None:
    cfg = site([machine("m1", ideal=120.0)], kpi={"stale_after_s": 86400})
    r = parse_range("2026-01-05T00:00..2026-01-05T01:00", "UTC")
    rd = MemReader()
    rd.add("m1", "state", [r.start_ns, r.start_ns + 3 * H // 4], [0, 0])
    rd.add("m1", "good", [r.start_ns, r.start_ns + H // 2], [0, 60])  # 60 x 120 s = 2 h
    # the latest sample (00:45) is the data horizon: 2 h of parts in 45 min producing
    res = compute_period(rd, cfg, r)
    m = res.machines[0]
    assert m["effectiveness"] == pytest.approx(7200 / 2700)
    assert any("effectiveness 2.667 > 1" in f and "ideal_cycle_s" in f for f in m["flags"])
    assert res.kpis["oee"].value == pytest.approx(100 * 7200 / 2700)
    assert any("effectiveness 2.667 > 1" in n for n in res.kpis["oee"].notes)


def test_missing_ideal_cycle_gives_no_oee_with_a_flag() -> None:
    cfg = site([machine("m1", ideal=None)])
    r = parse_range("2026-01-05..2026-01-05", "UTC")
    rd = MemReader()
    rd.add("m1", "state", [r.start_ns, r.start_ns + 12 * H], [0, 0])
    res = compute_period(rd, cfg, r)
    assert res.machines[0]["availability"] == 1.0  # producing up to the data horizon, 12:00
    assert res.kpis["oee"].value is None
    assert any("no ideal_cycle_s" in n for n in res.kpis["oee"].notes)


def test_default_staleness_polled_points_only() -> None:
    polled = machine("m1")
    polled["points"] = [dict(p, opcua={**p["opcua"], "mode": "poll"}) for p in polled["points"]]
    cfg = site([polled, machine("m2")], runtime={"heartbeat_s": 60})
    r = parse_range("2026-01-05T00:00..2026-01-05T01:00", "UTC")
    rd = MemReader()
    for dev in ("m1", "m2"):
        # one sample more than a day before the period, never repeated
        rd.add(dev, "state", [r.start_ns - 30 * H], [0])
    res = compute_period(rd, cfg, r)
    m1, m2 = res.machines
    # polled: stale 3 x 60 s after its sample, long before the period: all offline
    assert m1["times_s"]["offline"] == 3600
    assert res.device_coverage["m1"] == 0.0
    # subscribed: only changes arrive; with no link_lost marker the value holds at most
    # kpi.max_hold_s (default 24 h of wall time): 30 h after the sample the machine is offline
    assert m2["times_s"]["offline"] == 3600
    assert res.device_coverage["m2"] == 0.0
    # without the cap the value holds until the next sample
    nocap = site([polled, machine("m2")], runtime={"heartbeat_s": 60}, kpi={"max_hold_s": None})
    res_nocap = compute_period(rd, nocap, r)
    assert res_nocap.machines[1]["times_s"]["apt"] == 3600
    assert res_nocap.device_coverage["m2"] == 1.0
    # a cap reaching into the period holds until its end (sample + 30.5 h = 00:30)
    half = site([machine("m2")], kpi={"max_hold_s": 30.5 * 3600})
    res_half = compute_period(rd, half, r)
    assert res_half.machines[0]["times_s"]["apt"] == 1800
    assert res_half.machines[0]["times_s"]["offline"] == 1800
    # the last sample (00:59) is the data horizon: it holds nothing, the others 3 x 60 s each
    rd.add("m1", "state", [r.start_ns, r.start_ns + H // 2, r.start_ns + H - 60 * S], [0, 0, 0])
    res = compute_period(rd, cfg, r)
    assert res.machines[0]["times_s"]["apt"] == 180 + 180
    assert res.horizon_ns == r.start_ns + H - 60 * S
    # a configured staleness applies to every point
    cfg2 = site([machine("m2")], kpi={"stale_after_s": 600})
    res2 = compute_period(rd, cfg2, r)
    assert res2.machines[0]["times_s"]["apt"] == 0


MINUTE = 60_000_000_000
CAL2 = Calendar.model_validate(
    {
        "shifts": [
            {"name": "a", "start": "06:00", "end": "14:00"},
            {"name": "b", "start": "22:00", "end": "02:00"},
        ],
        "breaks": [{"name": "m", "start": "10:00", "end": "10:45"}],
    }
)
P2 = parse_range("2026-01-05..2026-01-07", "UTC")
WIN2 = device_windows(CAL2, "UTC", P2.start_ns, P2.end_ns, None)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-300, 4320),
            st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 2.5, float("nan"), -1.0, 1e12]),
            st.booleans(),
        ),
        min_size=1,
        max_size=50,
    ),
    st.integers(1, 300),
)
def test_fast_times_equals_the_reference_timeline(
    rows: list[tuple[int, float, bool]], stale_min: int
) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    before = [r for r in rows if r[0] < 0][-1:]
    rows = before + [r for r in rows if r[0] >= 0]
    s = Series(
        np.array([P2.start_ns + r[0] * MINUTE for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows]),
        np.array([2 if r[2] else 0 for r in rows], dtype=np.uint8),
    )
    stale = stale_min * MINUTE
    ref = machine_times(timeline(s, STATE_MAP, P2.start_ns, P2.end_ns, stale), WIN2, P2.duration_ns)
    assert fast_times(s, STATE_MAP, P2.start_ns, P2.end_ns, stale, WIN2) == ref
