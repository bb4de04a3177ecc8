"""A SeriesReader over the embedded store and the evidence ledger's batches together.

After a retention pass (:mod:`edge.store.retention`) the store holds every sample at or after
its raw horizon; older samples are read back from the ledger's stored batches (their canonical
``sfs1`` bytes), which hold every sample before the horizon. :class:`ArchiveReader` reads
``ts >= horizon`` from the store and ``ts < horizon`` from the ledger, so the KPI engine computes
on old periods exactly as before the pass; ``prior=True`` keeps its meaning (the last sample
before ``start``, wherever it is kept). Equal timestamps keep the log order.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from connectors.base import Sample
from edge.store.base import DeviceHealth
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from metrics.evidence.canonical import decode_samples
from metrics.series import Series

# widening windows (ns) searched back for the sample in force before a start time
_PRIOR_WINDOWS = (3600 * 10**9, 86400 * 10**9, 32 * 86400 * 10**9, 400 * 86400 * 10**9)
_CACHE = 256  # decoded batches kept (a KPI table reads many points of the same batches)


class ArchiveReader:
    """``read`` like the store's, falling back to the ledger below the store's raw horizon."""

    def __init__(self, store: SqliteStore, ledger: Ledger | Path) -> None:
        """``ledger``: an open ledger, or the path of one to open read-only when a read first
        reaches below the horizon (closed with the reader)."""
        self.store = store
        self._ledger = ledger if isinstance(ledger, Ledger) else None
        self._ledger_path = None if isinstance(ledger, Ledger) else ledger
        self._decoded: OrderedDict[int, dict[tuple[str, str], Series]] = OrderedDict()

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            assert self._ledger_path is not None
            self._ledger = Ledger.open_readonly(self._ledger_path)
        return self._ledger

    def __getattr__(self, name: str) -> Any:
        """Everything else is the store's (latest, health, batch records, spans, ...)."""
        if name == "store":
            raise AttributeError(name)
        return getattr(self.store, name)

    def latest(self, device: str | None = None) -> list[Sample]:
        return self.store.latest(device)

    def health(self) -> list[DeviceHealth]:
        return self.store.health()

    def close(self) -> None:
        """Close the store, and the ledger when this reader opened it."""
        try:
            self.store.close()
        finally:
            if self._ledger_path is not None and self._ledger is not None:
                self._ledger.close()
                self._ledger = None

    def _series_of(self, idx: int) -> dict[tuple[str, str], Series]:
        got = self._decoded.get(idx)
        if got is None:
            got = decode_samples(self.ledger.batch_data(idx), f"leaf {idx}").per_series()
            self._decoded[idx] = got
            if len(self._decoded) > _CACHE:
                self._decoded.popitem(last=False)
        else:
            self._decoded.move_to_end(idx)
        return got

    def _from_ledger(self, device: str, point: str, lo: int, hi: int) -> Series:
        """Logged samples of the point with ``lo <= ts < hi``, in time order (log order for
        equal timestamps)."""
        parts: list[Series] = []
        for leaf in self.ledger.leaves(kind="batch", overlapping=(lo, hi)):
            s = self._series_of(leaf.idx).get((device, point))
            if s is None:
                continue
            keep = (s.ts >= lo) & (s.ts < hi)
            if keep.any():
                parts.append(Series(s.ts[keep], s.values[keep], s.quality[keep]))
        if not parts:
            return Series.empty()
        ts = np.concatenate([p.ts for p in parts])
        val = np.concatenate([p.values for p in parts])
        q = np.concatenate([p.quality for p in parts])
        order = np.argsort(ts, kind="stable")
        return Series(ts[order], val[order], q[order])

    def _ledger_before(self, device: str, point: str, before: int) -> Series:
        """The last logged sample of the point before ``before`` (empty when none)."""
        for w in (*_PRIOR_WINDOWS, None):
            lo = -(2**63) if w is None else before - w
            got = self._from_ledger(device, point, lo, before)
            if len(got):
                return Series(got.ts[-1:], got.values[-1:], got.quality[-1:])
        return Series.empty()

    def batch_records(
        self, source: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[tuple[str, int, int, int, int, int]]:
        """The store's batch records (kept by retention): imports stay recognisable."""
        return self.store.batch_records(source, start, end)

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        horizon = self.store.raw_horizon()
        if start >= horizon:
            got = self.store.read(device, point, start, end, prior=prior)
            if (
                not prior
                or horizon == 0
                or (len(got) and got.ts[0] < start and got.ts[0] >= horizon)
            ):
                return got
            # the sample in force at start is older than the horizon: the ledger has it
            inside = got.ts >= start
            head = self._ledger_before(device, point, horizon)
            return _cat(head, Series(got.ts[inside], got.values[inside], got.quality[inside]))
        old = self._from_ledger(device, point, start, min(end, horizon))
        new = self.store.read(device, point, horizon, end) if end > horizon else Series.empty()
        body = _cat(old, new)
        if prior:
            return _cat(self._ledger_before(device, point, start), body)
        return body


def _cat(a: Series, b: Series) -> Series:
    if not len(a):
        return b
    if not len(b):
        return a
    return Series(
        np.concatenate((a.ts, b.ts)),
        np.concatenate((a.values, b.values)),
        np.concatenate((a.quality, b.quality)),
    )
