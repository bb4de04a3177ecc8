"""The MTConnect and Sparkplug B blocks of the site file, and the reviewed state table."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.models import SiteConfig
from config.mtconnect import (
    CONTROLLER_MODE,
    DEFAULT_STATE_MAP,
    EXECUTION,
    EXECUTION_STATE,
    state_code,
)


def test_every_execution_and_mode_has_a_state() -> None:
    assert set(EXECUTION_STATE) == set(EXECUTION)
    assert len(DEFAULT_STATE_MAP) == len(EXECUTION) * len(CONTROLLER_MODE)
    assert DEFAULT_STATE_MAP[str(state_code("ACTIVE", "AUTOMATIC"))] == "producing"
    assert DEFAULT_STATE_MAP[str(state_code("ACTIVE", None))] == "producing"
    assert DEFAULT_STATE_MAP[str(state_code("ACTIVE", "SEMI_AUTOMATIC"))] == "producing"
    assert DEFAULT_STATE_MAP[str(state_code("FEED_HOLD", "AUTOMATIC"))] == "down"
    assert DEFAULT_STATE_MAP[str(state_code("READY", "AUTOMATIC"))] == "idle"
    for mode in ("MANUAL", "MANUAL_DATA_INPUT", "EDIT"):
        for execution in EXECUTION:
            assert DEFAULT_STATE_MAP[str(state_code(execution, mode))] == "setup"
    assert state_code("DANCING", None) is None
    assert state_code("ACTIVE", "DANCING") is None


def _site(point: dict[str, Any], **dev: Any) -> SiteConfig:
    device = {
        "id": "cnc1",
        "name": "cnc",
        "mtconnect": {"url": "http://127.0.0.1:5000"},
        "points": [point],
        **dev,
    }
    return SiteConfig.model_validate({"site": {"id": "s", "name": "s"}, "devices": [device]})


def test_a_state_point_without_a_map_gets_the_table_and_a_given_map_wins() -> None:
    site = _site({"id": "state", "role": "state", "mtconnect": {"type": "EXECUTION"}})
    assert site.devices[0].points[0].state_map == DEFAULT_STATE_MAP
    own = {"2": "producing", "9": "down"}
    site = _site(
        {"id": "state", "role": "state", "state_map": own, "mtconnect": {"type": "EXECUTION"}}
    )
    assert site.devices[0].points[0].state_map == own
    with pytest.raises(ValidationError, match="needs a state_map"):
        _site({"id": "state", "role": "state", "mtconnect": {"data_item": "exec"}})


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ({"type": "PART_COUNT", "data_item": "pc"}, "exactly one of 'data_item' or 'type'"),
        ({}, "exactly one of 'data_item' or 'type'"),
        ({"data_item": "pc", "sub_type": "GOOD"}, "sub_type goes with type"),
        ({"type": "PartCount"}, "String should match pattern"),
        ({"type": "PART_COUNT", "subtype": "GOOD"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_addresses_are_refused(address: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _site({"id": "p", "mtconnect": address})


def test_one_protocol_block_per_device() -> None:
    with pytest.raises(ValidationError, match="exactly one protocol block"):
        _site(
            {"id": "p", "mtconnect": {"data_item": "x"}},
            sparkplug={"host": "h", "group_id": "g", "edge_node_id": "n"},
        )
    with pytest.raises(ValidationError, match="'mqtt' block on a mtconnect device"):
        _site({"id": "p", "mtconnect": {"data_item": "x"}, "mqtt": {"topic": "a"}})
    with pytest.raises(ValidationError, match="String should match pattern"):
        _site({"id": "p", "mtconnect": {"data_item": "x"}}, mtconnect={"url": "ftp://x"})


@pytest.mark.parametrize("bad", ["a+b", "a/b", "#", "a b"])
def test_sparkplug_ids_are_topic_elements(bad: str) -> None:
    dev = {
        "id": "n",
        "name": "n",
        "sparkplug": {"host": "h", "group_id": bad, "edge_node_id": "n"},
        "points": [{"id": "p", "sparkplug": {"metric": "m"}}],
    }
    with pytest.raises(ValidationError, match="group_id"):
        SiteConfig.model_validate({"site": {"id": "s", "name": "s"}, "devices": [dev]})


def test_connection_blocks_are_not_part_of_the_kpi_view() -> None:
    """Moving an agent or a broker changes no KPI: a period may span both configurations."""
    from metrics.evidence.configlog import config_content, kpi_view

    point = {"id": "state", "role": "state", "mtconnect": {"type": "EXECUTION"}}
    a = _site(point, mtconnect={"url": "http://10.0.0.1:5000"})
    b = _site(point, mtconnect={"url": "http://10.0.0.2:5000", "interval_ms": 250})
    assert kpi_view(config_content(a)) == kpi_view(config_content(b))
    spb = {
        "id": "n",
        "name": "n",
        "points": [{"id": "p", "sparkplug": {"metric": "m"}}],
    }
    views = [
        kpi_view(
            config_content(
                SiteConfig.model_validate(
                    {
                        "site": {"id": "s", "name": "s"},
                        "devices": [
                            {**spb, "sparkplug": {"host": h, "group_id": "g", "edge_node_id": "e"}}
                        ],
                    }
                )
            )
        )
        for h in ("broker-a", "broker-b")
    ]
    assert views[0] == views[1]
