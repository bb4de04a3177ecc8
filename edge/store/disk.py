"""The gateway's disk: how much room its files take, how fast they grow, and when they will
not fit any more (``runtime.disk`` of the site file).

Components (each an SQLite file with its ``-wal``/``-shm``/``-journal`` companions):
``store`` (the embedded store, or the InfluxDB store's ``local_cache``), ``outbox`` (the
InfluxDB outbox) and ``ledger`` (the evidence ledger, when evidence is enabled).

Every health interval the collector measures them (:class:`DiskWatch`) and adds the figures to
every device's health record, like ``queue_len`` and the ledger counters (they are the
process's, not the device's), as ``extra`` fields:

* ``disk_budget_bytes``, ``disk_used_bytes``, ``disk_fs_free_bytes``;
* ``disk_growth_bps``: bytes per second over the last ``growth_window_h`` (null for the first
  minute, or while nothing grows);
* ``disk_time_to_full_s``: the sooner of the budget and the file system at that growth (null
  while nothing grows);
* ``disk_alarms``: the current alarms, among ``budget_used`` (``alarm_fraction`` of the budget
  used), ``budget_soon`` (full within ``alarm_horizon_h``), ``fs_low`` (less than
  ``min_free_mb`` free on the file system) and ``fs_soon``;
* ``disk_components``: per component ``path``, ``bytes``, ``growth_bps`` and
  ``time_to_full_s`` (the room left in the budget, or on the disk without a budget, divided by
  that component's own growth).

The figures are pure functions of the measurements (:func:`assess`), so they are tested with a
pinned clock.
"""

from __future__ import annotations

import collections
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.models import SiteConfig
from config.storage import DiskBudget, InfluxStorage, SqliteStorage

SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
MIN_SPAN_S = 60.0
"""Growth is only reported once two measurements are at least this far apart."""
KEEP_EVERY_S = 60.0
"""Measurements kept for the growth window: one a minute."""


def sqlite_bytes(path: Path) -> int:
    """Bytes of an SQLite file and its companions (0 for what does not exist)."""
    total = 0
    for suffix in SQLITE_SUFFIXES:
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except OSError:
            continue
    return total


def component_paths(site: SiteConfig) -> dict[str, Path]:
    """The files of the gateway the site file names, by component."""
    out: dict[str, Path] = {}
    st = site.storage
    if isinstance(st, SqliteStorage):
        out["store"] = site.resolve(st.path)
    elif isinstance(st, InfluxStorage):
        out["outbox"] = site.resolve(st.outbox_path)
        if st.local_cache is not None:
            out["store"] = site.resolve(st.local_cache)
    if site.evidence.enabled:
        out["ledger"] = site.resolve(site.evidence.ledger_path)
    return out


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    path: str
    bytes: int
    growth_bps: float | None
    time_to_full_s: float | None


@dataclass(frozen=True, slots=True)
class DiskReport:
    budget_bytes: int | None
    used_bytes: int
    fs_free_bytes: int | None
    growth_bps: float | None
    time_to_full_s: float | None
    alarms: tuple[str, ...]
    components: tuple[Component, ...] = field(default=())


def _ttf(room: float, growth: float | None) -> float | None:
    if growth is None or growth <= 0:
        return None
    return max(0.0, room) / growth


def assess(
    cfg: DiskBudget,
    sizes: Mapping[str, tuple[str, int]],
    growth: Mapping[str, float | None],
    fs_free: int | None,
) -> DiskReport:
    """The report for ``sizes`` (component -> (path, bytes)), their ``growth`` (bytes/s, None
    when not known yet) and the file system's free bytes (pure)."""
    used = sum(b for _, b in sizes.values())
    known = [g for g in growth.values() if g is not None]
    total_growth = sum(known) if known else None
    budget = int(cfg.budget_mb * 1_000_000) if cfg.budget_mb is not None else None
    horizon_s = cfg.alarm_horizon_h * 3600.0
    budget_ttf = _ttf(budget - used, total_growth) if budget is not None else None
    fs_ttf = _ttf(fs_free, total_growth) if fs_free is not None else None
    alarms: list[str] = []
    if budget is not None and used >= cfg.alarm_fraction * budget:
        alarms.append("budget_used")
    if budget_ttf is not None and budget_ttf < horizon_s:
        alarms.append("budget_soon")
    if fs_free is not None and fs_free < cfg.min_free_mb * 1_000_000:
        alarms.append("fs_low")
    if fs_ttf is not None and fs_ttf < horizon_s:
        alarms.append("fs_soon")
    ttfs = [t for t in (budget_ttf, fs_ttf) if t is not None]
    room = budget - used if budget is not None else fs_free
    comps = tuple(
        Component(
            name,
            path,
            n,
            growth.get(name),
            _ttf(room, growth.get(name)) if room is not None else None,
        )
        for name, (path, n) in sorted(sizes.items())
    )
    return DiskReport(
        budget_bytes=budget,
        used_bytes=used,
        fs_free_bytes=fs_free,
        growth_bps=total_growth,
        time_to_full_s=min(ttfs) if ttfs else None,
        alarms=tuple(alarms),
        components=comps,
    )


class Growth:
    """Bytes per second of one quantity over a sliding window of measurements."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._kept: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, t: float, n: int) -> float | None:
        """Record ``n`` at time ``t`` (seconds, monotonic); the growth (None until the
        measurements span :data:`MIN_SPAN_S`)."""
        kept = self._kept
        if not kept or t - kept[-1][0] >= KEEP_EVERY_S:
            kept.append((t, n))
        while len(kept) > 1 and t - kept[0][0] > self.window_s:
            kept.popleft()
        t0, n0 = kept[0]
        if t - t0 < MIN_SPAN_S:
            return None
        return (n - n0) / (t - t0)


def fs_free_bytes(paths: list[Path]) -> int | None:
    """Free bytes (for an unprivileged writer) of the smallest file system holding ``paths``."""
    free: list[int] = []
    for p in paths:
        folder = p.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        free.append(st.f_bavail * st.f_frsize)
    return min(free) if free else None


class DiskWatch:
    """Measures the gateway's files; :meth:`extra` gives the health ``extra`` fields."""

    def __init__(self, site: SiteConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = site.runtime.disk
        self.paths = component_paths(site)
        self._clock = clock
        self._growth = {name: Growth(self.cfg.growth_window_h * 3600.0) for name in self.paths}

    def measure(self) -> DiskReport:
        t = self._clock()
        sizes = {name: (str(p), sqlite_bytes(p)) for name, p in self.paths.items()}
        growth = {name: self._growth[name].add(t, n) for name, (_, n) in sizes.items()}
        return assess(self.cfg, sizes, growth, fs_free_bytes(list(self.paths.values())))

    def extra(self, report: DiskReport | None = None) -> dict[str, Any]:
        """The ``disk_*`` health ``extra`` fields (see the module docstring)."""
        r = report if report is not None else self.measure()
        return report_extra(r)


def report_extra(r: DiskReport) -> dict[str, Any]:
    return {
        "disk_budget_bytes": r.budget_bytes,
        "disk_used_bytes": r.used_bytes,
        "disk_fs_free_bytes": r.fs_free_bytes,
        "disk_growth_bps": _round(r.growth_bps),
        "disk_time_to_full_s": _round(r.time_to_full_s),
        "disk_alarms": list(r.alarms),
        "disk_components": {
            c.name: {
                "path": c.path,
                "bytes": c.bytes,
                "growth_bps": _round(c.growth_bps),
                "time_to_full_s": _round(c.time_to_full_s),
            }
            for c in r.components
        },
    }


def _round(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, 3)
