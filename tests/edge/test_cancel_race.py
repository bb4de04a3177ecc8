"""A cancellation that arrives just as the awaited thing completes must propagate.

Python 3.11's ``asyncio.wait_for`` returns the result instead when the task is cancelled in the
same loop iteration as its awaitable completes (the collector's writer and ``shopfloor sim`` /
``demo`` then never stopped). Each test here wakes the waiting task and cancels it with no loop
iteration in between, which makes the race deterministic: with ``wait_for`` these tests fail
(the call returns normally), with ``asyncio.timeout`` the ``CancelledError`` comes through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from connectors.base import Sample
from edge.cli.demo import until_stop
from edge.cli.sim import wait_stop
from edge.queue import SampleQueue


def _sample(i: int) -> Sample:
    return Sample("meter-1", "p", i, float(i))


T = TypeVar("T")


async def _started(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.create_task(coro)
    for _ in range(3):  # let it reach its await
        await asyncio.sleep(0)
    assert not task.done()
    return task


async def test_queue_get_batch_cancelled_as_a_put_wakes_it() -> None:
    q = SampleQueue(100)
    task = await _started(q.get_batch(2, 5.0))
    q.put_many([_sample(0), _sample(1)])  # completes the consumer's waiter
    task.cancel()  # same iteration: with wait_for the batch was returned, the cancel lost
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    # nothing lost: the samples wait for the next consumer
    assert [x.ts for x in q.get_nowait(10)] == [0, 1]


async def test_queue_get_batch_still_returns_on_wake_and_on_timeout() -> None:
    q = SampleQueue(100)
    task = await _started(q.get_batch(2, 5.0))
    q.put_many([_sample(0), _sample(1), _sample(2)])
    assert [x.ts for x in await asyncio.wait_for(task, 2.0)] == [0, 1]
    # quiet queue: empty after the timeout, and a later get takes what is left
    assert [x.ts for x in await q.get_batch(5, 0.05)] == [2]
    assert await q.get_batch(5, 0.05) == []


async def test_queue_cancel_while_waiting_leaves_no_waiter() -> None:
    q = SampleQueue(100)
    task = await _started(q.get_batch(2, 5.0))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the single-consumer slot is free again
    q.put(_sample(7))
    assert [x.ts for x in await q.get_batch(1, 1.0)] == [7]


async def test_sim_wait_stop_cancelled_as_stop_is_set() -> None:
    stop = asyncio.Event()
    task = await _started(wait_stop(stop, 5.0))
    stop.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sim_wait_stop_returns_on_stop_and_after_duration() -> None:
    stop = asyncio.Event()
    task = await _started(wait_stop(stop, None))
    stop.set()
    await asyncio.wait_for(task, 2.0)
    # duration elapsed, stop never set: returns (no TimeoutError)
    await wait_stop(asyncio.Event(), 0.05)


async def _quick() -> None:
    await asyncio.sleep(0)


async def test_demo_until_stop_cancelled_as_stop_is_set() -> None:
    stop = asyncio.Event()
    work = asyncio.create_task(asyncio.sleep(30))
    task = await _started(until_stop(stop, work, 5.0))
    stop.set()
    for _ in range(2):  # until_stop's inner wait is completing now
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work


async def test_demo_until_stop_returns_on_stop_task_end_and_duration() -> None:
    stop = asyncio.Event()
    work = asyncio.create_task(asyncio.sleep(30))
    task = await _started(until_stop(stop, work, None))
    stop.set()
    await asyncio.wait_for(task, 2.0)
    assert not work.done()  # the collector task is the caller's to stop
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work

    done = asyncio.create_task(_quick())
    await asyncio.wait_for(until_stop(asyncio.Event(), done, None), 2.0)
    assert done.done()

    idle = asyncio.create_task(asyncio.sleep(30))
    await until_stop(asyncio.Event(), idle, 0.05)
    assert not idle.done()
    idle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await idle
