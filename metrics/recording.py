"""The time model's reading side: what the engine reads for a period and up to when it is known.

Every series the KPI engine uses goes through :func:`read_period` (docs/kpi.md,
"时间模型 / Time model"; the marker contract is :mod:`config.markers`):

- each point is read with ``prior=True`` over ``[start, end + AFTER_NS)``: the value in force at
  the start, the period, a reading exactly at the end (a counter's ``C(end)``) and the samples
  just after the end (do the data go on past the end?);
- samples at one instant are put in the order "bad first": a good sample at the same instant as
  a marker wins over it (a backfill heals a gap exactly);
- when the prior sample is a marker, the samples at its instant are read too (a good one stored
  before it wins), and a counter is walked back to its last good reading (``C(start)`` is the
  reading at or before the start; a marker is no reading);
- the collector's heartbeat (:data:`config.markers.HEARTBEAT`) is read with ``prior=True`` over
  ``[end, end + AFTER_NS)``.

The *data horizon* is the instant up to which the gateway knows it was recording. A heartbeat
or any sample at or after the period end: the data reach the end, nothing is cut. Otherwise the
horizon is the latest of the prior heartbeat and every sample read, and time after it is outside
the planned busy window (it has not been recorded, e.g. the rest of a live "today"). When the
heartbeat and every sample end before the period starts, the period lies wholly after the last
instant the collector is known to have been recording: every series is closed there as by a
``gateway_down`` marker, so the period reads offline, never a state held for weeks. Without any
heartbeat (older stores, imports, synthetic data) the samples read alone decide. Deterministic:
only what the reader returned is used, and every read is made through the reader (so it is in the
engine's ``reads`` and a reader over an evidence bundle gives the same horizon).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from config.markers import HEARTBEAT, HEARTBEAT_S
from metrics.periods import NS_PER_S
from metrics.series import QUALITY_BAD, Series, SeriesReader

#: how far after the period end the engine looks for samples (and heartbeats)
AFTER_NS = int(2 * HEARTBEAT_S * NS_PER_S)
#: most consecutive markers walked back over to find a counter's reading at the start
MAX_WALK_BACK = 16

Key = tuple[str, str]


@dataclass(frozen=True)
class Recording:
    """The series read for one period (``prior`` sample, period, ``[end, end + AFTER_NS)``),
    whether the collector's heartbeat was found, and the data horizon (``None``: not cut)."""

    series: dict[Key, Series]
    heartbeat: bool
    horizon: int | None
    start: int
    end: int

    def states(self, key: Key) -> Series:
        """The value in force at the start (the last sample before it, a good one winning at its
        instant) and the samples before the end: what holds inside the period."""
        ser = upto(self.series[key], self.end, inclusive=False)
        lo = int(np.searchsorted(ser.ts, self.start, side="left"))
        if lo <= 1:
            return ser
        return Series(ser.ts[lo - 1 :], ser.values[lo - 1 :], ser.quality[lo - 1 :])

    def counter(self, key: Key) -> Series:
        """Samples at or before the end (a counter's ``C(end)`` is the reading at the end), with
        the earlier ones back to the last reading before the start."""
        return upto(self.series[key], self.end, inclusive=True)


def upto(series: Series, t: int, *, inclusive: bool) -> Series:
    hi = int(np.searchsorted(series.ts, t, side="right" if inclusive else "left"))
    if hi == series.ts.size:
        return series
    return Series(series.ts[:hi], series.values[:hi], series.quality[:hi])


def good_wins(series: Series) -> Series:
    """The samples with every marker (bad sample) placed before the good samples of its instant,
    so that the good one is the value in force from that instant (storage order otherwise)."""
    bad = np.flatnonzero(series.quality == QUALITY_BAD)
    if bad.size == 0 or series.ts.size < 2:
        return series
    ts = series.ts
    nxt = np.minimum(bad + 1, ts.size - 1)
    prv = np.maximum(bad - 1, 0)
    tied = ((ts[nxt] == ts[bad]) & (nxt != bad)) | ((ts[prv] == ts[bad]) & (prv != bad))
    if not tied.any():
        return series
    # stable order by (ts, good): bad samples of an instant first
    order = np.lexsort(((series.quality != QUALITY_BAD).astype(np.int8), ts))
    return Series(ts[order], series.values[order], series.quality[order])


def _walk_back(reader: SeriesReader, key: Key, series: Series, start: int, steps: int) -> Series:
    """Complete the value in force at ``start`` when the prior sample is a marker: the samples
    at the marker's instant (a good one stored before it wins), then, for a counter
    (``steps > 1``), earlier samples until a reading (``C(start)``: a marker is no reading)."""
    ser = series
    for _ in range(steps):
        before = ser.ts < start
        if not before.any():
            return ser
        good = ser.quality[before] != QUALITY_BAD
        if (good & np.isfinite(ser.values[before])).any():
            return ser
        t = int(ser.ts[0])
        back = reader.read(key[0], key[1], t, t + 1, prior=True)
        keep = back.ts <= t if steps > 1 else back.ts == t  # a step signal needs one instant
        rest = ser.ts > t
        ser = good_wins(
            Series(
                np.concatenate((back.ts[keep], ser.ts[rest])),
                np.concatenate((back.values[keep], ser.values[rest])),
                np.concatenate((back.quality[keep], ser.quality[rest])),
            )
        )
        if not (back.ts < t).any():
            return ser
    return ser


def data_horizon(series: Iterable[Series], heartbeat: Series, start: int, end: int) -> int | None:
    """The instant the period is cut at (``None``: not cut). Not cut when a heartbeat or any
    sample lies at or after ``end``, nor when nothing was read at or after ``start`` (a period
    after all the data: the no-data rules, staleness and ``kpi.max_hold_s`` apply)."""
    last = [int(s.ts[-1]) for s in (*series, heartbeat) if s.ts.size]
    if not last:
        return None
    latest = max(last)
    if latest >= end or latest < start:
        return None
    return latest


def read_period(
    reader: SeriesReader,
    keys: Sequence[Key],
    counters: Iterable[Key],
    start: int,
    end: int,
    *,
    cut: bool = True,
) -> Recording:
    """Read every series of the period (see the module notes). ``cut=False`` (imported
    history: change-only logs closed by their ``import_end`` marker) never cuts."""
    walk = set(counters)
    out: dict[Key, Series] = {}
    for key in keys:
        ser = good_wins(reader.read(key[0], key[1], start, end + AFTER_NS, prior=True))
        ser = _walk_back(reader, key, ser, start, MAX_WALK_BACK if key in walk else 1)
        out[key] = ser
    hb = reader.read(HEARTBEAT[0], HEARTBEAT[1], end, end + AFTER_NS, prior=True)
    horizon = data_horizon(out.values(), hb, start, end) if cut else None
    if cut and hb.ts.size:
        last = max(int(x.ts[-1]) for x in (*out.values(), hb) if x.ts.size)
        if last < start:
            # the collector was last known recording before the period began: from then on
            # nothing is known (as if a gateway_down marker stood 1 ns after that instant)
            out = {k: _closed(x, last + 1) for k, x in out.items()}
    return Recording(out, bool(hb.ts.size), horizon, start, end)


def _closed(series: Series, at: int) -> Series:
    """``series`` with a marker (bad NaN sample) at ``at`` when its last sample is before it."""
    if series.ts.size == 0 or int(series.ts[-1]) >= at:
        return series
    return Series(
        np.append(series.ts, np.int64(at)),
        np.append(series.values, np.nan),
        np.append(series.quality, np.uint8(QUALITY_BAD)).astype(series.quality.dtype),
    )
