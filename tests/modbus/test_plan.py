"""Pure request planning: coalescing, limits, split, decoding of a response, bad point configs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from config.models import Device
from connectors.base import Quality
from connectors.modbus.codec import encode_raw
from connectors.modbus.plan import (
    PlanError,
    PointRef,
    decode_response,
    plan_requests,
    point_refs,
    split_request,
)


def ref(
    address: int,
    width: int = 2,
    *,
    unit: int = 1,
    table: str = "holding",
    interval: int = 1000,
    name: str | None = None,
    datatype: str = "float32",
) -> PointRef:
    return PointRef(
        device="d",
        point=name or f"p{address}",
        unit=unit,
        table=table,  # type: ignore[arg-type]
        address=address,
        width=width,
        datatype=datatype,
        order="ABCD",  # type: ignore[arg-type]
        bit=None,
        scale=1.0,
        offset=0.0,
        interval_ms=interval,
    )


def spans(reqs: Any) -> list[tuple[int, str, int, int]]:
    return [(r.unit, r.table, r.address, r.count) for r in reqs]


def test_neighbours_within_the_gap_share_one_request() -> None:
    reqs = plan_requests([ref(0), ref(2), ref(10), ref(30)], max_gap=8)
    # 0-1, 2-3 touch; 10 is 6 registers after 4 (gap 6 <= 8); 30 is 18 after 12: new request
    assert spans(reqs) == [(1, "holding", 0, 12), (1, "holding", 30, 2)]
    assert [p.point for p in reqs[0].points] == ["p0", "p2", "p10"]


def test_gap_zero_merges_only_contiguous_points() -> None:
    reqs = plan_requests([ref(0), ref(2), ref(5)], max_gap=0)
    assert spans(reqs) == [(1, "holding", 0, 4), (1, "holding", 5, 2)]


def test_requests_never_exceed_max_registers() -> None:
    refs = [ref(a) for a in range(0, 400, 2)]  # 200 float32 back to back
    reqs = plan_requests(refs, max_registers=125, max_gap=8)
    assert all(r.count <= 125 for r in reqs)
    assert sum(len(r.points) for r in reqs) == 200
    assert spans(reqs)[0] == (1, "holding", 0, 124)  # a float32 never straddles two requests
    covered = sorted(p.address for r in reqs for p in r.points)
    assert covered == list(range(0, 400, 2))


def test_units_tables_and_intervals_are_never_mixed() -> None:
    refs = [
        ref(0, unit=1),
        ref(2, unit=2),
        ref(4, table="input"),
        ref(6, interval=100),
        ref(0, 1, table="coil", datatype="bool"),
        ref(40, 1, table="coil", datatype="bool"),
    ]
    reqs = plan_requests(refs)
    assert sorted(spans(reqs)) == sorted(
        [
            (1, "holding", 0, 2),
            (2, "holding", 2, 2),
            (1, "input", 4, 2),
            (1, "holding", 6, 2),
            (1, "coil", 0, 41),  # bit gap of 39 <= 16 x max_gap (128 bits)
        ]
    )
    assert {r.function_code for r in reqs} == {1, 3, 4}


def test_bits_obey_max_bits() -> None:
    refs = [ref(a, 1, table="discrete", datatype="bool") for a in range(50)]
    reqs = plan_requests(refs, max_bits=20)
    assert [r.count for r in reqs] == [20, 20, 10]


def test_overlapping_points_share_registers() -> None:
    # two bool bits of register 5 and an int32 over 5-6
    a = ref(5, 1, name="b0", datatype="bool")
    b = ref(5, 1, name="b1", datatype="bool")
    c = ref(5, 2, name="w", datatype="int32")
    reqs = plan_requests([a, b, c], max_gap=0)
    assert spans(reqs) == [(1, "holding", 5, 2)]


def test_split_keeps_only_overlapping_points_together() -> None:
    reqs = plan_requests([ref(0), ref(2), ref(6), ref(6, 1, name="x", datatype="bool")])
    assert len(reqs) == 1
    parts = split_request(reqs[0])
    assert spans(parts) == [(1, "holding", 0, 2), (1, "holding", 2, 2), (1, "holding", 6, 2)]
    assert [p.point for p in parts[2].points] == ["x", "p6"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_registers": 126}, "max_registers"),
        ({"max_registers": 0}, "max_registers"),
        ({"max_bits": 2001}, "max_bits"),
        ({"max_gap": -1}, "max_gap"),
    ],
)
def test_bad_limits(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_requests([ref(0)], **kwargs)


def test_point_wider_than_the_limit_is_refused() -> None:
    with pytest.raises(PlanError, match="exceed the request limit 4"):
        plan_requests([ref(0, 8, datatype="string")], max_registers=4)


def test_decode_response_per_point_with_scale_and_bad_values() -> None:
    refs = [
        PointRef("d", "energy", 1, "holding", 0, 2, "float32", "CDAB", None, 1.0, 0.0, 1000),
        PointRef("d", "temp", 1, "holding", 2, 1, "int16", "ABCD", None, 0.1, -40.0, 1000),
        PointRef("d", "alarm", 1, "holding", 3, 1, "bool", "ABCD", 4, 1.0, 0.0, 1000),
        PointRef("d", "nan", 1, "holding", 4, 2, "float32", "ABCD", None, 1.0, 0.0, 1000),
        PointRef("d", "text", 1, "holding", 6, 2, "string", "ABCD", None, 1.0, 0.0, 1000),
        PointRef("d", "past", 1, "holding", 8, 2, "uint32", "ABCD", None, 1.0, 0.0, 1000),
    ]
    (req,) = plan_requests(refs)
    words = (
        encode_raw(1234.5, "float32", "CDAB")
        + encode_raw(655, "int16")
        + [0b10000]
        + encode_raw(math.nan, "float32")
        + encode_raw("AB", "string", length=2)
        + [0]  # the response stops one register short of 'past'
    )
    out = {r.ref.point: r for r in decode_response(req, words)}
    assert out["energy"].value == 1234.5
    assert out["energy"].quality == Quality.GOOD
    assert out["temp"].value == 655 * 0.1 - 40.0
    assert out["alarm"].value == 1.0
    assert math.isnan(out["nan"].value)
    assert (out["nan"].quality, out["nan"].status) == (
        Quality.BAD,
        "nan",
    )
    assert out["text"].status == "not_numeric"
    assert out["past"].status == "short_response"
    assert math.isnan(out["past"].value)


def dev(points: list[dict[str, Any]], **conn: Any) -> Device:
    return Device.model_validate(
        {"id": "m", "name": "m", "modbus": {"host": "h", **conn}, "points": points}
    )


def test_point_refs_resolve_units_and_intervals() -> None:
    d = dev(
        [
            {"id": "a", "datatype": "uint32", "modbus": {"address": 10}},
            {
                "id": "b",
                "datatype": "bool",
                "interval_ms": 50,
                "modbus": {"table": "coil", "address": 3, "unit": 9},
            },
        ],
        unit=4,
        poll_interval_ms=250,
    )
    assert d.modbus is not None
    a, b = point_refs(d, d.modbus)
    assert (a.unit, a.width, a.interval_ms) == (4, 2, 250)
    assert (b.unit, b.width, b.interval_ms, b.table) == (9, 1, 50, "coil")


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"datatype": "float32", "modbus": {"table": "coil", "address": 0}}, "use datatype bool"),
        (
            {"datatype": "bool", "modbus": {"table": "discrete", "address": 0, "bit": 2}},
            "not of a discrete",
        ),
        ({"datatype": "int16", "modbus": {"address": 0, "bit": 2}}, "'bit' needs datatype bool"),
        ({"datatype": "string", "modbus": {"address": 0}}, "needs 'length'"),
        ({"datatype": "int32", "modbus": {"address": 0, "length": 2}}, "only for datatype string"),
        ({"datatype": "float64", "modbus": {"address": 65533}}, "passes 65535"),
        ({"datatype": "string", "modbus": {"address": 0, "length": 100}}, "above max_registers"),
    ],
)
def test_bad_point_configs_name_device_and_point(point: dict[str, Any], message: str) -> None:
    d = dev([{"id": "bad", **point}], max_registers=64)
    assert d.modbus is not None
    with pytest.raises(PlanError, match=message) as info:
        point_refs(d, d.modbus)
    assert "device m points[0] (bad)" in str(info.value)
