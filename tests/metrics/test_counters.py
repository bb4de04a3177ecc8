from __future__ import annotations

import numpy as np

from metrics.counters import counter_steps
from metrics.series import Series


def _s(values: list[float], quality: list[int] | None = None) -> Series:
    n = len(values)
    return Series(
        np.arange(n, dtype=np.int64) * 10,
        np.array(values, dtype=np.float64),
        np.array(quality or [0] * n, dtype=np.uint8),
    )


def test_reset_rollover_and_backstep() -> None:
    # 100 -> 5: reset (counts 5); 5 -> 9 (+4); 9 -> 7: backstep (7 > 9 / 2: not a fresh count)
    st = counter_steps(_s([100, 5, 9, 7, 8]), start=0)
    assert st.inc.tolist() == [5, 4, 0, 1]
    assert (st.resets, st.rollovers, st.backsteps) == (1, 0, 1)
    roll = counter_steps(_s([250, 3, 10]), start=0, bits=8)
    assert roll.inc.tolist() == [9, 7]  # 3 + 256 - 250 = 9
    assert roll.rollovers == 1


def test_prior_bad_and_single_samples() -> None:
    st = counter_steps(_s([10, 12, float("nan"), 15], [0, 0, 0, 2]), start=5)
    assert st.inc.tolist() == [2]  # the NaN and the bad sample are skipped
    assert not st.no_prior
    assert st.total(0, 100) == 2
    one = counter_steps(_s([7]), start=0)
    assert one.inc.size == 0
    assert one.no_prior
    assert counter_steps(Series.empty(), start=0).samples == 0
