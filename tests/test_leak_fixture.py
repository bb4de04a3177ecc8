"""The leak fixture itself: it must catch a leaked task and a leaked thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests import conftest


async def test_pending_task_is_recorded_when_loop_closes() -> None:
    loop = conftest._Policy().new_event_loop()
    try:
        loop.create_task(asyncio.sleep(10))
    finally:
        loop.close()
    assert conftest._leaked_tasks, "a pending task must be recorded"
    conftest._leaked_tasks.clear()


@pytest.mark.allow_leaks
def test_thread_detection_sees_new_thread() -> None:
    before = conftest._live_threads()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="leaky")
    t.start()
    try:
        assert t in conftest._live_threads() - before
    finally:
        stop.set()
        t.join()
