"""``shopfloor run -c FILE``: the collector of one site file, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.models import SiteConfig

# asyncio, the config models and the collector load in the functions that use them: registering
# the command stays argparse-level so that ``shopfloor --help`` is fast on a small gateway.


def load_or_report(path: str | Path, *, check_secrets: bool = True) -> SiteConfig | None:
    """The site file, or None after printing every problem (file:line: path: message)."""
    from config.loader import ConfigError, load_site, secret_issues

    try:
        site = load_site(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return None
    if check_secrets:
        missing = secret_issues(site, path)
        if missing:
            for issue in missing:
                print(f"error: {issue}", file=sys.stderr)
            return None
    return site


def setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def storage_text(site: SiteConfig) -> str:
    st = site.storage
    if st.kind == "sqlite":
        return f"SQLite {site.resolve(st.path)}"
    return f"{st.kind} {getattr(st, 'url', '')}".strip()


async def run_collector(site: SiteConfig, banner: bool = True) -> int:
    """Collect until SIGINT/SIGTERM. A second signal forces the stop (no more store retries,
    what can be flushed is flushed within a few seconds); exit code 1 then, and the process
    ends at once (``os._exit``) when a store call is stuck in its thread."""
    import asyncio

    from edge.runtime import Collector, install_stop_signals

    stop = asyncio.Event()
    collector = Collector(site)
    remove = install_stop_signals(stop, on_repeat=collector.force_stop)
    try:
        if banner:
            points = sum(len(d.points) for d in site.devices)
            print(
                f"shopfloor: collecting site {site.site.id} ({site.site.name}): "
                f"{len(site.devices)} devices, {points} points -> {storage_text(site)}",
                flush=True,
            )
            print(
                "shopfloor: Ctrl-C (SIGINT) or SIGTERM stops and flushes; "
                "a second one forces the stop",
                flush=True,
            )
        await collector.run(stop)
        w = collector.writer
        if banner and w is not None:
            print(
                f"shopfloor: stopped; {w.acked_samples} samples in {w.acked_batches} batches "
                f"stored, {collector.queue.dropped} dropped",
                flush=True,
            )
        if collector.forced:
            print(
                f"shopfloor: forced stop; {collector.unflushed} queued samples not stored"
                + (
                    f"; {len(collector.abandoned)} step(s) still stuck, exiting now"
                    if collector.abandoned
                    else ""
                ),
                file=sys.stderr,
                flush=True,
            )
            if collector.abandoned:
                sys.stdout.flush()
                os._exit(1)
            return 1
        return 0
    finally:
        remove()


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from edge.store.sqlite import StoreError

    setup_logging(args.log_level)
    site = load_or_report(args.config)
    if site is None:
        return 2
    try:
        return asyncio.run(run_collector(site))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot open the store: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a point a connector cannot read (codec, plan, topic, cert)
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="collect the devices of a site file into its store")
    p.add_argument("-c", "--config", required=True, help="site file (YAML)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)
