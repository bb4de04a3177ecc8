"""The group view's data: every site of a group file read from the central InfluxDB.

:func:`open_group` loads the group file and the sites' site files; :class:`GroupService`
answers with each site's devices and live values (the newest point of every series tagged with
the site), each site's KPI values of a period (``metrics.engine.compute_period`` over a
:class:`~edge.store.influx.central.CentralReader` filtered by the site) and the group row
(:func:`gateway.group_sum.group_fleet`). Nothing is written anywhere: results are cached in
memory for ``server.kpi_cache_s`` seconds only, so replicas behind a load balancer agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from config.group import GroupConfig, GroupError, load_group
from config.models import SiteConfig
from edge.store.influx.central import CentralReader, central_client
from edge.store.influx.errors import InfluxError
from edge.store.influx.v1 import V1Client
from gateway.data import Unavailable
from gateway.group_sum import group_fleet, site_row
from gateway.jsonsafe import jsonable
from gateway.kpi import PeriodInputError, parse_period
from gateway.views import sample_out

T = TypeVar("T")


@dataclass(frozen=True)
class GroupSite:
    site: SiteConfig
    reader: CentralReader

    @property
    def id(self) -> str:
        return self.site.site.id


@dataclass(frozen=True)
class Group:
    config: GroupConfig
    sites: tuple[GroupSite, ...]
    client: V1Client
    exclude_offline: bool

    def site(self, site_id: str) -> GroupSite:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(site_id)

    def close(self) -> None:
        self.client.close()


def open_group(path: str) -> Group:
    """The group of the group file ``path``: GroupError (one line per problem) when the file,
    a site file, or the set of sites cannot be used."""
    from config.loader import ConfigError, load_site

    cfg = load_group(path)
    sites: list[SiteConfig] = []
    problems: list[str] = []
    for p in cfg.sites:
        try:
            sites.append(load_site(cfg.resolve(p)))
        except ConfigError as exc:
            problems += [str(i) for i in exc.issues]
    if problems:
        raise GroupError("\n".join(problems))
    ids = [s.site.id for s in sites]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise GroupError(f"{path}: site id {', '.join(twice)} is listed more than once")
    rules = {s.kpi.oee_offline for s in sites}
    if len(rules) > 1:
        raise GroupError(
            f"{path}: the sites read offline time differently (kpi.oee_offline "
            f"{' / '.join(sorted(rules))}): one group OEE needs one reading"
        )
    try:
        client = central_client(
            cfg.influxdb, cfg.resolve(cfg.influxdb.ca_file) if cfg.influxdb.ca_file else None
        )
    except (InfluxError, ValueError) as exc:
        raise GroupError(f"{path}: influxdb: {exc}") from None
    readers = tuple(
        GroupSite(
            s,
            CentralReader(
                client,
                s.site.id,
                measurement=cfg.influxdb.measurement,
                retention_policy=cfg.influxdb.retention_policy,
                chunk=cfg.influxdb.read_chunk_points,
            ),
        )
        for s in sites
    )
    return Group(cfg, readers, client, rules == {"exclude"})


def _kpi_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    from metrics.catalogue import CATALOGUE

    kpis = result.get("kpis") or {}
    rows = []
    for k in CATALOGUE:
        v = kpis.get(k.id)
        if v is None:
            continue
        rows.append(
            {
                "id": k.id,
                "label_zh": k.form_label,
                "label_en": k.label_en,
                "unit": k.unit,
                "value": v.get("value"),
                "provenance": v.get("provenance"),
                "coverage": v.get("coverage"),
            }
        )
    return rows


class GroupService:
    """Queries of the group view, run in worker threads (at most ``server.readers`` at once),
    with a short in-memory cache of period results."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self._sem = asyncio.Semaphore(group.config.server.readers)
        self._cache_s = group.config.server.kpi_cache_s
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def _run(self, fn: Callable[[], T]) -> T:
        async with self._sem:
            try:
                return await asyncio.to_thread(fn)
            except InfluxError as exc:
                raise Unavailable(f"central InfluxDB: {exc}") from None

    def sites(self) -> list[dict[str, Any]]:
        return [
            {
                "id": s.id,
                "name": s.site.site.name,
                "timezone": s.site.site.timezone,
                "devices": [{"id": d.id, "name": d.name} for d in s.site.devices],
            }
            for s in self.group.sites
        ]

    def _site(self, site_id: str) -> GroupSite:
        try:
            return self.group.site(site_id)
        except KeyError:
            raise PeriodInputError(f"unknown site {site_id!r}") from None

    async def latest(self, site_id: str) -> list[dict[str, Any]]:
        """The newest value of every point of the site, by device."""
        gs = self._site(site_id)
        samples = await self._run(gs.reader.latest)
        return [sample_out(gs.site, s).model_dump() for s in samples]

    async def devices(self, site_id: str) -> list[dict[str, Any]]:
        """The site's devices with their points' newest values."""
        gs = self._site(site_id)
        values = await self.latest(site_id)
        by_dev: dict[str, list[dict[str, Any]]] = {}
        for v in values:
            by_dev.setdefault(v["device"], []).append(v)
        return [
            {"id": d.id, "name": d.name, "values": by_dev.get(d.id, [])} for d in gs.site.devices
        ]

    async def _site_period(self, gs: GroupSite, text: str) -> dict[str, Any]:
        from metrics.engine import compute_period

        rng = parse_period(text, gs.site.site.timezone)
        key = f"{gs.id}\n{rng.label}"
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._cache_s:
            return hit[1]

        def compute() -> dict[str, Any]:
            out: dict[str, Any] = jsonable(compute_period(gs.reader, gs.site, rng))
            return out

        result = await self._run(compute)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), result)
        return result

    async def kpi(self, text: str) -> dict[str, Any]:
        """Every site's KPI values and summed figures of the period ``text`` (each site's own
        days in its own time zone), and the group row of the summed machines."""
        results = await asyncio.gather(*(self._site_period(gs, text) for gs in self.group.sites))
        per_site = list(zip(self.group.sites, results, strict=True))
        return {
            "period": text,
            "oee_offline": "exclude" if self.group.exclude_offline else "include",
            "sites": [
                {
                    **site_row(gs.id, gs.site.site.name, r),
                    "period_label": (r.get("period") or {}).get("label"),
                    "kpis": _kpi_rows(r),
                    "machine_rows": r.get("machines", []),
                }
                for gs, r in per_site
            ],
            "group": group_fleet([(gs.id, r) for gs, r in per_site], self.group.exclude_offline),
        }
