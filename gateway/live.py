"""Live stream (Server-Sent Events) of value/state changes, device health and KPI updates.

One poller per service reads the store's ``latest`` table and the health records every
``live_poll_s`` (default 250 ms) while someone listens, and pushes only what changed to every
subscriber. On a large site the interval stretches so that polling takes at most
1/``LIVE_COST_SHARE`` of the time (up to ``LIVE_MAX_WAIT_S``): 100,000 points cost about 0.2 s
of CPU per poll to read, more to send, and the gateway shares the collector's cores. A slow
client whose queue fills up is sent a ``resync`` event and gets a fresh
snapshot instead of an ever-growing backlog.

Events (``event:`` name, JSON ``data:``): ``snapshot`` {samples, health} on connect (with the
last ``kpi`` event right after it, when there was one),
``latest`` {samples} changed values, ``health`` {devices} changed health, ``kpi`` {period,
result} every ``kpi_refresh_s``, ``resync`` when the client fell behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from config.models import SiteConfig
from edge.store.base import DeviceHealth
from gateway.data import ReaderPool, ReadStore, Unavailable
from gateway.views import health_out, sample_out

log = logging.getLogger("shopfloor.gateway.live")

QUEUE_MAX = 256
# the poller takes at most 1/LIVE_COST_SHARE of the time (a large site polls less often)
LIVE_COST_SHARE = 10.0
LIVE_MAX_WAIT_S = 5.0
Event = tuple[str, str]


def sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


class LiveHub:
    def __init__(
        self,
        pool: ReaderPool,
        site: SiteConfig,
        *,
        poll_s: float = 0.25,
        kpi_s: float = 15.0,
        kpi: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self.poll_cost_s = 0.0  # seconds the last poll took (read, compare, publish)
        self._site = site
        self._poll_s = poll_s
        self._kpi_s = kpi_s
        self._kpi = kpi
        self._subs: set[asyncio.Queue[Event | None]] = set()
        self._latest: dict[tuple[str, str], tuple[int, float, int, str]] = {}
        self._health: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._kpi_task: asyncio.Task[None] | None = None
        self._last_kpi: str | None = None  # the last kpi event's data, sent on connect
        self._wake = asyncio.Event()
        self._closed = False
        self.last_poll_error: str | None = None
        self.polls = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def interval_s(self) -> float:
        """Seconds to the next poll: ``poll_s``, stretched (up to ``LIVE_MAX_WAIT_S``) so that
        a poll as costly as the last one takes at most 1/``LIVE_COST_SHARE`` of the time."""
        return max(self._poll_s, min(self.poll_cost_s * LIVE_COST_SHARE, LIVE_MAX_WAIT_S))

    # -- reading -----------------------------------------------------------------------
    async def snapshot(self) -> dict[str, Any]:
        def read(store: ReadStore) -> tuple[Sequence[Any], list[DeviceHealth]]:
            return store.latest(), store.health()

        samples, health = await self._pool.run(read)
        return {
            "samples": [sample_out(self._site, s).model_dump() for s in samples],
            "health": [health_out_dict(h) for h in health],
        }

    def _diff(
        self, samples: Sequence[Any], health: list[DeviceHealth]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        changed: list[dict[str, Any]] = []
        for s in samples:
            key = (s.device, s.point)
            sig = (int(s.ts), float(s.value), int(s.quality), str(s.status))
            old = self._latest.get(key)
            if old is None or (old != sig and not _same_nan(old, sig)):
                self._latest[key] = sig
                changed.append(sample_out(self._site, s).model_dump())
        hchanged: list[dict[str, Any]] = []
        for h in health:
            d = health_out_dict(h)
            if self._health.get(h.device) != d:
                self._health[h.device] = d
                hchanged.append(d)
        return changed, hchanged

    # -- subscribers -------------------------------------------------------------------
    def _publish(self, event: str, payload: Any) -> str:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        for q in list(self._subs):
            try:
                q.put_nowait((event, data))
            except asyncio.QueueFull:
                # the client fell behind: drop its backlog, tell it to reload a snapshot
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(("resync", "{}"))
        return data

    async def stream(self, max_s: float) -> AsyncIterator[str]:
        """SSE text for one client: a snapshot, then changes, until ``max_s`` or close."""
        if self._closed:
            return
        q: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_MAX)
        self._subs.add(q)
        self._ensure_running()
        deadline = time.monotonic() + max_s
        try:
            yield "retry: 1000\n\n"
            yield sse("snapshot", _dumps(await self._safe_snapshot()))
            if self._last_kpi is not None:  # the last KPI values at once, not at the next turn
                yield sse("kpi", self._last_kpi)
            while not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # asyncio.timeout, not wait_for: in Python 3.11 wait_for hands back an item
                # that arrives together with a cancellation and drops the cancellation (the
                # stream would then never stop)
                try:
                    async with asyncio.timeout(min(left, 15.0)):
                        item = await q.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    break
                event, data = item
                if event == "resync":
                    yield sse("snapshot", _dumps(await self._safe_snapshot()))
                else:
                    yield sse(event, data)
        finally:
            self._subs.discard(q)

    async def _safe_snapshot(self) -> dict[str, Any]:
        try:
            return await self.snapshot()
        except Unavailable as exc:
            return {"samples": [], "health": [], "error": str(exc)}

    # -- the poller --------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="shopfloor-live-poller")
        self._wake.set()

    async def _run(self) -> None:
        next_kpi = 0.0
        while not self._closed:
            if not self._subs:
                self._wake.clear()
                await self._wake.wait()
                continue
            began = self._clock()
            try:
                await self.poll_once()
                self.last_poll_error = None
            except Unavailable as exc:
                self.last_poll_error = str(exc)
            except Exception as exc:
                self.last_poll_error = f"{type(exc).__name__}: {exc}"
                log.warning("live poll failed", extra={"error": self.last_poll_error})
            busy = self._kpi_task is not None and not self._kpi_task.done()
            if self._kpi is not None and time.monotonic() >= next_kpi and not busy:
                # computed beside the poll loop: a slow KPI period never delays live values
                next_kpi = time.monotonic() + self._kpi_s
                self._kpi_task = asyncio.create_task(self._kpi_update(self._kpi))
            self.poll_cost_s = self._clock() - began
            await asyncio.sleep(self.interval_s)

    async def _kpi_update(self, compute: Callable[[], Awaitable[dict[str, Any] | None]]) -> None:
        try:
            kpi = await compute()
        except Unavailable:
            return
        except Exception as exc:
            log.warning("live KPI update failed", extra={"error": repr(exc)})
            return
        if kpi is not None:
            self._last_kpi = self._publish("kpi", kpi)

    async def poll_once(self) -> None:
        def read(store: ReadStore) -> tuple[Sequence[Any], list[DeviceHealth]]:
            return store.latest(), store.health()

        samples, health = await self._pool.run(read)
        self.polls += 1
        changed, hchanged = self._diff(samples, health)
        if changed:
            self._publish("latest", {"samples": changed})
        if hchanged:
            self._publish("health", {"devices": hchanged})

    async def close(self) -> None:
        self._closed = True
        for q in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self._wake.set()
        for task in (self._task, self._kpi_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        self._kpi_task = None


def _same_nan(a: tuple[int, float, int, str], b: tuple[int, float, int, str]) -> bool:
    return a[0] == b[0] and a[2:] == b[2:] and a[1] != a[1] and b[1] != b[1]


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def health_out_dict(h: DeviceHealth) -> dict[str, Any]:
    return {"device": h.device, **health_out(h).model_dump()}
