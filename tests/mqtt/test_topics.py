"""Pure topic handling and the config checks of MQTT blocks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.mqtt import MqttAddress, MqttConnection
from connectors.mqtt import build, connection_key
from connectors.mqtt.topics import concrete_topic, device_from_topic, device_level_ok, matches
from tests.mqtt.helpers import device, mqtt_site, point


@pytest.mark.parametrize(
    ("flt", "topic", "expected"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/b/c", "a/b", False),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/y/c", False),
        ("a/+", "a/", True),  # '+' matches an empty level
        ("a/#", "a", True),  # '#' matches the parent level too
        ("a/#", "a/b/c/d", True),
        ("#", "x/y", True),
        ("#", "$SYS/broker/load", False),  # wildcards never match '$' topics at the root
        ("+/broker/load", "$SYS/broker/load", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("+/+", "a/b/c", False),
        ("a/b", "a/b/", False),
    ],
)
def test_matches(flt: str, topic: str, expected: bool) -> None:
    assert matches(flt, topic) is expected


def test_device_from_topic() -> None:
    assert device_from_topic("plant/qs7/insp", 1) == "qs7"
    assert device_from_topic("plant/qs7", 2) is None
    assert device_from_topic("plant/bad id/x", 1) is None
    assert device_from_topic("plant//x", 1) is None
    assert device_level_ok("plant/+/x", 1)
    assert not device_level_ok("plant/+/x", 2)
    assert device_level_ok("plant/#", 3)
    assert concrete_topic("plant/+/x/+", "qs1", 1) == "plant/qs1/x/sim"
    assert concrete_topic("m/#", "m7", 2) == "m/sim/m7"
    assert concrete_topic("m/#", None, None) == "m/sim"


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a+/b", "a/+b", "a/\x00"])
def test_bad_topic_filters_are_refused_at_load(bad: str) -> None:
    with pytest.raises(ValidationError, match="topic"):
        MqttAddress(topic=bad)


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"host": "h", "password": {"env": "X"}}, "a password needs a username"),
        ({"host": "h", "tls": {"cert_file": "c.pem"}}, "both cert_file and key_file"),
        ({"host": "h", "reconnect_delay_s": 5, "reconnect_max_delay_s": 1}, "reconnect_max"),
        ({"host": "h", "qos": 2}, "qos"),
    ],
)
def test_bad_connection_blocks_are_refused(conn: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttConnection.model_validate(conn)


def test_devices_share_a_connection_when_settings_agree() -> None:
    site = mqtt_site(
        [
            device("a", 1884, [point("v", "x/a")], client_id="gw"),
            device("b", 1884, [point("v", "x/b")], client_id="gw", qos=0),
            device("c", 1885, [point("v", "x/c")]),
        ]
    )
    built = build(site)
    assert [c.devices for c in built] == [("a", "b"), ("c",)]
    assert built[1].name == "mqtt:127.0.0.1:1885/shopfloor-t-c"  # fixed id for the session
    a, b = site.devices[0].mqtt, site.devices[1].mqtt
    assert a is not None
    assert b is not None
    assert connection_key(a) == connection_key(b)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (
            [
                device("a", 1884, [point("v", "x/a")], client_id="gw"),
                device("b", 1884, [point("v", "x/b")], client_id="gw", keepalive_s=60),
            ],
            "same MQTT client id",
        ),
        (
            [device("a", 1884, [point("v", "x/a/v")], topic_device_level=1)],
            "topic_device_level 1 is not a '\\+'",
        ),
    ],
)
def test_build_refuses_what_cannot_work(devices: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(mqtt_site(devices))
