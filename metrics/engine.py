"""The KPI engine: recorded series + site file -> the before/after table of the application form.

``compute_period`` computes every KPI of the catalogue for one period (measured ones from the
``SeriesReader``, declared ones from ``site.declared``); ``compute_table`` puts a baseline and a
current period side by side in the form's order with the change. Both are deterministic: the same
reader content and site give the same ``to_dict()``. Only the points the formulas need are read,
inside the period (``prior=True`` for step signals and counters), so a reader over the batches
of an evidence bundle gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import Device, Point, SiteConfig
from config.textmap import code_text
from metrics.annualise import Annualisation, annualisation
from metrics.catalogue import BY_ID, CATALOGUE, Kpi
from metrics.counters import CounterSteps, GapRule, counter_steps
from metrics.declared import DeclaredValue, declared_value
from metrics.energy import CARRIER_ROLES, Carriers, co2_t, energy_tce, factor_dict
from metrics.intervals import IntervalSet
from metrics.oee import (
    NS,
    FleetOee,
    MachineOee,
    ProductMix,
    Quantities,
    machine_flags,
    offline_note,
    product_mix,
    ratio,
)
from metrics.periods import NS_PER_S, TimeRange, zone
from metrics.provenance import period_imported
from metrics.recording import read_period
from metrics.series import QUALITY_BAD, Series, SeriesReader
from metrics.tiers import evaluate
from metrics.timemodel import (
    PRODUCING,
    CalendarWindows,
    MachineTimes,
    device_windows,
    fast_times,
    level_set,
    presence,
    state_set,
    timeline,
)

ENGINE_VERSION = "2"
CONTROLLED = frozenset({"nc", "cnc", "plc", "dcs", "robot"})
QTY_ROLES = ("count_total", "count_good", "count_scrap", "count_rework")


# --------------------------------------------------------------------------- result types
@dataclass(frozen=True)
class KpiInput:
    """One input of a KPI value with its provenance and where it comes from."""

    name: str
    value: float | None
    unit: str
    provenance: str  # measured | declared | imported | register
    source: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _num(self.value),
            "unit": self.unit,
            "provenance": self.provenance,
            "source": self.source,
            "detail": _clean(self.detail),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KpiInput:
        return cls(d["name"], d["value"], d["unit"], d["provenance"], d["source"], d["detail"])


@dataclass(frozen=True)
class KpiValue:
    value: float | None
    provenance: str  # measured | declared | imported | mixed | none
    inputs: tuple[KpiInput, ...] = ()
    coverage: float | None = None
    notes: tuple[str, ...] = ()
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _num(self.value),
            "provenance": self.provenance,
            "inputs": [i.to_dict() for i in self.inputs],
            "coverage": _num(self.coverage),
            "notes": list(self.notes),
            "variant": self.variant,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KpiValue:
        return cls(
            d["value"],
            d["provenance"],
            tuple(KpiInput.from_dict(i) for i in d["inputs"]),
            d["coverage"],
            tuple(d["notes"]),
            d["variant"],
        )


@dataclass(frozen=True)
class KpiRow:
    id: str
    label_zh: str
    label_en: str
    unit: str
    direction: str
    mandatory: bool
    provenance: str
    formula_id: str
    formula_version: int
    variant: str | None
    before: KpiValue
    after: KpiValue
    change: float | None
    change_label: str  # 提升 | 下降 | ""

    @property
    def form_label(self) -> str:
        return f"*{self.label_zh}" if self.mandatory else self.label_zh

    @property
    def worse(self) -> bool:
        """The change goes the bad way for the KPI's direction (its sign is kept as it is)."""
        return is_worse(self.direction, self.change)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "unit": self.unit,
            "direction": self.direction,
            "mandatory": self.mandatory,
            "provenance": self.provenance,
            "formula_id": self.formula_id,
            "formula_version": self.formula_version,
            "variant": self.variant,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "change": _num(self.change),
            "change_label": self.change_label,
            "worse": self.worse,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KpiRow:
        return cls(
            d["id"],
            d["label_zh"],
            d["label_en"],
            d["unit"],
            d["direction"],
            d["mandatory"],
            d["provenance"],
            d["formula_id"],
            d["formula_version"],
            d["variant"],
            KpiValue.from_dict(d["before"]),
            KpiValue.from_dict(d["after"]),
            d["change"],
            d["change_label"],
        )


@dataclass(frozen=True)
class KpiTable:
    site_id: str
    baseline: TimeRange
    current: TimeRange
    baseline_imported: bool
    current_imported: bool
    rows: tuple[KpiRow, ...]
    settings: dict[str, Any]
    tiers: dict[str, Any]
    reads: tuple[dict[str, Any], ...]
    engine_version: str = ENGINE_VERSION

    def row(self, kpi_id: str) -> KpiRow:
        for r in self.rows:
            if r.id == kpi_id:
                return r
        raise KeyError(kpi_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine_version": self.engine_version,
            "site_id": self.site_id,
            "baseline": self.baseline.to_dict(),
            "current": self.current.to_dict(),
            "baseline_imported": self.baseline_imported,
            "current_imported": self.current_imported,
            "rows": [r.to_dict() for r in self.rows],
            "settings": _clean(self.settings),
            "tiers": _clean(self.tiers),
            "reads": [_clean(r) for r in self.reads],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KpiTable:
        return cls(
            site_id=d["site_id"],
            baseline=TimeRange.from_dict(d["baseline"]),
            current=TimeRange.from_dict(d["current"]),
            baseline_imported=d["baseline_imported"],
            current_imported=d["current_imported"],
            rows=tuple(KpiRow.from_dict(r) for r in d["rows"]),
            settings=d["settings"],
            tiers=d["tiers"],
            reads=tuple(d["reads"]),
            engine_version=d["engine_version"],
        )


@dataclass(frozen=True)
class PeriodResult:
    """Every KPI of one period plus the per-machine OEE details for the dashboard."""

    period: TimeRange
    imported: bool
    devices: tuple[str, ...]
    kpis: dict[str, KpiValue]
    machines: tuple[dict[str, Any], ...]  # per machine: times_s, quantities, ratios, flags
    fleet: dict[str, Any]  # summed fleet figures
    fleet_mean_oee: float | None
    device_coverage: dict[str, float | None]
    counters: dict[str, dict[str, Any]]  # "device/point" -> total, resets, rollovers
    energy: dict[str, Any]
    reads: tuple[dict[str, Any], ...]
    # the data horizon when it falls before the period end (time after it is outside the
    # planned busy window); None when the data reach the period end or for imported history
    horizon_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _clean(
            {
                "period": self.period.to_dict(),
                "imported": self.imported,
                "devices": list(self.devices),
                "kpis": {k: v.to_dict() for k, v in self.kpis.items()},
                "machines": list(self.machines),
                "fleet": self.fleet,
                "fleet_mean_oee": self.fleet_mean_oee,
                "device_coverage": self.device_coverage,
                "counters": self.counters,
                "energy": self.energy,
                "reads": list(self.reads),
                "data_horizon_ns": self.horizon_ns,
            }
        )
        return out


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


# --------------------------------------------------------------------------- reading
class _Reads:
    """Reads through the reader and records what was read (for the evidence snapshot)."""

    def __init__(self, reader: SeriesReader, period: TimeRange) -> None:
        self.reader = reader
        self.period = period
        self.log: list[dict[str, Any]] = []

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        self.log.append(
            {"device": device, "point": point, "start_ns": start, "end_ns": end, "prior": prior}
        )
        return self.reader.read(device, point, start, end, prior=prior)


NO_STALENESS = 2**62  # values hold until the next sample
NO_DATA = "no value: no recorded data in this period (期间内无采集数据)"
NO_DATA_RATE = "no recorded data in this period (期间内无采集数据): no device counts"
NO_PRODUCING = "no value: no producing time with production counters in this period"
# measured KPIs without a value when nothing at all was recorded in the period (held states or
# old prior samples would otherwise give figures)
NO_DATA_KPIS = (
    "production_efficiency",
    "defect_rate",
    "oee",
    "apc_rate",
    "energy_per_value",
    "co2_per_value",
    "water_reuse",
)
# register rates keep their value, 0 of N key/production devices, with the note
REGISTER_RATES = ("cnc_rate", "network_rate", "digital_equipment_rate")


def _stale_ns(site: SiteConfig, device: Device, point: Point) -> int:
    """How long a value holds without a new sample before the point counts as offline.

    ``kpi.stale_after_s`` when set. Otherwise only polled points (Modbus, OPC UA ``mode: poll``)
    go stale, after 3 x their heartbeat (the recorder stores at least one sample per heartbeat
    while the poll succeeds); subscribed OPC UA and MQTT points only deliver changes, so their
    values hold until the next sample and a lost link shows as a bad-quality sample.
    """
    if site.kpi.stale_after_s is not None:
        return int(site.kpi.stale_after_s * NS_PER_S)
    if not _polled(device, point):
        return NO_STALENESS
    hb = point.heartbeat_s or site.runtime.heartbeat_s
    return int(3 * hb * NS_PER_S)


def _state_hold_ns(site: SiteConfig, device: Device, point: Point, marked: bool) -> int:
    """How long a machine state holds: :func:`_stale_ns`. ``kpi.max_hold_s`` is the safety cap
    for data recorded without the marker contract (``marked=False``: no collector heartbeat read
    for the period and not imported history): there a subscribed state value with no newer
    sample holds at most that long of wall time (a state recorded a week ago is not the
    machine's state all week). A collector with a heartbeat marks every outage (``link_lost``,
    ``gateway_down``) and imported change-only logs end with ``import_end``, so their values hold
    until the next sample or marker."""
    stale = _stale_ns(site, device, point)
    cap = site.kpi.max_hold_s
    if cap is None or marked or site.kpi.stale_after_s is not None or _polled(device, point):
        return stale
    return min(stale, int(cap * NS_PER_S))


def _polled(device: Device, point: Point) -> bool:
    return device.modbus is not None or (point.opcua is not None and point.opcua.mode == "poll")


# a subscribed counter only reports changes: rare events (scrap, rework) leave it quiet for
# hours while the link is up, so only a step holding more than a day of planned busy time
# (e.g. from a baseline import that ended weeks before) counts as a gap by its length
QUIET_BUSY_NS = 24 * 3600 * NS_PER_S


def _gap_rule(site: SiteConfig, device: Device, point: Point, imported: bool) -> GapRule:
    """When a counter's increment cannot be placed in time (:mod:`metrics.counters`): polled
    points, a step longer than the point's staleness; subscribed points, a step holding more
    than max(3 x heartbeat, 24 h, ``kpi.stale_after_s``) of planned busy time; imported history
    only by the bad-sample rule."""
    polled = _polled(device, point)
    hb = point.heartbeat_s or site.runtime.heartbeat_s
    if polled:
        limit = _stale_ns(site, device, point)
    else:
        limit = max(int(3 * hb * NS_PER_S), QUIET_BUSY_NS)
        if site.kpi.stale_after_s is not None:
            limit = max(limit, int(site.kpi.stale_after_s * NS_PER_S))
    cal, tz, dev_id = site.calendar, site.site.timezone, device.id

    def busy(a: int, b: int) -> IntervalSet:
        return device_windows(cal, tz, a, b, dev_id).window

    return GapRule(limit, polled, busy, length_rule=not imported)


def _has_good(series: Series, start: int, end: int) -> bool:
    """A good, finite sample inside the period (the device's data is recorded)."""
    lo = int(np.searchsorted(series.ts, start, side="left"))
    hi = int(np.searchsorted(series.ts, end, side="left"))
    good = np.flatnonzero(series.quality[lo:hi] != QUALITY_BAD)
    if good.size == 0:
        return False
    if np.isfinite(series.values[lo + int(good[0])]):
        return True
    return bool(np.isfinite(series.values[lo:hi][good]).any())


@dataclass
class _DeviceData:
    device: Device
    windows: CalendarWindows
    times: MachineTimes | None = None
    producing: IntervalSet | None = None
    counters: dict[str, tuple[Point, CounterSteps]] = field(default_factory=dict)
    recorded: bool = False  # good data in the period
    coverage: float | None = None
    apc: list[tuple[Point, IntervalSet, IntervalSet]] = field(default_factory=list)
    # the ideal_cycle program point: its point, series and how long a value holds
    program: tuple[Point, Series, int] | None = None


def _is_counter(p: Point) -> bool:
    return p.role in QTY_ROLES or p.role in CARRIER_ROLES or p.role.startswith("water_")


def _reads_points(dev: Device) -> list[Point]:
    """The points of a device the engine reads, in reading order: counters, carriers and water
    meters, the first state point, ``apc_mode`` points, and (only without a state point) every
    other point for coverage."""
    state_points = [p for p in dev.points if p.role == "state"]
    out: list[Point] = []
    for p in dev.points:
        if p.role in QTY_ROLES or p.role in CARRIER_ROLES or p.role.startswith("water_"):
            out.append(p)
        elif p.role == "state":
            if p is state_points[0]:
                out.append(p)
        elif p.role == "apc_mode" or not state_points:
            out.append(p)
    ic = dev.ideal_cycle
    if ic is not None and all(p.id != ic.point for p in out):
        out.append(dev.point(ic.point))  # the program in force at each count step
    return out


def horizon_note(horizon_ns: int, tz: str) -> str:
    when = dt.datetime.fromtimestamp(horizon_ns / NS_PER_S, zone(tz)).isoformat()
    return f"period truncated at the data horizon {when}, latest recorded sample or heartbeat"


def _truncate(win: CalendarWindows, start: int, cut: int) -> CalendarWindows:
    """The planned busy window cut at ``cut``: later time is outside the window (neither
    producing nor offline); POT and calendar planned downtime stay the calendar's."""
    return CalendarWindows(win.pot, win.planned_downtime, win.window.clip(start, cut))


def _collect(
    rd: _Reads,
    site: SiteConfig,
    devices: Sequence[Device],
    period: TimeRange,
    imported: bool = False,
) -> tuple[list[_DeviceData], int | None]:
    """Per-device data of the period and the data horizon applied (``None`` when the data
    reach the period end, or for imported history).

    Every series is read through :func:`metrics.recording.read_period` (the time model's
    reading side, docs/kpi.md): when the data horizon falls before the period end (a period
    running into the future on a live store), time after it is outside the planned busy window,
    so states are held up to the horizon, not the period end. Imported history is never cut (its
    change-only logs end with their own ``import_end`` marker).
    """
    tz = site.site.timezone
    s, e = period.start_ns, period.end_ns
    plan = [(dev, _reads_points(dev)) for dev in devices]
    keys = [(dev.id, p.id) for dev, points in plan for p in points]
    ckeys = [(dev.id, p.id) for dev, points in plan for p in points if _is_counter(p)]
    rec = read_period(rd, keys, ckeys, s, e, cut=not imported)
    horizon = rec.horizon
    cut = e if horizon is None else horizon
    marked = imported or rec.heartbeat
    site_win = device_windows(site.calendar, tz, s, e, None)
    specific = {d for pdt in site.calendar.planned_downtime for d in (pdt.devices or ())}
    out: list[_DeviceData] = []
    for dev, points in plan:
        win = device_windows(site.calendar, tz, s, e, dev.id) if dev.id in specific else site_win
        if cut < e:
            win = _truncate(win, s, cut)
        dd = _DeviceData(dev, win)
        has_state = any(p.role == "state" for p in dev.points)
        cover_sets: list[IntervalSet] = []
        for p in points:
            ser = rec.states((dev.id, p.id))
            dd.recorded |= _has_good(ser, s, e)
            if dev.ideal_cycle is not None and p.id == dev.ideal_cycle.point:
                dd.program = (p, ser, _state_hold_ns(site, dev, p, marked))
                if has_state:
                    continue
            if _is_counter(p):
                steps = counter_steps(
                    rec.counter((dev.id, p.id)),
                    s,
                    p.counter_bits,
                    rule=_gap_rule(site, dev, p, imported),
                    end=e,
                )
                dd.counters[p.id] = (p, steps)
                if not has_state:
                    cover_sets.append(presence(ser, s, cut, _stale_ns(site, dev, p)))
            elif p.role == "state":
                assert p.state_map is not None
                smap: dict[str, str] = dict(p.state_map)
                hold = _state_hold_ns(site, dev, p, marked)
                dd.times = dataclasses.replace(
                    fast_times(ser, smap, s, cut, hold, win), period=e - s
                )
                if any(q.role == "apc_mode" for q in dev.points):
                    tl = timeline(ser, smap, s, cut, hold)
                    dd.producing = state_set(tl, PRODUCING)  # APC running time
            elif p.role == "apc_mode":
                st = _stale_ns(site, dev, p)
                dd.apc.append((p, level_set(ser, s, cut, st), presence(ser, s, cut, st)))
                if not has_state:
                    cover_sets.append(presence(ser, s, cut, st))
            else:
                cover_sets.append(presence(ser, s, cut, _stale_ns(site, dev, p)))
        if dd.times is not None:
            dd.coverage = ratio(dd.times.covered, dd.times.window)
        elif cover_sets:
            merged = cover_sets[0]
            for cs in cover_sets[1:]:
                merged = merged.union(cs)
            inside = int(win.window.measure_in(merged.starts, merged.ends).sum())
            dd.coverage = ratio(inside, win.window.total)
        else:
            dd.coverage = 0.0 if win.window.total > 0 else None
        out.append(dd)
    return out, horizon


# --------------------------------------------------------------------------- measured KPIs
def _qty(dd: _DeviceData, win_set: IntervalSet, s: int, e: int) -> Quantities | None:
    by_role: dict[str, tuple[float, float]] = {}
    for _pid, (p, steps) in dd.counters.items():
        if p.role not in QTY_ROLES:
            continue
        in_win = 0.0
        if steps.ts.size:
            # a step read at t counts in W iff w0 < t <= w1 for an interval [w0, w1) of W
            in_win = float(steps.inc[win_set.closes(steps.ts)].sum())
        total = steps.total(s, e)
        w0, t0 = by_role.get(p.role, (0.0, 0.0))
        by_role[p.role] = (w0 + in_win, t0 + total)
    if not by_role:
        return None
    zero = (0.0, 0.0)
    sq = by_role.get("count_scrap", zero)
    rq = by_role.get("count_rework", zero)
    has_total = "count_total" in by_role
    has_good = "count_good" in by_role
    if has_total:
        pq = by_role["count_total"]
    else:
        g = by_role.get("count_good", zero)
        pq = (g[0] + sq[0] + rq[0], g[1] + sq[1] + rq[1])
    gq = by_role["count_good"] if has_good else (pq[0] - sq[0] - rq[0], pq[1] - sq[1] - rq[1])
    # PQ = GQ + SQ + RQ (ISO 22400-2): with total and good counted, scrap is measured too
    scrap_derived = has_total and has_good and "count_scrap" not in by_role
    if scrap_derived:
        sq = (pq[0] - gq[0] - rq[0], pq[1] - gq[1] - rq[1])
    return Quantities(
        pq=pq[0],
        gq=gq[0],
        sq=sq[0],
        rq=rq[0],
        pq_period=pq[1],
        gq_period=gq[1],
        sq_period=sq[1],
        rq_period=rq[1],
        has_good=has_good,
        has_total=has_total,
        scrap_derived=scrap_derived,
    )


def _pq_roles(dd: _DeviceData) -> frozenset[str]:
    """The counter roles whose steps make up PQ (as :func:`_qty` sums them)."""
    if any(p.role == "count_total" for p, _ in dd.counters.values()):
        return frozenset({"count_total"})
    return frozenset({"count_good", "count_scrap", "count_rework"})


def _mix(dd: _DeviceData, win_set: IntervalSet) -> ProductMix | None:
    """PQ of the window by program (``ideal_cycle``): each count step counted in the window is
    the program's that was in force just before the step's reading (the last program sample
    strictly before it, held as a state is); a marker, an unknown text, a held value gone
    stale or no program sample yet make the step's units unknown."""
    ic = dd.device.ideal_cycle
    if ic is None or dd.program is None:
        return None
    point, prog, hold = dd.program
    roles = _pq_roles(dd)
    programs: list[str | None] = []
    units: list[float] = []
    for p, steps in dd.counters.values():
        if p.role not in roles or not steps.ts.size:
            continue
        inside = win_set.closes(steps.ts)
        ts, inc = steps.ts[inside], steps.inc[inside]
        at = np.searchsorted(prog.ts, ts, side="left") - 1
        for t, i, n in zip(ts.tolist(), at.tolist(), inc.tolist(), strict=True):
            text: str | None = None
            if i >= 0 and prog.quality[i] != QUALITY_BAD and t - int(prog.ts[i]) <= hold:
                text = code_text(point.enum, float(prog.values[i]))
            programs.append(text)
            units.append(n)
    return product_mix(point.id, dict(ic.by), programs, units)


def _prov(imported: bool) -> str:
    return "imported" if imported else "measured"


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _cnc_rate(data: list[_DeviceData], imported: bool) -> KpiValue:
    key = [d for d in data if d.device.key_equipment]
    register = [d for d in key if d.device.control in CONTROLLED]
    confirmed = [d for d in register if d.recorded]
    notes = []
    if len(register) != len(confirmed):
        missing = [d.device.id for d in register if not d.recorded]
        notes.append("controlled per register but no recorded data: " + ", ".join(missing))
    notes.append(f"register alone: {len(register)}/{len(key)}")
    return KpiValue(
        _pct(ratio(len(confirmed), len(key))),
        _prov(imported),
        (
            KpiInput(
                "key devices with controller data recorded",
                len(confirmed),
                "台",
                _prov(imported),
                ", ".join(d.device.id for d in confirmed),
            ),
            KpiInput(
                "key devices", len(key), "台", "register", ", ".join(d.device.id for d in key)
            ),
        ),
        None,
        tuple(notes),
    )


def _network_rate(data: list[_DeviceData], site: SiteConfig, imported: bool) -> KpiValue:
    key = [d for d in data if d.device.key_equipment]
    th = site.kpi.network_min_coverage
    net = [d for d in key if d.coverage is not None and d.coverage >= th]
    detail = {d.device.id: _num(d.coverage) for d in key}
    notes = [f"networked = good data on >= {th:.0%} of planned busy time"]
    low = [
        f"{d.device.id} {d.coverage:.1%}" for d in key if d not in net and d.coverage is not None
    ]
    if low:
        notes.append("below threshold: " + ", ".join(low))
    covs = [d.coverage for d in key if d.coverage is not None]
    return KpiValue(
        _pct(ratio(len(net), len(key))),
        _prov(imported),
        (
            KpiInput(
                "key devices networked",
                len(net),
                "台",
                _prov(imported),
                ", ".join(d.device.id for d in net),
                {"coverage": detail},
            ),
            KpiInput(
                "key devices", len(key), "台", "register", ", ".join(d.device.id for d in key)
            ),
        ),
        min(covs) if covs else None,
        tuple(notes),
    )


def _digital_rate(data: list[_DeviceData], imported: bool) -> KpiValue:
    prod = [d for d in data if d.device.production]
    dig = [d for d in prod if d.device.control != "none" and d.recorded]
    return KpiValue(
        _pct(ratio(len(dig), len(prod))),
        _prov(imported),
        (
            KpiInput(
                "digital production devices with data",
                len(dig),
                "台",
                _prov(imported),
                ", ".join(d.device.id for d in dig),
            ),
            KpiInput(
                "production devices",
                len(prod),
                "台",
                "register",
                ", ".join(d.device.id for d in prod),
            ),
        ),
    )


def _machines(
    data: list[_DeviceData], period: TimeRange, exclude_offline: bool = False
) -> tuple[list[MachineOee], list[str]]:
    out: list[MachineOee] = []
    notes: list[str] = []
    s, e = period.start_ns, period.end_ns
    for d in data:
        if not d.device.key_equipment or d.times is None:
            continue
        q = _qty(d, d.windows.window, s, e)
        if q is None:
            notes.append(f"{d.device.id}: no production counters, quantities 0")
            q = Quantities(0, 0, 0, 0, 0, 0, 0, 0, False, False)
        mix = _mix(d, d.windows.window)
        pru = d.device.ideal_cycle_s if mix is None else mix.mean_pru()
        m = MachineOee(d.device.id, pru, d.times, q, (), exclude_offline, mix)
        out.append(dataclasses.replace(m, flags=machine_flags(m)))
        notes += _counter_notes([d], set(QTY_ROLES), period)
    return out, notes


def _oee(fleet: FleetOee, summed: dict[str, Any], imported: bool, notes: list[str]) -> KpiValue:
    t = summed["times_s"]
    q = summed["quantities"]
    p = _prov(imported)
    src = ", ".join(m.device for m in fleet.machines)
    mean = fleet.mean_oee()
    flags = [f for m in fleet.machines for f in m.flags]
    excluded = fleet.exclude_offline
    pbt_label = "PBT covered (PBT - offline)" if excluded else "PBT"
    pbt_h = (t["pbt_covered"] if excluded else t["pbt"]) / 3600
    reading = (
        offline_note("fleet", t["offline"] * NS, summed["coverage"], excluded)
        if t["offline"] > 0 and summed["coverage"] is not None
        else f"kpi.oee_offline: {summed['oee_offline']} (no offline time in the window)"
    )
    coverage = summed["coverage"]
    mixes = [m.mix for m in fleet.machines if m.mix is not None]
    mix_cov = ratio(sum(x.known for x in mixes), sum(x.known + x.unknown for x in mixes))
    if mix_cov is not None and coverage is not None:
        coverage = min(coverage, mix_cov)  # units without a known program have no PRU
    return KpiValue(
        _pct(summed["oee"]),
        p,
        (
            KpiInput("availability", summed["availability"], "", p, src),
            KpiInput("effectiveness", summed["effectiveness"], "", p, src),
            KpiInput("quality ratio", summed["quality_ratio"], "", p, src),
            KpiInput(pbt_label, pbt_h, "h", p, src),
            KpiInput("offline", t["offline"] / 3600, "h", p, src),
            KpiInput("APT", t["apt"] / 3600, "h", p, src),
            KpiInput("PQ", q["pq"], "件", p, src),
            KpiInput("GQ", q["gq"], "件", p, src),
            KpiInput("mean of machines' OEE", mean, "", p, src),
        ),
        coverage,
        (
            f"fleet OEE on summed times and quantities of {len(fleet.machines)} key machines; "
            f"mean of machines' OEE {_fmt_frac(mean)}",
            reading,
            *notes,
            *flags,
            *(() if summed["oee"] is not None else (_oee_missing(fleet, summed),)),
        ),
        f"fleet_summed, offline {'excluded' if excluded else 'included'}",
    )


def _oee_missing(fleet: FleetOee, summed: dict[str, Any]) -> str:
    t = summed["times_s"]
    if not fleet.machines:
        why = "no key machine with a state point"
    elif t["pbt"] <= 0:
        why = "no planned busy time in this period"
    elif t["apt"] <= 0:
        why = "no producing time recorded (effectiveness undefined)"
    elif summed["quality_ratio"] is None:
        why = "nothing produced was counted"
    else:
        why = "a machine has no ideal_cycle_s"
    return f"no value: {why}"


def _fmt_frac(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _production_efficiency(
    all_machines: list[MachineOee], data: list[_DeviceData], period: TimeRange, imported: bool
) -> KpiValue:
    machines = [m for m in all_machines if m.qty.has_good or m.qty.has_total]
    used = {m.device for m in machines}
    mdata = [d for d in data if d.device.id in used]
    roles = {"count_good", "count_total", "count_scrap", "count_rework"}
    gq = sum(m.qty.gq_period for m in machines)
    apt_h = sum(m.times.producing_total for m in machines) / 3.6e12
    p = _prov(imported)
    src = ", ".join(m.device for m in machines)
    return KpiValue(
        ratio(gq, apt_h),
        p,
        (
            KpiInput("good quantity", gq, "件", p, src),
            KpiInput("actual producing time", apt_h, "h", p, src),
        ),
        _counter_cov(mdata, roles, period),
        (
            "the form's 生产效率提升 is the change between the periods",
            *_counter_notes(mdata, roles, period),
            *(() if apt_h > 0 else (NO_PRODUCING,)),
        ),
    )


def _defect_rate(
    data: list[_DeviceData], site: SiteConfig, period: TimeRange, imported: bool
) -> KpiValue:
    chosen = site.kpi.quality_devices
    s, e = period.start_ns, period.end_ns
    pq = sq = rq = 0.0
    used: list[str] = []
    for d in data:
        if chosen is not None and d.device.id not in chosen:
            continue
        q = _qty(d, IntervalSet.of([(s, e)]), s, e)
        if q is None:
            continue
        used.append(d.device.id)
        pq += q.pq_period
        sq += q.sq_period
        rq += q.rq_period
    with_rework = site.kpi.defect_rate_includes_rework
    value = ratio(sq + rq, pq) if with_rework else ratio(sq, pq)
    other = ratio(sq, pq) if with_rework else ratio(sq + rq, pq)
    p = _prov(imported)
    src = ", ".join(used)
    notes = [
        ("scrap + rework" if with_rework else "scrap only")
        + f"; the other reading ({'scrap only' if with_rework else 'scrap + rework'}): "
        + _fmt_frac(other),
        *_counter_notes([d for d in data if d.device.id in used], set(QTY_ROLES), period),
    ]
    if pq <= 0:
        notes.append("no value: nothing produced was counted in this period (生产总数为 0)")
    if chosen is not None:
        unknown = sorted(set(chosen) - {d.id for d in site.devices})
        if unknown:
            notes.append("kpi.quality_devices not in the site file: " + ", ".join(unknown))
    return KpiValue(
        _pct(value),
        p,
        (
            KpiInput("total produced", pq, "件", p, src),
            KpiInput("scrap", sq, "件", p, src),
            KpiInput("rework", rq, "件", p, src),
        ),
        _counter_cov([d for d in data if d.device.id in used], set(QTY_ROLES), period),
        tuple(notes),
        "scrap_and_rework" if with_rework else "scrap_only",
    )


def _apc_rate(data: list[_DeviceData], site: SiteConfig, imported: bool) -> KpiValue:
    basis = site.kpi.apc_rate_basis
    on_total = run_total = 0
    loops = 0
    in_use = 0
    per_loop: dict[str, float | None] = {}
    for d in data:
        for p, on, covered in d.apc:
            run = d.producing if d.producing is not None else covered
            on_run = on.intersect(run).total
            loops += 1
            share = ratio(on_run, run.total)
            per_loop[f"{d.device.id}/{p.id}"] = share
            if share is not None and share >= site.kpi.apc_in_use_min_share:
                in_use += 1
            on_total += on_run
            run_total += run.total
    prov = _prov(imported)
    src = ", ".join(per_loop)
    time_val = ratio(on_total, run_total)
    count_val = ratio(in_use, loops)
    inputs = (
        KpiInput("time in APC while running", on_total / 3.6e12, "h", prov, src),
        KpiInput("running time", run_total / 3.6e12, "h", prov, src),
        KpiInput("loops with APC in use", in_use, "个", prov, src, {"share": per_loop}),
        KpiInput("loops", loops, "个", "register", src),
    )
    value, other = (time_val, count_val) if basis == "time" else (count_val, time_val)
    other_name = "count" if basis == "time" else "time"
    notes = [f"{basis}-based; {other_name}-based: {_fmt_frac(other)}"]
    if loops == 0:
        notes.append("no value: no APC loops (apc_mode points)")
    elif value is None:
        notes.append("no value: no running time recorded in this period")
    return KpiValue(_pct(value), prov, inputs, None, tuple(notes), basis)


def _water(data: list[_DeviceData], period: TimeRange, imported: bool) -> KpiValue:
    fresh = reused = 0.0
    src: list[str] = []
    for d in data:
        for pid, (p, steps) in d.counters.items():
            if not _in_period(steps, period):
                continue
            if p.role == "water_fresh_m3":
                fresh += steps.total(period.start_ns, period.end_ns)
                src.append(f"{d.device.id}/{pid}")
            elif p.role == "water_reused_m3":
                reused += steps.total(period.start_ns, period.end_ns)
                src.append(f"{d.device.id}/{pid}")
    prov = _prov(imported)
    s = ", ".join(src)
    return KpiValue(
        _pct(ratio(reused, reused + fresh)) if src else None,
        prov if src else "none",
        (
            KpiInput("reused water", reused, "m3", prov, s),
            KpiInput("fresh water intake", fresh, "m3", prov, s),
        )
        if src
        else (),
        _counter_cov(data, {"water_fresh_m3", "water_reused_m3"}, period) if src else None,
        tuple(_counter_notes(data, {"water_fresh_m3", "water_reused_m3"}, period))
        + (() if reused + fresh > 0 else ("no value: no water used in this period",))
        if src
        else (
            "no value: no water meter data in this period"
            if any(p.role.startswith("water_") for d in data for p, _ in d.counters.values())
            else "no value: no water meters (water_fresh_m3 / water_reused_m3)",
        ),
    )


def _counter_notes(
    data: list[_DeviceData], roles: frozenset[str] | set[str], period: TimeRange
) -> list[str]:
    out = []
    s, e = period.start_ns, period.end_ns
    for d in data:
        for pid, (p, steps) in d.counters.items():
            if p.role not in roles:
                continue
            if steps.resets or steps.rollovers or steps.backsteps:
                out.append(
                    f"{d.device.id}/{pid}: {steps.resets} resets, {steps.rollovers} rollovers, "
                    f"{steps.backsteps} backsteps (not counted)"
                )
            n = steps.unattributed_steps(s, e)
            if n and steps.unattributed(s, e) != 0:
                cov = steps.coverage(s, e)
                out.append(
                    f"{d.device.id}/{pid}: {steps.unattributed(s, e):.6g} unattributed in {n} "
                    f"step(s) across a data gap or link loss (cannot be placed in time, not "
                    f"counted); counter coverage {_fmt_frac(cov)}"
                )
    return out


def _counter_cov(
    data: list[_DeviceData], roles: frozenset[str] | set[str], period: TimeRange
) -> float | None:
    """The lowest coverage of the counters with these roles (the time they can place)."""
    covs = [
        c
        for d in data
        for p, steps in d.counters.values()
        if p.role in roles and (c := steps.coverage(period.start_ns, period.end_ns)) is not None
    ]
    return min(covs) if covs else None


def _min_cov(*covs: float | None) -> float | None:
    got = [c for c in covs if c is not None]
    return min(got) if got else None


def _in_period(steps: CounterSteps, period: TimeRange) -> bool:
    """The meter reported at least one step inside the period (else it has no data there)."""
    s, e = period.start_ns, period.end_ns
    return bool(((steps.ts > s) & (steps.ts <= e)).any()) or steps.unattributed_steps(s, e) > 0


def _carriers(data: list[_DeviceData], period: TimeRange) -> tuple[Carriers, list[str]]:
    c = Carriers()
    src: list[str] = []
    for d in data:
        for pid, (p, steps) in d.counters.items():
            if p.role in CARRIER_ROLES and _in_period(steps, period):
                c = c.add(p.role, steps.total(period.start_ns, period.end_ns))
                src.append(f"{d.device.id}/{pid}")
    return c, src


# --------------------------------------------------------------------------- declared KPIs
def _dinput(name: str, dv: DeclaredValue) -> KpiInput:
    srcs = "; ".join(f"{f['source']} ({f['period']})" for f in dv.figures)
    return KpiInput(
        name,
        dv.value,
        dv.unit,
        "declared",
        srcs,
        {"method": dv.method, "coverage": dv.coverage, "figures": list(dv.figures)},
    )


class _Declared:
    def __init__(self, site: SiteConfig, period: TimeRange) -> None:
        self.site = site
        self.period = period
        self.annual = annualisation(period, site.calendar, site.site.timezone)

    def get(self, did: str) -> DeclaredValue | None:
        s = self.site
        return declared_value(s.declared.figures, did, self.period, s.site.timezone, s.calendar)

    def missing(self, *ids: str) -> KpiValue:
        return KpiValue(
            None,
            "none",
            (),
            None,
            (f"not declared for this period: {', '.join(ids)}",),
        )

    def ratio_kpi(
        self,
        num: str,
        dens: Sequence[str],
        *,
        per_year: bool = False,
        pct: bool = False,
        variant: str | None = None,
    ) -> KpiValue:
        n = self.get(num)
        ds = [self.get(d) for d in dens]
        if n is None or any(d is None for d in ds):
            ids = [num, *dens]
            got = [n, *ds]
            return self.missing(*[i for i, g in zip(ids, got, strict=True) if g is None])
        dvals = [d for d in ds if d is not None]
        den = sum(d.value for d in dvals)
        notes = list(n.notes) + [x for d in dvals for x in d.notes]
        num_v: float | None = n.value
        if per_year:
            # the numerator is a flow prorated into the period: the same annualisation as the
            # table's extensive rows (by planned operating time under a year)
            factor = self.annual.factor
            num_v = None if factor is None else n.value * factor
            notes.append(self.annual.note(f"{num} per year"))
        v = None if num_v is None else ratio(num_v, den)
        cov = min([n.coverage, *(d.coverage for d in dvals)])
        return KpiValue(
            _pct(v) if pct else v,
            "declared",
            (_dinput(num, n), *(_dinput(d.id, d) for d in dvals)),
            cov,
            tuple(notes),
            variant,
        )

    def single(self, did: str) -> KpiValue:
        dv = self.get(did)
        if dv is None:
            return self.missing(did)
        return KpiValue(dv.value, "declared", (_dinput(did, dv),), dv.coverage, dv.notes)


def _output_value(
    dec: _Declared, data: list[_DeviceData], site: SiteConfig, period: TimeRange, imported: bool
) -> KpiValue:
    src_mode = site.kpi.output_value_source
    declared = dec.get("output_value")
    priced: list[tuple[str, float, float]] = []
    for d in data:
        price = d.device.unit_price_wan
        if price is None:
            continue
        q = _qty(
            d, IntervalSet.of([(period.start_ns, period.end_ns)]), period.start_ns, period.end_ns
        )
        counted = any(
            p.role in QTY_ROLES and _in_period(st, period) for p, st in d.counters.values()
        )
        if q is not None and counted:
            priced.append((d.device.id, q.gq_period, price))
    measured = sum(g * pr for _, g, pr in priced) if priced else None
    use_declared = src_mode == "declared" or (src_mode == "auto" and declared is not None)
    if use_declared:
        if declared is None:
            return dec.missing("output_value")
        notes = [*declared.notes]
        if measured is not None:
            notes.append(f"measured good counts x unit price would give {measured:.2f} 万元")
        return KpiValue(
            declared.value,
            "declared",
            (_dinput("output_value", declared),),
            declared.coverage,
            tuple(notes),
            "declared",
        )
    if measured is None:
        return KpiValue(
            None,
            "none",
            (),
            None,
            (
                "no value: no declared output value and no counted good quantity of a device "
                "with unit_price_wan in this period",
            ),
            "measured",
        )
    p = _prov(imported)
    inputs = tuple(
        KpiInput(
            f"{dev} good x unit price",
            g * pr,
            "万元",
            p,
            f"{dev} good counters",
            {"good": g, "unit_price_wan": pr},
        )
        for dev, g, pr in priced
    )
    return KpiValue(
        measured,
        p,
        inputs,
        None,
        ("measured: good counts x unit_price_wan (current prices)",),
        "measured",
    )


def _per_value(
    name: str,
    amount: float,
    unit: str,
    parts: list[dict[str, Any]],
    src: list[str],
    ov: KpiValue,
    imported: bool,
    counter_notes: list[str],
    counter_cov: float | None = None,
    has_meters: bool = False,
) -> KpiValue:
    p = _prov(imported)
    if not src:
        why = "no meter data in this period" if has_meters else "no meters"
        return KpiValue(None, "none", (), None, (f"no value: {why} for {name}",))
    inputs = [KpiInput(name, amount, unit, p, ", ".join(src), {"parts": parts})]
    inputs += [
        KpiInput(
            "output value",
            ov.value,
            "万元",
            ov.provenance,
            "; ".join(i.source for i in ov.inputs) or "-",
        )
    ]
    value = None if ov.value is None else ratio(amount, ov.value)
    prov = p if ov.provenance == p else "mixed"
    notes = [f"{i['carrier']}: factor {i['factor']['id']} ({i['factor']['source']})" for i in parts]
    notes.append(f"output value {ov.variant or ''}: {ov.provenance}")
    # how the declared output value was brought to the period (planned operating time)
    notes += [n for n in ov.notes if "prorated" in n]
    notes += counter_notes
    return KpiValue(value, prov, tuple(inputs), _min_cov(ov.coverage, counter_cov), tuple(notes))


def _ai_ratio(site: SiteConfig, period: TimeRange) -> tuple[KpiValue, dict[str, Any]]:
    until = _last_day(period, site.site.timezone)
    rep = evaluate(site, until)
    notes = []
    if any(c.built is None for c in site.declared.scenarios):
        notes.append("scenarios without a built date count for every period")
    bad = [c.entry for c in rep.claims if not c.valid]
    if bad:
        notes.append("not counted (not a scenario of the 2025 guide): " + "; ".join(bad))
    return (
        KpiValue(
            _pct(rep.ai_ratio),
            "declared",
            (
                KpiInput(
                    "scenarios applying AI",
                    rep.scenarios_ai,
                    "个",
                    "declared",
                    "declared.scenarios",
                ),
                KpiInput(
                    "scenarios built", rep.scenarios_valid, "个", "declared", "declared.scenarios"
                ),
            ),
            None,
            tuple(notes),
        ),
        rep.to_dict(),
    )


def _last_day(period: TimeRange, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp((period.end_ns - 1) / NS_PER_S, zone(tz)).date()


# --------------------------------------------------------------------------- entry points
def _select(site: SiteConfig, devices: Sequence[str] | None) -> list[Device]:
    if devices is None:
        return list(site.devices)
    wanted = set(devices)
    unknown = wanted - {d.id for d in site.devices}
    if unknown:
        raise KeyError(f"unknown device(s): {', '.join(sorted(unknown))}")
    return [d for d in site.devices if d.id in wanted]


def compute_period(
    reader: SeriesReader,
    site: SiteConfig,
    period: TimeRange,
    *,
    devices: Sequence[str] | None = None,
    imported: bool = False,
) -> PeriodResult:
    """Every KPI of the catalogue for one period (measured ones over ``devices`` if given).
    ``imported`` comes from the recorded batches when the reader knows them."""
    imported = period_imported(reader, site, period, imported)
    rd = _Reads(reader, period)
    data, horizon = _collect(rd, site, _select(site, devices), period, imported)
    exclude_offline = site.kpi.oee_offline == "exclude"
    machines, mnotes = _machines(data, period, exclude_offline)
    if horizon is not None:
        mnotes.insert(0, horizon_note(horizon, site.site.timezone))
    fleet = FleetOee(tuple(machines), exclude_offline)
    summed = fleet.summed()
    dec = _Declared(site, period)
    kpis: dict[str, KpiValue] = {}
    kpis["cnc_rate"] = _cnc_rate(data, imported)
    kpis["network_rate"] = _network_rate(data, site, imported)
    lp_basis = site.kpi.labour_productivity_basis
    kpis["labour_productivity"] = dec.ratio_kpi(
        lp_basis, ["headcount"], per_year=True, variant=lp_basis
    )
    kpis["production_efficiency"] = _production_efficiency(machines, data, period, imported)
    kpis["resource_utilisation"] = dec.ratio_kpi(
        "material_in_product", ["material_input"], pct=True
    )
    kpis["rd_cycle"] = dec.single("rd_cycle_days")
    ov = _output_value(dec, data, site, period, imported)
    if site.kpi.operating_cost_basis == "absolute":
        oc = dec.single("operating_cost")
        kpis["operating_cost"] = KpiValue(
            oc.value, oc.provenance, oc.inputs, oc.coverage, oc.notes, "absolute"
        )
    else:
        oc = dec.single("operating_cost")
        if oc.value is None or ov.value is None:
            kpis["operating_cost"] = KpiValue(
                None, "none", oc.inputs, None, (*oc.notes, "needs output value"), "per_output_value"
            )
        else:
            kpis["operating_cost"] = KpiValue(
                ratio(oc.value, ov.value),
                "mixed" if ov.provenance != "declared" else "declared",
                (*oc.inputs, *ov.inputs),
                oc.coverage,
                oc.notes,
                "per_output_value",
            )
    kpis["defect_rate"] = _defect_rate(data, site, period, imported)
    kpis["sales_per_capita"] = dec.ratio_kpi("sales", ["headcount"], per_year=True)
    kpis["oee"] = _oee(fleet, summed, imported, mnotes)
    kpis["inventory_turnover"] = dec.ratio_kpi("cost_of_sales", ["inventory_avg"], per_year=True)
    kpis["supplier_otd"] = dec.ratio_kpi(
        "supplier_deliveries_on_time", ["supplier_deliveries_due"], pct=True
    )
    kpis["order_otd"] = dec.ratio_kpi("orders_on_time", ["orders_due"], pct=True)
    kpis["apc_rate"] = _apc_rate(data, site, imported)
    carriers, esrc = _carriers(data, period)
    f = site.kpi.factors
    tce, eparts = energy_tce(carriers, f)
    tco2, cparts = co2_t(carriers, f)
    cnotes = _counter_notes(data, set(CARRIER_ROLES), period)
    ccov = _counter_cov(data, set(CARRIER_ROLES), period)
    metered = any(p.role in CARRIER_ROLES for d in data for p, _ in d.counters.values())
    kpis["energy_per_value"] = _per_value(
        "energy", tce, "tce", eparts, esrc, ov, imported, cnotes, ccov, metered
    )
    kpis["co2_per_value"] = _per_value(
        "CO2", tco2, "tCO2", cparts, esrc, ov, imported, cnotes, ccov, metered
    )
    kpis["solid_waste_util"] = dec.ratio_kpi(
        "solid_waste_utilised",
        ["solid_waste_generated", "solid_waste_utilised_from_storage"],
        pct=True,
    )
    kpis["water_reuse"] = _water(data, period, imported)
    kpis["replication_count"] = dec.single("replication_count")
    kpis["ai_scenario_ratio"], _tiers = _ai_ratio(site, period)
    kpis["ai_model_count"] = dec.single("ai_model_count")
    kpis["output_value"] = ov
    kpis["digital_equipment_rate"] = _digital_rate(data, imported)
    if not any(d.recorded for d in data):
        for kid in NO_DATA_KPIS:
            v = kpis[kid]
            kpis[kid] = dataclasses.replace(v, value=None, notes=(*v.notes, NO_DATA))
        for kid in REGISTER_RATES:
            v = kpis[kid]
            # none is networked: values held from before the period are no recorded data
            value = 0.0 if v.value is not None else None
            kpis[kid] = dataclasses.replace(v, value=value, notes=(*v.notes, NO_DATA_RATE))
    counters: dict[str, dict[str, Any]] = {}
    for d in data:
        for pid, (p, steps) in d.counters.items():
            counters[f"{d.device.id}/{pid}"] = {
                "role": p.role,
                "total": steps.total(period.start_ns, period.end_ns),
                "resets": steps.resets,
                "rollovers": steps.rollovers,
                "backsteps": steps.backsteps,
                "no_prior": steps.no_prior,
                "unattributed": steps.unattributed(period.start_ns, period.end_ns),
                "unattributed_steps": steps.unattributed_steps(period.start_ns, period.end_ns),
                "coverage": steps.coverage(period.start_ns, period.end_ns),
            }
    energy = {
        "electricity_kwh": carriers.electricity_kwh,
        "gas_m3": carriers.gas_m3,
        "steam_mj": carriers.steam_mj,
        "steam_t": carriers.steam_t,
        "tce": tce,
        "tco2": tco2,
        "parts": eparts + cparts,
    }
    return PeriodResult(
        period=period,
        imported=imported,
        devices=tuple(d.device.id for d in data),
        kpis=kpis,
        machines=tuple(m.to_dict() for m in machines),
        fleet=summed,
        fleet_mean_oee=fleet.mean_oee(),
        device_coverage={d.device.id: d.coverage for d in data},
        counters=counters,
        energy=energy,
        reads=tuple(rd.log),
        horizon_ns=horizon,
    )


def extensive_ids(site: SiteConfig) -> frozenset[str]:
    """The table's rows that are flow totals of their period (reported per year)."""
    ids = {"output_value"}
    if site.kpi.operating_cost_basis == "absolute":
        ids.add("operating_cost")
    return frozenset(ids)


def annualised(v: KpiValue, ann: Annualisation, unit: str) -> KpiValue:
    """A period total on the form's per-year basis; the raw total stays among the inputs."""
    if v.value is None:
        return v
    total = KpiInput(
        "period total (before annualisation)",
        v.value,
        unit,
        v.provenance,
        "the period's total of this KPI",
        ann.detail(),
    )
    value = None if ann.factor is None else v.value * ann.factor
    return dataclasses.replace(
        v, value=value, inputs=(*v.inputs, total), notes=(*v.notes, ann.note("per year"))
    )


def is_worse(direction: str, change: float | None) -> bool:
    """Whether a relative change goes against the KPI's good direction."""
    if change is None or not math.isfinite(change):
        return False
    return change < 0 if direction == "up" else change > 0


def change_of(kpi: Kpi, before: float | None, after: float | None) -> tuple[float | None, str]:
    """``(after - before) / before`` and the form's label by the KPI's good direction."""
    label = "提升" if kpi.direction == "up" else "下降"
    if before is None or after is None or before == 0:
        return None, label
    return (after - before) / before, label


def settings_dict(site: SiteConfig) -> dict[str, Any]:
    k = site.kpi
    f = k.factors
    return {
        "network_min_coverage": k.network_min_coverage,
        "defect_rate_includes_rework": k.defect_rate_includes_rework,
        "apc_rate_basis": k.apc_rate_basis,
        "apc_in_use_min_share": k.apc_in_use_min_share,
        "labour_productivity_basis": k.labour_productivity_basis,
        "operating_cost_basis": k.operating_cost_basis,
        "output_value_source": k.output_value_source,
        "quality_devices": list(k.quality_devices) if k.quality_devices is not None else None,
        "stale_after_s": k.stale_after_s,
        "heartbeat_s": site.runtime.heartbeat_s,
        "factors": {name: factor_dict(getattr(f, name)) for name in type(f).model_fields},
    }


def compute_table(
    reader: SeriesReader,
    site: SiteConfig,
    baseline: TimeRange,
    current: TimeRange,
    *,
    baseline_imported: bool = False,
    current_imported: bool = False,
    baseline_site: SiteConfig | None = None,
) -> KpiTable:
    """The before/after table (建设前 / 建成后) in the form's order. Whether a period is
    imported comes from the recorded batches (:mod:`metrics.provenance`); the ``*_imported``
    flags count only for a reader that cannot tell. ``baseline_site``: the configuration in
    force during the baseline when it is not ``site`` (the evidence log's, per period)."""
    bsite = site if baseline_site is None else baseline_site
    baseline_imported = period_imported(reader, bsite, baseline, baseline_imported)
    current_imported = period_imported(reader, site, current, current_imported)
    before = compute_period(reader, bsite, baseline, imported=baseline_imported)
    after = compute_period(reader, site, current, imported=current_imported)
    rows: list[KpiRow] = []
    tz = site.site.timezone
    ann_b = annualisation(baseline, bsite.calendar, tz)
    ann_c = annualisation(current, site.calendar, tz)
    extensive = extensive_ids(site)
    for kpi in CATALOGUE:
        b = before.kpis[kpi.id]
        a = after.kpis[kpi.id]
        unit = (
            kpi.unit
            if kpi.id != "operating_cost" or site.kpi.operating_cost_basis == "absolute"
            else "万元/万元产值"
        )
        if kpi.id in extensive:
            b, a = annualised(b, ann_b, unit), annualised(a, ann_c, unit)
            unit = f"{unit}/年"
        change, label = change_of(kpi, b.value, a.value)
        rows.append(
            KpiRow(
                id=kpi.id,
                label_zh=kpi.label_zh,
                label_en=kpi.label_en,
                unit=unit,
                direction=kpi.direction,
                mandatory=kpi.mandatory,
                provenance=kpi.provenance,
                formula_id=kpi.formula_id,
                formula_version=kpi.formula_version,
                variant=a.variant or b.variant,
                before=b,
                after=a,
                change=change,
                change_label=label,
            )
        )
    tiers = {
        "baseline": evaluate(bsite, _last_day(baseline, tz)).to_dict(),
        "current": evaluate(site, _last_day(current, tz)).to_dict(),
    }
    return KpiTable(
        site_id=site.site.id,
        baseline=baseline,
        current=current,
        baseline_imported=baseline_imported,
        current_imported=current_imported,
        rows=tuple(rows),
        settings=settings_dict(site),
        tiers=tiers,
        reads=before.reads + after.reads,
    )


__all__ = [
    "BY_ID",
    "KpiInput",
    "KpiRow",
    "KpiTable",
    "KpiValue",
    "PeriodResult",
    "compute_period",
    "compute_table",
]
