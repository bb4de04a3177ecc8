"""Domain values -> API models (state names, quality text, NaN as null, health staleness)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from config.models import Device, Point, SiteConfig
from config.textmap import code_text
from edge.store.base import DeviceHealth
from gateway.schemas import DeviceOut, HealthOut, PointOut, SampleOut

_QUALITY = ("good", "uncertain", "bad")


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def state_name(point: Point, value: float) -> str | None:
    """The machine state of a raw state value (``None`` when unmapped or not a state point)."""
    if point.role != "state" or point.state_map is None or not math.isfinite(value):
        return None
    key = str(int(value)) if float(value).is_integer() else repr(value)
    return point.state_map.get(key)


def _point_of(site: SiteConfig, device: str, point: str) -> Point | None:
    try:
        return site.device(device).point(point)
    except KeyError:
        return None


def sample_out(site: SiteConfig, s: Any) -> SampleOut:
    value = float(s.value)
    q = int(s.quality)
    p = _point_of(site, s.device, s.point)
    return SampleOut(
        device=s.device,
        point=s.point,
        ts=int(s.ts),
        time=iso(int(s.ts)),
        value=value if math.isfinite(value) else None,
        quality=_QUALITY[q] if 0 <= q < 3 else "bad",
        status=str(s.status),
        state=state_name(p, value) if p is not None else None,
        text=code_text(p.enum, value) if p is not None else None,
    )


def health_out(h: DeviceHealth, *, stale_after_s: float = 15.0) -> HealthOut:
    backlog = h.extra.get("outbox_backlog", h.extra.get("outbox_pending"))
    return HealthOut(
        connected=h.connected,
        last_good_ts=h.last_good_ts,
        last_sample_ts=h.last_sample_ts,
        samples=h.samples,
        errors=dict(h.errors),
        restarts=h.restarts,
        drops=h.drops,
        updated_ts=h.updated_ts,
        outbox_backlog=int(backlog) if isinstance(backlog, int | float) else None,
        stale=(time.time_ns() - h.updated_ts) > stale_after_s * 1e9,
    )


def point_out(p: Point) -> PointOut:
    return PointOut(id=p.id, name=p.name, role=p.role, unit=p.unit, datatype=p.datatype)


def device_out(d: Device, h: DeviceHealth | None, *, stale_after_s: float = 15.0) -> DeviceOut:
    return DeviceOut(
        id=d.id,
        name=d.name,
        line=d.line,
        protocol=d.protocol or "import",
        key_equipment=d.key_equipment,
        control=d.control,
        rated_power_kw=d.rated_power_kw,
        ideal_cycle_s=d.ideal_cycle_s,
        points=[point_out(p) for p in d.points],
        health=health_out(h, stale_after_s=stale_after_s) if h is not None else None,
    )
