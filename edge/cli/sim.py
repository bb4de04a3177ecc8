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


def listen_address(sim: object) -> tuple[str, int] | None:
    """The TCP address a simulator will listen on, when it has a fixed one: an OPC UA
    ``endpoint``, a Modbus TCP server's ``host``/``port``, or the broker it starts itself."""
    from urllib.parse import urlsplit

    endpoint = getattr(sim, "endpoint", None)
    if isinstance(endpoint, str):
        parts = urlsplit(endpoint)
        return (parts.hostname, parts.port) if parts.hostname and parts.port else None
    broker = getattr(sim, "broker", None)
    if broker is not None:
        if getattr(broker, "kind", None) == "external":
            return None  # a running broker named by the user: connected to, not listened on
        sim = broker
    host, port = getattr(sim, "host", None), getattr(sim, "port", None)
    if getattr(sim, "serial_port", None) is None and isinstance(host, str) and port:
        return (host, int(port))
    return None


def taken_address(sims: Sequence[object]) -> str | None:
    """One line naming the first fixed listen address of ``sims`` that is already in use
    (another ``shopfloor sim`` or ``demo``, or any server), else None."""
    import socket

    for sim in sims:
        addr = listen_address(sim)
        if addr is None:
            continue
        host, port = addr
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(sockaddr)
        except OSError as exc:
            name = getattr(sim, "name", type(sim).__name__)
            reason = exc.strerror or str(exc)
            return f"cannot listen on {host}:{port} ({name}): {reason}"
    return None


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
        taken = taken_address(sims)
        if taken is not None:
            print(f"error: {taken}", file=sys.stderr)
            return 1
        try:
            started = await start_all(sims)
        except (OSError, RuntimeError) as exc:  # BrokerError and pymodbus's are RuntimeErrors
            print(f"error: cannot start the simulators: {exc}", file=sys.stderr)
            return 1
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
