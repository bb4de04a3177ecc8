"""The store's series ids of a block, cached by the identity of its points tuple (issue 16):
never stale after a rolled-back transaction gave ids back; concatenated blocks of the same
reads share one points tuple; a chunk's series index is the same on its fast path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectors.base import JoinedPoints, SampleBlock
from edge.store.base import Batch
from edge.store.sqlite import BatchConflict, SqliteStore, series_index


def _block(device: str, points: tuple[str, ...], ts: int, base: float) -> SampleBlock:
    n = len(points)
    return SampleBlock(
        device,
        points,
        np.full(n, ts, dtype=np.int64),
        base + np.arange(n, dtype=np.float64),
        np.zeros(n, dtype=np.uint8),
    )


def test_cached_ids_are_dropped_when_a_transaction_is_undone(tmp_path: Path) -> None:
    pts2 = ("a", "b", "c")
    pts3 = ("x", "y", "z")
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_batches([Batch("m1", 1, block=_block("m1", ("p",), 1, 0.0))])
        # m2's series are created, then the transaction fails (m1#1 again): ids given back
        with pytest.raises(BatchConflict):
            store.write_batches(
                [
                    Batch("m2", 1, block=_block("m2", pts2, 10, 100.0)),
                    Batch("m1", 1, block=_block("m1", ("p",), 2, 0.0)),
                ]
            )
        # m3's new series take those ids; m2's same points tuple must not reuse the cache
        store.write_batches([Batch("m3", 1, block=_block("m3", pts3, 20, 300.0))])
        store.write_batches([Batch("m2", 1, block=_block("m2", pts2, 30, 200.0))])
        got = {
            (d, p): store.read(d, p, 0, 100).values.tolist()
            for d, ps in (("m2", pts2), ("m3", pts3))
            for p in ps
        }
    assert got == {
        ("m2", "a"): [200.0],
        ("m2", "b"): [201.0],
        ("m2", "c"): [202.0],
        ("m3", "x"): [300.0],
        ("m3", "y"): [301.0],
        ("m3", "z"): [302.0],
    }


def test_concatenated_reads_share_one_points_tuple() -> None:
    r1, r2 = ("a", "b"), ("c",)
    joined = JoinedPoints()
    one = SampleBlock.concat([_block("m", r1, 1, 0.0), _block("m", r2, 1, 0.0)], joined)
    two = SampleBlock.concat([_block("m", r1, 2, 0.0), _block("m", r2, 2, 0.0)], joined)
    assert one.points == ("a", "b", "c")
    assert two.points is one.points
    other = SampleBlock.concat([_block("m", tuple("ab"), 3, 0.0), _block("m", r2, 3, 0.0)], joined)
    assert other.points == one.points  # equal parts that are other objects: a new tuple
    assert other.points is not one.points
    back = SampleBlock.concat([_block("m", r2, 4, 0.0), _block("m", r1, 4, 0.0)], joined)
    assert back.points == ("c", "a", "b")
    plain = SampleBlock.concat([_block("m", r1, 5, 0.0), _block("m", r2, 5, 0.0)])
    assert plain.points == one.points  # without a cache: equal, a new tuple
    assert plain.points is not one.points


def test_the_joined_cache_holds_a_bounded_number_of_names() -> None:
    joined = JoinedPoints(max_rows=10)
    parts = [(f"p{i}", f"q{i}") for i in range(20)]
    first = joined([parts[0], parts[1]])
    assert joined([parts[0], parts[1]]) is first
    for i in range(2, 20, 2):  # 4 names each: the cache starts again when over 10
        joined([parts[i], parts[i + 1]])
    assert joined._rows <= 10
    assert joined([parts[0], parts[1]]) is not first  # forgotten, joined again


def _series_index_sorted(sids: np.ndarray) -> bytes:
    """The index by sorting (the general path), for any sid column."""
    order = np.argsort(sids, kind="stable")
    out = []
    for s in np.unique(sids).tolist():
        at = order[sids[order] == s]
        out.append([s, at[0], at[-1] + 1, at.shape[0]])
    return np.array(out, dtype=np.uint32).tobytes()


@pytest.mark.parametrize(
    "sids",
    [[5], [1, 2, 3, 9], [3, 3, 3], [4, 2, 9, 2], [1, 2, 2, 3], [7, 8, 1000, 100_000]],
)
def test_series_index_fast_path_matches_sorting(sids: list[int]) -> None:
    col = np.array(sids, dtype=np.uint32)
    assert series_index(col) == _series_index_sorted(col)
