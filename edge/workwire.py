"""The columnar form in which a connector worker process sends samples to the collector.

A worker (edge.worker_proc) gathers what its connectors put for ~20 ms and sends it as one
message: a list of :data:`WireBlock` (one per run of samples of one device, in the order they
were put) plus the names (devices and points) first used in this message. Names travel once
per worker: each gets the next number of the worker's name table, and a block names its device
and points by those numbers (``uint32`` array), so a block costs a few arrays whatever the
number of points. :class:`Encoder` (worker side) and :class:`Decoder` (collector side) keep the
two copies of the table in step; messages are decoded in the order they were encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from connectors.base import Sample, SampleBlock

#: (device number, point numbers, ts, values, quality, statuses or None)
WireBlock = tuple[
    int,
    npt.NDArray[np.uint32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.uint8],
    tuple[str, ...] | None,
]
#: (names new in this message, blocks)
WireBatch = tuple[list[str], list[WireBlock]]

_point = attrgetter("point")
_ts = attrgetter("ts")
_value = attrgetter("value")
_quality = attrgetter("quality")
_status = attrgetter("status")

# the point-number arrays of this many distinct point tuples are kept (then the cache restarts)
CACHE_MAX = 4096


class Encoder:
    """Worker side: samples and blocks -> :data:`WireBatch` messages."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._new: list[str] = []
        self._names: list[str] = []
        self._blocks: list[WireBlock] = []
        self._tuples: dict[tuple[str, ...], npt.NDArray[np.uint32]] = {}
        self.pending = 0  # samples in the message being built

    def _id(self, name: str) -> int:
        i = self._ids.get(name)
        if i is None:
            i = self._ids[name] = len(self._ids)
            self._new.append(name)
            self._names.append(name)
        return i

    def _point_ids(self, points: tuple[str, ...]) -> npt.NDArray[np.uint32]:
        ids = self._tuples.get(points)
        if ids is None:
            if len(self._tuples) >= CACHE_MAX:
                self._tuples.clear()
            ids = np.fromiter(map(self._id, points), np.uint32, len(points))
            self._tuples[points] = ids
        return ids

    def add_block(self, block: SampleBlock) -> None:
        if not len(block):
            return
        self._blocks.append(
            (
                self._id(block.device),
                self._point_ids(block.points),
                np.asarray(block.ts, np.int64),
                np.asarray(block.values, np.float64),
                np.asarray(block.quality, np.uint8),
                block.statuses,
            )
        )
        self.pending += len(block)

    def add_samples(self, samples: Sequence[Sample]) -> None:
        """Samples in put order: one block per run of one device."""
        start = 0
        n = len(samples)
        while start < n:
            dev = samples[start].device
            stop = start + 1
            while stop < n and samples[stop].device == dev:
                stop += 1
            run = samples[start:stop]
            k = len(run)
            statuses = list(map(_status, run))
            self._blocks.append(
                (
                    self._id(dev),
                    self._point_ids(tuple(map(_point, run))),
                    np.fromiter(map(_ts, run), np.int64, k),
                    np.fromiter(map(_value, run), np.float64, k),
                    np.fromiter(map(_quality, run), np.uint8, k),
                    tuple(statuses) if any(statuses) else None,
                )
            )
            self.pending += k
            start = stop

    def take(self) -> tuple[WireBatch, list[tuple[str, int]]] | None:
        """The message built so far and (device, samples) per block; None if empty.
        The names it introduces count as sent (the message must be sent or its samples
        reported dropped, and :meth:`names_only` keeps the table in step then)."""
        if not self._blocks:
            return None
        blocks, self._blocks = self._blocks, []
        new, self._new = self._new, []
        self.pending = 0
        names = self._names
        return (new, blocks), [(names[b[0]], len(b[1])) for b in blocks]

    def names_only(self, batch: WireBatch) -> WireBatch:
        """A refused message's names without its blocks (sent so the tables stay in step)."""
        return (batch[0], [])


class Decoder:
    """Collector side: :data:`WireBatch` messages -> :class:`SampleBlock` per device run."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._tuples: dict[bytes, tuple[str, ...]] = {}

    def points(self, ids: npt.NDArray[np.uint32]) -> tuple[str, ...]:
        key = ids.tobytes()
        pts = self._tuples.get(key)
        if pts is None:
            if len(self._tuples) >= CACHE_MAX:
                self._tuples.clear()
            names = self.names
            pts = self._tuples[key] = tuple([names[i] for i in ids.tolist()])
        return pts

    def decode(self, batch: WireBatch) -> list[SampleBlock]:
        new, blocks = batch
        self.names.extend(new)
        names = self.names
        return [
            SampleBlock(names[dev], self.points(ids), ts, values, quality, statuses)
            for dev, ids, ts, values, quality, statuses in blocks
        ]
