"""Change-based recording: deadband plus heartbeat (pure).

A point with a ``deadband`` stores a sample only when

- its value moved beyond the deadband from the last *kept* value (absolute, or a percent of
  ``deadband.range``; a percent deadband without a range is a percent of the last kept value),
- or the heartbeat elapsed since the last kept sample (``point.heartbeat_s``, else
  ``runtime.heartbeat_s``),
- or its quality or status changed (a NaN appearing or disappearing counts as a change).

Bad samples are always kept. Points without a deadband keep every sample. A block
(:class:`connectors.base.SampleBlock`) of a device without any deadbanded point passes
untouched (:meth:`Recorder.filter_block`); a block of distinct points without statuses (a
poll) is decided with arrays (the rules of its ``points`` tuple cached as arrays); other blocks
row by row, with the same result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from config.models import Deadband, SiteConfig
from connectors.base import Quality, Sample, SampleBlock


@dataclass(frozen=True, slots=True)
class Rule:
    """The recording rule of one point: keep a change of at least ``threshold`` (absolute
    units) or ``percent`` of the last kept value, and at least one sample per ``heartbeat_ns``."""

    threshold: float
    heartbeat_ns: int
    percent: float | None = None

    def limit(self, last: float) -> float:
        if self.percent is not None:
            return abs(last) * self.percent / 100.0
        return self.threshold


def rule_for(deadband: Deadband, heartbeat_s: float) -> Rule:
    hb = int(heartbeat_s * 1e9)
    if deadband.kind == "absolute":
        return Rule(deadband.value, hb)
    if deadband.range is not None:
        return Rule(deadband.value / 100.0 * deadband.range, hb)
    return Rule(0.0, hb, percent=deadband.value)


def rules_of(site: SiteConfig) -> dict[tuple[str, str], Rule]:
    """Recording rules of every deadbanded point of the site, keyed by (device, point)."""
    out: dict[tuple[str, str], Rule] = {}
    for dev in site.devices:
        for p in dev.points:
            if p.deadband is not None:
                hb = p.heartbeat_s if p.heartbeat_s is not None else site.runtime.heartbeat_s
                out[(dev.id, p.id)] = rule_for(p.deadband, hb)
    return out


class _Last:
    __slots__ = ("quality", "status", "ts", "value")

    def __init__(self, s: Sample) -> None:
        self.value = s.value
        self.ts = s.ts
        self.quality = s.quality
        self.status = s.status


@dataclass(frozen=True, slots=True)
class _PlanRules:
    """The rules of the points of one ``points`` tuple (a connector's read plan) as arrays."""

    device: str
    points: tuple[str, ...]
    ruled: npt.NDArray[np.bool_]
    threshold: npt.NDArray[np.float64]
    percent: npt.NDArray[np.float64]  # NaN: absolute threshold
    heartbeat_ns: npt.NDArray[np.int64]
    unique: bool


_BAD = int(Quality.BAD)


class Recorder:
    """Filters samples through the recording rules; remembers the last kept sample per point.

    The state lives across batches (and is per process: after a restart the first sample of
    every point is kept, which is also the honest start of a new recording)."""

    def __init__(self, rules: dict[tuple[str, str], Rule]) -> None:
        self.rules = rules
        self._devices = frozenset(d for d, _ in rules)
        self._plans: dict[int, _PlanRules] = {}
        self._last: dict[tuple[str, str], _Last] = {}
        self.seen = 0
        self.kept = 0

    @classmethod
    def for_site(cls, site: SiteConfig) -> Recorder:
        return cls(rules_of(site))

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def keep(self, s: Sample) -> bool:
        """Decide for one sample (and remember it when kept)."""
        key = (s.device, s.point)
        rule = self.rules.get(key)
        if rule is None:
            return True
        last = self._last.get(key)
        if last is None or self._changed(rule, last, s):
            if last is None:
                self._last[key] = _Last(s)
            else:
                last.value, last.ts, last.quality, last.status = s.value, s.ts, s.quality, s.status
            return True
        return False

    @staticmethod
    def _changed(rule: Rule, last: _Last, s: Sample) -> bool:
        if s.quality == Quality.BAD:
            return True
        if s.quality != last.quality or s.status != last.status:
            return True
        if s.ts - last.ts >= rule.heartbeat_ns or s.ts < last.ts:
            return True
        v, lv = s.value, last.value
        if math.isnan(v) or math.isnan(lv):
            return not (math.isnan(v) and math.isnan(lv))
        return abs(v - lv) > rule.limit(lv) if rule.limit(lv) > 0 else v != lv

    def filter_block(self, block: SampleBlock) -> SampleBlock | None:
        """:meth:`filter` of a block of one device: passed untouched (no row read) when the
        device has no point with a rule; decided with arrays when its points are distinct and
        no status is involved (the usual poll); otherwise row by row. ``None`` when nothing is
        kept."""
        n = len(block)
        if block.device not in self._devices:
            self.seen += n
            self.kept += n
            return block if n else None
        keep = self._keep_columns(block)
        if keep is not None:
            self.seen += n
            k = int(np.count_nonzero(keep))
            self.kept += k
            if k == n:
                return block
            return block.take(np.flatnonzero(keep)) if k else None
        samples = block.samples()
        kept = self.filter(samples)
        if len(kept) == n:
            return block
        if not kept:
            return None
        kept_ids = {id(s) for s in kept}
        return block.take([i for i, s in enumerate(samples) if id(s) in kept_ids])

    def _rules_of(self, device: str, points: tuple[str, ...]) -> _PlanRules:
        got = self._plans.get(id(points))
        if got is not None and got.points is points and got.device == device:
            return got
        rules = [self.rules.get((device, p)) for p in points]
        plan = _PlanRules(
            device,
            points,
            np.array([r is not None for r in rules], dtype=bool),
            np.array([r.threshold if r is not None else 0.0 for r in rules]),
            np.array(
                [r.percent if r is not None and r.percent is not None else math.nan for r in rules]
            ),
            np.array([r.heartbeat_ns if r is not None else 0 for r in rules], dtype=np.int64),
            len(set(points)) == len(points),
        )
        if len(self._plans) >= 4096:
            self._plans.clear()
        self._plans[id(points)] = plan
        return plan

    def _keep_columns(self, block: SampleBlock) -> npt.NDArray[np.bool_] | None:
        """Which rows :meth:`filter` keeps, decided with arrays; ``None`` when the block needs
        the row-by-row path (repeated points, statuses, a last kept sample with a status)."""
        if block.statuses is not None and any(block.statuses):
            return None
        plan = self._rules_of(block.device, block.points)
        if not plan.unique:
            return None
        ruled = plan.ruled
        lasts = self._last
        dev = block.device
        n = len(block)
        has_last = np.zeros(n, dtype=bool)
        lv = np.zeros(n)
        lts = np.zeros(n, dtype=np.int64)
        lq = np.zeros(n, dtype=np.uint8)
        found: list[_Last | None] = []
        for i, p in enumerate(block.points):
            last = lasts.get((dev, p)) if ruled[i] else None
            found.append(last)
            if last is not None:
                if last.status:
                    return None
                has_last[i] = True
                lv[i], lts[i], lq[i] = last.value, last.ts, int(last.quality)
        v, ts, q = block.values, block.ts, block.quality
        with np.errstate(invalid="ignore"):
            d = v - lv
            num = d == d
            limit = np.where(
                np.isnan(plan.percent), plan.threshold, np.abs(lv) * plan.percent / 100.0
            )
            same_num = np.where(limit > 0, np.abs(d) <= limit, v == lv)
        unchanged = np.where(num, same_num, np.isnan(v) & np.isnan(lv))
        changed = (
            (q == _BAD) | (q != lq) | (ts - lts >= plan.heartbeat_ns) | (ts < lts) | ~unchanged
        )
        keep: npt.NDArray[np.bool_] = ~ruled | ~has_last | changed
        # remember the kept rows of ruled points (as _Last, the per-sample path's state)
        for i in np.flatnonzero(keep & ruled).tolist():
            last = found[i]
            value, t, qq = float(v[i]), int(ts[i]), Quality(int(q[i]))
            if last is None:
                lasts[(dev, block.points[i])] = _Last(Sample(dev, block.points[i], t, value, qq))
            else:
                last.value, last.ts, last.quality, last.status = value, t, qq, ""
        return keep

    def filter(self, samples: Iterable[Sample]) -> list[Sample]:
        """The samples to store, in their order (the rules of :meth:`keep`, inlined)."""
        if not self.rules:
            out = list(samples)
            self.seen += len(out)
            self.kept += len(out)
            return out
        rules = self.rules
        lasts = self._last
        bad = Quality.BAD
        kept: list[Sample] = []
        append = kept.append
        n = 0
        for s in samples:
            n += 1
            key = (s.device, s.point)
            rule = rules.get(key)
            if rule is None:
                append(s)
                continue
            last = lasts.get(key)
            if last is None:
                lasts[key] = _Last(s)
                append(s)
                continue
            q = s.quality
            ts = s.ts
            v = s.value
            lv = last.value
            if not (
                q == bad
                or q != last.quality
                or s.status != last.status
                or ts - last.ts >= rule.heartbeat_ns
                or ts < last.ts
            ):
                d = v - lv
                if d == d:  # both numbers
                    limit = rule.threshold if rule.percent is None else rule.limit(lv)
                    if (abs(d) <= limit) if limit > 0 else (v == lv):
                        continue
                elif v != v and lv != lv:  # both NaN: no change
                    continue
            last.value, last.ts, last.quality, last.status = v, ts, q, s.status
            append(s)
        self.seen += n
        self.kept += len(kept)
        return kept
