"""Config models that set the same fields share one record of them (memory per point), and
nothing that reads or copies that record sees a difference."""

from __future__ import annotations

from config.loader import load_site_text

SITE = """
site: {id: t, name: T}
devices:
  - id: m1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: a, datatype: uint16, modbus: {address: 0}}
      - {id: b, datatype: uint16, modbus: {address: 1}}
      - {id: c, modbus: {address: 2}, unit: kWh}
"""


def test_same_fields_share_one_record() -> None:
    a, b, c = load_site_text(SITE).devices[0].points
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.modbus is not None
    assert b.modbus is not None
    assert a.modbus.__pydantic_fields_set__ is b.modbus.__pydantic_fields_set__
    assert c.model_fields_set == {"id", "modbus", "unit"}
    assert a.model_dump(exclude_unset=True) == {
        "id": "a",
        "datatype": "uint16",
        "modbus": {"address": 0},
    }


def test_a_copy_with_changes_leaves_the_shared_record_alone() -> None:
    a, b, _ = load_site_text(SITE).devices[0].points
    named = a.model_copy(update={"name": "renamed"})
    assert named.model_fields_set == {"id", "datatype", "modbus", "name"}
    assert a.model_fields_set == b.model_fields_set == {"id", "datatype", "modbus"}
    assert b.model_dump(exclude_unset=True) == {
        "id": "b",
        "datatype": "uint16",
        "modbus": {"address": 1},
    }
