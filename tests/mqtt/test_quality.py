"""The simulated quality station: pure model, payload shapes, and publishing over MQTT."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

from config.loader import load_site
from config.models import SiteConfig
from connectors.mqtt import build
from connectors.mqtt.connector import routes_of
from connectors.mqtt.payload import decode
from connectors.simulators.base import SimClock
from connectors.simulators.broker import BrokerError
from connectors.simulators.quality import QualityModel, build_quality, publications
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, running
from tests.support.mosquitto import Mosquitto
from tests.support.net import free_port

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
WED_0900 = int(dt.datetime(2026, 11, 18, 9, 0, tzinfo=SHANGHAI).timestamp()) * 10**9
DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def demo() -> SiteConfig:
    return load_site(DEMO)


def demo_on_port(demo: SiteConfig, port: int) -> SiteConfig:
    raw = demo.model_dump(mode="json", exclude_none=True)
    raw["devices"] = [d for d in raw["devices"] if "mqtt" in d]
    raw["devices"][0]["mqtt"]["port"] = port
    raw["devices"][0]["mqtt"]["client_id"] = f"test-{port}"
    return SiteConfig.model_validate(raw)


def test_model_is_deterministic_and_windows_add_up(demo: SiteConfig) -> None:
    a = QualityModel(11, "qs1", calendar=demo.calendar)
    b = QualityModel(11, "qs1", calendar=demo.calendar)
    other = QualityModel(12, "qs1", calendar=demo.calendar)
    whole = a.results_between(WED_0900, WED_0900 + DAY)
    assert whole == b.results_between(WED_0900, WED_0900 + DAY)
    assert whole != other.results_between(WED_0900, WED_0900 + DAY)
    mid = WED_0900 + DAY // 3
    assert whole == b.results_between(WED_0900, mid) + b.results_between(mid, WED_0900 + DAY)
    assert len(whole) > 500
    last = whole[0]
    assert a.totals_at(last.ts_ns) == (last.inspected, last.passed, last.rejected, last.reworked)
    for prev, cur in itertools.pairwise(whole):
        assert cur.ts_ns > prev.ts_ns
        assert cur.inspected == prev.inspected + 1
        assert cur.inspected == cur.passed + cur.rejected + cur.reworked
        assert (cur.passed, cur.rejected, cur.reworked) >= (prev.passed, prev.rejected, 0)


@pytest.mark.parametrize("profile", ["baseline", "current"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_defect_rate_is_plausible(demo: SiteConfig, profile: str, seed: int) -> None:
    model = QualityModel(seed, "qs1", calendar=demo.calendar, profile=profile)  # type: ignore[arg-type]
    week = model.results_between(WED_0900, WED_0900 + 7 * DAY)
    bad = sum(r.result != "ok" for r in week)
    rate = bad / len(week)
    assert 0.005 <= rate <= 0.03, rate
    assert 0.005 <= model.defect_rate <= 0.03
    for r in week:
        off = abs(r.diameter_mm - 25.0)
        assert (off <= 0.02) == (r.result == "ok"), r


def test_baseline_has_more_defects_than_current(demo: SiteConfig) -> None:
    def rate(profile: str) -> float:
        m = QualityModel(5, "qs1", calendar=demo.calendar, profile=profile)  # type: ignore[arg-type]
        week = m.results_between(WED_0900, WED_0900 + 14 * DAY)
        return sum(r.result != "ok" for r in week) / len(week)

    assert rate("baseline") > rate("current")


def test_no_inspections_outside_the_calendar(demo: SiteConfig) -> None:
    model = QualityModel(3, "qs1", calendar=demo.calendar)
    holiday = int(dt.datetime(2026, 10, 1, tzinfo=SHANGHAI).timestamp()) * 10**9
    assert model.results_between(holiday, holiday + DAY) == []
    sunday = int(dt.datetime(2026, 11, 22, tzinfo=SHANGHAI).timestamp()) * 10**9
    assert model.results_between(sunday, sunday + DAY) == []
    night = WED_0900 - 8 * 3600 * 10**9  # 01:00
    assert model.results_between(night, night + 7 * 3600 * 10**9) == []
    lunch = WED_0900 + 3 * 3600 * 10**9  # 12:00-12:30
    assert model.results_between(lunch, lunch + 1800 * 10**9) == []


def test_published_payload_decodes_to_the_model_values(demo: SiteConfig) -> None:
    dev = demo.device("qs1")
    (pub,) = publications(dev)
    assert pub.topic == "factory/qs1/inspection"
    (route,) = routes_of(dev)
    item = QualityModel(9, "qs1", calendar=demo.calendar).results_between(
        WED_0900, WED_0900 + 3600 * 10**9
    )[5]
    got = decode(pub.payload(item), route.specs, 0, 65536)
    assert got.errors == []
    ts = item.ts_ns // 1_000_000 * 1_000_000
    assert {p: (t, v) for p, t, v in got.values} == {
        "inspected": (ts, float(item.inspected)),
        "passed": (ts, float(item.passed)),
        "rejected": (ts, float(item.rejected)),
        "reworked": (ts, float(item.reworked)),
        "diameter_mm": (ts, item.diameter_mm),
    }


def test_template_and_plain_topics_are_served() -> None:
    site = mqtt_site(
        [
            device(
                "qsX",
                1884,
                [
                    point("n", "plant/+/count", role="count_total", datatype="uint32"),
                    point("d", "plant/+/json", "/x/d", ts_pointer="/t", ts_format="iso8601"),
                ],
                topic_device_level=1,
            )
        ]
    )
    pubs = {p.topic: p for p in publications(site.device("qsX"))}
    assert set(pubs) == {"plant/qsX/count", "plant/qsX/json"}
    item = QualityModel(1, "qsX").results_between(WED_0900, WED_0900 + 3600 * 10**9)[0]
    assert pubs["plant/qsX/count"].payload(item) == repr(float(item.inspected)).encode()
    routes = {r.topic_filter: r for r in routes_of(site.device("qsX"))}
    got = decode(pubs["plant/qsX/json"].payload(item), routes["plant/+/json"].specs, 0, 65536)
    assert got.values == [("d", item.ts_ns // 1000 * 1000, item.diameter_mm)]


def test_a_role_the_station_cannot_serve_is_a_clear_error() -> None:
    site = mqtt_site([device("q", 1884, [point("p", "a/b", "/p", role="power_kw")])])
    with pytest.raises(ValueError, match="no value for role 'power_kw'"):
        publications(site.device("q"))


async def test_station_publishes_and_the_connector_reads_it(demo: SiteConfig) -> None:
    site = demo_on_port(demo, free_port())
    clock = SimClock(speed=600, start_ns=WED_0900)
    (station,) = build_quality(site, 42, clock)
    (connector,) = build(site)
    sink = RecordingSink()
    await station.start()
    try:
        assert station.broker.port == site.device("qs1").mqtt.port  # type: ignore[union-attr]
        async with running(connector, sink):
            await sink.wait_for(lambda: len(sink.of("qs1", "inspected")) >= 5)
        assert "factory/qs1/inspection" in station.describe()
    finally:
        await station.stop()
    first = sink.of("qs1", "inspected")
    model = QualityModel(42, "qs1", calendar=site.calendar)
    expected = model.totals_at(first[0].ts + 999_999)
    assert first[0].value == expected[0]
    points = {s.point for s in sink.samples}
    assert points == {"inspected", "passed", "rejected", "reworked", "diameter_mm"}
    assert not sink.errors


async def test_station_uses_a_broker_the_user_names(demo: SiteConfig, broker: Mosquitto) -> None:
    site = demo_on_port(demo, broker.port)
    clock = SimClock(speed=600, start_ns=WED_0900)
    (station,) = build_quality(site, 1, clock, broker=f"127.0.0.1:{broker.port}")
    assert station.broker.kind == "external"
    (connector,) = build(site)
    sink = RecordingSink()
    await station.start()
    try:
        async with running(connector, sink):
            await sink.wait_for(lambda: len(sink.of("qs1", "passed")) >= 2)
    finally:
        await station.stop()
    assert broker.running  # a named broker is never stopped by the simulator


def test_a_named_broker_can_come_from_the_environment(
    demo: SiteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPFLOOR_MQTT_BROKER", "10.1.2.3:1884")
    (station,) = build_quality(demo, 1, SimClock())
    assert (station.broker.kind, station.broker.host, station.broker.port) == (
        "external",
        "10.1.2.3",
        1884,
    )
    monkeypatch.setenv("SHOPFLOOR_MQTT_BROKER", "nonsense")
    with pytest.raises(BrokerError, match="expected host:port"):
        build_quality(demo, 1, SimClock())
