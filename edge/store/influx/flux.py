"""Flux for reads through the v2 API (pure): time-range queries of one series and the parsing
of their CSV answer (no annotations, header row, RFC 3339 timestamps with nanoseconds)."""

from __future__ import annotations

import calendar
import csv
import io

import numpy as np

from metrics.series import Series

FLUX_MIN_START = 0
"""Prior-value lookups search from the Unix epoch on."""


def flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def site_predicate(site: str | None, untagged: bool = False) -> str:
    """`` and r.site == ".."`` (also rows without a site tag when ``untagged``; nothing for
    ``site=None``, a store without an identity)."""
    if site is None:
        return ""
    if untagged:
        return f" and (not exists r.site or r.site == {flux_string(site)})"
    return f" and r.site == {flux_string(site)}"


def _series_filter(
    bucket: str,
    measurement: str,
    device: str,
    point: str,
    start: int,
    stop: int,
    site: str | None,
    untagged: bool,
) -> str:
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: time(v: {int(start)}), stop: time(v: {int(stop)}))\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(measurement)}"
        f" and r.device == {flux_string(device)} and r.point == {flux_string(point)}"
        f"{site_predicate(site, untagged)})\n"
        '  |> filter(fn: (r) => r._field == "value" or r._field == "quality")\n'
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        "  |> group()\n"
        '  |> keep(columns: ["_time", "value", "quality"])\n'
    )


def select_range(
    bucket: str,
    measurement: str,
    device: str,
    point: str,
    start: int,
    end: int,
    limit: int,
    site: str | None = None,
    untagged: bool = False,
) -> str:
    """Points with ``start <= _time < end`` (ns), oldest first, at most ``limit``, of ``site``."""
    head = _series_filter(bucket, measurement, device, point, start, end, site, untagged)
    return head + f'  |> sort(columns: ["_time"])\n  |> limit(n: {int(limit)})\n'


def select_prior(
    bucket: str,
    measurement: str,
    device: str,
    point: str,
    before: int,
    site: str | None = None,
    untagged: bool = False,
) -> str:
    """The last point with ``_time < before`` of ``site``."""
    head = _series_filter(
        bucket, measurement, device, point, FLUX_MIN_START, before, site, untagged
    )
    return head + '  |> sort(columns: ["_time"], desc: true)\n  |> limit(n: 1)\n'


def parse_rfc3339_ns(text: str) -> int:
    """``2026-01-02T03:04:05.123456789Z`` (or with an offset) -> int ns since the epoch (UTC)."""
    t = text.strip()
    offset_s = 0
    if t.endswith(("Z", "z")):
        t = t[:-1]
    elif len(t) > 6 and t[-6] in "+-" and t[-3] == ":":
        sign = 1 if t[-6] == "+" else -1
        offset_s = sign * (int(t[-5:-3]) * 3600 + int(t[-2:]) * 60)
        t = t[:-6]
    else:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    if "." in t:
        t, frac = t.split(".", 1)
        if not frac.isdigit() or len(frac) > 9:
            raise ValueError(f"bad fraction of a second in {text!r}")
        frac_ns = int(frac.ljust(9, "0"))
    else:
        frac_ns = 0
    try:
        date, clock = t.split("T") if "T" in t else t.split(" ")
        y, mo, d = (int(x) for x in date.split("-"))
        h, mi, s = (int(x) for x in clock.split(":"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset_s
    return seconds * 1_000_000_000 + frac_ns


def _float(text: str) -> float:
    return float(text) if text else float("nan")


def series_from_csv(text: str) -> Series:
    """Arrays from a Flux CSV answer holding ``_time``, ``value`` and ``quality`` columns
    (a missing ``value`` column, when every sample of the range is bad, gives NaN).

    Tables are separated by blank lines and each repeats its header; ``#`` lines (annotations)
    are ignored. An empty ``value`` (bad sample) becomes NaN, an empty ``quality`` good.
    """
    ts: list[int] = []
    vals: list[float] = []
    qual: list[float] = []
    header: list[str] | None = None
    it = iv = iq = 0
    rows = csv.reader(io.StringIO(text))
    for row in rows:
        if not row or all(not c for c in row):
            header = None
            continue
        if row[0].startswith("#"):
            continue
        if header is None:
            header = row
            if "error" in header:
                detail = next(rows, [])
                raise ValueError(f"Flux error: {', '.join(detail) or 'no details'}")
            if "_time" not in header:
                raise ValueError(f"Flux answer without a _time column: {header}")
            # a range where every sample is bad has no "value" column after the pivot
            it = header.index("_time")
            iv = header.index("value") if "value" in header else -1
            iq = header.index("quality") if "quality" in header else -1
            continue
        ts.append(parse_rfc3339_ns(row[it]))
        vals.append(_float(row[iv]) if iv >= 0 else float("nan"))
        qual.append(_float(row[iq]) if iq >= 0 else 0.0)
    if not ts:
        return Series.empty()
    ts_arr = np.array(ts, dtype=np.int64)
    q_arr = np.nan_to_num(np.array(qual, dtype=np.float64), nan=0.0).astype(np.uint8)
    val_arr = np.array(vals, dtype=np.float64)
    if ts_arr.shape[0] > 1 and bool(np.any(np.diff(ts_arr) < 0)):
        order = np.argsort(ts_arr, kind="stable")
        ts_arr, val_arr, q_arr = ts_arr[order], val_arr[order], q_arr[order]
    return Series(ts_arr, val_arr, q_arr)
