"""InfluxQL and Flux query text and answer parsing (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.store.influx import flux, influxql


def test_influxql_quoting() -> None:
    assert influxql.quote_string("it's a\\b") == "'it\\'s a\\\\b'"
    assert influxql.quote_ident('we"ird') == '"we\\"ird"'


def test_select_range_bounds_both_sides_and_limits() -> None:
    q = influxql.select_range("samples", "cnc1", "state", 100, 200, 5000, "autogen")
    assert q == (
        'SELECT "value", "quality" FROM "autogen"."samples" '
        "WHERE \"device\" = 'cnc1' AND \"point\" = 'state' AND time >= 100 AND time < 200 "
        "ORDER BY time ASC LIMIT 5000"
    )


def test_select_prior() -> None:
    q = influxql.select_prior("samples", "d'1", "p", 100)
    assert q.endswith("AND time < 100 ORDER BY time DESC LIMIT 1")
    assert "\"device\" = 'd\\'1'" in q


def test_series_from_result_nulls_and_order() -> None:
    series = [
        {
            "name": "samples",
            "columns": ["time", "value", "quality"],
            "values": [[30, 1.5, 0], [10, None, 2], [20, 2.5, None]],
        }
    ]
    s = influxql.series_from_result(series)
    assert s.ts.tolist() == [10, 20, 30]
    assert s.ts.dtype == np.int64
    assert math.isnan(s.values[0])
    assert s.values[1:].tolist() == [2.5, 1.5]
    assert s.quality.tolist() == [2, 0, 0]
    assert s.quality.dtype == np.uint8


def test_series_from_result_other_column_order() -> None:
    series = [{"columns": ["time", "quality", "value"], "values": [[1, 1, 9.0]]}]
    s = influxql.series_from_result(series)
    assert (s.ts.tolist(), s.values.tolist(), s.quality.tolist()) == ([1], [9.0], [1])


def test_series_from_result_missing_columns() -> None:
    s = influxql.series_from_result([{"columns": ["time", "quality"], "values": [[4, 2]]}])
    assert (s.ts.tolist(), s.quality.tolist()) == ([4], [2])
    assert math.isnan(s.values[0])
    with pytest.raises(ValueError, match="without a time column"):
        influxql.series_from_result([{"columns": ["value"], "values": [[1.0]]}])


def test_empty_result() -> None:
    assert len(influxql.series_from_result([])) == 0
    assert len(influxql.concat([])) == 0


def test_flux_query_text() -> None:
    q = flux.select_range("bucket", "samples", 'dev"1', "p", 10, 20, 100)
    assert 'from(bucket: "bucket")' in q
    assert "range(start: time(v: 10), stop: time(v: 20))" in q
    assert 'r.device == "dev\\"1"' in q
    assert q.rstrip().endswith("limit(n: 100)")
    p = flux.select_prior("bucket", "samples", "d", "p", 10)
    assert "range(start: time(v: 0), stop: time(v: 10))" in p
    assert 'sort(columns: ["_time"], desc: true)' in p


def test_flux_string_escapes_interpolation() -> None:
    assert flux.flux_string("a${b}") == '"a\\${b}"'


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-01-02T03:04:05.123456789Z", 1767323045123456789),
        ("2026-01-02T03:04:05.5Z", 1767323045500000000),
        ("2026-01-02T11:04:05+08:00", 1767323045000000000),
    ],
)
def test_parse_rfc3339_ns(text: str, ns: int) -> None:
    assert flux.parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize("bad", ["2026-01-02T03:04:05", "yesterday Z", "2026-01-02T03:04:05.x1Z"])
def test_parse_rfc3339_ns_refuses_bad_text(bad: str) -> None:
    with pytest.raises(ValueError, match=r"timestamp|RFC 3339|fraction"):
        flux.parse_rfc3339_ns(bad)


def test_series_from_flux_csv_with_two_tables() -> None:
    text = (
        ",result,table,_time,quality,value\r\n"
        ",_result,0,1970-01-01T00:00:00.000000002Z,0,2.5\r\n"
        ",_result,0,1970-01-01T00:00:00.000000001Z,2,\r\n"
        "\r\n"
        ",result,table,_time,quality,value\r\n"
        ",_result,1,1970-01-01T00:00:00.000000003Z,,4\r\n"
    )
    s = flux.series_from_csv(text)
    assert s.ts.tolist() == [1, 2, 3]
    assert math.isnan(s.values[0])
    assert s.values[1:].tolist() == [2.5, 4.0]
    assert s.quality.tolist() == [2, 0, 0]


def test_flux_csv_without_value_column_when_all_bad() -> None:
    s = flux.series_from_csv(
        ",result,table,_time,quality\r\n,_result,0,1970-01-01T00:00:00.000000005Z,2\r\n"
    )
    assert s.ts.tolist() == [5]
    assert math.isnan(s.values[0])
    assert s.quality.tolist() == [2]


def test_flux_csv_error_and_missing_columns() -> None:
    with pytest.raises(ValueError, match="Flux error: bucket not found"):
        flux.series_from_csv("error,reference\r\nbucket not found,\r\n")
    with pytest.raises(ValueError, match="without a _time column"):
        flux.series_from_csv(",result,table,time,other\r\n,_result,0,x,1\r\n")
    assert len(flux.series_from_csv("")) == 0


def test_reads_filter_by_site() -> None:
    q = influxql.select_range("samples", "d", "p", 0, 10, 5, None, "plant'a")
    assert "\"point\" = 'p' AND \"site\" = 'plant\\'a' AND time >= 0" in q
    q = influxql.select_prior("samples", "d", "p", 10, None, "s", untagged=True)
    assert "AND (\"site\" = 's' OR \"site\" = '') AND time < 10" in q
    assert "site" not in influxql.select_range("samples", "d", "p", 0, 10, 5)
    f = flux.select_range("b", "samples", "d", "p", 0, 10, 5, "s")
    assert 'r.point == "p" and r.site == "s")' in f
    f = flux.select_prior("b", "samples", "d", "p", 10, "s", untagged=True)
    assert 'and (not exists r.site or r.site == "s"))' in f


def test_retention_durations() -> None:
    from edge.store.influx.retention import duration_s, influx_duration_s

    assert duration_s("400d") == 400 * 86400
    assert duration_s("52w") == 52 * 7 * 86400
    assert duration_s("INF") == 0
    assert influx_duration_s("9600h0m0s") == 400 * 86400
    assert influx_duration_s("0s") == 0
    assert influx_duration_s("1h30m0s") == 5400
    with pytest.raises(ValueError, match="not an InfluxDB duration"):
        influx_duration_s("9600x")
