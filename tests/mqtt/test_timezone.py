"""Naive payload times (Tasmota's ``"Time": "2026-12-04T13:45:00"``) are read in the device's
``mqtt.timezone``, by default the site's; an unknown zone is refused at load."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest
from pydantic import ValidationError

from config.models import SiteConfig
from connectors.mqtt import MqttConnector, build
from tests.mqtt.helpers import RecordingSink, device, point, publisher, running
from tests.support.mosquitto import Mosquitto

TASMOTA = {"Time": "2026-12-04T13:45:00", "ENERGY": {"Total": 1234.5, "Power": 88}}


def _site(port: int, tz: dict[str, str]) -> SiteConfig:
    pts = [point("kwh", "tele/+/SENSOR", "/ENERGY/Total", ts_pointer="/Time", ts_format="iso8601")]
    return SiteConfig.model_validate(
        {
            "site": {"id": "t", "name": "t", "timezone": "Asia/Shanghai"},
            "devices": [
                device("plug1", port, pts, client_id="t-tz1", **tz),
                device("plug2", port, [dict(pts[0], id="kwh")], client_id="t-tz2"),
            ],
        }
    )


def _ns(zone: str) -> int:
    local = dt.datetime(2026, 12, 4, 13, 45, tzinfo=zoneinfo.ZoneInfo(zone))
    return int(local.timestamp()) * 1_000_000_000


async def test_naive_times_use_the_device_zone_else_the_site_zone(broker: Mosquitto) -> None:
    conns = build(_site(broker.port, {"timezone": "Europe/Berlin"}))
    assert all(isinstance(c, MqttConnector) for c in conns)
    sinks = [RecordingSink() for _ in conns]
    async with running(conns[0], sinks[0]), running(conns[1], sinks[1]):
        for c, s in zip(conns, sinks, strict=True):
            await s.wait_for(lambda s=s, c=c: s.up(c.devices[0]) is True)
        with publisher(broker.port) as pub:
            pub("tele/x/SENSOR", json.dumps(TASMOTA), 1)
        for s in sinks:
            await s.wait_for(lambda s=s: len(s.samples) >= 1)
    by_device = {s.device: s for sink in sinks for s in sink.samples}
    assert by_device["plug1"].ts == _ns("Europe/Berlin")  # the device's zone
    assert by_device["plug2"].ts == _ns("Asia/Shanghai")  # the site's
    assert by_device["plug1"].value == 1234.5


def test_an_unknown_zone_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        _site(1883, {"timezone": "Mars/Olympus"})
