"""The read contract every store satisfies for the KPI engine."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

QUALITY_GOOD = 0
QUALITY_UNCERTAIN = 1
QUALITY_BAD = 2


class Series(NamedTuple):
    """Samples of one point in time order: ``ts`` int64 ns UTC, ``values`` float64,
    ``quality`` uint8 (0 good, 1 uncertain, 2 bad)."""

    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    @classmethod
    def empty(cls) -> Series:
        return cls(
            np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64), np.empty(0, dtype=np.uint8)
        )

    def __len__(self) -> int:
        return int(self.ts.shape[0])


class SeriesReader(Protocol):
    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        """Samples with ``start <= ts < end`` (ns UTC), in time order.

        With ``prior=True`` the last sample before ``start`` (the value in force at ``start``)
        is prepended when there is one: step-wise signals such as machine states need it.
        """
        ...
