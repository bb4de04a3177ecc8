"""InfluxQL for reads (pure): time-range selects of one series and their conversion to numpy.

Every select names the series by its tags and bounds time on both sides, so InfluxDB never
returns more than the range asked; big ranges are read in chunks of ``LIMIT n`` rows, the next
chunk starting just after the last timestamp of the previous one (a series has at most one
point per timestamp, so no row is skipped or read twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from metrics.series import Series


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _source(measurement: str, retention_policy: str | None) -> str:
    if retention_policy:
        return f"{quote_ident(retention_policy)}.{quote_ident(measurement)}"
    return quote_ident(measurement)


def site_clause(site: str | None, untagged: bool = False) -> str:
    """`` AND "site" = '..'`` (also points without a site tag when ``untagged``; nothing for
    ``site=None``, a store without an identity)."""
    if site is None:
        return ""
    if untagged:
        return f' AND ("site" = {quote_string(site)} OR "site" = \'\')'
    return f' AND "site" = {quote_string(site)}'


def _where(device: str, point: str, site: str | None, untagged: bool) -> str:
    return f'"device" = {quote_string(device)} AND "point" = {quote_string(point)}' + site_clause(
        site, untagged
    )


def select_range(
    measurement: str,
    device: str,
    point: str,
    start: int,
    end: int,
    limit: int,
    retention_policy: str | None = None,
    site: str | None = None,
    untagged: bool = False,
) -> str:
    """Points with ``start <= time < end`` (ns), oldest first, at most ``limit``, of ``site``
    (see :func:`site_clause`)."""
    return (
        f'SELECT "value", "quality" FROM {_source(measurement, retention_policy)} '
        f"WHERE {_where(device, point, site, untagged)} "
        f"AND time >= {int(start)} AND time < {int(end)} "
        f"ORDER BY time ASC LIMIT {int(limit)}"
    )


def select_prior(
    measurement: str,
    device: str,
    point: str,
    before: int,
    retention_policy: str | None = None,
    site: str | None = None,
    untagged: bool = False,
) -> str:
    """The last point with ``time < before`` of ``site``."""
    return (
        f'SELECT "value", "quality" FROM {_source(measurement, retention_policy)} '
        f"WHERE {_where(device, point, site, untagged)} AND time < {int(before)} "
        "ORDER BY time DESC LIMIT 1"
    )


def series_from_result(series: Sequence[dict[str, Any]]) -> Series:
    """Arrays from the ``series`` of an InfluxQL JSON answer (``epoch=ns``).

    A missing ``value`` (bad sample) becomes NaN; a missing ``quality`` (a point written by
    someone else) counts as good.
    """
    rows: list[list[Any]] = []
    for s in series:
        cols = list(s.get("columns", []))
        values = s.get("values") or []
        if cols[:3] == ["time", "value", "quality"]:
            rows.extend(values)
        else:
            if "time" not in cols:
                raise ValueError(f"InfluxQL answer without a time column: {cols}")
            it = cols.index("time")
            iv = cols.index("value") if "value" in cols else None
            iq = cols.index("quality") if "quality" in cols else None
            rows.extend(
                [r[it], None if iv is None else r[iv], None if iq is None else r[iq]]
                for r in values
            )
    if not rows:
        return Series.empty()
    ts, vals, qual = zip(*rows, strict=True)
    ts_arr = np.array(ts, dtype=np.int64)
    val_arr = np.array(vals, dtype=np.float64)
    q = np.array(qual, dtype=np.float64)
    q_arr = np.nan_to_num(q, nan=0.0).astype(np.uint8)
    if ts_arr.shape[0] > 1 and bool(np.any(np.diff(ts_arr) < 0)):
        order = np.argsort(ts_arr, kind="stable")
        ts_arr, val_arr, q_arr = ts_arr[order], val_arr[order], q_arr[order]
    return Series(ts_arr, val_arr, q_arr)


def concat(parts: Sequence[Series]) -> Series:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Series.empty()
    if len(parts) == 1:
        return parts[0]
    return Series(
        np.concatenate([p.ts for p in parts]),
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.quality for p in parts]),
    )


def select_latest(
    measurement: str,
    retention_policy: str | None = None,
    site: str | None = None,
    device: str | None = None,
) -> str:
    """The newest point of every (device, point) series of ``site`` (only tagged points: a
    shared store's untagged points belong to no site), with its quality, value and status."""
    where = f'"site" = {quote_string(site)}' if site is not None else "time > 0"
    if device is not None:
        where += f' AND "device" = {quote_string(device)}'
    return (
        f'SELECT last("quality") AS "quality", "value", "status" '
        f"FROM {_source(measurement, retention_policy)} "
        f'WHERE {where} GROUP BY "device", "point"'
    )


def latest_from_result(
    series: Sequence[dict[str, Any]],
) -> list[tuple[str, str, int, Any, Any, Any]]:
    """``(device, point, ts, value, quality, status)`` rows of a :func:`select_latest` answer
    (``value`` None for a bad sample, ``status`` None when none was written)."""
    out: list[tuple[str, str, int, Any, Any, Any]] = []
    for s in series:
        tags = s.get("tags") or {}
        cols = list(s.get("columns", []))
        for row in s.get("values") or []:
            rec = dict(zip(cols, row, strict=False))
            out.append(
                (
                    str(tags.get("device", "")),
                    str(tags.get("point", "")),
                    int(rec["time"]),
                    rec.get("value"),
                    rec.get("quality"),
                    rec.get("status"),
                )
            )
    return out
