"""KPI values through ``metrics.engine`` on a store reader, with a short result cache.

Computing the before/after table reads every point the formulas need over two periods, so a
result is kept for ``kpi_cache_s`` seconds (default 10 s): many dashboards asking at once cost
one computation. Identical requests in flight share it too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import zoneinfo
from typing import Any

from config.models import SiteConfig
from gateway.data import ReaderPool, ReadStore, Unavailable, optional_module
from gateway.jsonsafe import jsonable


class PeriodInputError(ValueError):
    """A period text that cannot be read (shown as 422 with the reason)."""


MAX_PERIOD_DAYS = 3 * 366


def parse_period(text: str, tz: str) -> Any:
    """A period ``FROM..TO`` of at most three years (longer ones would tie up a reader)."""
    periods = optional_module("metrics.periods")
    try:
        rng = periods.parse_range(text, tz)
    except (ValueError, OverflowError) as exc:
        raise PeriodInputError(f"period {text!r}: {exc}") from None
    if rng.end_ns - rng.start_ns > MAX_PERIOD_DAYS * 86_400 * 10**9:
        raise PeriodInputError(f"period {text!r}: at most {MAX_PERIOD_DAYS} days")
    _check_representable(rng, text)
    return rng


# times are int64 nanoseconds (1677-09-21 .. 2262-04-11 UTC); whole years inside, with margin
_NS_MIN = int(dt.datetime(1678, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9
_NS_MAX = int(dt.datetime(2262, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9


def _check_representable(rng: Any, text: str) -> None:
    """A period outside the store's time range is a 422, not an overflow in the store."""
    if not _NS_MIN <= rng.start_ns < rng.end_ns <= _NS_MAX:
        raise PeriodInputError(f"period {text!r}: dates must lie between 1678 and 2261")


def today_range(tz: str, now: dt.datetime | None = None) -> str:
    """``YYYY-MM-DD..YYYY-MM-DD`` of today in the site's zone (dates are inclusive)."""
    day = (now or dt.datetime.now(zoneinfo.ZoneInfo(tz))).date()
    return f"{day.isoformat()}..{day.isoformat()}"


def machine_view(
    result: dict[str, Any], site: SiteConfig, devices: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``metrics.machine_table.view`` of a period result (the machines asked for, else every
    machine of the site)."""
    table = optional_module("metrics.machine_table")
    view: dict[str, Any] = table.view(result, site, devices or None)
    return view


class KpiService:
    def __init__(self, pool: ReaderPool, site: SiteConfig, cache_s: float) -> None:
        self._pool = pool
        self._site = site
        self._cache_s = cache_s
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._inflight: dict[tuple[str, ...], asyncio.Future[Any]] = {}
        self._encoded: dict[tuple[str, str], tuple[dict[str, Any], bytes]] = {}

    async def _cached(self, key: tuple[str, ...], compute: Any) -> Any:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await self._pool.run(compute)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(value)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), value)
        return value

    async def period(self, text: str, devices: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
        engine = optional_module("metrics.engine")
        rng = parse_period(text, self._site.site.timezone)
        for d in devices:
            try:
                self._site.device(d)
            except KeyError:
                raise PeriodInputError(f"unknown device {d!r}") from None

        def compute(store: ReadStore) -> dict[str, Any]:
            result = engine.compute_period(store, self._site, rng, devices=devices or None)
            out: dict[str, Any] = jsonable(result)
            # each machine's figures with coverage and the reason of a missing value
            # (metrics.machine_table; the same as `shopfloor kpi --period P --machines`)
            out["machine_figures"] = machine_view(out, self._site, devices)
            return out

        return rng, await self._cached(("period", rng.label, *devices), compute)

    async def machines(
        self, text: str, devices: tuple[str, ...] = (), lang: str = "zh"
    ) -> tuple[Any, dict[str, Any]]:
        """Per-machine figures of one period (every machine, or ``devices``); the fleet row
        is over every key machine of the site."""
        for d in devices:
            try:
                self._site.device(d)
            except KeyError:
                raise PeriodInputError(f"unknown device {d!r}") from None
        rng, result = await self.period(text)
        table = optional_module("metrics.machine_table")
        out: dict[str, Any] = table.view(result, self._site, devices or None, lang)
        return rng, out

    async def table(self, baseline: str, current: str) -> dict[str, Any]:
        engine = optional_module("metrics.engine")
        tz = self._site.site.timezone
        b = parse_period(baseline, tz)
        c = parse_period(current, tz)

        def compute(store: ReadStore) -> dict[str, Any]:
            table = engine.compute_table(store, self._site, b, c)
            out: dict[str, Any] = jsonable(table.to_dict())
            return out

        result: dict[str, Any] = await self._cached(("table", b.label, c.label), compute)
        return result

    async def table_json(self, baseline: str, current: str) -> bytes:
        """The ``/api/v1/table`` answer, encoded once per cached result (a table is ~40 KB
        of JSON: encoding it again for every dashboard would cost more than reading it)."""
        table = await self.table(baseline, current)
        key = (baseline, current)
        hit = self._encoded.get(key)
        if hit is not None and hit[0] is table:  # the same cached result object
            return hit[1]
        doc = {"baseline": baseline, "current": current, "table": table}
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()
        if len(self._encoded) > 64:
            self._encoded.clear()
        self._encoded[key] = (table, body)
        return body

    async def live_today(self) -> dict[str, Any] | None:
        """The per-machine figures of the day of the newest data (today on a live gateway; the
        simulated day for a demo whose clock runs elsewhere), for the live stream. None when
        the engine or the store is absent."""

        try:
            rng, result = await self.period(await self.data_day())
        except Unavailable:
            return None
        return {"period": rng.label, "result": result}

    async def data_day(self) -> str:
        """The day of the newest recorded sample as ``YYYY-MM-DD..YYYY-MM-DD`` (today when the
        store is empty)."""

        def newest(store: ReadStore) -> int | None:
            return max((int(s.ts) for s in store.latest()), default=None)

        tz = self._site.site.timezone
        ts = await self._pool.run(newest)
        if ts is None:
            return today_range(tz)
        return today_range(tz, dt.datetime.fromtimestamp(ts / 1e9, zoneinfo.ZoneInfo(tz)))
