"""RouteDecoder (decode compiled once per route) gives exactly what decode() gives; the cheaper
Sample construction gives the same samples as the constructor."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from config.models import Point
from connectors.base import Quality, Sample
from connectors.mqtt import samples as samples_mod
from connectors.mqtt.payload import FieldSpec, RouteDecoder, compile_spec, decode
from tests.mqtt.test_payload import CASES, _spec


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_cases_through_the_route_decoder(case: dict[str, Any]) -> None:
    payload = bytes.fromhex(case["hex"]) if "hex" in case else case["text"].encode("utf-8")
    decoder = RouteDecoder([_spec(p) for p in case["points"]])
    got = decoder(payload, case.get("received_ns", 0), case.get("max_bytes", 65536))
    assert [list(v) for v in got.values] == case["values"]
    assert [list(e) for e in got.errors] == case["errors"]


def _point(pid: str, pointer: str | None, **extra: Any) -> FieldSpec:
    addr: dict[str, Any] = {"topic": "t"}
    if pointer is not None:
        addr["pointer"] = pointer
    for key in ("ts_pointer", "ts_format"):
        if key in extra:
            addr[key] = extra.pop(key)
    return compile_spec(Point.model_validate({"id": pid, "mqtt": addr, **extra}))


SPECS = [
    _point("f", "/a/b", ts_pointer="/ts"),
    _point("u", "/a/c", datatype="uint32", ts_pointer="/ts"),
    _point("i", "/a/c", datatype="int16"),
    _point("b", "/flag", datatype="bool"),
    _point("s", "/a/b", scale=2.0, offset=1.0, ts_pointer="/t2", ts_format="iso8601"),
    _point("l", "/list/1"),  # a digit token: list index or dict key
    _point("l0", "/list/01"),
    _point("w", ""),  # the whole document
    _point("k", "/a~1b/x~0y"),
]

VALUES: list[Any] = [
    1,
    -3,
    2.5,
    -0.0,
    True,
    False,
    None,
    "7",
    [1, 2, 3],
    {"1": 4},
    10**400,  # beyond float64
    "1e999",
]


def _documents() -> list[bytes]:
    docs: list[bytes] = [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"12",
        b"NaN",
        b'{"a": {"b": 1e999}}',
        b'{"a": {"b": 1}} trailing',
        b'  {"a": {"b": 1}}  ',
        b'{"a": {"b": 1}, "ts": 1767225600123, "t2": "2026-01-01T00:00:00+08:00"}',
        b'{"a": {"b": 1}, "ts": "x", "t2": "2026-01-01T00:00:00"}',
        b'{"a": {"b": 1}, "ts": 12}',
        b'{"a/b": {"x~y": 5}, "a": 3}',
        b"x" * 300,
    ]
    for b, c, flag, lst in itertools.product(VALUES, VALUES[:6], VALUES[4:7], VALUES[7:10]):
        doc = {"a": {"b": b, "c": c}, "flag": flag, "list": lst, "ts": 1767225600123}
        docs.append(json.dumps(doc).encode())
    return docs


def test_the_route_decoder_agrees_with_decode_on_every_document() -> None:
    decoder = RouteDecoder(SPECS)
    docs = _documents()
    assert len(docs) > 500
    for payload in docs:
        want = decode(payload, SPECS, 5, 256)
        got = decoder(payload, 5, 256)
        assert got.values == want.values, payload
        assert got.errors == want.errors, payload


def test_a_route_with_a_plain_number_point_uses_decode() -> None:
    specs = [_point("p", None), _point("j", "/v")]
    decoder = RouteDecoder(specs)
    for payload in (b"12.5", b'{"v": 1}', b"true", b"x"):
        want = decode(payload, specs, 9, 1024)
        got = decoder(payload, 9, 1024)
        assert (got.values, got.errors) == (want.values, want.errors)


def test_an_integer_beyond_float64_is_a_wrong_type_not_a_crash() -> None:
    specs = [_point("f", "/v"), _point("g", "/v", scale=2.0)]
    payload = json.dumps({"v": 10**400}).encode()
    for got in (decode(payload, specs, 0, 4096), RouteDecoder(specs)(payload, 0, 4096)):
        assert got.values == []
        assert got.errors == [("f", "wrong_type"), ("g", "wrong_type")]


def test_good_samples_are_the_same_as_the_constructor_gives() -> None:
    values = [("p", 1, 2.5), ("q", 2**62, -0.0), ("r", 0, float("nan"))]
    fast: list[Sample] = []
    plain: list[Sample] = []
    samples_mod.good_samples(values=values, device="dev", out=fast)
    samples_mod.good_samples_plain("dev", values, plain)
    assert samples_mod.good_samples is samples_mod.good_samples_direct  # Sample has slots
    assert [type(s) for s in fast] == [Sample] * 3
    assert fast[:2] == plain[:2]
    assert hash(fast[0]) == hash(Sample("dev", "p", 1, 2.5))
    assert all(s.quality is Quality.GOOD and s.status == "" for s in fast)
    assert repr(fast[2]) == repr(plain[2])  # nan != nan: compare the text
    with pytest.raises(AttributeError):
        fast[0].value = 1.0  # type: ignore[misc]
