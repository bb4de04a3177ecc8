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
