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

The writer hands it blocks (:class:`connectors.base.SampleBlock`, :meth:`Deduplicator.
filter_block`): the newest timestamp of every point is kept as an array per device, and a
block whose rows are all newer than their points' newest passes with one numpy compare (the
positions of its points are cached per ``points`` tuple, which a connector builds once per read
plan); only blocks with a row at or before it go row by row. ``filter`` is the same for a list
of :class:`Sample` objects.

Used by the writer in its store thread (one instance per writer, one thread).
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from connectors.base import Sample, SampleBlock
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


_NO_TS = np.iinfo(np.int64).min
_CACHE_MAX = 4096  # cached point indexes per device (a connector's read plan: a few)


class _Newest:
    """The newest known sample of every point of one device, as columns by point position
    (``ts`` is ``_NO_TS`` for a point without one), and the positions of the points of the
    blocks seen (cached per ``points`` tuple: a connector hands the same tuple every poll)."""

    __slots__ = ("index", "pos", "qual", "ts", "val")

    def __init__(self) -> None:
        self.pos: dict[str, int] = {}
        self.ts = np.full(16, _NO_TS, dtype=np.int64)
        self.val = np.zeros(16, dtype=np.float64)
        self.qual = np.zeros(16, dtype=np.uint8)
        self.index: dict[int, tuple[tuple[str, ...], npt.NDArray[np.intp], bool]] = {}

    def position(self, point: str) -> int:
        k = self.pos.get(point)
        if k is None:
            k = self.pos[point] = len(self.pos)
            if k >= self.ts.shape[0]:
                grow = self.ts.shape[0]
                self.ts = np.concatenate((self.ts, np.full(grow, _NO_TS, dtype=np.int64)))
                self.val = np.concatenate((self.val, np.zeros(grow, dtype=np.float64)))
                self.qual = np.concatenate((self.qual, np.zeros(grow, dtype=np.uint8)))
        return k

    def positions(self, points: tuple[str, ...]) -> tuple[npt.NDArray[np.intp], bool]:
        """Positions of ``points`` and whether they are distinct."""
        got = self.index.get(id(points))
        if got is not None and got[0] is points:
            return got[1], got[2]
        pos = self.pos
        try:
            idx = np.fromiter(map(pos.__getitem__, points), np.intp, len(points))
        except KeyError:
            idx = np.fromiter(map(self.position, points), np.intp, len(points))
        unique = len(set(points)) == len(points)
        if len(self.index) >= _CACHE_MAX:
            self.index.clear()
        self.index[id(points)] = (points, idx, unique)
        return idx, unique


class Deduplicator:
    """Drops duplicates of stored samples (see the module docstring)."""

    def __init__(self, store: _Store) -> None:
        self.store = store
        # device -> the newest known sample of each point (stored or being stored)
        self._newest: dict[str, _Newest] = {}
        self.dropped = 0  # duplicates not stored (for tests and health)
        self.unchecked = 0  # samples kept because the store could not be asked

    def reset(self) -> None:
        """Forget what is known (after a failed write: the store is read again)."""
        self._newest.clear()

    def _load(self, device: str) -> _Newest:
        newest = _Newest()
        for s in self.store.latest(device):
            k = newest.position(s.point)
            newest.ts[k], newest.val[k], newest.qual[k] = s.ts, s.value, int(s.quality)
        self._newest[device] = newest
        return newest

    def _stored(self, device: str, point: str, ts: int, value: float, quality: int) -> bool:
        try:
            found = self.store.read(device, point, ts, ts + 1)
        except Exception as exc:
            # a store that cannot answer now (InfluxDB away: its writes wait in the outbox, and
            # are idempotent per series and time): keep the sample rather than block the writer
            self.unchecked += 1
            if self.unchecked == 1:
                log.warning("cannot check a sample against the store (%r); kept", exc)
            return False
        return any(
            same(value, quality, float(v), int(fq))
            for v, fq in zip(found.values.tolist(), found.quality.tolist(), strict=True)
        )

    def filter(self, device: str, samples: list[Sample]) -> list[Sample]:
        """The samples of ``device`` that are not duplicates, in their order (``samples``
        itself when none is)."""
        if not samples:
            return samples
        rows = self._kept(SampleBlock.of_samples(device, samples))
        return samples if rows is None else [samples[i] for i in rows]

    def filter_block(self, block: SampleBlock) -> SampleBlock | None:
        """The rows of ``block`` that are not duplicates (``block`` itself when none is,
        ``None`` when all are)."""
        if not len(block):
            return None
        rows = self._kept(block)
        if rows is None:
            return block
        return block.take(rows) if rows else None

    def _kept(self, block: SampleBlock) -> list[int] | None:
        """Positions of the rows to keep, ``None`` for all of them (and the newest updated)."""
        device = block.device
        newest = self._newest.get(device)
        if newest is None:
            newest = self._load(device)
        idx, unique = newest.positions(block.points)
        ts = block.ts
        if unique:
            # the usual case (a poll): every row newer than its point's newest
            if bool((ts > newest.ts[idx]).all()):
                newest.ts[idx] = ts
                newest.val[idx] = block.values
                newest.qual[idx] = block.quality
                return None
        else:
            # several rows of a point: each newer than the one before it
            order = np.argsort(idx, kind="stable")
            s_idx, s_ts = idx[order], ts[order]
            first = np.empty(len(order), dtype=bool)
            first[0] = True
            np.not_equal(s_idx[1:], s_idx[:-1], out=first[1:])
            prev = np.empty_like(s_ts)
            prev[1:] = s_ts[:-1]
            prev[first] = newest.ts[s_idx[first]]
            if bool((s_ts > prev).all()):
                last = np.empty(len(order), dtype=bool)
                last[-1] = True
                last[:-1] = first[1:]
                sel = order[last]
                at = idx[sel]
                newest.ts[at] = ts[sel]
                newest.val[at] = block.values[sel]
                newest.qual[at] = block.quality[sel]
                return None
        return self._slow(newest, block, idx.tolist())

    def _slow(self, newest: _Newest, block: SampleBlock, idx: list[int]) -> list[int] | None:
        """Row by row: rows at or before their point's newest are checked against it, against
        each other and against the store."""
        out: list[int] = []
        # rows of this call at or before their point's newest (checked against each other)
        older: dict[tuple[int, int], list[tuple[float, int]]] = {}
        n_ts, n_val, n_qual = newest.ts, newest.val, newest.qual
        points = block.points
        rows = zip(
            idx, block.ts.tolist(), block.values.tolist(), block.quality.tolist(), strict=True
        )
        for i, (k, ts, value, q) in enumerate(rows):
            last_ts = int(n_ts[k])
            if last_ts == _NO_TS or ts > last_ts:
                n_ts[k], n_val[k], n_qual[k] = ts, value, q
                out.append(i)
                continue
            if ts == last_ts and same(value, q, float(n_val[k]), int(n_qual[k])):
                self.dropped += 1
                continue
            twins = older.setdefault((k, ts), [])
            if any(same(value, q, v, fq) for v, fq in twins) or self._stored(
                block.device, points[i], ts, value, q
            ):
                self.dropped += 1
                continue
            twins.append((value, q))
            out.append(i)
        return None if len(out) == len(idx) else out
