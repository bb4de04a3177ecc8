"""The connector contract: Sample, Quality, Sink, Connector, ConnectorError.

A connector reads one or more devices over one protocol and pushes samples into a sink until it
is cancelled. It raises :class:`ConnectorError` when its link is lost. Scheduling, restarts with
backoff and health counters belong to the supervisor (edge.supervisor), not to the connector.
A connector never swallows :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

import enum
import itertools
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


class Quality(enum.IntEnum):
    """Quality of a sample. Stored as this small int; ``name.lower()`` is its text."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @property
    def text(self) -> str:
        return self.name.lower()


NAN = float("nan")
_QUALITY = tuple(Quality)  # by code: no enum look-up per row


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one point.

    ``ts`` is int nanoseconds UTC: the source timestamp when the device gives one, else the
    gateway's clock. ``value`` is float64 (booleans 0/1, enumerated states as their raw int
    code, NaN for a bad reading: an error never becomes a value). ``status`` keeps the raw
    status: an OPC UA StatusCode name/number, a Modbus exception code, or a parse error class;
    empty when good.
    """

    device: str
    point: str
    ts: int
    value: float
    quality: Quality = Quality.GOOD
    status: str = ""


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Samples of one device as columns: what one poll, one notification or one message reads.

    Row ``i`` is the sample ``Sample(device, points[i], ts[i], values[i], quality[i],
    statuses[i] if statuses else "")``. ``points`` is usually a tuple the connector built once
    (its read plan) and hands with every block, so a block costs a few arrays, not an object per
    value. ``statuses`` is ``None`` when every status is empty. Arrays are not copied: a
    connector must not change them after handing the block over.
    """

    device: str
    points: tuple[str, ...]
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    statuses: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.points)
        if not (len(self.ts) == len(self.values) == len(self.quality) == n) or (
            self.statuses is not None and len(self.statuses) != n
        ):
            raise ValueError("SampleBlock columns differ in length")

    def __len__(self) -> int:
        return len(self.points)

    def samples(self) -> list[Sample]:
        """The rows as :class:`Sample` objects (for consumers without a columnar path)."""
        n = len(self.points)
        qualities = _QUALITY
        return list(
            map(
                Sample,
                repeat(self.device, n),
                self.points,
                self.ts.tolist(),
                self.values.tolist(),
                [qualities[q] for q in self.quality.tolist()],
                self.statuses if self.statuses is not None else repeat("", n),
            )
        )

    @classmethod
    def of_samples(cls, device: str, samples: Sequence[Sample]) -> SampleBlock:
        """The block of ``samples`` (all of ``device``; their device fields are not read)."""
        n = len(samples)
        statuses = tuple([s.status for s in samples])
        return cls(
            device,
            tuple([s.point for s in samples]),
            np.fromiter([s.ts for s in samples], np.int64, n),
            np.fromiter([s.value for s in samples], np.float64, n),
            np.fromiter([s.quality for s in samples], np.uint8, n),
            statuses if any(statuses) else None,
        )

    @classmethod
    def concat(
        cls, blocks: Sequence[SampleBlock], joined: JoinedPoints | None = None
    ) -> SampleBlock:
        """The rows of ``blocks`` (all of one device) one after the other (``blocks[0]`` itself
        when there is one); ``joined`` gives the same points tuple for the same parts."""
        if len(blocks) == 1:
            return blocks[0]
        statuses: tuple[str, ...] | None = None
        if any(b.statuses is not None for b in blocks):
            statuses = tuple(
                itertools.chain.from_iterable(
                    b.statuses if b.statuses is not None else ("",) * len(b) for b in blocks
                )
            )
        return cls(
            blocks[0].device,
            joined([b.points for b in blocks])
            if joined is not None
            else tuple(itertools.chain.from_iterable(b.points for b in blocks)),
            np.concatenate([b.ts for b in blocks]),
            np.concatenate([b.values for b in blocks]),
            np.concatenate([b.quality for b in blocks]),
            statuses,
        )

    def take(self, rows: npt.NDArray[np.intp] | Sequence[int]) -> SampleBlock:
        """The rows at positions ``rows`` (in that order; copies)."""
        idx = np.asarray(rows, dtype=np.intp)
        pos = idx.tolist()
        pts = self.points
        st = self.statuses
        taken = None if st is None else tuple([st[i] for i in pos])
        return SampleBlock(
            self.device,
            tuple([pts[i] for i in pos]),
            self.ts[idx],
            self.values[idx],
            self.quality[idx],
            taken if taken is not None and any(taken) else None,
        )

    def slice(self, start: int, stop: int) -> SampleBlock:
        """Rows ``start:stop`` (views of the arrays)."""
        st = self.statuses
        return SampleBlock(
            self.device,
            self.points[start:stop],
            self.ts[start:stop],
            self.values[start:stop],
            self.quality[start:stop],
            None if st is None else st[start:stop],
        )


def now_ns() -> int:
    return time.time_ns()


class Sink(Protocol):
    """Where a connector hands what it reads. Every method is non-blocking."""

    def put(self, sample: Sample) -> None: ...

    def put_many(self, samples: Iterable[Sample]) -> None: ...

    def put_block(self, block: SampleBlock) -> None:
        """The samples of ``block`` (the columnar :meth:`put_many`; a sink without a columnar
        path may take ``put_many(block.samples())``)."""

    def link(self, device: str, connected: bool) -> None:
        """The link to ``device`` went up or down."""

    def error(self, device: str, kind: str) -> None:
        """Count one error of ``kind`` (e.g. ``timeout``, ``modbus_exception_2``,
        ``malformed:not_json``) for ``device``."""


class ConnectorError(Exception):
    """The connector lost its link (or could not open it); the supervisor restarts it."""


@runtime_checkable
class Connector(Protocol):
    name: str
    devices: tuple[str, ...]

    async def run(self, sink: Sink) -> None:
        """Connect, push samples until cancelled; raise ConnectorError on link loss."""
        ...


class JoinedPoints:
    """Concatenations of points tuples, kept by the identities of their parts: a device's
    reads hand the same tuples every poll, so their concatenation is the same object too, and
    consumers that cache by a points tuple's identity (the store's series ids, the
    deduplicator's positions) hit. Owned by its user (the writer), so that it goes with it;
    holds at most ``max_rows`` names (then starts again)."""

    def __init__(self, max_rows: int = 1_000_000) -> None:
        self.max_rows = max_rows
        self._rows = 0
        self._cache: dict[tuple[int, ...], tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]]
        self._cache = {}

    def __call__(self, parts: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
        key = tuple(map(id, parts))
        got = self._cache.get(key)
        if got is not None and all(map(operator.is_, got[0], parts)):
            return got[1]
        joined = tuple(itertools.chain.from_iterable(parts))
        if self._rows + len(joined) > self.max_rows:
            self._cache.clear()
            self._rows = 0
        self._cache[key] = (tuple(parts), joined)
        self._rows += len(joined)
        return joined
