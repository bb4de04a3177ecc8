"""Device.points kept as columns (config.columns): same points, same dumps, less memory."""

from __future__ import annotations

import copy
import pickle
import tracemalloc
from typing import Any

import pytest

from config.models import Device, Point, PointTable


def _device(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "name": "meter",
        "modbus": {"host": "127.0.0.1"},
        "points": [
            {"id": f"r{a}", "datatype": "uint16", "modbus": {"address": a}, **extra}
            for a in range(n)
        ],
    }


def test_points_read_back_equal_to_validated_models() -> None:
    raw = _device(50)
    raw["points"][7] = {
        "id": "s",
        "role": "state",
        "datatype": "int16",
        "offset": -0.0,
        "state_map": {0: "producing", "1": "down"},
        "deadband": {"value": 0.5},
        "modbus": {"address": 900, "table": "input", "order": "CDAB", "unit": 3},
    }
    raw["points"][9]["scale"] = 2.5
    dev = Device.model_validate(raw)
    assert isinstance(dev.points, PointTable)
    plain = tuple(Point.model_validate(p) for p in raw["points"])
    assert len(dev.points) == 50
    assert dev.points == plain
    assert tuple(dev.points) == plain
    for got, want in zip(dev.points, plain, strict=True):
        assert got.model_dump_json() == want.model_dump_json()
        assert got.model_fields_set == want.model_fields_set
        assert repr(got) == repr(want)
    assert dev.points[-1] == plain[-1]
    assert dev.points[2:4] == plain[2:4]
    # -0.0 where the others hold the default 0.0: not the same value
    assert repr(dev.points[7].offset) == "-0.0"
    assert repr(dev.points[8].offset) == "0.0"
    assert dev.point("s").state_map == {"0": "producing", "1": "down"}
    assert dev.model_dump()["points"] == tuple(p.model_dump() for p in plain)
    assert Device.model_validate(dev.model_dump()) == dev
    assert pickle.loads(pickle.dumps(dev)) == dev
    assert copy.deepcopy(dev) == dev


def test_validation_errors_are_those_of_the_tuple() -> None:
    raw = _device(3)
    raw["points"][2]["modbus"] = {"address": -1}
    with pytest.raises(ValueError, match=r"points\.2\.modbus\.address"):
        Device.model_validate(raw)


def test_points_cost_a_few_bytes_each() -> None:
    raw = _device(2000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dev = Device.model_validate(raw)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(dev.points) == 2000
    assert used / 2000 < 100, f"{used / 2000:.0f} bytes per point"  # ~900 as models


def test_a_point_still_referenced_is_the_same_object() -> None:
    dev = Device.model_validate(_device(600))
    held = [p for p in dev.points if p.id.endswith("7")]
    assert all(p is dev.points[int(p.id[1:])] for p in held)
    assert [p for p in dev.points if p.id.endswith("7")][3] is held[3]
    del held
    assert sum(1 for _ in dev.points) == 600
    assert len(dev.points._alive) == 0  # nothing kept of the points no longer referenced


def test_point_by_id() -> None:
    dev = Device.model_validate(_device(300))
    assert dev.point("r299").modbus is not None
    assert dev.point("r299").modbus.address == 299  # type: ignore[union-attr]
    assert dev.points.position("r17") == 17
    assert dev.points.position("nope") is None
    with pytest.raises(KeyError):
        dev.point("nope")
    one = Device.model_validate(_device(1))  # a short table keeps its models as they are
    assert one.point("r0") == one.points[0]


def test_the_parsed_strings_are_not_kept() -> None:
    """Point ids and OPC UA node ids vary on every point: the table keeps them as one text
    each (config.columns.Texts), not the string objects of the parse (scattered among the
    parse's transient objects, they kept its memory pages resident), and reads them back
    equal."""
    import gc

    from config.loader import load_site_text

    n = 3000
    lines = [
        "version: 1",
        "site: {id: s, name: s}",
        "devices:",
        "  - id: m",
        "    name: m",
        "    opcua: {endpoint: 'opc.tcp://127.0.0.1:4840/x'}",
        "    points:",
        *(
            f"      - {{id: v{i}, datatype: float64, opcua: {{node_id: 'ns=2;s=B.v{i}'}}}}"
            for i in range(n)
        ),
    ]
    site = load_site_text("\n".join(lines) + "\n")
    points = site.devices[0].points
    assert isinstance(points, PointTable)
    gc.collect()
    seen: set[int] = set()
    strings = 0
    todo: list[object] = [points._columns]
    while todo:  # every object the columns hold (not the classes and their definitions)
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type) or callable(obj):
            continue
        seen.add(id(obj))
        strings += type(obj) is str
        todo.extend(gc.get_referents(obj))
    assert strings < 100, strings  # 2 a point (6,000) as lists of strings
    assert [p.id for p in points] == [f"v{i}" for i in range(n)]
    assert points[1234].opcua is not None
    assert points[1234].opcua.node_id == "ns=2;s=B.v1234"
    assert points.position("v2999") == 2999
