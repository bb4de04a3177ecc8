from __future__ import annotations

import pytest

from metrics.imports import MeterImportError, parse_meter_csv
from tests.metrics.sites import machine, site

SITE = site([machine("m1")], tz="Asia/Shanghai")


def test_iso_local_offset_and_unix_seconds_sorted() -> None:
    text = (
        "device,point,ts,value\n"
        "m1,good,2026-01-01T08:00:00,5\n"
        "m1,good,2026-01-01T00:30:00+00:00,6\n"
        "m1,good,1767225600,4\n"  # 2026-01-01T00:00:00Z
        "m1,state,2026-01-01T08:00:00,0\n"
    )
    got = parse_meter_csv(text, SITE, "x.csv")
    assert [(s.device, s.point) for s in got] == [("m1", "good"), ("m1", "state")]
    good = got[0]
    # 08:00 in Shanghai is 00:00 UTC: the Unix-seconds row and the local row coincide
    assert good.ts.tolist() == [1767225600 * 10**9, 1767225600 * 10**9, 1767227400 * 10**9]
    assert good.values.tolist() == [5.0, 4.0, 6.0]


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("device,point,value\nm1,good,1\n", "missing column(s) ts"),
        ("device,point,ts,value\n", "no rows"),
        ("device,point,ts,value\nm1,good,2026-01-01T08:00,inf\n", "x.csv:2: value 'inf'"),
        ("device,point,ts,value\nm1,speed,2026-01-01T08:00,1\n", "m1/speed is not a point"),
        ("device,point,ts,value\nm1,good,08:00 today,1\n", "x.csv:2: ts '08:00 today'"),
    ],
)
def test_bad_rows_reject_the_whole_file(text: str, msg: str) -> None:
    with pytest.raises(MeterImportError) as info:
        parse_meter_csv(text, SITE, "x.csv")
    assert msg in str(info.value)


def test_many_problems_are_capped() -> None:
    rows = "".join(f"m1,good,bad{i},1\n" for i in range(80))
    with pytest.raises(MeterImportError) as info:
        parse_meter_csv("device,point,ts,value\n" + rows, SITE, "x.csv")
    assert len(info.value.issues) == 51
    assert "stopped after 50 problems" in info.value.issues[-1]
