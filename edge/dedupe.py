"""Samples already stored are not stored again (redelivered or retained MQTT messages, a value a
device re-sends after a reconnect, a restarted collector reading the same data again).

A *duplicate* is a sample of the same (device, point) with the same timestamp, the same value
(NaN equals NaN) and the same quality as one that is stored, or as one earlier in the same
write. The check is against the store, not against what this process has seen: the newest
stored sample of each point is read once per device (``store.latest``, at the first write of
the device after start or after a failed write), every sample newer than it is new (the usual
case: one dict look-up per sample), and a sample at or before it is looked up in the store at
its exact timestamp (``store.read(device, point, ts, ts + 1)``; only redeliveries and
out-of-order data take this path; a store that cannot answer then, such as an unreachable
InfluxDB, keeps the sample: its writes are idempotent per series and time). A sample at the
same time with a *different* value or quality is not a duplicate and is kept (a real conflict
stays visible).

Used by the writer in its store thread (one instance per writer, one thread).
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

from connectors.base import Sample
from metrics.series import Series

log = logging.getLogger("shopfloor.dedupe")


class _Store(Protocol):
    def latest(self, device: str | None = None) -> list[Sample]: ...

    def read(
        self, device: str, point: str, start: int, end: int, *, prior: bool = False
    ) -> Series: ...


def same(value: float, quality: int, other_value: float, other_quality: int) -> bool:
    """Equal values (NaN equals NaN) and equal qualities."""
    if quality != other_quality:
        return False
    return value == other_value or (math.isnan(value) and math.isnan(other_value))


class Deduplicator:
    """Drops duplicates of stored samples (see the module docstring)."""

    def __init__(self, store: _Store) -> None:
        self.store = store
        # device -> point -> the newest known sample of the point (stored or being stored)
        self._newest: dict[str, dict[str, Sample]] = {}
        self.dropped = 0  # duplicates not stored (for tests and health)
        self.unchecked = 0  # samples kept because the store could not be asked

    def reset(self) -> None:
        """Forget what is known (after a failed write: the store is read again)."""
        self._newest.clear()

    def _load(self, device: str) -> dict[str, Sample]:
        newest = {s.point: s for s in self.store.latest(device)}
        self._newest[device] = newest
        return newest

    def _stored(self, s: Sample) -> bool:
        try:
            found = self.store.read(s.device, s.point, s.ts, s.ts + 1)
        except Exception as exc:
            # a store that cannot answer now (InfluxDB away: its writes wait in the outbox, and
            # are idempotent per series and time): keep the sample rather than block the writer
            self.unchecked += 1
            if self.unchecked == 1:
                log.warning("cannot check a sample against the store (%r); kept", exc)
            return False
        q = int(s.quality)
        return any(
            same(s.value, q, float(v), int(fq))
            for v, fq in zip(found.values.tolist(), found.quality.tolist(), strict=True)
        )

    def filter(self, device: str, samples: list[Sample]) -> list[Sample]:
        """The samples of ``device`` that are not duplicates, in their order (``samples``
        itself when none is)."""
        newest = self._newest.get(device)
        if newest is None:
            newest = self._load(device)
        get = newest.get
        n = 0
        # the usual case: every sample newer than its point's newest (one look-up each)
        for s in samples:
            last = get(s.point)
            if last is not None and s.ts <= last.ts:
                break
            newest[s.point] = s
            n += 1
        else:
            return samples
        return samples[:n] + self._slow(newest, samples[n:])

    def _slow(self, newest: dict[str, Sample], samples: list[Sample]) -> list[Sample]:
        out: list[Sample] = []
        # samples of this call at or before their point's newest (checked against each other)
        older: dict[tuple[str, int], list[tuple[float, int]]] = {}
        for s in samples:
            last = newest.get(s.point)
            ts = s.ts
            if last is None or ts > last.ts:
                newest[s.point] = s
                out.append(s)
                continue
            q = int(s.quality)
            if ts == last.ts and same(s.value, q, last.value, int(last.quality)):
                self.dropped += 1
                continue
            twins = older.setdefault((s.point, ts), [])
            if any(same(s.value, q, v, fq) for v, fq in twins) or self._stored(s):
                self.dropped += 1
                continue
            twins.append((s.value, q))
            out.append(s)
        return out
