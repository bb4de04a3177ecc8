"""Sparkplug String/Text metrics on ``datatype: text`` points (issue 13 item 4): the text's code
from the point's ``enum``; a text not in it is a bad ``unknown_text`` sample; a number for a text
point and a text for a number point are ``wrong_type`` (no sample). Pure: the host application's
decoding of hand-encoded payloads (tests/sparkplug/wire.py), no broker."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("google.protobuf", reason="protobuf (shopfloor[collector]) is not installed")

from config.models import SiteConfig
from config.textmap import UNKNOWN_TEXT
from connectors.base import Quality
from connectors.sparkplug.connector import targets_of
from connectors.sparkplug.decode import parse_topic
from connectors.sparkplug.host import EdgeNodeHost
from connectors.sparkplug.schema import Payload
from tests.sparkplug.wire import metric, payload

T = 1_800_000_000_000  # ms, a pinned edge-node clock
MS = 1_000_000
STRING, TEXT, INT32 = 12, 14, 3


def _host() -> EdgeNodeHost:
    site = SiteConfig.model_validate(
        {
            "site": {"id": "s", "name": "s"},
            "devices": [
                {
                    "id": "press",
                    "name": "press",
                    "sparkplug": {
                        "host": "127.0.0.1",
                        "port": 1,
                        "group_id": "plant",
                        "edge_node_id": "edge1",
                    },
                    "points": [
                        {
                            "id": "program",
                            "datatype": "text",
                            "enum": {"P-100": 1, "P-200": 2},
                            "sparkplug": {"metric": "Program"},
                        },
                        {"id": "count", "sparkplug": {"metric": "Count"}},
                    ],
                }
            ],
        }
    )
    return EdgeNodeHost(targets_of(site.devices))


def _handle(host: EdgeNodeHost, kind: str, metrics: list[bytes], seq: int) -> object:
    topic = parse_topic(f"spBv1.0/plant/{kind}/edge1")
    assert topic is not None
    return host.handle(topic, Payload.FromString(payload(metrics, seq=seq, ts=T)), T * MS)


def test_text_metrics_store_their_code_and_unknown_text_is_a_bad_sample() -> None:
    host = _host()
    birth = [
        metric("bdSeq", datatype=8, long_value=0),
        metric("Program", alias=1, datatype=STRING, string_value="P-100"),
        metric("Count", alias=2, datatype=INT32, int_value=5),
    ]
    out = _handle(host, "NBIRTH", birth, 0)
    got = {s.point: s for s in out.samples}  # type: ignore[attr-defined]
    assert got["program"].value == 1.0
    assert got["program"].quality is Quality.GOOD
    assert got["count"].value == 5.0
    data = [
        metric(alias=1, ts=T + 1000, datatype=TEXT, string_value="  P-200 "),  # padded PLC text
        metric(alias=1, ts=T + 2000, string_value="P-999"),  # not in the enum
    ]
    out = _handle(host, "NDATA", data, 1)
    samples = out.samples  # type: ignore[attr-defined]
    assert [(s.ts, s.quality) for s in samples] == [
        ((T + 1000) * MS, Quality.GOOD),
        ((T + 2000) * MS, Quality.BAD),
    ]
    assert samples[0].value == 2.0
    assert math.isnan(samples[1].value)
    assert samples[1].status == UNKNOWN_TEXT
    assert out.errors == [("press", UNKNOWN_TEXT)]  # type: ignore[attr-defined]


def test_a_number_for_a_text_point_and_a_text_for_a_number_are_wrong_type() -> None:
    host = _host()
    birth = [
        metric("bdSeq", datatype=8, long_value=0),
        metric("Program", alias=1, datatype=STRING, string_value="P-100"),
        metric("Count", alias=2, datatype=INT32, int_value=5),
    ]
    _handle(host, "NBIRTH", birth, 0)
    data = [
        metric(alias=1, ts=T + 1000, datatype=INT32, int_value=2),  # never taken for a code
        metric(alias=2, ts=T + 1000, datatype=STRING, string_value="7"),
    ]
    out = _handle(host, "NDATA", data, 1)
    assert out.samples == []  # type: ignore[attr-defined]
    assert out.errors == [  # type: ignore[attr-defined]
        ("press", "malformed:wrong_type"),
        ("press", "malformed:wrong_type"),
    ]
