"""The store contract shared by the embedded SQLite store and the InfluxDB store.

The writer hands a store one :class:`Batch` (samples of one source, i.e. one device) at a time;
when ``write_batches`` returns, the batches are durable (acknowledged). Stores also satisfy
``metrics.series.SeriesReader`` so the KPI engine reads any of them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.base import Sample
from metrics.series import Series


@dataclass(frozen=True, slots=True)
class Batch:
    """Samples of one source (device) written together; ``seq`` counts per source from 1."""

    source: str
    seq: int
    samples: tuple[Sample, ...]

    @property
    def first_ts(self) -> int:
        return min(s.ts for s in self.samples)

    @property
    def last_ts(self) -> int:
        return max(s.ts for s in self.samples)


@dataclass(slots=True)
class DeviceHealth:
    """Health of one device as the supervisor and writer see it (recorded in the store)."""

    device: str
    connected: bool = False
    last_good_ts: int | None = None
    last_sample_ts: int | None = None
    samples: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    drops: int = 0
    updated_ts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Newest:
    """What a store holds last for one (device, point), imports left out: its newest sample
    (any quality; the last written on equal timestamps) and its newest good sample."""

    last: Sample
    good: Sample | None


class NewestReader(Protocol):
    """A store that can say where each series ends (the collector's restart record and the
    OPC UA backfill read it at start; the embedded store has it)."""

    def newest(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Newest]:
        """:class:`Newest` of every key with stored samples (keys without any are absent)."""
        ...


class Store(Protocol):
    def write_batches(self, batches: Sequence[Batch]) -> None:
        """Store the batches durably; return only once they are safe (the acknowledgement)."""
        ...

    def last_seq(self, source: str) -> int:
        """Highest sequence number stored for ``source`` (0 when none)."""
        ...

    def write_health(self, records: Sequence[DeviceHealth]) -> None: ...

    def health(self) -> list[DeviceHealth]: ...

    def latest(self, device: str | None = None) -> list[Sample]:
        """The newest sample of every point (of one device, or of all)."""
        ...

    def read(
        self, device: str, point: str, start: int, end: int, *, prior: bool = False
    ) -> Series: ...

    def close(self) -> None: ...
