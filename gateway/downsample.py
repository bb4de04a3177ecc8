"""Downsampling of a series for plots: per time bucket min / max / mean / last and count.

Pure numpy: a year of one-second samples becomes a few hundred buckets that still show every
spike (min and max) and the value in force at the end of each bucket (last, right for states
and counters). Bad-quality samples and NaN are left out of the statistics and counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from metrics.series import QUALITY_BAD, Series

MAX_BUCKETS = 5000


@dataclass(frozen=True, slots=True)
class Buckets:
    start_ns: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    bad: npt.NDArray[np.int64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    width_ns: int


def downsample(series: Series, start: int, end: int, buckets: int) -> Buckets:
    """Split ``[start, end)`` into ``buckets`` equal buckets (empty ones give NaN and count 0)."""
    if end <= start:
        raise ValueError("end must be after start")
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets must be between 1 and {MAX_BUCKETS}")
    width = max(1, -(-(end - start) // buckets))  # ceil division
    n = int(-(-(end - start) // width))
    starts = start + np.arange(n, dtype=np.int64) * width
    ts, values, quality = series.ts, series.values, series.quality
    inside = (ts >= start) & (ts < end)
    ts, values, quality = ts[inside], values[inside], quality[inside]
    idx = ((ts - start) // width).astype(np.int64)
    count = np.bincount(idx, minlength=n).astype(np.int64)
    usable = (quality != QUALITY_BAD) & ~np.isnan(values)
    bad = np.bincount(idx[~usable], minlength=n).astype(np.int64)
    u_idx, u_val = idx[usable], values[usable]
    good_n = np.bincount(u_idx, minlength=n)
    vmin = np.full(n, np.inf)
    vmax = np.full(n, -np.inf)
    np.minimum.at(vmin, u_idx, u_val)
    np.maximum.at(vmax, u_idx, u_val)
    sums = np.bincount(u_idx, weights=u_val, minlength=n)
    empty = good_n == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(empty, np.nan, sums / np.maximum(good_n, 1))
    vmin[empty] = np.nan
    vmax[empty] = np.nan
    last = np.full(n, np.nan)
    if u_idx.size:
        # samples are in time order: the last occurrence of each bucket index is its last value
        rev = u_idx[::-1]
        uniq, first_in_rev = np.unique(rev, return_index=True)
        last[uniq] = u_val[::-1][first_in_rev]
    return Buckets(starts, count, bad, vmin, vmax, mean.astype(np.float64), last, int(width))


def add_minutes(b: Buckets, minutes: list[tuple[Any, ...]], start: int) -> Buckets:
    """``b`` (the buckets of the raw samples still stored) with the per-minute aggregates of
    removed raw samples (``SqliteStore.minutes`` rows: minute start, n, good, min, max, sum,
    last_ts, last) added into the bucket holding each minute's start. The minutes lie before
    the raw samples, so a bucket's last is the raw one when it has one."""
    if not minutes:
        return b
    n = b.count.shape[0]
    count, bad = b.count.copy(), b.bad.copy()
    good = count - bad
    vmin, vmax, last = b.min.copy(), b.max.copy(), b.last.copy()
    sums = np.where(good > 0, b.mean * good, 0.0)
    raw_last = ~np.isnan(b.last)
    last_m = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    for m_ts, m_n, m_good, m_min, m_max, m_sum, m_last_ts, m_last in minutes:
        i = (int(m_ts) - start) // b.width_ns
        if not 0 <= i < n:
            continue
        count[i] += int(m_n)
        bad[i] += int(m_n) - int(m_good)
        if not m_good:
            continue
        good[i] += int(m_good)
        sums[i] += float(m_sum)
        vmin[i] = m_min if np.isnan(vmin[i]) else min(vmin[i], m_min)
        vmax[i] = m_max if np.isnan(vmax[i]) else max(vmax[i], m_max)
        if not raw_last[i] and int(m_last_ts) >= last_m[i]:
            last[i], last_m[i] = m_last, int(m_last_ts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(good > 0, sums / np.maximum(good, 1), np.nan)
    return Buckets(b.start_ns, count, bad, vmin, vmax, mean.astype(np.float64), last, b.width_ns)
