"""SampleQueue with blocks (issue 16): a block is one entry but counts its rows for capacity,
drops (per device) and durable hand-over positions; it is split when only part of it is
evicted, refused or taken. Checked against the same rows put as Sample objects."""

from __future__ import annotations

import random

import numpy as np
import pytest

from connectors.base import Quality, Sample, SampleBlock
from edge.queue import Item, SampleQueue


def block(device: str, t0: int, n: int, *, bad: bool = False) -> SampleBlock:
    return SampleBlock(
        device,
        tuple(f"p{i}" for i in range(n)),
        np.arange(t0, t0 + n, dtype=np.int64),
        np.arange(n, dtype=np.float64) + t0,
        np.full(n, int(Quality.BAD) if bad else 0, dtype=np.uint8),
        tuple("timeout" if bad else "" for _ in range(n)) if bad else None,
    )


def rows(items: list[Item]) -> list[Sample]:
    out: list[Sample] = []
    for x in items:
        out.extend(x.samples() if isinstance(x, SampleBlock) else [x])
    return out


def test_drop_oldest_splits_the_oldest_block_and_counts_its_device() -> None:
    q = SampleQueue(5, "drop_oldest")
    q.put_block(block("a", 0, 4))
    q.put_block(block("b", 10, 3))  # 2 rows of a's block are evicted, its tail stays
    assert len(q) == 5
    assert q.drops == {"a": 2}
    assert q.taken == 2  # evicted rows count as taken positions
    got = q.take_nowait(10)
    assert [type(x) for x in got] == [SampleBlock, SampleBlock]
    assert [(s.device, s.ts) for s in rows(got)] == [
        ("a", 2),
        ("a", 3),
        ("b", 10),
        ("b", 11),
        ("b", 12),
    ]


def test_a_block_larger_than_the_queue_keeps_its_newest_rows() -> None:
    q = SampleQueue(3, "drop_oldest")
    q.put(Sample("x", "p", 0, 0.0))
    q.put_block(block("a", 0, 5))
    assert q.drops == {"x": 1, "a": 2}
    assert [s.ts for s in q.get_nowait(10)] == [2, 3, 4]


def test_drop_newest_keeps_the_part_that_fits() -> None:
    q = SampleQueue(5, "drop_newest")
    q.put_block(block("a", 0, 3))
    q.put_block(block("b", 10, 4))
    q.put_block(block("c", 20, 1))
    assert q.drops == {"b": 2, "c": 1}
    assert q.accepted == 5
    assert [(s.device, s.ts) for s in q.get_nowait(10)] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 10),
        ("b", 11),
    ]


def test_take_splits_a_block_at_max_n_and_positions_count_rows() -> None:
    q = SampleQueue(100)
    q.put_block(block("a", 0, 6))
    done: list[bool] = []
    q.when_stored(done.append)
    first = q.take_nowait(4)
    assert [len(x) for x in first] == [4]
    assert q.taken == 4
    assert len(q) == 2
    q.stored(q.taken)
    assert done == []  # the registration covers 6 rows
    rest = q.take_nowait(4)
    assert [s.ts for s in rows(rest)] == [4, 5]
    q.stored(q.taken)
    assert done == [True]


def test_when_stored_reports_a_loss_after_a_block_is_evicted() -> None:
    q = SampleQueue(4, "drop_oldest")
    q.put_block(block("a", 0, 3))
    done: list[bool] = []
    q.when_stored(done.append)
    q.put_block(block("b", 10, 2))  # evicts one row of a's block
    q.take_nowait(10)
    q.stored(q.taken)
    assert done == [False]


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
@pytest.mark.parametrize("seed", range(8))
def test_blocks_behave_as_their_rows_put_as_samples(overflow: str, seed: int) -> None:
    """Random puts (blocks, samples, lists), takes and hand-over registrations on two queues:
    one given blocks, one given the same rows as Sample objects; everything observable must
    be the same."""
    rng = random.Random(seed)
    cap = rng.randint(1, 30)
    qb = SampleQueue(cap, overflow)  # type: ignore[arg-type]
    qs = SampleQueue(cap, overflow)  # type: ignore[arg-type]
    got_b: list[Sample] = []
    got_s: list[Sample] = []
    done_b: list[tuple[int, bool]] = []
    done_s: list[tuple[int, bool]] = []
    t = 0
    for step in range(300):
        op = rng.random()
        if op < 0.45:
            blk = block(rng.choice("abc"), t, rng.randint(0, 2 * cap), bad=rng.random() < 0.2)
            t += len(blk)
            qb.put_block(blk)
            qs.put_many(blk.samples())
        elif op < 0.55:
            smp = Sample(rng.choice("abc"), "s", t, float(t))
            t += 1
            qb.put(smp)
            qs.put(smp)
        elif op < 0.8:
            k = rng.randint(1, cap + 3)
            got_b += rows(qb.take_nowait(k))
            got_s += qs.get_nowait(k)
        elif op < 0.9:
            qb.when_stored(lambda ok, i=step: done_b.append((i, ok)))
            qs.when_stored(lambda ok, i=step: done_s.append((i, ok)))
        else:
            qb.stored(qb.taken)
            qs.stored(qs.taken)
        assert len(qb) == len(qs)
        assert qb.taken == qs.taken
    got_b += rows(qb.take_nowait(10**6))
    got_s += qs.get_nowait(10**6)
    qb.stored(qb.taken)
    qs.stored(qs.taken)
    assert got_b == got_s
    assert qb.drops == qs.drops
    assert qb.accepted == qs.accepted
    assert done_b == done_s
    assert sum(qb.drops.values()) > 0 or t <= cap
