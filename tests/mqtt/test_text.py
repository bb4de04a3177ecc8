"""A ``datatype: text`` MQTT point against a real private mosquitto: a JSON string is stored as
its enum code; a text not in the enum is a bad ``unknown_text`` sample (the previous text is no
longer in force), counted in health, and costs no other point of the message."""

from __future__ import annotations

import json
import math

from connectors.base import Quality
from connectors.mqtt import MqttConnector, build
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publisher, running
from tests.support.mosquitto import Mosquitto

ENUM = {"P-100": 1, "P-200": 2}
MS = 1_000_000


async def test_program_text_to_code_and_unknown_text_is_a_bad_sample(broker: Mosquitto) -> None:
    (conn,) = build(
        mqtt_site(
            [
                device(
                    "cnc1",
                    broker.port,
                    [
                        point(
                            "program",
                            "f/cnc1",
                            "/program",
                            ts_pointer="/ts",
                            datatype="text",
                            enum=ENUM,
                        ),
                        point(
                            "count",
                            "f/cnc1",
                            "/count",
                            ts_pointer="/ts",
                            datatype="uint32",
                            role="count_total",
                        ),
                    ],
                    client_id="t-text",
                    clean_session=True,
                )
            ]
        )
    )
    assert isinstance(conn, MqttConnector)
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("cnc1") is True)
        with publisher(broker.port) as pub:
            for i, prog in enumerate(("P-100", "P-200", "P-999", "P-100")):
                doc = {"ts": 1_780_000_000_000 + i * 1000, "program": prog, "count": 10 * i}
                pub("f/cnc1", json.dumps(doc), 1)
        await sink.wait_for(lambda: len(sink.of("cnc1", "count")) == 4)
        await sink.wait_for(lambda: len(sink.of("cnc1", "program")) == 4)
    program = [(s.ts, s.value, s.quality, s.status) for s in sink.of("cnc1", "program")]
    t0 = 1_780_000_000_000 * MS
    assert [p for p in program if not math.isnan(p[1])] == [
        (t0, 1.0, Quality.GOOD, ""),
        (t0 + 1000 * MS, 2.0, Quality.GOOD, ""),
        (t0 + 3000 * MS, 1.0, Quality.GOOD, ""),
    ]
    assert [(t, q, st) for t, v, q, st in program if math.isnan(v)] == [
        (t0 + 2000 * MS, Quality.BAD, "unknown_text")
    ]
    assert [s.value for s in sink.of("cnc1", "count")] == [0.0, 10.0, 20.0, 30.0]
    assert dict(sink.errors) == {("cnc1", "malformed:unknown_text"): 1}
