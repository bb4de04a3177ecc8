"""The time model's rules on the golden cases of issue 10 (tests/golden/kpi) and on small
recordings: the data horizon, a good sample winning at a marker's instant, counter boundaries and
the split of a period with a healed and an unhealed link loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from config.loader import load_site
from config.markers import HEARTBEAT
from metrics.engine import compute_period
from metrics.periods import TimeRange, parse_range
from metrics.recording import AFTER_NS, data_horizon, good_wins, read_period
from metrics.series import Series
from tests.metrics.memreader import MemReader
from tests.metrics.test_golden import GOLDEN, _reader

S = 1_000_000_000
MS = 1_000_000


def _series(ts: list[int], q: list[int] | None = None) -> Series:
    return Series(
        np.array(ts, np.int64),
        np.array([float(i) for i in range(len(ts))]),
        np.array(q or [0] * len(ts), np.uint8),
    )


@pytest.mark.parametrize("shift_ns", [-MS, 0, MS])
def test_moving_the_end_by_a_millisecond_keeps_availability(shift_ns: int) -> None:
    """horizon_change_at_end: no heartbeat, the next change exactly at 12:00; the end moved by
    +-1 ms gives availability 0.75 (README of the case)."""
    folder = GOLDEN / "horizon_change_at_end"
    site = load_site(folder / "site.yaml")
    p = parse_range("2026-01-05T08:00..2026-01-05T12:00", "UTC")
    period = TimeRange(p.start_ns, p.end_ns + shift_ns, "shifted")
    res = compute_period(_reader(folder, "UTC"), site, period)
    m = res.machines[0]
    assert math.isclose(m["availability"], 0.75, rel_tol=1e-6)
    assert m["times_s"]["apt"] == pytest.approx(10800 + min(shift_ns, 0) / S, abs=1e-9)
    assert m["quantities"]["pq"] == 180
    # at +1 ms the 12:00 sample is inside the period and is the horizon (nothing after it)
    assert res.horizon_ns == (p.end_ns if shift_ns > 0 else None)


@pytest.mark.parametrize("at", ["08:45", "09:00", "09:10", "09:30"])
def test_backfill_case_splits_add_up(at: str) -> None:
    """counter_backfill_healed split at several instants (one is the markers' instant, one is
    inside m2's unhealed gap): totals, unattributed amounts, PQ and times add up."""
    folder = GOLDEN / "counter_backfill_healed"
    site = load_site(folder / "site.yaml")
    rd = _reader(folder, "UTC")
    whole_p = parse_range("2026-01-05T08:00..2026-01-05T10:00", "UTC")
    # the collector's heartbeat every 10 s from 07:00 to 10:00 (the case's file has the last two)
    beats = range(whole_p.start_ns - 3600 * S, whole_p.end_ns + 1, 10 * S)
    rd.add(*HEARTBEAT, beats, [1.0] * len(beats))
    b = parse_range(f"2026-01-05T{at}..2026-01-05T10:00", "UTC").start_ns
    whole = compute_period(rd, site, whole_p)
    parts = [compute_period(rd, site, p) for p in whole_p.split(b)]
    for key in ("m1/good", "m2/good"):
        for k in ("total", "unattributed", "unattributed_steps"):
            assert sum(p.counters[key][k] for p in parts) == whole.counters[key][k], (key, k)
    for i in range(2):
        assert (
            sum(p.machines[i]["quantities"]["pq"] for p in parts)
            == (whole.machines[i]["quantities"]["pq"])
        )
        for k in ("apt", "offline", "pbt", "window"):
            got = sum(p.machines[i]["times_s"][k] for p in parts)
            assert got == pytest.approx(whole.machines[i]["times_s"][k], abs=1e-9), (i, k)
    assert whole.counters["m2/good"]["unattributed"] == 50


def test_good_wins_at_a_markers_instant() -> None:
    s = Series(
        np.array([0, 5, 5, 9], np.int64),
        np.array([1.0, 2.0, float("nan"), 3.0]),
        np.array([0, 0, 2, 0], np.uint8),
    )
    out = good_wins(s)
    assert out.ts.tolist() == [0, 5, 5, 9]
    assert out.quality.tolist() == [0, 2, 0, 0]  # the marker first: the good one is in force
    assert out.values[2] == 2.0
    plain = _series([0, 5, 9], [0, 2, 0])  # no tie: unchanged (same object)
    assert good_wins(plain) is plain


def test_data_horizon_rules() -> None:
    start, end = 100, 200
    hb_after = _series([190, 205])
    assert data_horizon([_series([50, 150])], hb_after, start, end) is None  # heartbeat >= end
    assert data_horizon([_series([150, 200])], Series.empty(), start, end) is None  # sample at end
    assert data_horizon([_series([50, 150])], _series([170]), start, end) == 170  # live "now"
    assert data_horizon([_series([50, 180])], _series([170]), start, end) == 180
    assert data_horizon([_series([50])], Series.empty(), start, end) is None  # nothing inside
    assert data_horizon([], Series.empty(), start, end) is None


def test_read_period_reads_through_the_reader_only() -> None:
    """Every read is a reader call (what the engine logs in ``reads``): the period and the
    window after it with the prior sample, the heartbeat after the end, and a counter's walk
    back past a prior marker to its last reading (a good sample at the marker's instant)."""
    rd = MemReader()
    rd.add("m", "good", [10 * S, 20 * S, 20 * S, 30 * S], [5, 7, float("nan"), 9], [0, 0, 2, 2])
    rd.add("m", "state", [10 * S, 30 * S], [0, float("nan")], [0, 2])
    rd.add(*HEARTBEAT, [35 * S, 45 * S], [1.0, 1.0])
    rec = read_period(rd, [("m", "good"), ("m", "state")], [("m", "good")], 40 * S, 60 * S)
    calls = [c[2:] for c in rd.calls]
    assert calls[0] == (40 * S, 60 * S + AFTER_NS, True)
    assert (30 * S, 30 * S + 1, True) in calls
    assert (20 * S, 20 * S + 1, True) in calls
    assert calls[-1] == (60 * S, 60 * S + AFTER_NS, True)  # the heartbeat
    c = rec.counter(("m", "good"))
    # back to the 20 s instant, where the good reading (7) wins over the marker
    assert c.ts.tolist() == [10 * S, 20 * S, 20 * S, 30 * S]
    assert c.values[2] == 7.0
    assert c.quality.tolist() == [0, 2, 0, 2]
    assert rec.heartbeat
    assert rec.horizon == 45 * S
