"""The part of an OPC UA value a point selects (connectors.opcua.select) and its samples."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pytest
from asyncua import ua

from connectors.base import Quality
from connectors.opcua.convert import sample_of
from connectors.opcua.select import NotSelected, Selector, select


@dataclass
class Unit:
    UnitId: int = 0


@dataclass
class Count:  # the shape asyncua generates for PackMLCountDataType (OPC 30050 6.5.3)
    ID: int = 0
    Name: str = ""
    Unit: Unit = field(default_factory=Unit)
    Count: int = 0
    AccCount: int = 0


ARRAY = [Count(1, "Cola", Unit(7), 3, 100), Count(7, "Water", Unit(8), 1, 40)]
T = dt.datetime(2026, 1, 5, 8, 0)


def _sample(raw: object, sel: Selector) -> tuple[float, Quality, str]:
    dv = ua.DataValue(ua.Variant(raw), SourceTimestamp=T)
    s = sample_of("m", "p", dv, 0, select=sel)
    return s.value, s.quality, s.status


@pytest.mark.parametrize(
    ("sel", "want"),
    [
        (Selector(("AccCount",), element=("ID", 7)), 40),
        (Selector(("AccCount",), element=("Name", "Cola")), 100),
        (Selector(("Count",), index=1), 1),
        (Selector(("Unit", "UnitId"), index=0), 7),
    ],
)
def test_selected_values(sel: Selector, want: int) -> None:
    assert select(ARRAY, sel) == want
    assert _sample(ARRAY, sel) == (float(want), Quality.GOOD, "")


@pytest.mark.parametrize(
    ("raw", "sel", "status"),
    [
        (ARRAY, Selector(("AccCount",), element=("ID", 99)), "no_element"),
        (ARRAY, Selector(("AccCount",), element=("ID", "1")), "no_element"),  # text is no ID
        (ARRAY, Selector(("AccCount",), index=2), "no_element"),
        (ARRAY, Selector(("Speed",), index=0), "no_field"),
        (ARRAY, Selector(("AccCount",), element=("Batch", 1)), "no_field"),
        (ARRAY[0], Selector(("AccCount",), index=0), "not_array"),
        ("text", Selector((), index=0), "not_array"),
        (5, Selector(("AccCount",)), "not_structure"),
        (
            [ua.ExtensionObject(ua.NodeId(14, 4), b"\x01")],
            Selector(("ID",), index=0),
            "BadDataTypeIdUnknown",
        ),
    ],
)
def test_what_is_not_there_is_a_bad_sample(raw: object, sel: Selector, status: str) -> None:
    with pytest.raises(NotSelected) as info:
        select(raw, sel)
    assert info.value.status == status
    value, quality, got = _sample(raw, sel)
    assert math.isnan(value)
    assert (quality, got) == (Quality.BAD, status)


def test_a_bad_status_stays_the_servers() -> None:
    dv = ua.DataValue(StatusCode_=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown), SourceTimestamp=T)
    s = sample_of("m", "p", dv, 0, select=Selector(("AccCount",), index=0))
    assert (s.quality, s.status) == (Quality.BAD, "BadNodeIdUnknown")


def test_a_followed_counter_sums_per_object() -> None:
    from connectors.opcua.follow import Following, count_step

    f = Following(total=10.0)  # resumed from the store
    assert count_step(f, 4.0) == 10.0  # first reading of a target: its baseline
    assert count_step(f, 6.0) == 12.0
    assert count_step(f, 6.0) == 12.0
    assert count_step(f, 1.0) == 13.0  # the object's counter restarted: counts from zero
    f.prev = None  # the pointer moved on to another object
    assert count_step(f, 50.0) == 13.0
    assert count_step(f, 52.0, scale=2.0) == 17.0


async def test_structure_definitions_that_fail_to_load_are_reported_not_raised() -> None:
    from connectors.opcua.select import load_structures

    class Broken:
        async def load_data_type_definitions(self) -> None:
            raise RuntimeError("Unknown datatype for field OutputInfo")

    class NoDictionaries:
        async def get_children_descriptions(self) -> list[object]:
            return []

    class Fine:
        class nodes:  # the client's attribute
            opc_binary = NoDictionaries()

        async def load_data_type_definitions(self) -> None:
            return None

    assert await load_structures(Broken()) == "RuntimeError: Unknown datatype for field OutputInfo"
    assert await load_structures(Fine()) is None
