"""Change-based recording: deadband plus heartbeat (pure).

A point with a ``deadband`` stores a sample only when

- its value moved beyond the deadband from the last *kept* value (absolute, or a percent of
  ``deadband.range``; a percent deadband without a range is a percent of the last kept value),
- or the heartbeat elapsed since the last kept sample (``point.heartbeat_s``, else
  ``runtime.heartbeat_s``),
- or its quality or status changed (a NaN appearing or disappearing counts as a change).

Bad samples are always kept. Points without a deadband keep every sample. A block
(:class:`connectors.base.SampleBlock`) of a device without any deadbanded point passes
untouched (:meth:`Recorder.filter_block`); other blocks are decided row by row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

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


class Recorder:
    """Filters samples through the recording rules; remembers the last kept sample per point.

    The state lives across batches (and is per process: after a restart the first sample of
    every point is kept, which is also the honest start of a new recording)."""

    def __init__(self, rules: dict[tuple[str, str], Rule]) -> None:
        self.rules = rules
        self._devices = frozenset(d for d, _ in rules)
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
        device has no point with a rule; otherwise row by row. ``None`` when nothing is kept."""
        n = len(block)
        if block.device not in self._devices:
            self.seen += n
            self.kept += n
            return block if n else None
        samples = block.samples()
        kept = self.filter(samples)
        if len(kept) == n:
            return block
        if not kept:
            return None
        keep = {id(s) for s in kept}
        return block.take([i for i, s in enumerate(samples) if id(s) in keep])

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
