"""A SeriesReader over numpy arrays kept in memory (for pure engine tests)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from metrics.series import Series


class MemReader:
    """``add(device, point, ts, values, quality)``; ``read`` follows the SeriesReader contract."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], Series] = {}
        self.calls: list[tuple[str, str, int, int, bool]] = []

    def add(
        self,
        device: str,
        point: str,
        ts: Iterable[int],
        values: Iterable[float],
        quality: Iterable[int] | None = None,
    ) -> None:
        t = np.asarray(list(ts), dtype=np.int64)
        v = np.asarray(list(values), dtype=np.float64)
        q = (
            np.zeros(t.shape, dtype=np.uint8)
            if quality is None
            else np.asarray(list(quality), dtype=np.uint8)
        )
        order = np.argsort(t, kind="stable")
        self._data[(device, point)] = Series(t[order], v[order], q[order])

    def add_series(self, device: str, point: str, series: Series) -> None:
        self._data[(device, point)] = series

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        self.calls.append((device, point, start, end, prior))
        s = self._data.get((device, point))
        if s is None:
            return Series.empty()
        lo = int(np.searchsorted(s.ts, start, side="left"))
        hi = int(np.searchsorted(s.ts, end, side="left"))
        if prior and lo > 0:
            lo -= 1
        return Series(s.ts[lo:hi], s.values[lo:hi], s.quality[lo:hi])
