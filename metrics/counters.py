"""Cumulative counters (pieces, kWh, m³): increments with resets and rollovers.

A counter's increment is attributed to the instant of the later sample. A negative step is

- a rollover when the counter width is configured (``counter_bits``) and wrapping gives a
  plausible step (less than half the range): the wrapped difference counts;
- else a reset when the new value is at most half the previous one (the counter restarted from
  zero, e.g. a replaced meter or a PLC restart): the new value counts;
- else a backstep (the counter jumped back to a value that cannot be a fresh count, e.g. a
  different data source or a corrected reading): nothing counts, and it is reported.

Bad and NaN samples are skipped. With the value in force before the period (``prior=True``) the
first in-period sample counts from it; without one, the first sample is only the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metrics.series import QUALITY_BAD, Series

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CounterSteps:
    """Increments of a counter: ``ts`` of each later sample and the amount counted there."""

    ts: I64
    inc: F64
    resets: int
    rollovers: int
    backsteps: int
    no_prior: bool  # the first usable sample is inside the period: it only sets the baseline
    samples: int

    @classmethod
    def empty(cls) -> CounterSteps:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), 0, 0, 0, True, 0)

    def total(self, start: int, end: int) -> float:
        m = (self.ts >= start) & (self.ts < end)
        return float(self.inc[m].sum())


def counter_steps(series: Series, start: int, bits: int | None = None) -> CounterSteps:
    """Increments of a cumulative counter from a series read with ``prior=True``."""
    ok = (series.quality != QUALITY_BAD) & np.isfinite(series.values)
    ts = series.ts[ok]
    v = series.values[ok]
    if ts.size == 0:
        return CounterSteps.empty()
    no_prior = bool(ts[0] >= start)
    if ts.size == 1:
        return CounterSteps(
            np.empty(0, np.int64), np.empty(0, np.float64), 0, 0, 0, no_prior, int(ts.size)
        )
    d = np.diff(v)
    neg = d < 0
    resets = rollovers = backsteps = 0
    if neg.any():
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
        backsteps = int(new.size - rollovers - resets)
    else:
        inc = d
    return CounterSteps(
        ts[1:].astype(np.int64),
        inc.astype(np.float64),
        resets,
        rollovers,
        backsteps,
        no_prior,
        int(ts.size),
    )
