"""Pure payload decoding: golden cases (tests/golden/mqtt/cases.json) and spec compilation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.models import Point
from connectors.mqtt.payload import (
    REASONS,
    FieldSpec,
    RouteDecoder,
    SpecError,
    compile_spec,
    decode,
    to_ns,
    zone,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mqtt" / "cases.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))["cases"]


def _spec(p: dict[str, Any]) -> FieldSpec:
    addr = {"topic": "t"}
    addr.update({k: p[k] for k in ("pointer", "ts_pointer", "ts_format") if k in p})
    point = Point.model_validate(
        {"id": p["id"], "mqtt": addr}
        | {k: p[k] for k in ("datatype", "scale", "offset", "enum") if k in p}
    )
    return compile_spec(point, zone(p.get("timezone", "UTC")))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden(case: dict[str, Any]) -> None:
    payload = bytes.fromhex(case["hex"]) if "hex" in case else case["text"].encode("utf-8")
    specs = [_spec(p) for p in case["points"]]
    got = decode(payload, specs, case.get("received_ns", 0), case.get("max_bytes", 65536))
    assert [list(v) for v in got.values] == case["values"]
    assert [list(e) for e in got.errors] == case["errors"]
    assert [list(b) for b in got.bad] == case.get("bad", [])
    for _, reason in got.errors:
        assert reason in REASONS
    if all(s.pointer is not None for s in specs):  # the compiled route decoder agrees
        fast = RouteDecoder(specs)(
            payload, case.get("received_ns", 0), case.get("max_bytes", 65536)
        )
        assert sorted(map(list, fast.values)) == sorted(case["values"])
        assert sorted(map(list, fast.errors), key=str) == sorted(case["errors"], key=str)
        assert sorted(map(list, fast.bad)) == sorted(case.get("bad", []))


def test_golden_cover_every_reason() -> None:
    seen = {e[1] for c in CASES for e in c["errors"]}
    assert seen == set(REASONS)


def test_float_timestamp_keeps_sub_ms_precision() -> None:
    assert to_ns(1767225600123.5, "epoch_ms") == 1767225600123500000
    assert to_ns(1767225600, "epoch_s") == 1767225600 * 10**9
    assert to_ns("2026-01-01T00:00:00Z", "iso8601") == 1767225600 * 10**9
    assert to_ns(float("inf"), "epoch_s") == "ts_out_of_range"
    assert to_ns(3_000_000_000_000, "epoch_s") == "ts_out_of_range"  # year > 2100


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"id": "x", "datatype": "string", "mqtt": {"topic": "a", "pointer": "/s"}}, "string"),
        ({"id": "x", "mqtt": {"topic": "a", "ts_pointer": "/ts"}}, "ts_pointer needs a JSON"),
    ],
)
def test_specs_that_cannot_work_are_refused(point: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        compile_spec(Point.model_validate(point))
