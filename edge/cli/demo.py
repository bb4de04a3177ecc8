"""``shopfloor demo``: the simulated demo factory and the collector in one command.

Loads the packaged ``config/examples/demo.yaml``, points its stores at ``--data`` (default
``./demo-data``), moves its ports to free ones when they are taken, starts the simulators
(OPC UA CNC machines, Modbus meters, MQTT quality station, an MTConnect agent of one CNC),
imports a baseline week (建设前, the same calendar week one year before the factory clock's
start, closed by ``import_end`` markers) when the store holds nothing before the factory
clock's start (before any connector or simulator starts, so the import never competes with the
first connects), runs the collector on the embedded store and every service registered in the
``shopfloor.demo`` entry-point group (the gateway registers one: ``async def serve(site,
stop)``), prints what runs and where the data goes, and stops cleanly on Ctrl-C (or after
``--duration`` seconds). The effective site file is written next to the data
(``demo-site.yaml``) so ``shopfloor tail -c`` and ``shopfloor kpi -c`` can use it.

The factory clock (``--speed``) starts by default at the most recent shift start of the site
calendar on a working day (so the current period has planned busy time), or just after the data
of an earlier run in the same store; at the end the demo prints the ``shopfloor kpi`` command
whose current period is exactly the factory time that ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import socket
import sys
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import yaml

import config as config_pkg
from config.evidence import EvidenceSettings
from config.models import Device, SiteConfig
from config.storage import SqliteStorage
from connectors.base import Connector, Sample, SampleBlock, Sink
from connectors.registry import build_connectors
from connectors.simulators.base import SimClock, Simulator
from connectors.simulators.factory import build_simulators
from connectors.simulators.history import generate_history
from edge.cli.run import load_or_report, setup_logging
from edge.cli.sim import parse_start, start_all, stop_all
from edge.runtime import Collector, install_stop_signals
from edge.store.sqlite import SqliteStore, StoreError

log = logging.getLogger("shopfloor.demo")

DAY_NS = 86_400 * 10**9
SERVICE_STOP_S = 15.0

Serve = Callable[[SiteConfig, asyncio.Event], Awaitable[None]]


def packaged_demo() -> Path:
    return Path(config_pkg.__file__).parent / "examples" / "demo.yaml"


# -- ports ------------------------------------------------------------------------------------


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Free for a strict bind (no SO_REUSEADDR: a port with connections in TIME_WAIT counts as
    taken, since some servers refuse it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _url_port(url: str) -> int | None:
    return urlsplit(url).port


def _with_url_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def site_ports(site: SiteConfig) -> list[int]:
    """Every TCP port the demo serves on: simulators' and the gateway's."""
    ports: list[int] = []
    for d in site.devices:
        if d.opcua is not None:
            p = _url_port(d.opcua.endpoint)
            if p is not None:
                ports.append(p)
        elif d.modbus is not None and d.modbus.transport == "tcp":
            ports.append(d.modbus.port)
        elif d.mqtt is not None:
            ports.append(d.mqtt.port)
        elif d.mtconnect is not None:
            p = _url_port(d.mtconnect.url)
            if p is not None:
                ports.append(p)
    ports.append(site.gateway.port)
    return list(dict.fromkeys(ports))


def move_ports(
    site: SiteConfig, is_free: Callable[[int], bool] = port_free
) -> tuple[SiteConfig, dict[int, int]]:
    """The site with every taken port replaced by a free one (the same new port for every
    device that shared the old one), and the moves made."""
    moves: dict[int, int] = {}
    taken: set[int] = set()
    for port in site_ports(site):
        if not is_free(port):
            new = pick_free_port()
            while new in taken or new in moves.values():
                new = pick_free_port()
            moves[port] = new
        taken.add(port)
    if not moves:
        return site, moves

    def moved(d: Device) -> Device:
        if d.opcua is not None:
            p = _url_port(d.opcua.endpoint)
            if p in moves:
                ep = _with_url_port(d.opcua.endpoint, moves[p])
                return d.model_copy(update={"opcua": d.opcua.model_copy(update={"endpoint": ep})})
        elif d.modbus is not None and d.modbus.port in moves:
            mb = d.modbus.model_copy(update={"port": moves[d.modbus.port]})
            return d.model_copy(update={"modbus": mb})
        elif d.mqtt is not None and d.mqtt.port in moves:
            mq = d.mqtt.model_copy(update={"port": moves[d.mqtt.port]})
            return d.model_copy(update={"mqtt": mq})
        elif d.mtconnect is not None:
            p = _url_port(d.mtconnect.url)
            if p in moves:
                url = _with_url_port(d.mtconnect.url, moves[p])
                mt = d.mtconnect.model_copy(update={"url": url})
                return d.model_copy(update={"mtconnect": mt})
        return d

    update: dict[str, Any] = {"devices": tuple(moved(d) for d in site.devices)}
    if site.gateway.port in moves:
        update["gateway"] = site.gateway.model_copy(update={"port": moves[site.gateway.port]})
    return site.model_copy(update=update), moves


# -- data folder --------------------------------------------------------------------------------


def relocate(site: SiteConfig, data: Path) -> SiteConfig:
    """The site with its store, ledger, keys, users DB and MTConnect resume files
    (``mtconnect-<device>.json``) under ``data`` (absolute paths)."""
    data = data.resolve()
    ev: EvidenceSettings = site.evidence.model_copy(
        update={"ledger_path": data / "ledger.db", "key_dir": data / "keys"}
    )

    def resume_here(d: Device) -> Device:
        if d.mtconnect is None:
            return d
        mt = d.mtconnect.model_copy(update={"resume_file": data / f"mtconnect-{d.id}.json"})
        return d.model_copy(update={"mtconnect": mt})

    return site.model_copy(
        update={
            "devices": tuple(resume_here(d) for d in site.devices),
            "storage": SqliteStorage(path=data / "shopfloor.db"),
            "evidence": ev,
            "gateway": site.gateway.model_copy(update={"users_db": data / "users.db"}),
        }
    ).with_source_dir(data)


def write_site_file(site: SiteConfig, path: Path) -> None:
    body = yaml.safe_dump(
        site.model_dump(mode="json", exclude_none=True), allow_unicode=True, sort_keys=False
    )
    path.write_text(
        "# The effective demo site file written by `shopfloor demo` (ports and paths moved).\n"
        + body,
        encoding="utf-8",
    )


# -- baseline -----------------------------------------------------------------------------------


def year_before(day: dt.date) -> dt.date:
    """The same calendar date one year earlier (29 February -> 28 February)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def baseline_period(live_start_ns: int, tz_name: str, days: int = 7) -> tuple[int, int]:
    """The baseline (建设前): ``days`` whole local days at the same calendar week one year
    before the live start, ending at the local midnight after the live start's date a year
    earlier (live 2026-11-21 -> 2025-11-15 00:00 .. 2025-11-22 00:00), so the declared figures
    of the year before apply to it and a year-on-year table compares it with the live data."""
    if days < 1:
        raise ValueError("the baseline needs at least one day")
    tz = zoneinfo.ZoneInfo(tz_name)
    today = dt.datetime.fromtimestamp(live_start_ns / 1e9, tz).date()
    end_day = year_before(today) + dt.timedelta(days=1)
    start_day = end_day - dt.timedelta(days=days)

    def midnight(d: dt.date) -> int:
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()) * 10**9

    return midnight(start_day), midnight(end_day)


def holds_data_before(db: Path, ts: int) -> bool:
    if not db.exists():
        return False
    try:
        ro = SqliteStore.open_readonly(db)
    except StoreError:
        return False
    try:
        return bool(ro.batch_records(end=ts))
    finally:
        ro.close()


def fmt_local(ts: int, tz_name: str) -> str:
    return dt.datetime.fromtimestamp(ts / 1e9, zoneinfo.ZoneInfo(tz_name)).strftime(
        "%Y-%m-%d %H:%M"
    )


# -- the factory clock ---------------------------------------------------------------------------


def last_shift_start(site: SiteConfig, now_ns: int, *, days: int = 21) -> int:
    """The most recent shift start at or before ``now_ns`` on a working day of the site calendar
    (a shift's weekday, not a holiday); ``now_ns`` when the calendar has no shifts (the plant
    runs around the clock) or no shift started in the last ``days`` days."""
    cal = site.calendar
    if not cal.shifts:
        return now_ns
    tz = zoneinfo.ZoneInfo(site.site.timezone)
    today = dt.datetime.fromtimestamp(now_ns / 1e9, tz).date()
    holidays = set(cal.holidays)
    for back in range(days + 1):
        day = today - dt.timedelta(days=back)
        if day in holidays:
            continue
        starts = [
            int(dt.datetime.combine(day, sh.start, tz).timestamp()) * 10**9
            for sh in cal.shifts
            if day.isoweekday() in sh.weekdays
        ]
        past = [t for t in starts if t <= now_ns]
        if past:
            return max(past)
    return now_ns


def next_in_shift(site: SiteConfig, ts: int, *, days: int = 21) -> int:
    """``ts`` when it lies inside a shift of a working day, else the next shift start within
    ``days`` days (``ts`` when the calendar has none: the plant runs around the clock)."""
    cal = site.calendar
    if not cal.shifts:
        return ts
    tz = zoneinfo.ZoneInfo(site.site.timezone)
    day0 = dt.datetime.fromtimestamp(ts / 1e9, tz).date()
    holidays = set(cal.holidays)
    later: list[int] = []
    for k in range(-1, days + 1):
        day = day0 + dt.timedelta(days=k)
        if day in holidays:
            continue
        for sh in cal.shifts:
            if day.isoweekday() not in sh.weekdays:
                continue
            a = dt.datetime.combine(day, sh.start, tz)
            b = dt.datetime.combine(day, sh.end, tz)
            if b <= a:  # ends after midnight
                b += dt.timedelta(days=1)
            a_ns, b_ns = int(a.timestamp()) * 10**9, int(b.timestamp()) * 10**9
            if a_ns <= ts < b_ns:
                return ts
            if a_ns > ts:
                later.append(a_ns)
    return min(later, default=ts)


def newest_ts(db: Path) -> int | None:
    """The newest sample timestamp in an existing store (None when there is none)."""
    if not db.exists():
        return None
    try:
        ro = SqliteStore.open_readonly(db)
    except StoreError:
        return None
    try:
        return max((s.ts for s in ro.latest()), default=None)
    finally:
        ro.close()


def default_start(site: SiteConfig, db: Path, now_ns: int) -> int:
    """Where the factory clock starts without ``--start``: the most recent shift start (so the
    first minutes are planned busy time), or just after the newest data of an earlier demo run
    in the same store when that is later (a second run continues, it never overlaps) — moved
    to the next shift start when that moment lies outside every shift."""
    start = last_shift_start(site, now_ns)
    newest = newest_ts(db)
    if newest is not None and newest >= start:
        start = next_in_shift(site, (newest // 10**9 + 1) * 10**9)
    return start


class FactoryClock(Protocol):
    speed: float

    def now_ns(self) -> int: ...


class DemoClock:
    """The demo's factory clock: decided up front (``speed``, ``start_ns``), started (a
    :class:`SimClock`) only when the simulators start, after the baseline import, so the
    factory time that runs is exactly the time the collector collects.

    Factory time never passes the gateway's clock (``gateway_ns``, the wall clock): the
    accelerated factory, started at the last shift start, catches up with real time and then
    runs at real time, so no sample is stamped after the checkpoints the gateway signs and a
    bundle exported at any time verifies."""

    def __init__(
        self, speed: float, start_ns: int, gateway_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.speed = speed
        self.start_ns = start_ns
        self.gateway_ns = gateway_ns
        self.clock: SimClock | None = None

    def start(self) -> SimClock:
        self.clock = SimClock(self.speed, self.start_ns, ceiling=self.gateway_ns)
        return self.clock

    def now_ns(self) -> int:
        return self.start_ns if self.clock is None else self.clock.now_ns()


# -- factory time for devices without source timestamps -------------------------------------------


class FactoryTimeSink:
    """A Sink that moves gateway-clock timestamps onto the accelerated factory clock.

    Modbus gives no source timestamps, so its connector stamps samples with the gateway's
    clock; in the demo the simulated meters run on the factory clock (``--speed``), so their
    readings are re-stamped: a sample stamped ``d`` ns ago becomes ``factory now - d * speed``.
    Only the demo does this; a real collector keeps the gateway's time.
    """

    def __init__(self, sink: Sink, clock: FactoryClock) -> None:
        self.sink = sink
        self.clock = clock

    def _shift(self, s: Sample) -> Sample:
        # never later than factory now, which never passes the gateway's clock
        lag = max(time.time_ns() - s.ts, 0)
        return replace(s, ts=self.clock.now_ns() - int(lag * self.clock.speed))

    def put(self, sample: Sample) -> None:
        self.sink.put(self._shift(sample))

    def put_many(self, samples: Iterable[Sample]) -> None:
        self.sink.put_many([self._shift(s) for s in samples])

    def put_block(self, block: SampleBlock) -> None:
        lag = np.maximum(time.time_ns() - block.ts, 0)
        ts = self.clock.now_ns() - (lag * self.clock.speed).astype(np.int64)
        self.sink.put_block(replace(block, ts=ts))

    def link(self, device: str, connected: bool) -> None:
        self.sink.link(device, connected)

    def error(self, device: str, kind: str) -> None:
        self.sink.error(device, kind)


class OnFactoryTime:
    """A connector whose samples go through :class:`FactoryTimeSink`."""

    def __init__(self, inner: Connector, clock: FactoryClock) -> None:
        self.inner = inner
        self.clock = clock
        self.name = inner.name
        self.devices = inner.devices

    async def run(self, sink: Sink) -> None:
        await self.inner.run(FactoryTimeSink(sink, self.clock))


def on_factory_time(
    connectors: Sequence[Connector], site: SiteConfig, clock: FactoryClock
) -> list[Connector]:
    """Wrap the connectors of devices without source timestamps (Modbus) for the demo."""
    out: list[Connector] = []
    for c in connectors:
        modbus = all(site.device(d).protocol == "modbus" for d in c.devices)
        out.append(OnFactoryTime(c, clock) if modbus and clock.speed != 1 else c)
    return out


# -- the demo -----------------------------------------------------------------------------------


def prepare(site: SiteConfig, data: Path) -> tuple[SiteConfig, Path, dict[int, int]]:
    """Relocate the stores under ``data``, move taken ports, write the effective site file,
    create a demo signing key when there is none (so checkpoints are signed)."""
    data.mkdir(parents=True, exist_ok=True)
    site, moves = move_ports(relocate(site, data))
    site_file = data.resolve() / "demo-site.yaml"
    write_site_file(site, site_file)
    made = ensure_demo_key(site)
    if made:
        print(f"demo: {made}", flush=True)
    return site, site_file, moves


def ensure_demo_key(site: SiteConfig) -> str | None:
    """Create the site's signing key for the demo when evidence is on and no key exists."""
    if not site.evidence.enabled:
        return None
    from edge.cli.keys import origin_of
    from edge.store import keys

    kd = site.resolve(site.evidence.key_dir)
    if (kd / keys.KEY_FILE).exists():
        return None
    signer = keys.init_key(kd, origin_of(site))
    return f"signing key {origin_of(site)} ({signer.verifier.key_hash}) created in {kd}"


async def run_demo(
    site: SiteConfig,
    site_file: Path,
    *,
    seed: int,
    speed: float,
    duration: float | None,
    history_days: int = 7,
    services: bool = True,
    start_ns: int | None = None,
) -> int:
    """Run a prepared demo site (see :func:`prepare`) until Ctrl-C or ``duration``.

    Order: the collector opens the store and imports the baseline (no connector runs yet),
    then the factory clock starts (at ``start_ns``, default :func:`default_start`) with the
    simulators, then the connectors and the services."""
    stop = asyncio.Event()
    forcers: list[Callable[[], None]] = []

    def force() -> None:  # a second Ctrl-C: the collector stops retrying and exits promptly
        for f in forcers:
            f()

    remove = install_stop_signals(stop, on_repeat=force)
    sims: list[Simulator] = []
    try:
        assert isinstance(site.storage, SqliteStorage), "the demo runs on the embedded store"
        db = site.resolve(site.storage.path)
        if start_ns is None:
            start_ns = default_start(site, db, time.time_ns())
        clock = DemoClock(speed, start_ns)

        async def start_simulators() -> None:
            sims.extend(
                await start_all(
                    build_simulators(site, seed, clock.start()), prefix="demo: simulator"
                )
            )

        try:
            return await _collect(
                site,
                site_file,
                clock,
                stop,
                seed,
                duration,
                history_days,
                services,
                start_simulators,
                forcers,
            )
        finally:
            if sims:
                await stop_all(sims)
                print("demo: simulators stopped", flush=True)
    finally:
        remove()


async def _collect(
    site: SiteConfig,
    site_file: Path,
    clock: DemoClock,
    stop: asyncio.Event,
    seed: int,
    duration: float | None,
    history_days: int,
    services: bool,
    start_simulators: Callable[[], Awaitable[None]],
    forcers: list[Callable[[], None]] | None = None,
) -> int:
    tz = site.site.timezone
    assert isinstance(site.storage, SqliteStorage), "the demo runs on the embedded store"
    db = site.resolve(site.storage.path)
    live_start = clock.start_ns  # updated to the factory time the connectors start at
    end = live_start
    need_baseline = history_days > 0 and not holds_data_before(db, live_start)
    history: Iterable[Sample] | None = None
    history_end: int | None = None
    if need_baseline:
        b0, b1 = baseline_period(live_start, tz, history_days)
        history_end = b1
        print(
            f"demo: importing baseline 建设前 {fmt_local(b0, tz)} .. {fmt_local(b1, tz)} "
            "(source import:<device>) before the connectors start ...",
            flush=True,
        )
        history = generate_history(site, seed, b0, b1, profile="baseline")
    else:
        print("demo: the store already holds earlier data; no baseline import", flush=True)
    collector = Collector(
        site,
        connectors=on_factory_time(build_connectors(site), site, clock),
        time_ns=clock.now_ns,
    )
    if forcers is not None:
        forcers.append(collector.force_stop)
    run_task = asyncio.create_task(
        collector.run(
            stop, history=history, history_end_ns=history_end, before_connectors=start_simulators
        ),
        name="collector",
    )
    service_tasks: list[asyncio.Task[None]] = []
    try:
        ready = asyncio.create_task(collector.ready.wait())
        await asyncio.wait({ready, run_task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            run_task.result()  # raises what stopped the collector before its connectors ran
            return 1 if not stop.is_set() else 0
        # the connectors start now: the current period of this run begins here (the simulators'
        # start-up, a few factory minutes at high speed, is not collection time)
        live_start = clock.now_ns()
        if need_baseline:
            print(f"demo: baseline imported in {collector.imported_batches} batches", flush=True)
        points = sum(len(d.points) for d in site.devices)
        print(
            f"demo: collector running: {len(site.devices)} devices, {points} points -> SQLite {db}",
            flush=True,
        )
        print(
            f"demo: factory clock x{clock.speed:g} from {fmt_local(clock.start_ns, tz)}, "
            f"collecting from {fmt_iso(live_start, tz)}",
            flush=True,
        )
        if services:
            for ep in entry_points(group="shopfloor.demo"):
                try:
                    serve = cast(Serve, ep.load())
                except Exception as exc:
                    print(f"demo: service {ep.name} cannot load: {exc}", file=sys.stderr)
                    continue
                print(f"demo: starting service {ep.name} ({ep.value})", flush=True)
                service_tasks.append(
                    asyncio.create_task(_service(ep.name, serve, site, stop), name=ep.name)
                )
        print(f"demo: site file {site_file}", flush=True)
        print(f"demo: latest values: shopfloor tail -c {site_file}", flush=True)
        print("demo: Ctrl-C stops", flush=True)
        await until_stop(stop, run_task, duration)
    finally:
        end = clock.now_ns()
        stop.set()
        for t in service_tasks:
            # a service gets 15 s to stop (then it is cancelled); a cancellation of the demo
            # itself propagates (CancelledError is not an Exception)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SERVICE_STOP_S):
                    await t
        try:
            await run_task
        except Exception as exc:
            print(f"demo: collector failed: {exc!r}", file=sys.stderr)
            return 1
    w = collector.writer
    if w is not None:
        print(
            f"demo: stopped; {w.acked_samples} samples in {w.acked_batches} batches stored in "
            f"{db}, {collector.queue.dropped} dropped",
            flush=True,
        )
    recorded, imported = recorded_spans(db)
    kpi = kpi_command(
        site_file, tz, live_start, end, history_days, recorded_from=recorded, imported=imported
    )
    print(f"demo: KPI table 建设前/建成后: {kpi}", flush=True)
    return 0


def recorded_spans(db: Path) -> tuple[int | None, tuple[int, int] | None]:
    """The first live sample's time in the store (earlier runs included) and the span of the
    imported history (sources ``import:*``), from the stored batches."""
    if not db.exists():
        return None, None
    try:
        ro = SqliteStore.open_readonly(db)
    except StoreError:
        return None, None
    try:
        spans = ro.source_spans()
    finally:
        ro.close()
    live = [a for src, a, _ in spans if not src.startswith("import:")]
    imp = [(a, b) for src, a, b in spans if src.startswith("import:")]
    imported = (min(a for a, _ in imp), max(b for _, b in imp)) if imp else None
    return (min(live) if live else None), imported


def kpi_command(
    site_file: Path,
    tz: str,
    live_start: int,
    now: int,
    history_days: int,
    *,
    recorded_from: int | None = None,
    imported: tuple[int, int] | None = None,
) -> str:
    """The ``shopfloor kpi`` command of what the store recorded: the imported baseline days
    (``imported``; else the baseline week a year before the live start,
    :func:`baseline_period`) and, as the current period, exactly the factory time recorded
    live, to the second: from ``recorded_from`` (an earlier run's first sample; else this
    run's ``live_start``) to ``now``."""
    day = dt.timedelta(days=1)
    if imported is not None:
        # the import closes at midnight (its import_end marker 1 ns after): that day is not in it
        base = f"{local_date(imported[0], tz)}..{local_date(imported[1] - 10**9, tz)}"
    else:
        b0, b1 = baseline_period(live_start, tz, history_days or 7)
        base = f"{local_date(b0, tz)}..{(local_date(b1, tz) - day)}"
    if recorded_from is not None and recorded_from < live_start:
        live_start = recorded_from
    # whole seconds inside what ran: start rounded up, end rounded down (at least 1 s)
    first = -(-live_start // 10**9)
    last = max(now // 10**9, first + 1)
    current = f"{fmt_iso(first * 10**9, tz)}..{fmt_iso(last * 10**9, tz)}"
    # provenance (imported / measured) is read off the recorded batches: no flag needed
    return f"shopfloor kpi -c {site_file} --baseline {base} --current {current}"


def local_date(ts: int, tz_name: str) -> dt.date:
    return dt.datetime.fromtimestamp(ts / 1e9, zoneinfo.ZoneInfo(tz_name)).date()


def fmt_iso(ts: int, tz_name: str) -> str:
    t = dt.datetime.fromtimestamp(ts / 1e9, zoneinfo.ZoneInfo(tz_name))
    return t.strftime("%Y-%m-%dT%H:%M:%S")


async def until_stop(stop: asyncio.Event, task: asyncio.Task[None], duration: float | None) -> None:
    """Until ``stop`` is set, ``task`` ends or ``duration`` seconds passed (None: no limit).
    A cancellation (Ctrl-C) always propagates: asyncio.timeout, not 3.11's wait_for, which
    returns normally when the cancellation arrives just as the stop event or the task completes."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(duration):
            await _first(stop, task)


async def _first(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


async def _service(name: str, serve: Serve, site: SiteConfig, stop: asyncio.Event) -> None:
    try:
        await serve(site, stop)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        print(f"demo: service {name} failed: {exc!r}", file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    if args.speed <= 0:
        print("error: --speed must be positive", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("error: --duration must be positive", file=sys.stderr)
        return 2
    if args.history_days < 0:
        print("error: --history-days must be 0 (no baseline) or more", file=sys.stderr)
        return 2
    if args.port is not None and not 1 <= args.port <= 65535:
        print("error: --port must be 1..65535", file=sys.stderr)
        return 2
    site = load_or_report(args.config or packaged_demo(), check_secrets=False)
    if site is None:
        return 2
    if args.port is not None:
        site = site.model_copy(
            update={"gateway": site.gateway.model_copy(update={"port": args.port})}
        )
    try:
        start_ns = parse_start(args.start, site.site.timezone)
    except ValueError as exc:
        print(f"error: --start: {exc}", file=sys.stderr)
        return 2
    try:
        site, site_file, moves = prepare(site, Path(args.data))
        for old, new in moves.items():
            print(f"demo: port {old} is taken, using {new}", flush=True)
        return asyncio.run(
            run_demo(
                site,
                site_file,
                seed=args.seed,
                speed=args.speed,
                start_ns=start_ns,
                duration=args.duration,
                history_days=args.history_days,
                services=not args.no_services,
            )
        )
    except (OSError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
