"""The connector contract: Sample, Quality, Sink, Connector, ConnectorError.

A connector reads one or more devices over one protocol and pushes samples into a sink until it
is cancelled. It raises :class:`ConnectorError` when its link is lost. Scheduling, restarts with
backoff and health counters belong to the supervisor (edge.supervisor), not to the connector.
A connector never swallows :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass
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
        st = self.statuses
        dev = self.device
        return [
            Sample(dev, p, t, v, Quality(q), st[i] if st is not None else "")
            for i, (p, t, v, q) in enumerate(
                zip(
                    self.points,
                    self.ts.tolist(),
                    self.values.tolist(),
                    self.quality.tolist(),
                    strict=True,
                )
            )
        ]

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
