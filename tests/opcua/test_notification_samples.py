"""The batch conversion of a DataChangeNotification gives exactly the samples of sample_of."""

from __future__ import annotations

import datetime as dt
import enum
import math

import pytest
from asyncua import ua

from config.models import Point
from connectors.base import Quality, Sample
from connectors.opcua.convert import sample_of
from connectors.opcua.subscription import PointRef, notification_samples

NOW = 1_700_000_000_123_456_789
T1 = dt.datetime(2026, 3, 1, 8, 0, 0, 250_000, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 3, 1, 8, 0, 1, tzinfo=dt.UTC)


class Mode(enum.IntEnum):
    AUTO = 3


def _dv(value: object, vt: ua.VariantType | None = None, **kw: object) -> ua.DataValue:
    variant = ua.Variant(value, vt) if vt is not None else ua.Variant(value)
    return ua.DataValue(variant, **kw)


CASES: list[ua.DataValue] = [
    _dv(1.5, ua.VariantType.Double, SourceTimestamp=T1, ServerTimestamp=T2),
    _dv(2.5, ua.VariantType.Double, SourceTimestamp=T1),  # same stamp: the cached conversion
    _dv(7, ua.VariantType.Int32, SourceTimestamp=T1),
    _dv(2**40, ua.VariantType.UInt64, SourceTimestamp=T2),
    _dv(True, ua.VariantType.Boolean, SourceTimestamp=T2),
    _dv(Mode.AUTO, ua.VariantType.Int32, SourceTimestamp=T2),
    _dv(math.nan, ua.VariantType.Double, SourceTimestamp=T2),
    _dv(3.0, ua.VariantType.Double, ServerTimestamp=T2),  # no source timestamp
    _dv(3.0, ua.VariantType.Double),  # no timestamp at all: the gateway clock
    _dv(4.0, ua.VariantType.Double, SourceTimestamp=dt.datetime(2026, 3, 1, 8)),  # naive = UTC
    _dv(4.0, ua.VariantType.Double, SourceTimestamp=dt.datetime(1601, 1, 1, tzinfo=dt.UTC)),
    _dv("text", ua.VariantType.String, SourceTimestamp=T1),
    _dv(
        9.0,
        ua.VariantType.Double,
        SourceTimestamp=T1,
        StatusCode_=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
    ),
    _dv(
        9.0,
        ua.VariantType.Double,
        SourceTimestamp=T1,
        StatusCode_=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
    ),
    ua.DataValue(None, SourceTimestamp=T1),
    _dv(5.0, ua.VariantType.Double, SourceTimestamp=T1),  # back to the first stamp
]


def _refs(scale: float, offset: float) -> dict[int, PointRef]:
    refs: dict[int, PointRef] = {}
    for i in range(len(CASES)):
        point = Point(
            id=f"p{i}",
            datatype="float64",
            scale=scale,
            offset=offset,
            opcua={"node_id": f"ns=2;i={i}"},
        )
        ref = PointRef("m", point, ua.NodeId(i, 2))
        ref.handle = i + 1
        refs[i + 1] = ref
    return refs


def _items(handles: list[int]) -> list[ua.MonitoredItemNotification]:
    return [
        ua.MonitoredItemNotification(ClientHandle=h, Value=CASES[(h - 1) % len(CASES)])
        for h in handles
    ]


def _same(a: Sample, b: Sample) -> bool:
    both_nan = math.isnan(a.value) and math.isnan(b.value)
    return (a.device, a.point, a.ts, a.quality, a.status) == (
        b.device,
        b.point,
        b.ts,
        b.quality,
        b.status,
    ) and (both_nan or a.value == b.value)


@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (0.1, -5.0)])
def test_same_samples_as_sample_of(scale: float, offset: float) -> None:
    refs = _refs(scale, offset)
    handles = list(refs)
    got = notification_samples(_items(handles), refs, NOW, lambda r, s: s)
    want = [
        sample_of(r.device, r.point.id, CASES[h - 1], NOW, r.scale, r.offset)
        for h, r in refs.items()
    ]
    assert len(got) == len(want) == len(CASES)
    for g, w in zip(got, want, strict=True):
        assert _same(g, w), (g, w)
    # the cases cover every branch: good, uncertain, bad, NaN, no value, not numeric
    assert {s.quality for s in got} == {Quality.GOOD, Quality.UNCERTAIN, Quality.BAD}
    assert got[0].ts == got[1].ts != got[3].ts
    assert got[8].ts == NOW


def test_unknown_handles_are_skipped_and_keep_filters() -> None:
    refs = _refs(1.0, 0.0)
    seen: list[str] = []

    def keep(ref: PointRef, s: Sample) -> Sample | None:
        seen.append(ref.point.id)
        return s if ref.point.id != "p1" else None

    got = notification_samples(_items([1, 999, 2, 3]), refs, NOW, keep)
    assert seen == ["p0", "p1", "p2"]
    assert [s.point for s in got] == ["p0", "p2"]
    assert got[0].value == 1.5
    assert got[1].value == 7.0
