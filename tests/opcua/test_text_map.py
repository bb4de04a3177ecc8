"""Text points (config.textmap): the site file's enum, validation of ``ideal_cycle`` by program,
and the OPC UA conversion of String / LocalizedText values."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from asyncua import ua
from pydantic import ValidationError

from config.loader import ConfigError, load_site_text
from config.textmap import UNKNOWN_TEXT, code_text, text_code
from connectors.base import Quality
from connectors.opcua.convert import sample_of
from tests.metrics.sites import machine, site
from tests.opcua.helpers import dv

ENUM = {"P-100": 1, "P-200": 2}
SOURCE = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)
SOURCE_NS = int(SOURCE.timestamp()) * 1_000_000_000


def _mix_machine(**changes: Any) -> dict[str, Any]:
    d = machine("m1", ideal=None)
    program = {"id": "program", "datatype": "text", "enum": ENUM}
    program |= {"opcua": {"node_id": "ns=2;s=p"}} | changes.pop("program", {})
    d["points"].append(program)
    d["ideal_cycle"] = {"point": "program", "by": {"P-100": 45, "P-200": 90}}
    d.update(changes)
    return d


def test_text_code_and_back() -> None:
    assert text_code(ENUM, "P-200") == 2.0
    assert text_code(ENUM, "P-200\x00\x00 ") == 2.0  # a padded PLC string
    assert text_code(ENUM, "p-200") is None
    assert code_text(ENUM, 2.0) == "P-200"
    assert code_text(ENUM, 3.0) is None
    assert code_text(ENUM, math.nan) is None
    assert code_text(ENUM, 1.5) is None
    assert code_text(None, 1.0) is None


def test_ideal_cycle_by_program_is_validated() -> None:
    dev = site([_mix_machine()]).devices[0]
    assert dev.ideal_cycle is not None
    assert dev.ideal_cycle.by == {"P-100": 45.0, "P-200": 90.0}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"ideal_cycle": {"point": "program", "by": {"P-300": 45}}}, "'P-300' not in the enum"),
        ({"ideal_cycle": {"point": "nope", "by": {"P-100": 45}}}, "no point 'nope'"),
        ({"ideal_cycle": {"point": "good", "by": {"P-100": 45}}}, "needs datatype text"),
        ({"ideal_cycle": {"point": "program", "by": {"P-100": 0}}}, "positive number"),
        ({"ideal_cycle_s": 30}, "not both"),
        ({"program": {"enum": None}}, "needs an enum"),
        ({"program": {"enum": {"P-100": 1, "P-200": 1}}}, "enum code 1 is used by both"),
        ({"program": {"enum": {"P-100": 1.5}}}, "whole number"),
        ({"program": {"role": "count_total"}}, "role 'measurement'"),
    ]
    for changes, message in bad:
        with pytest.raises(ValidationError, match=message):
            site([_mix_machine(**changes)])


def test_enum_keys_read_by_yaml_as_booleans_are_refused() -> None:
    text = """
version: 1
site: {id: t, name: t}
devices:
  - id: m1
    name: m1
    opcua: {endpoint: "opc.tcp://127.0.0.1:4841"}
    points:
      - {id: door, datatype: text, enum: {off: 0, on: 1}, opcua: {node_id: "ns=2;s=d"}}
"""
    with pytest.raises(ConfigError, match="quote it"):
        load_site_text(text)


def test_text_is_only_for_protocols_that_map_it() -> None:
    d = {
        "id": "m1",
        "name": "m1",
        "modbus": {"host": "127.0.0.1", "port": 502, "unit": 1},
        "points": [
            {
                "id": "p",
                "datatype": "text",
                "enum": ENUM,
                "modbus": {"table": "holding", "address": 0},
            }
        ],
    }
    only = "'text' is read from opcua, mqtt, mtconnect, sparkplug points"
    with pytest.raises(ValidationError, match=only):
        site([d])


def test_opcua_string_becomes_its_code_and_unknown_text_is_bad() -> None:
    s = sample_of("m1", "program", dv("P-200", ua.VariantType.String, SOURCE), 0, enum=ENUM)
    assert (s.ts, s.value, s.quality, s.status) == (SOURCE_NS, 2.0, Quality.GOOD, "")
    lt = ua.LocalizedText("P-100", "en")
    s = sample_of("m1", "program", dv(lt, ua.VariantType.LocalizedText, SOURCE), 0, enum=ENUM)
    assert s.value == 1.0
    s = sample_of("m1", "program", dv("P-999", ua.VariantType.String, SOURCE), 0, enum=ENUM)
    assert math.isnan(s.value)
    assert (s.ts, s.quality, s.status) == (SOURCE_NS, Quality.BAD, UNKNOWN_TEXT)
    # a bad status stays the server's, not a text lookup
    s = sample_of(
        "m1", "program", dv("P-100", ua.VariantType.String, SOURCE, 0x80340000), 0, enum=ENUM
    )
    assert (s.quality, s.status) == (Quality.BAD, "BadNodeIdUnknown")
    # a number on a text point is never taken for a code
    s = sample_of("m1", "program", dv(2, ua.VariantType.Int32, SOURCE), 0, enum=ENUM)
    assert math.isnan(s.value)
    assert (s.quality, s.status) == (Quality.BAD, "BadTypeMismatch")
    # without an enum a String is still not a number
    s = sample_of("m1", "x", dv("P-100", ua.VariantType.String, SOURCE), 0)
    assert s.status == "BadTypeNotNumeric"


def test_tail_and_gateway_show_the_text() -> None:
    from connectors.base import Sample
    from edge.cli.tail import Names, latest_table
    from gateway.views import sample_out

    s = site([_mix_machine()])
    good = Sample("m1", "program", SOURCE_NS, 2.0)
    unknown = Sample("m1", "program", SOURCE_NS + 1, math.nan, Quality.BAD, UNKNOWN_TEXT)
    count = Sample("m1", "good", SOURCE_NS, 2.0)
    names = Names(s)
    assert (names.value(good), names.value(unknown), names.value(count)) == ("P-200", "NaN", "2")
    table = latest_table([good], dt.UTC, None, names=names)
    assert "P-200" in table.splitlines()[-1]
    assert sample_out(s, good).text == "P-200"
    assert sample_out(s, good).value == 2.0  # the stored code stays the value
    assert sample_out(s, unknown).text is None
    assert sample_out(s, unknown).status == UNKNOWN_TEXT
    assert sample_out(s, count).text is None


def test_subscription_fast_path_leaves_text_points_to_the_text_map() -> None:
    from config.models import Point
    from connectors.opcua.subscription import PointRef, notification_samples

    point = Point.model_validate(
        {"id": "program", "datatype": "text", "enum": ENUM, "opcua": {"node_id": "ns=2;i=1"}}
    )
    ref = PointRef("m1", point, ua.NodeId(1, 2))
    items = [
        ua.MonitoredItemNotification(ClientHandle=1, Value=dv(v, vt, SOURCE))
        for v, vt in ((2, ua.VariantType.Int32), ("P-100", ua.VariantType.String))
    ]
    got = notification_samples(items, {1: ref}, 0, lambda r, s: s)
    assert (got[0].quality, got[0].status) == (Quality.BAD, "BadTypeMismatch")
    assert (got[1].value, got[1].quality) == (1.0, Quality.GOOD)


def test_mtconnect_program_text_to_code() -> None:
    from connectors.mtconnect.documents import Observation
    from connectors.mtconnect.mapping import Binding, convert

    b = Binding("program", "p1", "PROGRAM", enum=ENUM)
    got = convert("m1", b, Observation("p1", 7, SOURCE_NS, "P-200"))
    assert not isinstance(got, str)
    assert got is not None
    assert (got.value, got.quality) == (2.0, Quality.GOOD)
    got = convert("m1", b, Observation("p1", 8, SOURCE_NS + 1, "P-999"))
    assert not isinstance(got, str)
    assert got is not None
    assert (got.quality, got.status) == (Quality.BAD, UNKNOWN_TEXT)
