"""Samples already stored are not stored again (redelivered or retained MQTT messages, a value a
device re-sends after a reconnect, a restarted collector reading the same data again).

A *duplicate* is a sample of the same (device, point) with the same timestamp, the same value
(NaN equals NaN) and the same quality as one that is stored, or as one earlier in the same
write. The check is against the store, not against what this process has seen: the newest
stored sample of each point is read once per device (``store.latest``, at the first write of
the device after start or after a failed write), every sample newer than it is new (the usual
case: one dict look-up per sample), and a sample at or before it is looked up in the store at
its exact timestamp (``store.read(device, point, ts, ts + 1)``; only redeliveries and
out-of-order data take this path). A sample at the same time with a *different* value or
quality is not a duplicate and is kept (a real conflict stays visible).

Used by the writer in its store thread (one instance per writer, one thread).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from connectors.base import Sample
from metrics.series import Series

# (ts, value, quality) of the newest known sample of a point
_Newest = tuple[int, float, int]


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
        self._newest: dict[tuple[str, str], _Newest] = {}
        self._loaded: set[str] = set()
        self.dropped = 0  # duplicates not stored (for tests and health)

    def reset(self) -> None:
        """Forget what is known (after a failed write: the store is read again)."""
        self._newest.clear()
        self._loaded.clear()

    def _load(self, device: str) -> None:
        newest = self._newest
        for s in self.store.latest(device):
            newest[(s.device, s.point)] = (s.ts, s.value, int(s.quality))
        self._loaded.add(device)

    def _stored(self, s: Sample) -> bool:
        found = self.store.read(s.device, s.point, s.ts, s.ts + 1)
        q = int(s.quality)
        return any(
            same(s.value, q, float(v), int(fq))
            for v, fq in zip(found.values.tolist(), found.quality.tolist(), strict=True)
        )

    def filter(self, device: str, samples: Sequence[Sample]) -> list[Sample]:
        """The samples of ``device`` that are not duplicates, in their order."""
        if device not in self._loaded:
            self._load(device)
        newest = self._newest
        out: list[Sample] = []
        append = out.append
        # samples of this call at or before their point's newest (checked against each other)
        older: dict[tuple[str, str, int], list[tuple[float, int]]] | None = None
        for s in samples:
            key = (device, s.point)
            last = newest.get(key)
            ts = s.ts
            if last is None or ts > last[0]:
                newest[key] = (ts, s.value, int(s.quality))
                append(s)
                continue
            q = int(s.quality)
            if ts == last[0] and same(s.value, q, last[1], last[2]):
                self.dropped += 1
                continue
            if older is None:
                older = {}
            twins = older.setdefault((device, s.point, ts), [])
            if any(same(s.value, q, v, fq) for v, fq in twins) or self._stored(s):
                self.dropped += 1
                continue
            twins.append((s.value, q))
            append(s)
        return out
