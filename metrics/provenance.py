"""Provenance of a period's KPI inputs, read off the recorded data (pure).

Every batch is recorded with its source: the collector's batches carry the device id, imported
history (``shopfloor import meters``, the collector's ``history``) carries ``import:<device>``,
in the store and in the ledger alike. A period is *imported* when any batch of a site device
that overlaps it is an import (conservative: a period mixing live and imported data is labelled
imported, the weaker of the two). The ``--baseline-imported`` / ``--current-imported`` flags of
old are no longer needed: a reader that knows its batches (the SQLite store, a bundle) decides;
only a reader that cannot tell (e.g. InfluxDB, a plain in-memory reader) falls back to the flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from config.models import SiteConfig
from metrics.periods import TimeRange

IMPORT_PREFIX = "import:"


@runtime_checkable
class BatchIndex(Protocol):
    """What a reader offers when it knows the batches behind its samples."""

    def batch_records(
        self, source: str | None = None, start: int | None = None, end: int | None = None
    ) -> Sequence[tuple[Any, ...]]:
        """``(source, seq, first_ts, last_ts, ...)`` of the batches overlapping [start, end)."""
        ...


def is_import_source(source: str) -> bool:
    return source.startswith(IMPORT_PREFIX)


def imported_devices(reader: object, site: SiteConfig, period: TimeRange) -> set[str] | None:
    """Site devices with imported batches overlapping ``period``; ``None`` when the reader
    cannot tell (it does not know its batches)."""
    if not isinstance(reader, BatchIndex):
        return None
    # one indexed look-up per device (source, then time), not a scan of every batch
    return {
        d.id
        for d in site.devices
        if reader.batch_records(IMPORT_PREFIX + d.id, period.start_ns, period.end_ns)
    }


def period_imported(
    reader: object, site: SiteConfig, period: TimeRange, flag: bool | None = None
) -> bool:
    """Whether the period's data are (partly) imported: from the recorded batches when the
    reader knows them (``flag`` is then ignored), else ``flag`` (default measured)."""
    found = imported_devices(reader, site, period)
    if found is None:
        return bool(flag)
    return bool(found)


def flag_mismatch(
    reader: object, site: SiteConfig, period: TimeRange, flag: bool, name: str
) -> str | None:
    """A one-line warning when a deprecated ``--<name>-imported`` flag contradicts the data."""
    found = imported_devices(reader, site, period)
    if found is None or not flag or found:
        return None
    return (
        f"--{name}-imported is deprecated and ignored: the recorded data of the {name} period "
        "are measured (no imported batch overlaps it)"
    )
