"""The columnar drain (runs of messages become one SampleBlock per route and device) stores and
reports exactly what decoding message by message does, in the same order per point."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable
from typing import Any

import pytest

from connectors.base import Sample, SampleBlock
from connectors.mqtt import MqttConnector, build
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point

T0 = 1_796_000_000_000  # epoch ms (fixed)
RECEIVED = 1_796_000_100_000_000_000


class BlockSink(RecordingSink):
    """A sink that takes blocks (as the collector's queue will)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[SampleBlock] = []

    def put_block(self, block: SampleBlock) -> None:
        self.blocks.append(block)
        self.samples.extend(block.samples())


def _connector(columnar: bool) -> MqttConnector:
    points = [
        point("n", "f/+/doc", "/totals/n", ts_pointer="/ts", datatype="uint32"),
        point("d", "f/+/doc", "/measure/d", ts_pointer="/ts", scale=0.5, offset=1.0),
        point("on", "f/+/doc", "/on", datatype="bool"),
        point("t", "f/+/iso", "/v", ts_pointer="/at", ts_format="iso8601"),
    ]
    (conn,) = build(mqtt_site([device("st", 1883, points, topic_device_level=1)]))
    assert isinstance(conn, MqttConnector)
    if not columnar:
        for route in conn.routes:
            object.__setattr__(route, "plan", None)
    return conn


def _doc(k: int, **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "ts": T0 + k * 1000,
        "totals": {"n": k},
        "measure": {"d": 25.0 + k / 8},
        "on": k % 2 == 0,
    }
    doc.update(over)
    return json.dumps(doc).encode()


def _drain(
    conn: MqttConnector, sink: RecordingSink, messages: Iterable[tuple[str, bytes, bool]]
) -> None:
    async def go() -> None:
        conn._sink = sink
        conn._loop = asyncio.get_running_loop()
        conn._inbox.extend((t, p, RECEIVED, r, 0) for t, p, r in messages)
        while conn._inbox:
            conn._drain()

    asyncio.run(go())


def _key(s: Sample) -> tuple[object, ...]:
    return (s.device, s.point, s.ts, "nan" if math.isnan(s.value) else s.value, s.quality, s.status)


MESSAGES: list[tuple[str, bytes, bool]] = [
    ("f/a/doc", _doc(0), False),  # device a first seen: the per-message path
    *[("f/a/doc", _doc(k), False) for k in range(1, 6)],
    ("f/b/doc", _doc(0), False),
    *[("f/b/doc", _doc(k), False) for k in range(1, 4)],
    ("f/a/doc", _doc(6, totals={}), False),  # a missing field: one by one for that message
    ("f/a/doc", _doc(7), False),
    ("f/a/doc", _doc(8, totals={"n": -1}), False),  # uint32 < 0 in a run: the run one by one
    ("f/a/doc", _doc(9), False),
    ("f/a/doc", b"{not json", False),
    ("f/a/doc", _doc(10), True),  # retained
    ("f/a/doc", _doc(11, ts=1.5e12), False),  # a float epoch
    ("f/a/doc", _doc(12, ts=5), False),  # out of range
    ("f/a/doc", _doc(13, on=2), False),  # not a bool
    ("f/a/doc", _doc(14, measure={"d": True}), False),  # a bool into a scaled point
    ("f/a/doc", _doc(15, measure={"d": 10**400}), False),  # beyond float64
    ("f/a/iso", json.dumps({"v": 1.5, "at": "2026-12-04T10:00:00Z"}).encode(), False),
    ("f/a/iso", json.dumps({"v": 2.5, "at": "2026-12-04T10:00:01+01:00"}).encode(), False),
    ("f/a/iso", json.dumps({"v": 3.5, "at": "yesterday"}).encode(), False),
    *[("f/a/doc", _doc(k), False) for k in range(16, 40)],
    ("f/a/doc", _doc(40) + b"  \n", False),  # trailing white space is JSON
    ("f/a/doc", _doc(41) + b" x", False),  # extra data is not
    ("f/a/doc", _doc(42) + b"\x0c", False),  # nor a form feed (str.isspace() would take it)
]


def test_the_columnar_drain_gives_what_the_per_message_path_gives() -> None:
    slow_sink, fast_sink = RecordingSink(), BlockSink()
    slow, fast = _connector(False), _connector(True)
    _drain(slow, slow_sink, MESSAGES)
    _drain(fast, fast_sink, MESSAGES)
    assert fast_sink.blocks, "the columnar path was not taken"
    assert sum(len(b) for b in fast_sink.blocks) > 80
    assert sorted(map(_key, fast_sink.samples)) == sorted(map(_key, slow_sink.samples))
    assert fast_sink.errors == slow_sink.errors
    assert fast_sink.errors[("a", "malformed:not_json")] == 3  # "{not json", extra data, \f
    assert fast_sink.errors[("a", "malformed:wrong_type")] == 3  # -1, on=2, 10**400
    assert fast.messages == slow.messages == len(MESSAGES)
    # each point's samples in arrival order
    for dev, pid in (("a", "n"), ("a", "d"), ("b", "n"), ("a", "t")):
        assert [s.ts for s in fast_sink.of(dev, pid)] == [s.ts for s in slow_sink.of(dev, pid)]


def test_a_sink_without_blocks_gets_samples() -> None:
    sink = RecordingSink()
    conn = _connector(True)
    _drain(conn, sink, [("f/a/doc", _doc(k), False) for k in range(20)])
    assert len(sink.of("a", "n")) == 20
    assert sink.of("a", "d")[3].value == pytest.approx((25.0 + 3 / 8) * 0.5 + 1.0)
    assert [s.value for s in sink.of("a", "on")][:3] == [1.0, 0.0, 1.0]
    assert sink.of("a", "on")[0].ts == RECEIVED  # no ts_pointer: the receive time
    assert sink.of("a", "n")[5].ts == (T0 + 5000) * 1_000_000
