"""Sets of half-open time intervals as sorted, disjoint numpy arrays (ns UTC).

The KPI engine measures how much of each state segment falls in a set (the planned busy time,
the planned downtime) without a Python loop per segment: :meth:`IntervalSet.measure_before`
is the cumulative measure of the set up to any instant, so ``|[a, b) ∩ set| = F(b) - F(a)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class IntervalSet:
    starts: I64
    ends: I64

    @classmethod
    def empty(cls) -> IntervalSet:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> IntervalSet:
        """Normalise any pairs (overlapping, unsorted, empty ones dropped)."""
        items = [(a, b) for a, b in pairs if b > a]
        if not items:
            return cls.empty()
        arr = np.array(items, dtype=np.int64)
        return cls.from_arrays(arr[:, 0], arr[:, 1])

    @classmethod
    def from_arrays(cls, starts: I64, ends: I64) -> IntervalSet:
        keep = ends > starts
        s, e = starts[keep], ends[keep]
        if s.size == 0:
            return cls.empty()
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        run_end = np.maximum.accumulate(e)
        # a new interval starts where its start is after every end so far
        new = np.empty(s.size, dtype=bool)
        new[0] = True
        new[1:] = s[1:] > run_end[:-1]
        idx = np.flatnonzero(new)
        out_s = s[idx]
        last = np.append(idx[1:] - 1, s.size - 1)
        out_e = run_end[last]
        return cls(out_s.astype(np.int64), out_e.astype(np.int64))

    @property
    def total(self) -> int:
        return int((self.ends - self.starts).sum())

    def __len__(self) -> int:
        return int(self.starts.size)

    def pairs(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in zip(self.starts, self.ends, strict=True)]

    def clip(self, lo: int, hi: int) -> IntervalSet:
        s = np.clip(self.starts, lo, hi)
        e = np.clip(self.ends, lo, hi)
        keep = e > s
        return IntervalSet(s[keep], e[keep])

    def union(self, other: IntervalSet) -> IntervalSet:
        return IntervalSet.from_arrays(
            np.concatenate([self.starts, other.starts]), np.concatenate([self.ends, other.ends])
        )

    def complement(self, lo: int, hi: int) -> IntervalSet:
        c = self.clip(lo, hi)
        s = np.concatenate([[lo], c.ends]).astype(np.int64)
        e = np.concatenate([c.starts, [hi]]).astype(np.int64)
        keep = e > s
        return IntervalSet(s[keep], e[keep])

    def subtract(self, other: IntervalSet) -> IntervalSet:
        if len(self) == 0:
            return self
        lo, hi = int(self.starts[0]), int(self.ends[-1])
        return self.intersect(other.complement(lo, hi))

    def intersect(self, other: IntervalSet) -> IntervalSet:
        if len(self) == 0 or len(other) == 0:
            return IntervalSet.empty()
        # every boundary of both sets; keep elementary pieces inside both
        pts = np.unique(np.concatenate([self.starts, self.ends, other.starts, other.ends]))
        a, b = pts[:-1], pts[1:]
        mid_in = self.contains(a) & other.contains(a)
        return IntervalSet.from_arrays(a[mid_in], b[mid_in])

    def contains(self, t: I64) -> npt.NDArray[np.bool_]:
        """Whether each instant lies in the set (start inclusive, end exclusive)."""
        k = np.searchsorted(self.starts, t, side="right") - 1
        ok = k >= 0
        kk = np.where(ok, k, 0)
        if self.ends.size == 0:
            return np.zeros(t.shape, dtype=bool)
        return ok & (t < self.ends[kk])

    def closes(self, t: I64) -> npt.NDArray[np.bool_]:
        """Whether each instant lies in ``(start, end]`` of an interval of the set: where a
        counter step read at ``t`` counts (the count over ``[w0, w1)`` is ``C(w1) - C(w0)``)."""
        if self.ends.size == 0:
            return np.zeros(t.shape, dtype=bool)
        k = np.searchsorted(self.starts, t, side="left") - 1  # intervals starting before t
        ok = k >= 0
        kk = np.where(ok, k, 0)
        return ok & (t <= self.ends[kk])

    def measure_before(self, t: I64) -> I64:
        """Measure of ``set ∩ (-inf, t)`` for each instant (vectorised)."""
        if len(self) == 0:
            return np.zeros(t.shape, dtype=np.int64)
        lengths = self.ends - self.starts
        cum = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        k = np.searchsorted(self.starts, t, side="right")  # intervals starting at or before t
        prev = cum[k - 1 + (k == 0)] * (k > 0)  # measure of the intervals before the k-th
        kk = np.maximum(k - 1, 0)
        inside = np.clip(t - self.starts[kk], 0, lengths[kk]) * (k > 0)
        out: I64 = (prev + inside).astype(np.int64)
        return out

    def measure_in(self, a: I64, b: I64) -> I64:
        """``|[a_i, b_i) ∩ set|`` for each pair."""
        return self.measure_before(b) - self.measure_before(a)

    def to_list(self) -> list[list[int]]:
        return [[int(a), int(b)] for a, b in zip(self.starts, self.ends, strict=True)]
