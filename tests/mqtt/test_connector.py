"""The MQTT connector against a real private mosquitto on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from connectors.base import ConnectorError, Quality
from connectors.mqtt import MqttConnector, build
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publisher, running
from tests.support.mosquitto import Mosquitto


def _one(site_devices: list[dict[str, object]]) -> MqttConnector:
    connectors = build(mqtt_site(site_devices))
    assert len(connectors) == 1
    conn = connectors[0]
    assert isinstance(conn, MqttConnector)
    return conn


async def test_plain_json_several_points_and_payload_timestamp(broker: Mosquitto) -> None:
    conn = _one(
        [
            device(
                "qs1",
                broker.port,
                [
                    point(
                        "inspected",
                        "f/qs1/insp",
                        "/totals/inspected",
                        ts_pointer="/ts",
                        datatype="uint32",
                        role="count_total",
                    ),
                    point(
                        "passed",
                        "f/qs1/insp",
                        "/totals/passed",
                        ts_pointer="/ts",
                        datatype="uint32",
                        role="count_good",
                    ),
                    point("diameter", "f/qs1/insp", "/measure/d", ts_pointer="/ts", scale=10.0),
                    point("ok", "f/qs1/insp", "/ok", datatype="bool"),
                ],
                client_id="t-plain",
                clean_session=True,
            )
        ]
    )
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("qs1") is True)
        doc = {
            "ts": 1_780_000_000_123,
            "totals": {"inspected": 7, "passed": 6},
            "measure": {"d": 2.5},
            "ok": True,
        }
        with publisher(broker.port) as pub:
            pub("f/qs1/insp", json.dumps(doc), 1)
            pub("f/other/insp", json.dumps(doc), 1)  # not subscribed: ignored
        await sink.wait_for(lambda: len(sink.samples) == 4)
    got = {s.point: s for s in sink.samples}
    assert got["inspected"].value == 7.0
    assert got["passed"].value == 6.0
    assert got["diameter"].value == 25.0  # scale applied
    assert got["ok"].value == 1.0  # bool -> 1
    ts = 1_780_000_000_123 * 1_000_000
    assert got["inspected"].ts == got["passed"].ts == got["diameter"].ts == ts
    # no ts_pointer: the gateway's receive time
    assert abs(got["ok"].ts - time.time_ns()) < 30 * 1_000_000_000
    assert all(s.device == "qs1" for s in sink.samples)
    assert not sink.errors
    assert sink.up("qs1") is False  # link reported down when the connector stops


async def test_wildcards_take_the_device_from_the_topic(broker: Mosquitto) -> None:
    conn = _one(
        [
            device(
                "stations",
                broker.port,
                [
                    point("temp", "plant/+/env", "/t"),
                    point("hum", "plant/+/env", "/h"),
                    point("power", "meters/#"),  # plain numeric, device under '#'
                ],
                client_id="t-wild",
                clean_session=True,
                topic_device_level=1,
            )
        ]
    )
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("stations") is True)
        with publisher(broker.port) as pub:
            pub("plant/qsA/env", '{"t": 21.5, "h": 40}', 1)
            pub("plant/qsB/env", '{"t": 22.5, "h": 41}', 1)
            pub("plant/bad id!/env", '{"t": 1, "h": 2}', 1)  # not a device id
            pub("meters/m7/kw", "12.25", 1)
            pub("meters/m8", "-3e1", 1)
        await sink.wait_for(lambda: len(sink.samples) == 6 and sink.errors)
    by = {(s.device, s.point): s.value for s in sink.samples}
    assert by == {
        ("qsA", "temp"): 21.5,
        ("qsA", "hum"): 40.0,
        ("qsB", "temp"): 22.5,
        ("qsB", "hum"): 41.0,
        ("m7", "power"): 12.25,
        ("m8", "power"): -30.0,
    }
    assert sink.errors == {("stations", "malformed:device_topic"): 1}
    assert ("qsA", True) in sink.links
    assert ("m8", True) in sink.links


async def test_each_malformed_reason_is_counted_and_skipped(broker: Mosquitto) -> None:
    conn = _one(
        [
            device(
                "d1",
                broker.port,
                [
                    point("a", "m/d1/json", "/a", ts_pointer="/ts"),
                    point("n", "m/d1/json", "/n", ts_pointer="/ts", datatype="uint32"),
                    point("plain", "m/d1/plain"),
                ],
                client_id="t-bad",
                clean_session=True,
                max_payload_bytes=64,
            )
        ]
    )
    sink = RecordingSink()
    ts = 1_780_000_000_000
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("d1") is True)
        with publisher(broker.port) as pub:
            pub("m/d1/json", json.dumps({"ts": ts, "a": 1.5, "n": 1}), 1)  # good
            pub("m/d1/json", json.dumps({"ts": ts, "a": 1.5, "n": 1, "pad": "x" * 80}), 1)
            pub("m/d1/json", b"\xff\xfe{}", 1)  # not UTF-8
            pub("m/d1/json", b'{"a": ', 1)  # not JSON
            pub("m/d1/json", json.dumps({"ts": ts + 1, "a": "high", "n": 2}), 1)  # a wrong type
            pub("m/d1/json", json.dumps({"ts": ts + 2, "n": 3}), 1)  # a missing
            pub("m/d1/json", json.dumps({"ts": ts + 3, "a": 2.5, "n": -4}), 1)  # n wrong type
            pub("m/d1/json", json.dumps({"ts": "yesterday", "a": 9, "n": 9}), 1)  # bad ts x2
            pub("m/d1/plain", "abc", 1)  # not a number
            pub("m/d1/plain", "7.5", 1)  # good
            pub("m/d1/json", json.dumps({"ts": ts + 4, "a": 3.5, "n": 5}), 1)  # good again
        await sink.wait_for(lambda: len(sink.of("d1", "n")) == 4)
        await sink.wait_for(lambda: len(sink.of("d1", "plain")) == 1)
    assert [s.value for s in sink.of("d1", "a")] == [1.5, 2.5, 3.5]
    assert [s.value for s in sink.of("d1", "n")] == [1.0, 2.0, 3.0, 5.0]
    assert [s.value for s in sink.of("d1", "plain")] == [7.5]
    assert dict(sink.errors) == {
        ("d1", "malformed:oversized"): 1,
        ("d1", "malformed:not_utf8"): 1,
        ("d1", "malformed:not_json"): 1,
        ("d1", "malformed:wrong_type"): 2,
        ("d1", "malformed:missing_field"): 1,
        ("d1", "malformed:ts_wrong_type"): 2,
        ("d1", "malformed:not_number"): 1,
    }


async def test_unreachable_broker_raises_connector_error() -> None:
    from tests.support.net import free_port

    conn = _one([device("d1", free_port(), [point("x", "a/b")], connect_timeout_s=2)])
    with pytest.raises(ConnectorError, match="cannot connect"):
        await asyncio.wait_for(conn.run(RecordingSink()), 10)


async def test_cancellation_is_never_lost_when_the_link_changes_at_the_same_time(
    broker: Mosquitto,
) -> None:
    """Regression: with asyncio.wait_for (3.11) a cancel arriving as the link-change event was
    set was swallowed and the connector ran on forever."""
    conn = _one([device("c1", broker.port, [point("x", "c/c1")], client_id="t-cancel")])
    sink = RecordingSink()
    task = asyncio.create_task(conn.run(sink))
    await sink.wait_for(lambda: sink.up("c1") is True)
    conn._changed.set()  # what a paho callback does, in the same loop iteration as the cancel
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert sink.up("c1") is False


async def test_retained_values_without_a_payload_time_are_uncertain(broker: Mosquitto) -> None:
    conn = _one(
        [
            device(
                "rt1",
                broker.port,
                [point("plain", "rt/rt1/plain"), point("j", "rt/rt1/json", "/v", ts_pointer="/ts")],
                client_id="t-retained",
                clean_session=True,
            )
        ]
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, body in (
            ("rt/rt1/plain", "5"),
            ("rt/rt1/json", '{"v": 6, "ts": 1780000000000}'),
        ):
            client.publish(topic, body, qos=1, retain=True).wait_for_publish(10)
        sink = RecordingSink()
        async with running(conn, sink):
            await sink.wait_for(lambda: len(sink.samples) == 2)
            with publisher(broker.port) as pub:
                pub("rt/rt1/plain", "7", 1)  # live: good
            await sink.wait_for(lambda: len(sink.samples) == 3)
    finally:
        for topic in ("rt/rt1/plain", "rt/rt1/json"):  # clear the retained messages
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
    plain = sink.of("rt1", "plain")
    assert [(s.value, s.quality, s.status) for s in plain] == [
        (5.0, Quality.UNCERTAIN, "retained"),
        (7.0, Quality.GOOD, ""),
    ]
    (j,) = sink.of("rt1", "j")
    assert (j.value, j.quality, j.ts) == (6.0, Quality.GOOD, 1_780_000_000_000 * 10**6)


async def test_a_stalled_event_loop_drops_beyond_the_inbox_limit_and_counts_it(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from connectors.mqtt import connector as connector_mod

    monkeypatch.setattr(connector_mod, "INBOX_LIMIT", 5)
    conn = _one(
        [device("f1", broker.port, [point("v", "f/f1/v")], client_id="t-flood", clean_session=True)]
    )
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("f1") is True)
        done = threading.Event()

        def flood() -> None:
            with publisher(broker.port) as pub:
                for n in range(20):
                    pub("f/f1/v", str(n), 1)
            done.set()

        worker = threading.Thread(target=flood, name="flood")
        worker.start()
        assert done.wait(10)  # the event loop is blocked meanwhile: paho's inbox fills up
        # blocking on purpose: paho takes delivery of all 20 before the loop runs again
        time.sleep(1.0)  # noqa: ASYNC251
        worker.join()
        await sink.wait_for(
            lambda: len(sink.samples) + sink.errors[("f1", "dropped:inbox_full")] == 20
        )
    assert len(sink.samples) == 5
    assert [s.value for s in sink.samples] == [0.0, 1.0, 2.0, 3.0, 4.0]
