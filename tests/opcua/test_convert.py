"""Pure parts of the OPC UA connector: status/value/timestamp conversion, browse paths,
batching, subscription parameters, deadband filters."""

from __future__ import annotations

import datetime as dt
import enum
import math

import pytest
from asyncua import ua

from config.models import Point
from connectors.base import Quality
from connectors.opcua.convert import NotNumeric, ns_of, quality_of, sample_of, status_name, to_float
from connectors.opcua.session import chunks, parse_browse_path
from connectors.opcua.subscription import PointRef, deadband_filter, subscription_params

NOW = 1_700_000_000_000_000_000


def _dv(
    value: object,
    code: int = 0,
    source: dt.datetime | None = None,
    server: dt.datetime | None = None,
) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(value),
        StatusCode_=ua.StatusCode(code),
        SourceTimestamp=source,
        ServerTimestamp=server,
    )


@pytest.mark.parametrize(
    ("code", "quality", "name"),
    [
        (0, Quality.GOOD, ""),
        (ua.StatusCodes.GoodClamped, Quality.GOOD, "GoodClamped"),
        (ua.StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN, "UncertainLastUsableValue"),
        (ua.StatusCodes.BadNodeIdUnknown, Quality.BAD, "BadNodeIdUnknown"),
        (ua.StatusCodes.BadSensorFailure | 0x0400, Quality.BAD, "BadSensorFailure"),  # info bits
        (0x80FF0000, Quality.BAD, "0x80FF0000"),  # unknown code keeps its number
    ],
)
def test_status_codes(code: int, quality: Quality, name: str) -> None:
    assert quality_of(code) is quality
    assert status_name(code) == name


def test_timestamps_source_then_server_then_gateway() -> None:
    src = dt.datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    srv = dt.datetime(2025, 5, 6, 7, 8, 10, tzinfo=dt.UTC)
    assert sample_of("d", "p", _dv(1.0, source=src, server=srv), NOW).ts == ns_of(src)
    assert sample_of("d", "p", _dv(1.0, server=srv), NOW).ts == ns_of(srv)
    assert sample_of("d", "p", _dv(1.0), NOW).ts == NOW
    # OPC UA's "no time" (1601) counts as absent; naive times are UTC
    assert ns_of(dt.datetime(1601, 1, 1, tzinfo=dt.UTC)) is None
    assert ns_of(dt.datetime(2025, 1, 1)) == ns_of(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    assert ns_of(src) == 1746515289123456000


def test_values_and_bad_statuses() -> None:
    assert sample_of("d", "p", _dv(True), NOW).value == 1.0
    assert sample_of("d", "p", _dv(False), NOW).value == 0.0
    assert sample_of("d", "p", _dv(7), NOW).value == 7.0
    scaled = sample_of("d", "p", _dv(10), NOW, scale=0.1, offset=-1.0)
    assert scaled.value == pytest.approx(0.0)
    bad = sample_of("d", "p", _dv(42.0, ua.StatusCodes.BadCommunicationError), NOW)
    assert math.isnan(bad.value)
    assert (bad.quality, bad.status) == (Quality.BAD, "BadCommunicationError")
    text = sample_of("d", "p", _dv("hello"), NOW)
    assert (text.quality, text.status) == (Quality.BAD, "BadTypeNotNumeric")
    assert math.isnan(text.value)
    empty = sample_of("d", "p", ua.DataValue(None), NOW)
    assert (empty.quality, empty.status) == (Quality.BAD, "BadNoValue")
    unc = sample_of("d", "p", _dv(3.5, ua.StatusCodes.UncertainSensorNotAccurate), NOW)
    assert (unc.value, unc.quality) == (3.5, Quality.UNCERTAIN)
    nan = sample_of("d", "p", _dv(float("nan")), NOW)
    assert nan.quality is Quality.UNCERTAIN


def test_to_float_refuses_non_numbers() -> None:
    class Mode(enum.IntEnum):
        AUTO = 3

    assert to_float(Mode.AUTO) == 3.0
    for value in ("1", [1, 2], None, b"x"):
        with pytest.raises(NotNumeric):
            to_float(value)


def test_browse_paths() -> None:
    root, rel = parse_browse_path("0:Objects/2:cnc1/2:State")
    assert root == ua.NodeId(ua.ObjectIds.RootFolder)
    assert rel == "/0:Objects/2:cnc1/2:State"
    objects, rel = parse_browse_path("/2:cnc1/2:State/")
    assert objects == ua.NodeId(ua.ObjectIds.ObjectsFolder)
    assert rel == "/2:cnc1/2:State"
    with pytest.raises(ValueError, match="empty browse path"):
        parse_browse_path(" / ")


def test_chunks_fit_the_limit() -> None:
    items = list(range(7))
    assert [list(c) for c in chunks(items, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [list(c) for c in chunks(items, 0)] == [items]  # 0: the server sets no limit
    assert list(chunks([], 5)) == []


def test_keepalives_come_three_times_per_watchdog_period() -> None:
    p = subscription_params(200, 30)
    assert p.RequestedMaxKeepAliveCount == 50  # 50 x 200 ms = 10 s = watchdog / 3
    assert p.RequestedLifetimeCount == 200
    assert subscription_params(10_000, 1).RequestedMaxKeepAliveCount == 1


def _ref(deadband: dict[str, object] | None, eu_range: float | None = None) -> PointRef:
    point = Point.model_validate(
        {"id": "p", "opcua": {"node_id": "ns=2;i=1"}, "deadband": deadband}
    )
    ref = PointRef("d", point, ua.NodeId(1, 2))
    ref.eu_range = eu_range
    return ref


def test_deadband_filters(caplog: pytest.LogCaptureFixture) -> None:
    assert deadband_filter(_ref(None)) is None
    assert deadband_filter(_ref({"kind": "absolute", "value": 0})) is None
    absolute = deadband_filter(_ref({"kind": "absolute", "value": 0.5}))
    assert absolute is not None
    assert (absolute.DeadbandType, absolute.DeadbandValue) == (ua.DeadbandType.Absolute, 0.5)
    pct = deadband_filter(_ref({"kind": "percent", "value": 2}, eu_range=100.0))
    assert pct is not None
    assert (pct.DeadbandType, pct.DeadbandValue) == (ua.DeadbandType.Percent, 2)
    fallback = deadband_filter(_ref({"kind": "percent", "value": 2, "range": 50}))
    assert fallback is not None
    assert (fallback.DeadbandType, fallback.DeadbandValue) == (ua.DeadbandType.Absolute, 1.0)
    assert "no EURange" in caplog.text
    caplog.clear()
    assert deadband_filter(_ref({"kind": "percent", "value": 2})) is None
    assert "not applied" in caplog.text
