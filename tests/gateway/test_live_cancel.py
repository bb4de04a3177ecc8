"""A client that goes away just as a live event is queued must end its stream.

Python 3.11's ``asyncio.wait_for`` hands back an item that arrives in the same loop step as a
cancellation and drops the cancellation, so the stream of a closed connection kept running.
The event is published and the consumer cancelled in one synchronous step here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config.loader import load_site
from gateway.data import ReaderPool
from gateway.live import LiveHub

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"


async def test_cancel_as_an_event_arrives_ends_the_stream() -> None:
    pool = ReaderPool(None, size=1)  # no store: the snapshot says so (real code path)
    hub = LiveHub(pool, load_site(DEMO), poll_s=0.05)
    got: list[str] = []
    gen = hub.stream(30.0)
    snapshot_in = asyncio.Event()

    async def consume() -> None:
        async for chunk in gen:
            got.append(chunk)
            if chunk.startswith("event: snapshot"):
                snapshot_in.set()

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(5.0):
            await snapshot_in.wait()
        for _ in range(20):  # the stream now waits on its queue
            await asyncio.sleep(0)
        assert hub.subscribers == 1
        hub._publish("latest", {"samples": []})
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2.0):
                await task
        assert not any(c.startswith("event: latest") for c in got)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gen.aclose()
        await hub.close()
        await pool.close()
    assert hub.subscribers == 0
