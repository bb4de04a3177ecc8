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
from connectors.mqtt.payload import ColumnPlan
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


def _stations(
    count: int, per: int, *, slow: dict[tuple[int, int], bytes] | None = None
) -> list[tuple[str, bytes, bool]]:
    """``per`` messages of each of ``count`` stations, interleaved (station-minor), every station
    first seen alone (its first message takes the per-message path); ``slow`` replaces the
    payload of (station, k)."""
    out = [(f"f/s{i}/doc", _doc(0), False) for i in range(count)]
    for k in range(1, per):
        for i in range(count):
            payload = (slow or {}).get((i, k), _doc(k + i))
            out.append((f"f/s{i}/doc", payload, False))
    return out


def _same_as_per_message(messages: list[tuple[str, bytes, bool]]) -> BlockSink:
    slow_sink, fast_sink = RecordingSink(), BlockSink()
    slow, fast = _connector(False), _connector(True)
    _drain(slow, slow_sink, messages)
    _drain(fast, fast_sink, messages)
    assert fast_sink.blocks, "the columnar path was not taken"
    assert sorted(map(_key, fast_sink.samples)) == sorted(map(_key, slow_sink.samples))
    assert fast_sink.errors == slow_sink.errors
    assert fast.messages == slow.messages == len(messages)
    devices = {s.device for s in slow_sink.samples}
    for dev in devices:
        for pid in ("n", "d", "on"):
            want = [(s.ts, s.value) for s in slow_sink.of(dev, pid)]
            assert [(s.ts, s.value) for s in fast_sink.of(dev, pid)] == want
    return fast_sink


def test_many_stations_interleaved_in_one_drain_are_converted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    conn = _connector(True)
    columns = ColumnPlan.columns

    def counting(plan: ColumnPlan, rows: Any, received: Any) -> Any:
        calls.append(len(rows))
        return columns(plan, rows, received)

    monkeypatch.setattr(ColumnPlan, "columns", counting)
    sink = BlockSink()
    first = [(f"f/s{i}/doc", _doc(0), False) for i in range(30)]
    _drain(conn, sink, first)  # every station seen (the per-message path)
    assert not sink.blocks
    _drain(conn, sink, [(f"f/s{i}/doc", _doc(k), False) for k in range(1, 8) for i in range(30)])
    assert calls == [7 * 30], "one conversion per route and drain"
    assert [b.device for b in sink.blocks] == [f"s{i}" for i in range(30)]  # first-seen order
    assert all(len(b) == 7 * 3 for b in sink.blocks)
    for i, b in enumerate(sink.blocks):
        assert b.ts[::3].tolist() == [(T0 + k * 1000) * 1_000_000 for k in range(1, 8)]
        assert b.values[::3].tolist() == [float(k) for k in range(1, 8)], i


def test_a_device_gets_the_same_points_tuple_every_drain() -> None:
    conn = _connector(True)
    sink = BlockSink()
    _drain(conn, sink, [(f"f/s{i}/doc", _doc(0), False) for i in range(3)])
    for _ in range(3):
        _drain(conn, sink, [(f"f/s{i}/doc", _doc(k), False) for k in range(5) for i in range(3)])
    by_device: dict[str, list[SampleBlock]] = {}
    for b in sink.blocks:
        by_device.setdefault(b.device, []).append(b)
    assert sorted(by_device) == ["s0", "s1", "s2"]
    for blocks in by_device.values():
        assert len(blocks) == 3
        assert all(b.points is blocks[0].points for b in blocks)  # the same object
    # different devices: different tuples (the store caches series ids per tuple and device)
    assert len({id(bs[0].points) for bs in by_device.values()}) == 3


def test_many_stations_interleaved_give_what_the_per_message_path_gives() -> None:
    _same_as_per_message(_stations(25, 12))


def test_a_station_whose_message_needs_a_reason_between_fast_ones() -> None:
    slow = {
        (3, 4): _doc(4, totals={}),  # missing field: this message alone, the others' rows first
        (7, 5): _doc(5, totals={"n": -1}),  # wrong type inside the route's conversion
        (7, 9): b"{not json",
        (11, 2): _doc(2, on=2),
        (0, 1): _doc(1, measure={"d": 10**400}),
    }
    sink = _same_as_per_message(_stations(12, 10, slow=slow))
    assert sink.errors[("s3", "malformed:missing_field")] == 1
    assert sink.errors[("s7", "malformed:wrong_type")] == 1
    assert sink.errors[("s7", "malformed:not_json")] == 1
    assert sink.errors[("s11", "malformed:wrong_type")] == 1
    assert sink.errors[("s0", "malformed:wrong_type")] == 1


def test_a_retained_message_between_fast_ones_keeps_each_points_order() -> None:
    messages = _stations(6, 8)
    messages.insert(20, ("f/s2/doc", _doc(50), True))
    _same_as_per_message(messages)


def test_a_sustained_high_rate_gathers_longer_before_each_drain() -> None:
    """Above DRAIN_BUSY_RATE messages/s a drain waits DRAIN_DELAY_BUSY_S (fewer, larger
    blocks); below it the short DRAIN_DELAY_S (latency, a QoS 1 in-flight window)."""
    from connectors.mqtt import connector as mod

    conn = _connector(True)
    delays: list[float] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        conn._sink = BlockSink()
        conn._loop = loop
        real = loop.call_later

        def spy(delay: float, cb: Any, *args: Any) -> Any:
            delays.append(delay)
            return real(delay, cb, *args)

        loop.call_later = spy  # type: ignore[method-assign]
        burst = [(f"f/s{i % 10}/doc", _doc(i), RECEIVED, False, 0) for i in range(2000)]
        conn._drain()  # (the time of the previous drain)
        conn._inbox.extend(burst)
        conn._drain()  # 2,000 messages in well under a second: a high rate
        conn._drain_later()
        await asyncio.sleep(0.2)
        conn._inbox.append(("f/s1/doc", _doc(1), RECEIVED, False, 0))
        conn._drain()  # one message after 0.2 s: a low rate
        conn._drain_later()

    asyncio.run(go())
    assert mod.DRAIN_DELAY_BUSY_S > mod.DRAIN_DELAY_S
    assert delays[0] == mod.DRAIN_DELAY_BUSY_S
    assert delays[-1] == mod.DRAIN_DELAY_S
