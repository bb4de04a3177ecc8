"""The Sparkplug B host application against a private mosquitto, fed by an independent
publisher (paho + a hand-written protobuf encoder)."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

pytest.importorskip("google.protobuf", reason="protobuf (shopfloor[collector]) is not installed")

from config.markers import LINK_LOST
from config.models import SiteConfig
from connectors.base import ConnectorError, Quality
from connectors.sparkplug import build
from connectors.sparkplug.connector import SparkplugConnector
from tests.mqtt.helpers import RecordingSink, publisher, running
from tests.sparkplug.helpers import commands, started
from tests.sparkplug.wire import metric, payload
from tests.support.mosquitto import Mosquitto

T = 1_800_000_000_000  # ms: 2027-01-15T08:00:00Z, a pinned edge-node clock
MS = 1_000_000
NODE = "spBv1.0/plant/{}/edge1"
DEV = "spBv1.0/plant/{}/edge1/press"

# datatypes of sparkplug_b.proto
INT8, INT32, INT64, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 1, 3, 4, 8, 9, 10, 11, 12


def site(port: int, **conn: Any) -> SiteConfig:
    block = {"host": "127.0.0.1", "port": port, "group_id": "plant", "edge_node_id": "edge1"}
    return SiteConfig.model_validate(
        {
            "site": {"id": "t", "name": "t"},
            "devices": [
                {
                    "id": "gw",
                    "name": "edge gateway",
                    "sparkplug": {**block, **conn},
                    "points": [{"id": "temp", "sparkplug": {"metric": "Cabinet/Temp"}}],
                },
                {
                    "id": "press1",
                    "name": "press",
                    "sparkplug": {**block, **conn, "device_id": "press"},
                    "points": [
                        {
                            "id": "state",
                            "role": "state",
                            "state_map": {"1": "producing", "-1": "down"},
                            "sparkplug": {"metric": "Status/State"},
                        },
                        {"id": "good", "role": "count_good", "sparkplug": {"metric": "Good"}},
                        {"id": "offset", "sparkplug": {"metric": "Offset"}},
                        {"id": "load", "scale": 0.5, "sparkplug": {"metric": "Load"}},
                        {"id": "auto", "sparkplug": {"metric": "Auto"}},
                        {"id": "tag", "sparkplug": {"metric": "Tag"}},
                    ],
                },
            ],
        }
    )


def births(seq0: int = 0, bd: int = 7) -> list[tuple[str, bytes]]:
    nbirth = payload(
        [
            metric("bdSeq", datatype=INT64, long_value=bd),
            metric("Node Control/Rebirth", datatype=BOOLEAN, boolean_value=False),
            metric("Cabinet/Temp", alias=1, ts=T, datatype=FLOAT, float_value=31.5),
        ],
        seq=seq0,
        ts=T,
    )
    dbirth = payload(
        [
            metric("Status/State", alias=10, ts=T, datatype=INT32, int_value=1),
            metric("Good", alias=11, ts=T, datatype=UINT64, long_value=100),
            metric("Offset", alias=12, ts=T, datatype=INT8, int_value=0xFF),  # -1, narrow
            metric("Load", alias=13, ts=T, datatype=DOUBLE, double_value=80.0),
            metric("Auto", alias=14, ts=T, datatype=BOOLEAN, boolean_value=True),
            metric("Tag", alias=15, ts=T, datatype=STRING, string_value="P-17"),
            metric("Unmapped", alias=16, ts=T, datatype=INT32, int_value=5),
        ],
        seq=(seq0 + 1) % 256,
        ts=T,
    )
    return [(NODE.format("NBIRTH"), nbirth), (DEV.format("DBIRTH"), dbirth)]


def good(sink: RecordingSink, device: str, point: str) -> list[tuple[int, float]]:
    return [(s.ts, s.value) for s in sink.of(device, point) if s.quality == Quality.GOOD]


async def test_births_aliases_and_datatypes(broker: Mosquitto) -> None:
    sink = RecordingSink()
    (conn,) = build(site(broker.port))
    with commands(broker.port) as cmds, publisher(broker.port) as pub:
        async with running(conn, sink):
            await started(sink, cmds)
            for topic, data in births():
                pub(topic, data, 1)
            ddata = payload(
                [
                    metric(alias=10, ts=T + 1000, int_value=-1 & 0xFFFFFFFF),  # Int32 -1
                    metric(alias=11, ts=T + 1000, long_value=101),
                    metric(alias=13, double_value=90.0),  # the payload's timestamp
                ],
                seq=2,
                ts=T + 2000,
            )
            pub(DEV.format("DDATA"), ddata, 1)
            pub(
                NODE.format("NDATA"),
                payload([metric(alias=1, ts=T + 3000, float_value=32.0)], seq=3),
                1,
            )
            await sink.wait_for(lambda: len(good(sink, "gw", "temp")) == 2)
    assert good(sink, "press1", "state") == [(T * MS, 1.0), ((T + 1000) * MS, -1.0)]
    assert good(sink, "press1", "good") == [(T * MS, 100.0), ((T + 1000) * MS, 101.0)]
    assert good(sink, "press1", "offset") == [(T * MS, -1.0)]
    assert good(sink, "press1", "load") == [(T * MS, 40.0), ((T + 2000) * MS, 45.0)]
    assert good(sink, "press1", "auto") == [(T * MS, 1.0)]
    assert good(sink, "gw", "temp") == [(T * MS, 31.5), ((T + 3000) * MS, 32.0)]
    assert sink.of("press1", "tag") == []  # a string is not a number: counted, never stored
    assert sink.errors[("press1", "malformed:wrong_type")] == 1
    assert sink.errors[("press1", "sequence_gap")] == 0
    assert ("gw", True) in sink.links
    assert ("press1", True) in sink.links


async def test_sequence_gap_asks_for_a_rebirth(broker: Mosquitto) -> None:
    sink = RecordingSink()
    (conn,) = build(site(broker.port))
    with commands(broker.port) as cmds, publisher(broker.port) as pub:
        async with running(conn, sink):
            await started(sink, cmds)
            for topic, data in births(seq0=254):
                pub(topic, data, 1)  # seq 254, 255
            pub(DEV.format("DDATA"), payload([metric(alias=11, ts=T + 1, long_value=1)], seq=0), 1)
            # seq 1 is lost: the host asks the node for its births again
            pub(DEV.format("DDATA"), payload([metric(alias=11, ts=T + 2, long_value=3)], seq=2), 1)
            await sink.wait_for(lambda: cmds.rebirths() >= 2)
    assert sink.errors[("press1", "sequence_gap")] == 1
    # the values around the gap are real and kept (seq wrapped 255 -> 0 without a gap)
    assert good(sink, "press1", "good")[-2:] == [((T + 1) * MS, 1.0), ((T + 2) * MS, 3.0)]


async def test_data_before_a_birth_asks_for_one(broker: Mosquitto) -> None:
    sink = RecordingSink()
    (conn,) = build(site(broker.port))
    with commands(broker.port) as cmds, publisher(broker.port) as pub:
        async with running(conn, sink):
            await started(sink, cmds)
            pub(DEV.format("DDATA"), payload([metric(alias=11, long_value=5)], seq=9), 1)
            await sink.wait_for(lambda: sink.errors[("press1", "no_birth")] == 1)
            pub(DEV.format("DBIRTH"), b"\xff\xff\xff", 1)  # not protobuf: only this is lost
            for topic, data in births():
                pub(topic, data, 1)
            await sink.wait_for(lambda: bool(good(sink, "press1", "good")))
    assert sink.errors[("gw", "malformed:not_protobuf")] == 1
    assert good(sink, "press1", "good") == [(T * MS, 100.0)]


async def test_death_certificates_write_link_lost_markers(broker: Mosquitto) -> None:
    sink = RecordingSink()
    (conn,) = build(site(broker.port))
    with commands(broker.port) as cmds, publisher(broker.port) as pub:
        async with running(conn, sink):
            await started(sink, cmds)
            for topic, data in births(bd=7):
                pub(topic, data, 1)
            pub(DEV.format("DDEATH"), payload([], seq=2, ts=T + 5000), 1)
            await sink.wait_for(lambda: sink.up("press1") is False)
            assert sink.up("gw") is True
            # an old session's will (bdSeq 6) does not kill the node born with bdSeq 7
            pub(NODE.format("NDEATH"), payload([metric("bdSeq", datatype=INT64, long_value=6)]), 1)
            pub(
                NODE.format("NDATA"),
                payload([metric(alias=1, ts=T + 6000, float_value=33.0)], seq=3),
                1,
            )
            await sink.wait_for(lambda: len(good(sink, "gw", "temp")) == 2)
            pub(NODE.format("NDEATH"), payload([metric("bdSeq", datatype=INT64, long_value=7)]), 1)
            await sink.wait_for(lambda: sink.up("gw") is False)
    lost = [s for s in sink.samples if s.status == LINK_LOST]
    assert all(s.quality == Quality.BAD and math.isnan(s.value) for s in lost)
    by_dev: dict[str, list[str]] = {}
    for s in lost:
        by_dev.setdefault(s.device, []).append(s.point)
    points = ["state", "good", "offset", "load", "auto", "tag"]
    assert by_dev == {"press1": points + points, "gw": ["temp"]}  # DDEATH, then NDEATH


async def test_a_refused_connection_is_one_line(broker: Mosquitto) -> None:
    (conn,) = build(site(1, connect_timeout_s=2))
    with pytest.raises(ConnectorError, match="cannot connect") as err:
        await conn.run(RecordingSink())
    assert "\n" not in str(err.value)


def test_one_connector_per_edge_node(broker: Mosquitto) -> None:
    (conn,) = build(site(broker.port))
    assert conn.devices == ("gw", "press1")
    assert conn.name == f"sparkplug:127.0.0.1:{broker.port}/plant/edge1"


async def test_a_stop_is_not_a_lost_link(broker: Mosquitto) -> None:
    (conn,) = build(site(broker.port))
    sink = RecordingSink()
    with commands(broker.port) as cmds:
        async with running(conn, sink):
            await started(sink, cmds)
    assert not [s for s in sink.samples if s.status == LINK_LOST]


async def test_host_link_loss_marks_and_asks_for_a_rebirth(broker: Mosquitto) -> None:
    (conn,) = build(site(broker.port, reconnect_delay_s=0.1, reconnect_max_delay_s=0.2))
    assert isinstance(conn, SparkplugConnector)
    sink = RecordingSink()
    with commands(broker.port) as cmds:
        async with running(conn, sink):
            await started(sink, cmds)
            await asyncio.to_thread(broker.restart)
            await sink.wait_for(lambda: conn.rebirths == 2)  # asked again once reconnected
    lost = {(s.device, s.point) for s in sink.samples if s.status == LINK_LOST}
    assert ("gw", "temp") in lost
    assert ("press1", "good") in lost
    assert ("gw", False) in sink.links


async def test_primary_host_state_birth_and_death(broker: Mosquitto) -> None:
    states: list[tuple[dict[str, Any], bool]] = []
    subscribed = threading.Event()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    watcher.on_message = lambda _c, _u, m: states.append((json.loads(m.payload), bool(m.retain)))
    watcher.on_subscribe = lambda *_a: subscribed.set()
    watcher.connect("127.0.0.1", broker.port, 30)
    watcher.subscribe("spBv1.0/STATE/scada1", 1)
    watcher.loop_start()
    try:
        assert subscribed.wait(10)
        (conn,) = build(site(broker.port, host_id="scada1"))
        sink = RecordingSink()
        with commands(broker.port) as cmds:
            async with running(conn, sink):
                await started(sink, cmds)
                await sink.wait_for(lambda: len(states) == 1)
        await sink.wait_for(lambda: len(states) == 2)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    (online, _), (offline, _) = states
    assert online["online"] is True
    assert offline == {"online": False, "timestamp": online["timestamp"]}
    # retained: a host that connects later learns the primary host's state at once
    later: list[dict[str, Any]] = []
    got = threading.Event()
    reader = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        later.append(json.loads(m.payload))
        got.set()

    reader.on_message = on_message
    reader.connect("127.0.0.1", broker.port, 30)
    reader.subscribe("spBv1.0/STATE/scada1", 1)
    reader.loop_start()
    try:
        assert got.wait(10)
    finally:
        reader.disconnect()
        reader.loop_stop()
    assert later == [offline]
