"""Simulated meters: the pure model, and the server agreeing with the site file."""

from __future__ import annotations

import datetime as dt
import itertools
import struct
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_site
from config.models import Device, SiteConfig
from connectors.base import Quality
from connectors.modbus import build
from connectors.simulators import meters
from connectors.simulators.base import SimClock
from connectors.simulators.meters import MeterModel, build_meters
from tests.modbus.helpers import Recorder, running, site
from tests.support.net import free_port

DEMO = Path(__file__).parents[2] / "config" / "examples" / "demo.yaml"
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
MIN = 60 * 10**9


def ns(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=TZ).timestamp()) * 10**9


@pytest.fixture(scope="module")
def demo() -> SiteConfig:
    return load_site(DEMO)


def moved(s: SiteConfig, port: int) -> SiteConfig:
    devices = []
    for d in s.devices:
        if d.modbus is not None:
            d = d.model_copy(
                update={
                    "modbus": d.modbus.model_copy(update={"port": port, "poll_interval_ms": 100})
                }
            )
        devices.append(d)
    return s.model_copy(update={"devices": tuple(devices)})


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def test_model_is_deterministic_with_the_seed(demo: SiteConfig) -> None:
    meter = demo.device("meter1")
    t = ns(2026, 3, 2, 10, 17)
    a = MeterModel(7, meter, demo.calendar).values_at(t)
    meters._TOTALS.clear()  # recompute from scratch, not from the shared per-process totals
    b = MeterModel(7, meter, demo.calendar).values_at(t)
    c = MeterModel(8, meter, demo.calendar).values_at(t)
    assert a == b
    assert a != c
    assert set(a) == {"energy", "power"}


def test_energy_is_the_exact_integral_of_power(demo: SiteConfig) -> None:
    model = MeterModel(7, demo.device("meter2"), demo.calendar)
    start = ns(2026, 3, 1, 22, 0)  # across midnight into a working Monday
    rows = [model.values_at(start + i * MIN) for i in range(60 * 14)]
    for before, after in itertools.pairwise(rows):
        step = after["energy"] - before["energy"]
        assert step == pytest.approx(before["power"] / 60.0, rel=1e-9, abs=1e-9)
    # within a slot energy grows linearly, power stays
    mid = model.values_at(start + MIN // 2)
    assert mid["energy"] == pytest.approx((rows[0]["energy"] + rows[1]["energy"]) / 2, rel=1e-12)
    assert mid["power"] == rows[0]["power"]


def test_load_follows_the_calendar(demo: SiteConfig) -> None:
    model = MeterModel(7, demo.device("meter1"), demo.calendar)
    monday_busy = [model.values_at(ns(2026, 3, 2, 10, m))["power"] for m in range(0, 60, 5)]
    monday_night = [model.values_at(ns(2026, 3, 2, 3, m))["power"] for m in range(0, 60, 5)]
    lunch = [model.values_at(ns(2026, 3, 2, 12, m))["power"] for m in range(0, 30, 5)]
    holiday = [model.values_at(ns(2026, 10, 1, 10, m))["power"] for m in range(0, 60, 5)]
    assert min(monday_busy) > max(lunch) > max(monday_night)
    assert max(holiday) == pytest.approx(max(monday_night))
    assert max(monday_busy) <= model.capacity_kw


def test_baseline_uses_more_energy_and_reuses_less_water(demo: SiteConfig) -> None:
    start, end = ns(2026, 3, 2), ns(2026, 3, 9)
    used = {}
    reuse = {}
    for profile in ("baseline", "current"):
        meter = MeterModel(7, demo.device("meter1"), demo.calendar, profile=profile)
        used[profile] = meter.values_at(end)["energy"] - meter.values_at(start)["energy"]
        water = MeterModel(7, demo.device("water1"), demo.calendar, profile=profile)
        a, b = water.values_at(start), water.values_at(end)
        fresh, reused = b["fresh"] - a["fresh"], b["reused"] - a["reused"]
        reuse[profile] = reused / (reused + fresh)
    assert used["baseline"] > used["current"] * 1.1
    assert 0.30 < reuse["baseline"] < 0.40
    assert 0.55 < reuse["current"] < 0.66


def test_counters_never_go_back_and_are_flat_before_the_origin(demo: SiteConfig) -> None:
    model = MeterModel(3, demo.device("water1"), demo.calendar)
    series = [model.values_at(ns(2026, 5, 1) + i * 37 * MIN)["fresh"] for i in range(200)]
    assert all(b >= a for a, b in itertools.pairwise(series))
    assert model.values_at(ns(2020, 1, 1)) == model.values_at(ns(2023, 6, 1))
    samples = list(model.samples(ns(2026, 5, 1), ns(2026, 5, 1, 1), 15 * MIN))
    assert [t for t, _ in samples] == [ns(2026, 5, 1) + k * 15 * MIN for k in range(4)]


def test_bad_profile_is_refused(demo: SiteConfig) -> None:
    with pytest.raises(ValueError, match="profile"):
        MeterModel(1, demo.device("meter1"), profile="after")  # type: ignore[arg-type]


async def test_demo_meters_serve_what_the_model_says(demo: SiteConfig) -> None:
    s = moved(demo, free_port())
    clock = SimClock(speed=1e-9)  # factory time practically stands still
    servers = build_meters(s, 7, clock)
    assert len(servers) == 1
    (server,) = servers
    assert "meter1" in server.describe()
    assert "water1" in server.describe()
    await server.start()
    try:
        (conn,) = build(s)
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(
                lambda: all(
                    sink.good(d, p)
                    for d, p in (("meter1", "energy"), ("meter2", "power"), ("water1", "reused"))
                )
            )
    finally:
        await server.stop()
    t = clock.now_ns()
    for dev_id in ("meter1", "meter2", "water1"):
        expected = MeterModel(7, s.device(dev_id), s.calendar, s.site.timezone).values_at(t)
        for point, value in expected.items():
            got = sink.latest(dev_id, point)
            assert got is not None
            assert got.quality == Quality.GOOD
            assert got.value == f32(value), (dev_id, point)


async def test_any_point_layout_of_the_site_file_is_served() -> None:
    port = free_port()
    points: list[dict[str, Any]] = [
        {
            "id": "energy",
            "role": "energy_kwh",
            "datatype": "uint32",
            "scale": 0.1,
            "modbus": {"table": "input", "address": 10, "order": "DCBA"},
        },
        {
            "id": "power",
            "role": "power_kw",
            "datatype": "int16",
            "scale": 0.1,
            "modbus": {"address": 0},
        },
        {
            "id": "running",
            "role": "measurement",
            "datatype": "bool",
            "modbus": {"address": 5, "bit": 3},
        },
        {"id": "apc", "role": "apc_mode", "datatype": "bool", "modbus": {"address": 5, "bit": 9}},
        {"id": "alarm", "datatype": "bool", "modbus": {"table": "coil", "address": 17}},
        {
            "id": "big",
            "role": "energy_kwh",
            "datatype": "float64",
            "modbus": {"address": 40, "order": "BADC", "unit": 4},
        },
    ]
    s = site(
        [
            {
                "id": "pm",
                "name": "pm",
                "rated_power_kw": 50,
                "modbus": {"host": "127.0.0.1", "port": port, "unit": 2, "poll_interval_ms": 100},
                "points": points,
            }
        ]
    )
    clock = SimClock(speed=3600.0, start_ns=ns(2026, 3, 2, 9, 0))  # an hour per second
    (server,) = build_meters(s, 11, clock)
    await server.start()
    try:
        (conn,) = build(s)
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(
                lambda: len(sink.good("pm", "energy")) >= 4 and len(sink.good("pm", "big")) >= 1
            )
    finally:
        await server.stop()
    dev: Device = s.device("pm")
    model = MeterModel(11, dev, s.calendar, s.site.timezone)
    first = sink.good("pm", "energy")[0]
    values = model.values_at(clock.start_ns)
    assert first.value == pytest.approx(values["energy"], rel=1e-3)
    energies = [x.value for x in sink.good("pm", "energy")]
    assert energies[-1] > energies[0]  # the accelerated clock moves the meter
    power = sink.latest("pm", "power")
    assert power is not None
    assert 0 < power.value <= 50.0
    assert sink.latest("pm", "running").value == 1.0  # type: ignore[union-attr]
    assert sink.latest("pm", "apc").value == 1.0  # type: ignore[union-attr]
    assert sink.latest("pm", "alarm").quality == Quality.GOOD  # type: ignore[union-attr]
    assert sink.latest("pm", "big").value > 0  # type: ignore[union-attr]


def test_baseline_history_then_live_counters_never_step_down(demo: SiteConfig) -> None:
    """The demo writes a baseline history, then the live (current) meters take over: a counter
    that went down at the switch would read as a reset (a huge false consumption)."""
    for dev_id in ("meter1", "water1"):
        dev = demo.device(dev_id)
        base = MeterModel(7, dev, demo.calendar, profile="baseline")
        cur = MeterModel(7, dev, demo.calendar, profile="current")
        for t1, t2 in [
            (ns(2025, 3, 3, 10, 0), ns(2025, 3, 3, 10, 1)),
            (ns(2026, 11, 20, 23, 59), ns(2026, 11, 21, 0, 0)),
            (ns(2026, 11, 21, 3, 0), ns(2026, 11, 21, 3, 0)),
            (ns(2024, 1, 1, 2, 0), ns(2024, 1, 1, 2, 5)),
        ]:
            b, c = base.values_at(t1), cur.values_at(t2)
            for point in b:
                if dev.point(point).role in ("energy_kwh", "water_fresh_m3", "water_reused_m3"):
                    assert b[point] <= c[point], (dev_id, point, t1)
        # the baseline counter itself is positive and rising in the periods the demo uses
        e1 = base.values_at(ns(2025, 1, 6))
        e2 = base.values_at(ns(2025, 1, 13))
        assert all(e2[p] > e1[p] > 0 for p in e1 if dev.point(p).role != "power_kw")


def test_bad_simulator_arguments(demo: SiteConfig) -> None:
    from connectors.simulators.meters import MeterServer

    model = MeterModel(1, demo.device("meter1"))
    with pytest.raises(ValueError, match="step_ns must be positive"):
        list(model.samples(0, 10, 0))
    with pytest.raises(ValueError, match="at least one unit"):
        MeterServer({})
