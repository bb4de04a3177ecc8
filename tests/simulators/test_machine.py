"""The pure machine model: deterministic, follows the calendar, plausible KPIs per profile."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

from config.calendar import Calendar, PlannedDowntime
from config.loader import load_site
from config.models import SiteConfig
from connectors.simulators.machine import STATE_CODE, MachineModel

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
S = 1_000_000_000
TZ = dt.timezone(dt.timedelta(hours=8))


def _ns(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=TZ).timestamp()) * S  # type: ignore[misc]


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(DEMO)


def _model(site: SiteConfig, device: str, profile: str, seed: int = 7) -> MachineModel:
    dev = site.device(device)
    return MachineModel(
        dev.id,
        seed=seed,
        calendar=site.calendar,
        timezone=site.site.timezone,
        ideal_cycle_s=dev.ideal_cycle_s,
        rated_power_kw=dev.rated_power_kw,
        process=any(p.role == "apc_mode" for p in dev.points),
        profile=profile,  # type: ignore[arg-type]
    )


def _week_kpis(model: MachineModel, start: int, end: int) -> tuple[float, float, float]:
    """(OEE, defect rate, APC share of running time) over [start, end), ISO 22400."""
    times: dict[str, float] = {}
    apc = 0.0
    for e in model.episodes(start, end):
        span = (min(e.end_ns, end) - max(e.start_ns, start)) / S
        times[e.state] = times.get(e.state, 0.0) + span
        if e.apc:
            apc += span
    pbt = sum(v for k, v in times.items() if k != "planned_stop")
    apt = times.get("producing", 0.0)
    g0, s0 = model.counts_at(start)
    g1, s1 = model.counts_at(end)
    pq = (g1 - g0) + (s1 - s0)
    if pq == 0:
        return 0.0, 0.0, apc / apt
    availability = apt / pbt
    effectiveness = model.ideal_cycle_s * pq / apt
    quality = (g1 - g0) / pq
    return availability * effectiveness * quality, (s1 - s0) / pq, apc / apt


@pytest.mark.parametrize("profile", ["baseline", "current"])
@pytest.mark.parametrize("seed", [7, 11])
def test_week_kpis_are_plausible(site: SiteConfig, profile: str, seed: int) -> None:
    start, end = _ns(2026, 3, 2), _ns(2026, 3, 9)
    for device in ("cnc1", "cnc2", "cnc3", "cnc4"):
        oee, defects, _ = _week_kpis(_model(site, device, profile, seed), start, end)
        assert 0.55 <= oee <= 0.85, (device, profile, oee)
        assert 0.005 <= defects <= 0.03, (device, profile, defects)


def test_current_profile_is_better_than_baseline(site: SiteConfig) -> None:
    start, end = _ns(2026, 3, 2), _ns(2026, 3, 9)
    for device in ("cnc1", "cnc3"):
        base = _week_kpis(_model(site, device, "baseline"), start, end)
        cur = _week_kpis(_model(site, device, "current"), start, end)
        assert cur[0] > base[0]
        assert cur[1] < base[1]
    base_apc = _week_kpis(_model(site, "furnace1", "baseline"), start, end)[2]
    cur_apc = _week_kpis(_model(site, "furnace1", "current"), start, end)[2]
    assert base_apc < 0.6 < cur_apc


def test_deterministic_function_of_seed_and_time(site: SiteConfig) -> None:
    t = _ns(2026, 3, 4, 10, 17)
    a = _model(site, "cnc1", "current").at(t)
    # a fresh model asked the same instant (with no history of queries) agrees exactly
    b = _model(site, "cnc1", "current").at(t)
    assert a == b
    other = _model(site, "cnc1", "current", seed=8).at(t)
    assert (other.good, other.scrap) != (a.good, a.scrap)


def test_states_follow_the_calendar(site: SiteConfig) -> None:
    m = _model(site, "cnc2", "current")
    # Sunday (no shift), lunch break, a holiday, and the night are planned stops
    for t in (
        _ns(2026, 3, 8, 10, 0),
        _ns(2026, 3, 4, 12, 10),
        _ns(2026, 10, 2, 10, 0),
        _ns(2026, 3, 4, 3, 0),
    ):
        assert m.at(t).state == "planned_stop"
        assert m.at(t).power_kw == 0.0
    # within shifts, all working states occur over a day
    seen = {m.at(_ns(2026, 3, 4, 8) + k * 60 * S).state for k in range(16 * 60)}
    assert {"producing", "setup", "down"} <= seen
    assert set(STATE_CODE) >= seen


def test_counters_are_monotonic_and_only_grow_while_producing(site: SiteConfig) -> None:
    m = _model(site, "cnc1", "current")
    t = _ns(2026, 3, 3, 7)
    prev = m.counts_at(t)
    grew_outside = 0
    for _ in range(24 * 60):
        t += 60 * S
        now = m.counts_at(t)
        assert now[0] >= prev[0]
        assert now[1] >= prev[1]
        if (
            now != prev
            and m.at(t - 60 * S).state not in ("producing",)
            and m.at(t).state != ("producing")
        ):
            grew_outside += 1
        prev = now
    assert grew_outside == 0
    # the counters carry over midnight without a jump, and reset on the first of the month
    midnight = _ns(2026, 3, 4)
    before, after = m.counts_at(midnight - 1), m.counts_at(midnight + 60 * S)
    assert after[0] - before[0] <= 2
    assert m.counts_at(_ns(2026, 3, 31, 23, 59))[0] > 10_000
    assert m.counts_at(_ns(2026, 4, 1, 0, 1)) == (0, 0)


def test_counts_equal_the_parts_of_the_runs(site: SiteConfig) -> None:
    """Counter increments over a period are exactly the parts of the producing runs in it."""
    m = _model(site, "cnc3", "baseline")
    start, end = _ns(2026, 3, 9), _ns(2026, 3, 16)
    parts = sum(e.parts for e in m.episodes(start, end) if e.state == "producing")
    g0, s0 = m.counts_at(start)
    g1, s1 = m.counts_at(end)
    assert (g1 - g0) + (s1 - s0) == parts


def test_planned_downtime_for_one_device() -> None:
    cal = Calendar(
        planned_downtime=(
            PlannedDowntime(
                start=dt.datetime(2026, 3, 4, 9),
                end=dt.datetime(2026, 3, 4, 11),
                reason="保养 maintenance",
                devices=("m1",),
            ),
        )
    )
    m1 = MachineModel("m1", seed=1, calendar=cal, ideal_cycle_s=30)
    m2 = MachineModel("m2", seed=1, calendar=cal, ideal_cycle_s=30)
    t = _ns(2026, 3, 4, 10)
    assert m1.at(t).state == "planned_stop"
    # around the clock when no shift is configured: m2 works
    assert any(m2.at(t + k * 600 * S).state != "planned_stop" for k in range(6))


def test_process_unit_reports_apc_and_temperature(site: SiteConfig) -> None:
    m = _model(site, "furnace1", "current")
    t = _ns(2026, 3, 4, 8)
    readings = [m.at(t + k * 60 * S) for k in range(8 * 60)]
    assert any(r.apc_mode for r in readings)
    running = [r.temperature_c for r in readings if r.state == "producing"]
    assert running
    assert all(840 <= x <= 880 for x in running)
    assert all(r.good == 0 for r in readings)


def test_bad_inputs_are_refused(site: SiteConfig) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        MachineModel("x", seed=1, calendar=Calendar(), profile="future")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch"):
        _model(site, "cnc1", "current").at(_ns(1999, 12, 1))


# ------------------------------------------------------------------ offline history generator
def test_generated_history_covers_every_device_and_matches_the_live_model(
    site: SiteConfig,
) -> None:
    from connectors.simulators.cnc import model_for, reading_value
    from connectors.simulators.history import generate_history

    start, end = _ns(2025, 3, 24), _ns(2025, 3, 26)  # two working days
    samples = list(generate_history(site, 7, start, end))
    assert {s.device for s in samples} == {d.id for d in site.devices}
    assert all(start <= s.ts < end for s in samples)
    for dev in site.devices:
        ts = [s.ts for s in samples if s.device == dev.id]
        assert ts == sorted(ts), dev.id
        assert {s.point for s in samples if s.device == dev.id} == {p.id for p in dev.points}
    for dev_id in ("cnc2", "furnace1"):
        dev = site.device(dev_id)
        model = model_for(site, dev, 7, "baseline")
        mine = [s for s in samples if s.device == dev_id]
        for s in mine[:: max(1, len(mine) // 300)]:
            assert float(reading_value(dev.point(s.point), model.at(s.ts))) == s.value, s
    goods = [s.value for s in samples if s.device == "cnc1" and s.point == "good"]
    assert all(b - a == 1 for a, b in itertools.pairwise(goods))
    meter = [s.ts for s in samples if s.device == "meter1" and s.point == "energy"]
    assert {b - a for a, b in itertools.pairwise(meter)} == {60 * S}
    inspected = [s.value for s in samples if s.device == "qs1" and s.point == "inspected"]
    assert inspected == sorted(inspected)
    assert len(inspected) > 1000


def test_generated_counters_reset_at_the_month_boundary(site: SiteConfig) -> None:
    from connectors.simulators.history import generate_history

    start, end = _ns(2025, 3, 31, 8), _ns(2025, 4, 1, 12)
    good = [
        s for s in generate_history(site, 3, start, end) if (s.device, s.point) == ("cnc1", "good")
    ]
    reset = _ns(2025, 4, 1)
    before = [s.value for s in good if s.ts < reset]
    after = [s for s in good if s.ts >= reset]
    assert before[-1] > 100
    assert after[0].ts == reset
    assert after[0].value == 0.0
    assert after[-1].value > 0


def test_generate_history_refuses_bad_input(site: SiteConfig) -> None:
    from connectors.simulators.history import generate_history

    with pytest.raises(ValueError, match="end after it starts"):
        list(generate_history(site, 1, _ns(2025, 3, 2), _ns(2025, 3, 1)))
    with pytest.raises(ValueError, match="profile"):
        list(generate_history(site, 1, _ns(2025, 3, 1), _ns(2025, 3, 2), "later"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        list(generate_history(site, 1, _ns(2025, 3, 1), _ns(2025, 3, 2), meter_step_s=0))
