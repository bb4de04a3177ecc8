"""Line protocol encoding (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from connectors.base import Quality, Sample
from edge.store.influx import lineproto
from edge.store.influx.lineproto import LineProtocolError, encode


def lines(*samples: Sample, measurement: str = "samples") -> list[str]:
    return encode(measurement, samples).decode().splitlines()


def test_good_float_sample() -> None:
    assert lines(Sample("cnc1", "spindle_kw", 1_700_000_000_000_000_123, 12.5)) == [
        "samples,device=cnc1,point=spindle_kw value=12.5,quality=0i 1700000000000000123"
    ]


def test_every_line_ends_with_a_newline() -> None:
    body = encode("m", [Sample("a", "b", 1, 1.0), Sample("a", "b", 2, 2.0)])
    assert body.endswith(b"\n")
    assert body.count(b"\n") == 2


def test_uncertain_with_status_keeps_value() -> None:
    s = Sample("d", "p", 5, -3.25, Quality.UNCERTAIN, "UncertainLastUsableValue")
    assert lines(s) == [
        'samples,device=d,point=p value=-3.25,quality=1i,status="UncertainLastUsableValue" 5'
    ]


def test_bad_sample_has_no_value_but_keeps_status() -> None:
    s = Sample("d", "p", 7, math.nan, Quality.BAD, "modbus_exception_2")
    assert lines(s) == ['samples,device=d,point=p quality=2i,status="modbus_exception_2" 7']


def test_bad_sample_with_a_number_still_omits_value() -> None:
    assert lines(Sample("d", "p", 7, 4.0, Quality.BAD)) == ["samples,device=d,point=p quality=2i 7"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_omitted(value: float) -> None:
    assert lines(Sample("d", "p", 1, value)) == ["samples,device=d,point=p quality=0i 1"]


def test_ints_and_bools_become_floats() -> None:
    out = lines(
        Sample("d", "p", 1, True),  # type: ignore[arg-type]
        Sample("d", "p", 2, 2**63),  # type: ignore[arg-type]
        Sample("d", "p", 3, 7),  # type: ignore[arg-type]
    )
    assert out == [
        "samples,device=d,point=p value=1.0,quality=0i 1",
        "samples,device=d,point=p value=9.223372036854776e+18,quality=0i 2",
        "samples,device=d,point=p value=7.0,quality=0i 3",
    ]


def test_numpy_numbers_are_accepted() -> None:
    out = lines(Sample("d", "p", np.int64(5), np.float32(0.5)))  # type: ignore[arg-type]
    assert out == ["samples,device=d,point=p value=0.5,quality=0i 5"]


def test_float_text_round_trips_exactly() -> None:
    for v in (0.1, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 123456789.123456789):
        text = lineproto.format_value(v)
        assert text is not None
        assert float(text) == v


def test_tags_are_escaped() -> None:
    s = Sample("line 1,a=b", "temp=x y", 1, 1.0)
    assert lines(s) == [r"samples,device=line\ 1\,a\=b,point=temp\=x\ y value=1.0,quality=0i 1"]


def test_status_string_is_escaped_and_single_line() -> None:
    s = Sample("d", "p", 1, math.nan, Quality.BAD, 'parse "x"\\y\nz')
    assert lines(s) == [r'samples,device=d,point=p quality=2i,status="parse \"x\"\\y z" 1']


def test_measurement_is_checked() -> None:
    assert lineproto.check_measurement("shop.samples-1") == "shop.samples-1"
    for bad in ("", "a b", "a,b", 'a"b', "a\\b"):
        with pytest.raises(LineProtocolError, match="measurement"):
            lineproto.check_measurement(bad)


@pytest.mark.parametrize(
    ("device", "point", "message"),
    [
        ("", "p", "empty device"),
        ("d", "", "empty point"),
        ("d\\x", "p", "backslashes"),
        ("d", "p\nq", "control characters"),
    ],
)
def test_bad_names_are_refused(device: str, point: str, message: str) -> None:
    with pytest.raises(LineProtocolError, match=message):
        encode("m", [Sample("ok", "ok", 1, 1.0), Sample(device, point, 2, 1.0)])


def test_bad_value_or_timestamp_is_refused() -> None:
    with pytest.raises(LineProtocolError, match="not a number"):
        encode("m", [Sample("d", "p", 1, "twelve")])  # type: ignore[arg-type]
    with pytest.raises(LineProtocolError, match="timestamp must be int ns"):
        encode("m", [Sample("d", "p", 1.5, 1.0)])  # type: ignore[arg-type]
    with pytest.raises(LineProtocolError, match="unknown quality"):
        encode("m", [Sample("d", "p", 1, 1.0, 7)])  # type: ignore[arg-type]


def test_identity_tags_come_first_on_every_line() -> None:
    ident = lineproto.identity_tags("plant a", "gw=1")
    body = encode("samples", [Sample("cnc1", "kw", 5, 1.5)], ident).decode()
    assert body == (
        "samples,site=plant\\ a,gateway=gw\\=1,device=cnc1,point=kw value=1.5,quality=0i 5\n"
    )
    with pytest.raises(LineProtocolError, match="empty site name"):
        lineproto.identity_tags("", "g")


def test_add_identity_tags_only_untagged_lines() -> None:
    ident = lineproto.identity_tags("s", "g")
    old = encode("samples", [Sample("d", "p", 1, 1.0), Sample("d", "q", 2, 2.0, status="x")])
    tagged = encode("samples", [Sample("d", "p", 3, 3.0)], ident)
    fixed = lineproto.add_identity("samples", old + tagged, ident)
    assert fixed.decode().splitlines() == [
        "samples,site=s,gateway=g,device=d,point=p value=1.0,quality=0i 1",
        'samples,site=s,gateway=g,device=d,point=q value=2.0,quality=0i,status="x" 2',
        "samples,site=s,gateway=g,device=d,point=p value=3.0,quality=0i 3",
    ]
    assert lineproto.add_identity("samples", tagged, ident) is tagged
    # a status text that looks like a line start is not touched
    odd = encode("samples", [Sample("d", "p", 4, 4.0, status="\nsamples,device=x")], ident)
    assert lineproto.add_identity("samples", odd, ident) == odd
