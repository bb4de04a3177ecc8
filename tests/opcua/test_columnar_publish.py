"""The columnar decoding of publish responses gives the samples of asyncua's decoding followed
by the per-item path (notification_samples), and leaves other shapes to asyncua."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from config.models import Point
from connectors.base import Quality, Sample, SampleBlock
from connectors.opcua.fastpublish import ColumnarDataChange, decode_publish
from connectors.opcua.subscription import PointRef, _Table, columnar_blocks, notification_samples

NOW = 1_700_000_000_123_456_789
T1 = dt.datetime(2026, 3, 1, 8, 0, 0, 250_001, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 3, 1, 8, 0, 1, tzinfo=dt.UTC)
OLD = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)  # OPC UA's "no timestamp"
D = ua.VariantType.Double
UNCERTAIN = ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)
BAD = ua.StatusCode(ua.StatusCodes.BadSensorFailure)


class Sink:
    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.blocks: list[SampleBlock] = []

    def put(self, sample: Sample) -> None:
        self.samples.append(sample)

    def put_many(self, samples: Iterable[Sample]) -> None:
        self.samples.extend(samples)

    def link(self, device: str, connected: bool) -> None:
        pass

    def error(self, device: str, kind: str) -> None:
        pass


def _refs(
    n: int,
    *,
    devices: int = 1,
    scaled: set[int] = frozenset(),  # type: ignore[assignment]
    text: set[int] = frozenset(),  # type: ignore[assignment]
    selects: dict[int, dict[str, object]] | None = None,
) -> dict[int, PointRef]:
    refs: dict[int, PointRef] = {}
    for i in range(n):
        extra: dict[str, object] = {}
        if i in scaled:
            extra = {"scale": 0.1, "offset": -5.0}
        if i in text:
            extra = {"datatype": "text", "enum": {"AUTO": 1, "MANUAL": 2}}
        address: dict[str, object] = {"node_id": f"ns=2;i={i}"} | (selects or {}).get(i, {})
        point = Point.model_validate(
            {"id": f"p{i}", "datatype": "float64", "opcua": address} | extra
        )
        ref = PointRef(f"m{i % devices}", point, ua.NodeId(i, 2))
        ref.handle = 201 + i
        ref.first_ts = 0  # in its steady state (first sample of the session seen)
        refs[ref.handle] = ref
    return refs


def _wire(items: list[tuple[int, ua.DataValue]]) -> bytes:
    notif = ua.DataChangeNotification()
    notif.MonitoredItems = [ua.MonitoredItemNotification(ClientHandle=h, Value=v) for h, v in items]
    resp = ua.PublishResponse()
    resp.Parameters.SubscriptionId = 3
    resp.Parameters.NotificationMessage.SequenceNumber = 9
    resp.Parameters.NotificationMessage.NotificationData = [notif]
    return bytes(struct_to_binary(resp))


def _key(s: Sample) -> tuple[object, ...]:
    return (s.device, s.point, s.ts, "nan" if math.isnan(s.value) else s.value, s.quality, s.status)


def _both(
    items: list[tuple[int, ua.DataValue]],
    make_refs: Callable[[], dict[int, PointRef]],
    keep: Callable[[PointRef, Sample], Sample | None] = lambda r, s: s,
) -> tuple[list[Sample], list[Sample], Sink]:
    """(per-item path, columnar path as samples, the columnar sink)."""
    wire = _wire(items)
    stock = struct_from_binary(ua.PublishResponse, Buffer(wire))
    (notif,) = stock.Parameters.NotificationMessage.NotificationData
    want = notification_samples(notif.MonitoredItems, make_refs(), NOW, keep)
    fast = decode_publish(Buffer(wire))
    assert fast.Parameters.SubscriptionId == 3
    assert fast.Parameters.NotificationMessage.SequenceNumber == 9
    (cols,) = fast.Parameters.NotificationMessage.NotificationData
    assert isinstance(cols, ColumnarDataChange)
    sink = Sink()
    refs = make_refs()
    sink.blocks = columnar_blocks(cols, _Table(refs), NOW, keep, sink)
    got = list(sink.samples)
    for block in sink.blocks:
        got.extend(block.samples())
    return want, got, sink


@pytest.mark.parametrize(
    "values",
    [
        [ua.Variant(x, D) for x in (1.5, -0.0, math.nan, 1e300, 7.0)],
        [ua.Variant(x, ua.VariantType.Int32) for x in (-3, 0, 2**31 - 1, 7, 8)],
        [ua.Variant(x, ua.VariantType.UInt64) for x in (2**64 - 1, 0, 2**53 + 1, 7, 8)],
        [ua.Variant(x, ua.VariantType.Float) for x in (0.1, -2.5, math.inf, 7.0, 8.0)],
        [ua.Variant(x, ua.VariantType.Boolean) for x in (True, False, True, True, False)],
    ],
    ids=["double", "int32", "uint64", "float", "boolean"],
)
def test_value_types_give_the_same_samples(values: list[ua.Variant]) -> None:
    items = [
        (201 + i, ua.DataValue(v, SourceTimestamp=T1, ServerTimestamp=T2))
        for i, v in enumerate(values)
    ]
    want, got, _ = _both(items, lambda: _refs(5, scaled={3}))
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    assert len(got) == 5


def test_statuses_timestamps_text_and_devices() -> None:
    dvs = [
        ua.DataValue(
            ua.Variant(1.0, D), StatusCode_=UNCERTAIN, SourceTimestamp=T1, ServerTimestamp=T2
        ),
        ua.DataValue(ua.Variant(2.0, D), StatusCode_=BAD, SourceTimestamp=T1, ServerTimestamp=T2),
        ua.DataValue(ua.Variant(3.0, D), SourceTimestamp=OLD, ServerTimestamp=T2),  # server's
        ua.DataValue(ua.Variant(4.0, D), SourceTimestamp=OLD, ServerTimestamp=OLD),  # gateway's
        ua.DataValue(ua.Variant(5.0, D), SourceTimestamp=T2, ServerTimestamp=T1),  # text point
        ua.DataValue(
            ua.Variant(math.nan, D), StatusCode_=UNCERTAIN, SourceTimestamp=T1, ServerTimestamp=T2
        ),
    ]
    items = [(201 + i, dv) for i, dv in enumerate(dvs)] + [(999, dvs[0])]  # 999: unknown
    want, got, sink = _both(items, lambda: _refs(6, devices=2, scaled={0, 1}, text={4}))
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    assert {b.device for b in sink.blocks} == {"m0", "m1"}
    by_point = {s.point: s for s in got}
    assert by_point["p1"].quality is Quality.BAD
    assert math.isnan(by_point["p1"].value)
    assert by_point["p2"].ts == int(T2.timestamp()) * 10**9
    assert by_point["p3"].ts == NOW
    assert by_point["p4"].status == "BadTypeMismatch"
    assert by_point["p0"].value == pytest.approx(1.0 * 0.1 - 5.0)


def test_a_point_selecting_a_part_of_a_scalar_is_bad_as_on_the_per_item_path() -> None:
    # a point configured for a structure field / array element whose node holds a plain number
    # (a wrong node, or a server that changed its type): never the number itself
    dvs = [ua.DataValue(ua.Variant(float(i), D), SourceTimestamp=T1) for i in range(3)]
    items = [(201 + i, dv) for i, dv in enumerate(dvs)]
    selects: dict[int, dict[str, object]] = {
        0: {"index": 0},
        1: {"field": "AccCount", "element": {"ID": 1}},
    }
    want, got, _ = _both(items, lambda: _refs(3, selects=selects))
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    by_point = {s.point: s for s in got}
    assert by_point["p0"].quality is Quality.BAD
    assert by_point["p0"].status == "not_array"
    assert by_point["p1"].quality is Quality.BAD
    assert by_point["p1"].status
    assert by_point["p2"].value == 2.0
    assert by_point["p2"].quality is Quality.GOOD


def test_no_timestamps_at_all_and_a_point_twice() -> None:
    # queue size 2: the same point twice in one notification, both kept in order
    dvs = [ua.DataValue(ua.Variant(float(i), D)) for i in range(3)]
    items = [(201, dvs[0]), (202, dvs[1]), (201, dvs[2])]
    want, got, _ = _both(items, lambda: _refs(2))
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    assert [s.value for s in got if s.point == "p0"] == [0.0, 2.0]


def test_bookkeeping_first_sample_then_steady() -> None:
    """A point's first sample of the session goes through ``keep``; later ones move only its
    newest timestamp (as keep would)."""
    refs = _refs(2)
    for ref in refs.values():
        ref.first_ts = None  # a new session
    table = _Table(refs)
    calls: list[str] = []

    def keep(ref: PointRef, s: Sample) -> Sample | None:
        calls.append(ref.point.id)
        ref.first_ts = s.ts
        ref.last_ts, ref.last_value = s.ts, s.value
        return None if ref.point.id == "p1" else s

    def cols(value: float, when: dt.datetime) -> ColumnarDataChange:
        wire = _wire(
            [(h, ua.DataValue(ua.Variant(value, D), SourceTimestamp=when)) for h in (201, 202)]
        )
        (c,) = decode_publish(Buffer(wire)).Parameters.NotificationMessage.NotificationData
        assert isinstance(c, ColumnarDataChange)
        return c

    sink = Sink()
    assert columnar_blocks(cols(1.0, T1), table, NOW, keep, sink) == []
    assert [s.point for s in sink.samples] == ["p0"]  # p1's dropped by keep
    assert calls == ["p0", "p1"]
    (block,) = columnar_blocks(cols(2.0, T2), table, NOW, keep, sink)
    assert calls == ["p0", "p1"]  # steady: keep not called again
    assert block.points == ("p0", "p1")
    assert block.values.tolist() == [2.0, 2.0]
    assert refs[201].last_ts == refs[202].last_ts == int(T2.timestamp()) * 10**9
    assert refs[201].last_value == 2.0


def test_other_shapes_are_left_to_asyncua() -> None:
    mixed = [
        (201, ua.DataValue(ua.Variant(1.0, D), SourceTimestamp=T1)),
        (202, ua.DataValue(ua.Variant(2, ua.VariantType.Int32), SourceTimestamp=T1)),
    ]
    text = [(201, ua.DataValue(ua.Variant("AUTO", ua.VariantType.String), SourceTimestamp=T1))]
    late = [
        (
            201,
            ua.DataValue(
                ua.Variant(1.0, D), SourceTimestamp=dt.datetime(2300, 1, 1, tzinfo=dt.UTC)
            ),
        )
    ]
    pico = [(201, ua.DataValue(ua.Variant(1.0, D), SourceTimestamp=T1, SourcePicoseconds=5))]
    for items in (mixed, text, late, pico):
        wire = _wire(items)
        fast = decode_publish(Buffer(wire))
        stock = struct_from_binary(ua.PublishResponse, Buffer(wire))
        assert fast.Parameters == stock.Parameters
        (notif,) = fast.Parameters.NotificationMessage.NotificationData
        assert isinstance(notif, ua.DataChangeNotification)


def test_status_change_and_keepalive_decode_as_asyncua() -> None:
    resp = ua.PublishResponse()
    resp.Parameters.SubscriptionId = 4
    resp.Parameters.AvailableSequenceNumbers = [1, 2]
    resp.Parameters.NotificationMessage.NotificationData = [
        ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    ]
    for r in (resp, ua.PublishResponse()):
        wire = bytes(struct_to_binary(r))
        fast = decode_publish(Buffer(wire))
        stock = struct_from_binary(ua.PublishResponse, Buffer(wire))
        assert fast.Parameters == stock.Parameters
        assert fast.ResponseHeader == stock.ResponseHeader
