"""The queue's durable hand-over (SampleQueue.when_stored) and the writer's release of it, and
the writer's deduplication against the store (edge.dedupe), with a real SqliteStore."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from connectors.base import NAN, Quality, Sample
from edge.queue import SampleQueue
from edge.store.sqlite import SqliteStore
from edge.writer import Writer


def _s(ts: int, value: float, point: str = "p", device: str = "d") -> Sample:
    return Sample(device, point, ts, value)


def test_when_stored_settles_in_order_once_the_writer_reports() -> None:
    q = SampleQueue(100)
    seen: list[tuple[str, bool]] = []
    q.when_stored(lambda ok: seen.append(("empty", ok)))  # nothing outstanding: at once
    q.put_many([_s(1, 1.0), _s(2, 2.0)])
    q.when_stored(lambda ok: seen.append(("a", ok)))
    q.put(_s(3, 3.0))
    q.when_stored(lambda ok: seen.append(("b", ok)))
    assert seen == [("empty", True)]
    q.get_nowait(2)
    q.stored(q.taken)  # the first two are written
    assert seen == [("empty", True), ("a", True)]
    q.get_nowait(10)
    q.stored(q.taken)
    assert seen[-1] == ("b", True)


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_a_registration_whose_samples_may_be_dropped_reports_false(overflow: str) -> None:
    q = SampleQueue(100, overflow)  # type: ignore[arg-type]
    seen: list[bool] = []
    q.put_many([_s(i, float(i)) for i in range(100)])
    if overflow == "drop_oldest":
        q.when_stored(seen.append)
        q.put(_s(100, 100.0))  # evicts the oldest, covered by the registration
    else:
        q.put(_s(100, 100.0))  # refused
        q.when_stored(seen.append)
    q.get_nowait(1000)
    q.stored(q.taken)
    assert seen == [False]


async def test_a_pending_registration_makes_the_writer_write_at_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    q = SampleQueue(1000)
    # a writer that would otherwise wait 60 s for 10,000 samples
    w = Writer(store, q, batch_max_samples=10_000, flush_interval_ms=60_000)
    task = asyncio.create_task(w.run())
    done = asyncio.Event()
    results: list[bool] = []
    q.put_many([_s(1, 1.0), _s(2, 2.0)])
    q.when_stored(lambda ok: (results.append(ok), done.set()))
    async with asyncio.timeout(10):
        await done.wait()
    assert results == [True]
    assert store.read("d", "p", 0, 10).ts.tolist() == [1, 2]  # stored before the callback
    q.close()
    await task
    await w.close()


async def _write(path: Path, samples: list[Sample]) -> Writer:
    """A new writer (as after a restart of the collector) writes ``samples`` and closes."""
    store = SqliteStore(path)
    q = SampleQueue(10_000)
    w = Writer(store, q, flush_interval_ms=5)
    q.put_many(samples)
    q.close()
    await w.run()
    await w.close()
    return w


async def test_duplicates_of_stored_samples_are_not_stored_again_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    await _write(path, [_s(10, 1.0), _s(20, 2.0), _s(30, 3.0), _s(5, 7.0, "q")])
    w = await _write(
        path,
        [
            _s(20, 2.0),  # an older duplicate (redelivered): looked up in the store
            _s(30, 3.0),  # the newest stored, again (a retained message)
            _s(20, 2.5),  # same time, another value: a real conflict, kept
            _s(25, 9.0),  # new, between stored samples (late data), kept
            _s(25, 9.0),  # ... and its duplicate in the same write
            _s(40, 4.0),  # new
            _s(5, 7.0, "q"),
        ],
    )
    assert w.dedupe is not None
    assert w.dedupe.dropped == 4
    store = SqliteStore(path, readonly=True)
    s = store.read("d", "p", 0, 100)
    assert sorted(zip(s.ts.tolist(), s.values.tolist(), strict=True)) == [
        (10, 1.0),
        (20, 2.0),
        (20, 2.5),
        (25, 9.0),
        (30, 3.0),
        (40, 4.0),
    ]
    assert store.read("d", "q", 0, 100).ts.tolist() == [5]
    store.close()


async def test_a_marker_is_not_a_duplicate_of_a_value_and_nan_equals_nan(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    marker = Sample("d", "p", 10, NAN, Quality.BAD, "link_lost")
    await _write(path, [_s(10, 1.0), marker])
    await _write(path, [Sample("d", "p", 10, NAN, Quality.BAD, "link_lost"), _s(10, 1.0)])
    store = SqliteStore(path, readonly=True)
    s = store.read("d", "p", 0, 100)
    assert len(s.ts) == 2
    assert sorted(math.isnan(v) for v in s.values.tolist()) == [False, True]
    store.close()
