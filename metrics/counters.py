"""Cumulative counters (pieces, kWh, m³): increments with resets, rollovers and gaps.

The count over ``[s, e)`` is ``C(e) - C(s)``, ``C(t)`` being the reading at or before ``t``
(docs/kpi.md, "时间模型 / Time model"): a step whose later reading is at ``t`` belongs to
``[a, b)`` iff ``a < t <= b``. A reading exactly at the period start is ``C(start)``, not a step of
the period; one exactly at the end is. So the series is read with ``prior=True`` and up to and
including the end (:mod:`metrics.recording`), and splitting a period never changes a sum.

A negative step is

- a rollover when the counter width is configured (``counter_bits``) and wrapping gives a
  plausible step (less than half the range): the wrapped difference counts;
- else a reset when the new value is at most half the previous one (the counter restarted from
  zero, e.g. a replaced meter or a PLC restart): the new value counts;
- else a backstep (the counter jumped back to a value that cannot be a fresh count, e.g. a
  different data source or a corrected reading): nothing counts, and it is reported.

Bad and NaN samples are no readings. Without a reading at or before the period start the first
in-period reading is only the baseline.

Gaps (:class:`GapRule`): an increment whose step spans a gap the recorder would not leave while
it collects cannot be placed in time; it is *unattributed*: kept apart (``gap_*``), not counted,
and the time it spans is uncovered. The rule looks at the step alone, never at the period, so
splitting a period and adding the parts gives the whole period's totals.

- polled points (Modbus, OPC UA ``mode: poll``) store a sample per poll: a step longer than the
  limit (the point's staleness) spans an outage;
- subscribed points (OPC UA, MQTT) only deliver changes, so quiet time outside the planned busy
  window (nights, weekends, holidays) is normal: a step spans an outage when it holds more planned
  busy time than the limit (e.g. a baseline import that ended weeks before the live data), or a
  marker (bad sample: ``link_lost``, ``gateway_down``, a read error) lies *strictly* between its
  two readings. A gap healed by backfill (a good reading at the marker's instant) is no gap;
- imported history (``length_rule=False``) has the cadence of its export file: only the marker
  rule applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from metrics.intervals import IntervalSet
from metrics.series import QUALITY_BAD, Series

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NO_LIMIT = 2**62


def _no_ts() -> I64:
    return np.empty(0, np.int64)


def _no_val() -> F64:
    return np.empty(0, np.float64)


@dataclass(frozen=True)
class GapRule:
    """When a counter's step cannot be placed in time (see the module notes)."""

    limit_ns: int
    polled: bool
    busy: Callable[[int, int], IntervalSet] | None = None  # planned busy time in [a, b)
    length_rule: bool = True

    def too_long(self, a: I64, b: I64) -> npt.NDArray[np.bool_]:
        """Steps ``[a_i, b_i)`` longer than the limit (in planned busy time for subscribed
        points; the calendar is only built over the steps that are long in plain time)."""
        long = (b - a) > self.limit_ns
        if not self.length_rule:
            return np.zeros(a.shape, dtype=bool)
        if self.polled or self.busy is None or not long.any():
            return long
        sel = np.flatnonzero(long)
        win = self.busy(int(a[sel].min()), int(b[sel].max()))
        long[sel] = win.measure_in(a[sel], b[sel]) > self.limit_ns
        return long


@dataclass(frozen=True)
class CounterSteps:
    """Increments of a counter: ``ts`` of each later sample and the amount counted there.

    ``gap_from``/``gap_to``/``gap_inc``: steps that could not be placed in time (not counted);
    ``uncovered``: the time of the period without placeable counter data."""

    ts: I64
    inc: F64
    resets: int
    rollovers: int
    backsteps: int
    no_prior: bool  # the first usable sample is inside the period: it only sets the baseline
    samples: int
    gap_from: I64 = field(default_factory=_no_ts)
    gap_to: I64 = field(default_factory=_no_ts)
    gap_inc: F64 = field(default_factory=_no_val)
    uncovered: IntervalSet = field(default_factory=IntervalSet.empty)

    @classmethod
    def empty(cls) -> CounterSteps:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), 0, 0, 0, True, 0)

    def total(self, start: int, end: int) -> float:
        """``C(end) - C(start)``: the steps read in ``(start, end]``."""
        m = (self.ts > start) & (self.ts <= end)
        return float(self.inc[m].sum())

    def unattributed(self, start: int, end: int) -> float:
        """The increments of unplaceable steps whose later reading is in ``(start, end]``."""
        m = (self.gap_to > start) & (self.gap_to <= end)
        return float(self.gap_inc[m].sum())

    def unattributed_steps(self, start: int, end: int) -> int:
        return int(((self.gap_to > start) & (self.gap_to <= end)).sum())

    def coverage(self, start: int, end: int) -> float | None:
        """Share of ``[start, end)`` with placeable counter data."""
        if end <= start:
            return None
        return 1.0 - self.uncovered.clip(start, end).total / (end - start)


def _steps(v: F64, bits: int | None) -> tuple[F64, int, int, int]:
    d = np.diff(v)
    neg = d < 0
    if not neg.any():
        return d, 0, 0, 0
    inc = d.copy()
    prev = v[:-1][neg]
    new = v[1:][neg]
    if bits is not None:
        span = float(2**bits)
        wrapped = new + span - prev
        is_roll = wrapped < span / 2
    else:
        wrapped = new
        is_roll = np.zeros(new.shape, dtype=bool)
    is_reset = ~is_roll & (new <= prev / 2)
    inc[neg] = np.where(is_roll, wrapped, np.where(is_reset, new, 0.0))
    rollovers = int(is_roll.sum())
    resets = int(is_reset.sum())
    return inc, resets, rollovers, int(new.size - rollovers - resets)


def counter_steps(
    series: Series,
    start: int,
    bits: int | None = None,
    *,
    rule: GapRule | None = None,
    end: int | None = None,
) -> CounterSteps:
    """Increments of a cumulative counter from a series read with ``prior=True`` (up to and
    including ``end``; a marker at or before the prior reading may precede it).

    Without ``rule`` every step is placed at its later sample. With it (and the period's
    ``end``, needed for the uncovered time), unplaceable steps are kept apart."""
    ok = (series.quality != QUALITY_BAD) & np.isfinite(series.values)
    idx = np.flatnonzero(ok)
    ts = series.ts[idx]
    v = series.values[idx]
    hi = start if end is None else end
    if ts.size == 0:
        empty = CounterSteps.empty()
        if rule is None or hi <= start:
            return empty
        return CounterSteps(
            empty.ts, empty.inc, 0, 0, 0, True, 0, uncovered=IntervalSet.of([(start, hi)])
        )
    no_prior = bool(ts[0] > start)
    inc, resets, rollovers, backsteps = (
        _steps(v, bits) if ts.size > 1 else (np.empty(0, np.float64), 0, 0, 0)
    )
    later = ts[1:].astype(np.int64)
    if rule is None:
        return CounterSteps(
            later, inc.astype(np.float64), resets, rollovers, backsteps, no_prior, int(ts.size)
        )
    unpl = rule.too_long(ts[:-1].astype(np.int64), later)
    if not rule.polled and idx.size < series.ts.size:
        # a marker strictly between the two readings: changes may have been missed
        marks = np.sort(series.ts[~ok])
        first = ts[:-1].astype(np.int64)
        unpl |= np.searchsorted(marks, first, side="right") < np.searchsorted(
            marks, later, side="left"
        )
    limit = rule.limit_ns if rule.length_rule else NO_LIMIT
    off_a: list[int] = []
    off_b: list[int] = []
    if no_prior:
        off_a.append(start)
        off_b.append(int(ts[0]))
    if rule.polled and int(ts[-1]) + limit < hi:
        off_a.append(int(ts[-1]) + limit)
        off_b.append(hi)
    elif int(idx[-1]) < series.ts.size - 1:  # bad samples after the last good one
        off_a.append(int(series.ts[int(idx[-1]) + 1]))
        off_b.append(hi)
    gap_from = ts[:-1][unpl].astype(np.int64)
    gap_to = later[unpl]
    uncovered = IntervalSet.from_arrays(
        np.concatenate([np.array(off_a, np.int64), np.maximum(gap_from, start)]),
        np.concatenate([np.array(off_b, np.int64), gap_to]),
    ).clip(start, max(hi, start))
    keep = ~unpl
    return CounterSteps(
        later[keep],
        inc[keep].astype(np.float64),
        resets,
        rollovers,
        backsteps,
        no_prior,
        int(ts.size),
        gap_from,
        gap_to,
        inc[unpl].astype(np.float64),
        uncovered,
    )
