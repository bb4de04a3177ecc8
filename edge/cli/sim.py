"""``shopfloor sim -c FILE``: serve the simulated devices of a site file until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import zoneinfo
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge.cli.run import load_or_report, setup_logging

if TYPE_CHECKING:
    import asyncio

    from config.models import SiteConfig
    from connectors.simulators.base import Simulator

# asyncio, the simulators (asyncua, pymodbus, paho) and the runtime load in the functions that
# use them: registering the command stays argparse-level (``shopfloor --help`` is fast).


def parse_start(text: str | None, tz_name: str) -> int | None:
    """``2026-03-02T09:00`` (site-local unless it carries an offset) as ns UTC."""
    if text is None:
        return None
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=zoneinfo.ZoneInfo(tz_name))
    return int(t.timestamp() * 1e6) * 1000


async def start_all(sims: Sequence[Simulator], *, prefix: str = "sim") -> list[Simulator]:
    """Start the simulators in order; on a failure stop those started and re-raise."""
    started: list[Simulator] = []
    try:
        for s in sims:
            await s.start()
            started.append(s)
            print(f"{prefix}: {s.describe()}", flush=True)
    except BaseException:
        await stop_all(started)
        raise
    return started


async def stop_all(sims: Sequence[Simulator]) -> None:
    import logging

    for s in reversed(sims):
        try:
            await s.stop()
        except Exception as exc:
            logging.getLogger("shopfloor.sim").error("stopping %s failed: %r", s.name, exc)


async def wait_stop(stop: asyncio.Event, duration: float | None) -> None:
    """Until ``stop`` is set or ``duration`` seconds passed (None: no limit). A cancellation
    always propagates: asyncio.timeout, not 3.11's wait_for, which returns normally when the
    cancellation arrives just as the event is set (the simulators would then keep serving)."""
    import asyncio

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(duration):
            await stop.wait()


async def serve(
    site: SiteConfig,
    seed: int,
    speed: float,
    duration: float | None,
    start_ns: int | None = None,
) -> int:
    import asyncio

    from connectors.simulators.base import SimClock
    from connectors.simulators.factory import build_simulators
    from edge.runtime import install_stop_signals

    stop = asyncio.Event()
    remove = install_stop_signals(stop)
    try:
        clock = SimClock(speed, start_ns)
        sims = build_simulators(site, seed, clock)
        if not sims:
            print("sim: the site has no device a simulator can serve", file=sys.stderr)
            return 1
        started = await start_all(sims)
        try:
            print(
                f"sim: {len(started)} simulator(s) of site {site.site.id}, seed {seed}, "
                f"speed x{speed:g}; Ctrl-C stops",
                flush=True,
            )
            await wait_stop(stop, duration)
        finally:
            await stop_all(started)
        print("sim: stopped", flush=True)
        return 0
    finally:
        remove()


def _sim(args: argparse.Namespace) -> int:
    import asyncio

    setup_logging(args.log_level)
    if args.speed <= 0:
        print("error: --speed must be positive", file=sys.stderr)
        return 2
    site = load_or_report(args.config, check_secrets=False)
    if site is None:
        return 2
    try:
        start_ns = parse_start(args.start, site.site.timezone)
    except ValueError as exc:
        print(f"error: --start: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(site, args.seed, args.speed, args.duration, start_ns))
    except OSError as exc:
        print(f"error: cannot open a simulator socket: {exc}", file=sys.stderr)
        return 1


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="serve the simulated devices of a site file")
    p.add_argument("-c", "--config", required=True, help="site file (YAML)")
    p.add_argument("--seed", type=int, default=7, help="random seed (deterministic factory)")
    p.add_argument("--start", default=None, help="factory clock start, local ISO time")
    p.add_argument("--speed", type=float, default=1.0, help="factory time runs this much faster")
    p.add_argument("--duration", type=float, default=None, help="stop after S wall seconds")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_sim)
