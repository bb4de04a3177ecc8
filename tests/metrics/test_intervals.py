from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from metrics.intervals import IntervalSet

pairs = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 200)).map(lambda p: (min(p), max(p))),
    max_size=12,
)


def _mask(s: IntervalSet) -> np.ndarray:
    m = np.zeros(200, dtype=bool)
    for a, b in s.pairs():
        m[a:b] = True
    return m


def test_normalise_and_total() -> None:
    s = IntervalSet.of([(5, 10), (0, 3), (8, 12), (12, 15), (20, 20)])
    assert s.pairs() == [(0, 3), (5, 15)]
    assert s.total == 13


@given(pairs, pairs)
def test_set_algebra_matches_masks(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    sa, sb = IntervalSet.of(a), IntervalSet.of(b)
    ma, mb = _mask(sa), _mask(sb)
    assert (_mask(sa.union(sb)) == (ma | mb)).all()
    assert (_mask(sa.intersect(sb)) == (ma & mb)).all()
    assert (_mask(sa.subtract(sb)) == (ma & ~mb)).all()
    t = np.arange(0, 200, dtype=np.int64)
    assert (sa.contains(t) == ma).all()
    lo = np.array([0, 7, 50], dtype=np.int64)
    hi = np.array([200, 90, 51], dtype=np.int64)
    got = sa.measure_in(lo, hi)
    assert got.tolist() == [int(ma[x:y].sum()) for x, y in zip(lo, hi, strict=True)]


def test_empty_sets() -> None:
    e = IntervalSet.empty()
    t = np.array([1, 2], dtype=np.int64)
    assert e.measure_before(t).tolist() == [0, 0]
    assert not e.contains(t).any()
    assert e.complement(0, 10).pairs() == [(0, 10)]
