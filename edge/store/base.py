"""The store contract shared by the embedded SQLite store and the InfluxDB store.

The writer hands a store one :class:`Batch` (samples of one source, i.e. one device) at a time;
when ``write_batches`` returns, the batches are durable (acknowledged). Stores also satisfy
``metrics.series.SeriesReader`` so the KPI engine reads any of them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.base import Sample, SampleBlock
from metrics.series import Series


class Batch:
    """Samples of one source (device) written together; ``seq`` counts per source from 1.

    A batch holds its samples as :class:`Sample` objects (``Batch(source, seq, samples)``) or
    as columns (``Batch(source, seq, block=SampleBlock)``: the writer's hot path, one device).
    Either form gives both: ``samples`` is built from the block on first use (for consumers
    without a columnar path), ``block`` from samples of one device. ``count``, ``first_ts`` and
    ``last_ts`` read the columns when there are any. Equal batches have equal source, seq and
    samples, whatever their form. Treat it as immutable.
    """

    __slots__ = ("_block", "_samples", "seq", "source")

    def __init__(
        self,
        source: str,
        seq: int,
        samples: Sequence[Sample] | None = None,
        *,
        block: SampleBlock | None = None,
    ) -> None:
        if (samples is None) == (block is None):
            raise TypeError("a Batch takes either samples or a block")
        self.source = source
        self.seq = seq
        self._samples = None if samples is None else tuple(samples)
        self._block = block

    @property
    def samples(self) -> tuple[Sample, ...]:
        got = self._samples
        if got is None:
            assert self._block is not None
            got = self._samples = tuple(self._block.samples())
        return got

    @property
    def block(self) -> SampleBlock | None:
        """The samples as columns, or ``None`` when they are of several devices."""
        b = self._block
        if b is None:
            samples = self.samples
            if not samples:
                return None
            device = samples[0].device
            if any(s.device != device for s in samples):
                return None
            b = self._block = SampleBlock.of_samples(device, samples)
        return b

    @property
    def columnar(self) -> bool:
        """Whether the samples are held as columns (no objects to read)."""
        return self._block is not None

    @property
    def count(self) -> int:
        """Number of samples (without building them)."""
        b = self._block
        return len(b) if b is not None else len(self.samples)

    @property
    def first_ts(self) -> int:
        b = self._block
        if b is not None and len(b):
            return int(b.ts.min())
        return min(s.ts for s in self.samples)

    @property
    def last_ts(self) -> int:
        b = self._block
        if b is not None and len(b):
            return int(b.ts.max())
        return max(s.ts for s in self.samples)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return (self.source, self.seq, self.samples) == (other.source, other.seq, other.samples)

    def __hash__(self) -> int:
        return hash((self.source, self.seq, self.samples))

    def __repr__(self) -> str:
        return f"Batch(source={self.source!r}, seq={self.seq!r}, samples={self.samples!r})"


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
