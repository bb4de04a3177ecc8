from __future__ import annotations

import numpy as np
import pytest

from metrics.counters import GapRule, counter_steps
from metrics.intervals import IntervalSet
from metrics.series import Series


def _s(values: list[float], quality: list[int] | None = None) -> Series:
    n = len(values)
    return Series(
        np.arange(n, dtype=np.int64) * 10,
        np.array(values, dtype=np.float64),
        np.array(quality or [0] * n, dtype=np.uint8),
    )


def test_reset_rollover_and_backstep() -> None:
    # 100 -> 5: reset (counts 5); 5 -> 9 (+4); 9 -> 7: backstep (7 > 9 / 2: not a fresh count)
    st = counter_steps(_s([100, 5, 9, 7, 8]), start=0)
    assert st.inc.tolist() == [5, 4, 0, 1]
    assert (st.resets, st.rollovers, st.backsteps) == (1, 0, 1)
    roll = counter_steps(_s([250, 3, 10]), start=0, bits=8)
    assert roll.inc.tolist() == [9, 7]  # 3 + 256 - 250 = 9
    assert roll.rollovers == 1


def test_prior_bad_and_single_samples() -> None:
    st = counter_steps(_s([10, 12, float("nan"), 15], [0, 0, 0, 2]), start=5)
    assert st.inc.tolist() == [2]  # the NaN and the bad sample are skipped
    assert not st.no_prior
    assert st.total(0, 100) == 2
    one = counter_steps(_s([7]), start=-5)
    assert one.inc.size == 0
    assert one.no_prior
    # a reading exactly at the start is C(start): the period has a reading at its start
    assert not counter_steps(_s([7]), start=0).no_prior
    assert counter_steps(Series.empty(), start=0).samples == 0


# --- gap rules: steps that cannot be placed in time --------------------------------------------
S = 1_000_000_000


def _at(seconds: list[int], values: list[float], quality: list[int] | None = None) -> Series:
    return Series(
        np.array(seconds, dtype=np.int64) * S,
        np.array(values, dtype=np.float64),
        np.array(quality or [0] * len(values), dtype=np.uint8),
    )


def test_polled_step_longer_than_the_limit_is_unattributed() -> None:
    rule = GapRule(900 * S, polled=True)
    st = counter_steps(_at([0, 60, 2000, 2060], [1, 2, 50, 51]), 0, rule=rule, end=3600 * S)
    assert st.inc.tolist() == [1, 1]
    assert st.gap_inc.tolist() == [48]
    assert st.unattributed(0, 3600 * S) == 48
    assert st.unattributed_steps(0, 3600 * S) == 1
    # uncovered: the 60-2000 s step, and after 2060 + 900 s (stale) to the end
    assert st.uncovered.pairs() == [(60 * S, 2000 * S), (2960 * S, 3600 * S)]
    assert st.coverage(0, 3600 * S) == pytest.approx(1 - (1940 + 640) / 3600)


def test_polled_read_error_inside_a_short_step_is_placed() -> None:
    rule = GapRule(900 * S, polled=True)
    st = counter_steps(_at([0, 1, 2], [10, float("nan"), 12], [0, 2, 0]), 0, rule=rule, end=3 * S)
    assert st.inc.tolist() == [2]
    assert st.gap_inc.size == 0


def test_subscribed_link_loss_and_busy_time() -> None:
    # planned busy time only in [0, 1000) and [5000, 6000): the 1000-5000 quiet is not busy
    busy = IntervalSet.of([(0, 1000 * S), (5000 * S, 6000 * S)])
    rule = GapRule(900 * S, polled=False, busy=lambda a, b: busy.clip(a, b))
    quiet = counter_steps(_at([500, 5100], [1, 2]), 0, rule=rule, end=6000 * S)
    assert quiet.inc.tolist() == [1]  # 500 s + 100 s of busy time: placed
    assert quiet.coverage(0, 6000 * S) == pytest.approx(1 - 500 / 6000)  # before the first
    long_ = counter_steps(_at([0, 5950], [1, 9]), 0, rule=rule, end=6000 * S)
    assert long_.gap_inc.tolist() == [8]  # 1000 s + 950 s of busy time
    lost = counter_steps(
        _at([10, 20, 30], [1, float("nan"), 4], [0, 2, 0]), 0, rule=rule, end=60 * S
    )
    assert lost.inc.size == 0
    assert lost.gap_inc.tolist() == [3]  # across the link_lost sample
    tail = counter_steps(_at([10, 20], [1, float("nan")], [0, 2]), 0, rule=rule, end=60 * S)
    assert tail.uncovered.pairs() == [(0, 10 * S), (20 * S, 60 * S)]  # offline after link loss


def test_count_is_c_end_minus_c_start() -> None:
    """A step read at t belongs to [a, b) iff a < t <= b: readings exactly at the start and
    at the end (daily meter readings at midnight); adjacent periods add up."""
    st = counter_steps(_at([0, 10, 20, 30], [100, 110, 125, 130]), 10 * S)
    assert st.total(10 * S, 30 * S) == 20  # C(30) - C(10) = 130 - 110
    assert st.total(0, 10 * S) == 10
    assert st.total(0, 10 * S) + st.total(10 * S, 30 * S) == st.total(0, 30 * S) == 30


def test_marker_strictly_between_readings_only() -> None:
    """A marker at the instant of a reading (healed by backfill) leaves the step placed; one
    strictly between two readings makes it unattributed (whatever the storage order)."""
    rule = GapRule(900 * S, polled=False)
    healed = counter_steps(
        _at([0, 10, 10, 20], [1, float("nan"), 4, 6], [0, 2, 0, 0]), 0, rule=rule, end=60 * S
    )
    assert healed.inc.tolist() == [3, 2]
    assert healed.gap_inc.size == 0
    first = counter_steps(
        _at([0, 10, 10, 20], [1, 4, float("nan"), 6], [0, 0, 2, 0]), 0, rule=rule, end=60 * S
    )
    assert first.inc.tolist() == [3, 2]
    lost = counter_steps(_at([0, 5, 10], [1, float("nan"), 4], [0, 2, 0]), 0, rule=rule, end=60 * S)
    assert lost.gap_inc.tolist() == [3]
    assert lost.unattributed(0, 10 * S) == 3  # read at 10 s: in (0, 10]
    assert lost.unattributed(10 * S, 60 * S) == 0


def test_imported_history_keeps_its_own_cadence() -> None:
    rule = GapRule(900 * S, polled=True, length_rule=False)
    hourly = counter_steps(_at([0, 3600, 7200], [0, 5, 9]), 0, rule=rule, end=7300 * S)
    assert hourly.inc.tolist() == [5, 4]
    assert hourly.coverage(0, 7300 * S) == 1.0


def test_no_good_sample_leaves_the_period_uncovered() -> None:
    rule = GapRule(900 * S, polled=True)
    st = counter_steps(_at([5], [float("nan")], [2]), 0, rule=rule, end=10 * S)
    assert st.coverage(0, 10 * S) == 0.0
    assert counter_steps(Series.empty(), 0, rule=rule, end=10 * S).coverage(0, 10 * S) == 0.0


def test_engine_rules_rare_events_and_old_prior() -> None:
    """Through the engine: a subscribed scrap counter quiet for hours inside the shift is placed
    (rare events), a jump from a sample weeks old is not; a polled meter's 20-min gap is not."""
    from metrics.engine import compute_period
    from metrics.periods import parse_range
    from tests.metrics.memreader import MemReader
    from tests.metrics.sites import machine, site

    meter = {
        "id": "em",
        "name": "em",
        "production": False,
        "modbus": {"host": "127.0.0.1", "port": 50201, "unit": 1},
        "points": [
            {"id": "kwh", "role": "energy_kwh", "modbus": {"table": "holding", "address": 0}}
        ],
    }
    s = site([machine("m1"), meter])
    p = parse_range("2026-01-05..2026-01-05", "UTC")
    h = 3600 * S
    rd = MemReader()
    rd.add(
        "m1",
        "scrap",
        [p.start_ns - 30 * 24 * h, p.start_ns + 8 * h, p.start_ns + 13 * h],
        [0, 50, 51],
    )
    rd.add("m1", "good", [p.start_ns - h, p.start_ns + h], [10, 12])
    mins = [0, 5, 10, 30, 35]
    rd.add("em", "kwh", [p.start_ns + m * 60 * S for m in mins], [0, 1, 2, 9, 10])
    res = compute_period(rd, s, p)
    assert res.counters["m1/scrap"]["total"] == 1  # 5 h quiet, then +1: placed
    assert res.counters["m1/scrap"]["unattributed"] == 50  # from a sample 30 days old
    assert res.counters["m1/good"]["total"] == 2
    assert res.counters["em/kwh"]["total"] == 3
    assert res.counters["em/kwh"]["unattributed"] == 7  # 20 min > 3 x 300 s between polls
