"""Downsampling of a series for plots: per time bucket min / max / mean / last and count.

Pure numpy: a year of one-second samples becomes a few hundred buckets that still show every
spike (min and max) and the value in force at the end of each bucket (last, right for states
and counters). Bad-quality samples and NaN are left out of the statistics and counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass

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
