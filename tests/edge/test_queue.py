"""SampleQueue: bounded, overflow policies with per-device drop counts, batch waiting."""

from __future__ import annotations

import asyncio
import time

import pytest

from connectors.base import Sample
from edge.queue import SampleQueue


def s(device: str, i: int) -> Sample:
    return Sample(device, "p", i, float(i))


def test_drop_oldest_keeps_newest_and_counts_per_device() -> None:
    q = SampleQueue(3, "drop_oldest")
    for i, dev in enumerate(["a", "b", "a", "b", "c"]):
        q.put(s(dev, i))
    got = q.get_nowait(10)
    assert [x.ts for x in got] == [2, 3, 4]
    assert q.drops == {"a": 1, "b": 1}
    assert q.dropped == 2
    assert len(q) == 0


def test_drop_newest_refuses_while_full() -> None:
    q = SampleQueue(2, "drop_newest")
    for i, dev in enumerate(["a", "a", "b", "c"]):
        q.put(s(dev, i))
    assert [x.ts for x in q.get_nowait(10)] == [0, 1]
    assert q.drops == {"b": 1, "c": 1}


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_put_many_matches_put_one_by_one(overflow: str) -> None:
    samples = [s("abc"[i % 3], i) for i in range(23)]
    one = SampleQueue(7, overflow)  # type: ignore[arg-type]
    many = SampleQueue(7, overflow)  # type: ignore[arg-type]
    for x in samples[:4]:
        one.put(x)
    many.put_many(samples[:4])
    for x in samples[4:]:
        one.put(x)
    many.put_many(iter(samples[4:]))
    assert one.get_nowait(100) == many.get_nowait(100)
    assert one.drops == many.drops
    assert sum(many.drops.values()) == 23 - 7


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SampleQueue(0)
    with pytest.raises(ValueError, match="overflow"):
        SampleQueue(10, "block")  # type: ignore[arg-type]


def test_link_and_error_are_forwarded() -> None:
    links: list[tuple[str, bool]] = []
    errors: list[tuple[str, str]] = []
    q = SampleQueue(
        10, on_link=lambda d, c: links.append((d, c)), on_error=lambda d, k: errors.append((d, k))
    )
    q.link("m1", True)
    q.error("m1", "timeout")
    assert links == [("m1", True)]
    assert errors == [("m1", "timeout")]


async def test_get_batch_returns_when_full_or_on_timeout() -> None:
    q = SampleQueue(100)
    t0 = time.monotonic()
    assert await q.get_batch(5, 0.05) == []
    assert time.monotonic() - t0 >= 0.04

    async def feed() -> None:
        for i in range(5):
            await asyncio.sleep(0.01)
            q.put(s("a", i))

    task = asyncio.create_task(feed())
    t0 = time.monotonic()
    got = await q.get_batch(5, 5.0)
    await task
    assert [x.ts for x in got] == [0, 1, 2, 3, 4]
    assert time.monotonic() - t0 < 2.0  # woke on the 5th sample, not on the timeout
    q.put(s("a", 9))
    assert [x.ts for x in await q.get_batch(5, 0.02)] == [9]


async def test_close_wakes_the_consumer_and_keeps_the_rest() -> None:
    q = SampleQueue(100)
    q.put(s("a", 1))

    async def closer() -> None:
        await asyncio.sleep(0.02)
        q.close()

    task = asyncio.create_task(closer())
    t0 = time.monotonic()
    got = await q.get_batch(10, 10.0)
    await task
    assert time.monotonic() - t0 < 5.0
    assert [x.ts for x in got] == [1]
    assert await q.get_batch(10, 10.0) == []
