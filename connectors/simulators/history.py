"""History of the simulated factory, generated offline: the demo's imported baseline (建设前).

``generate_history(site, seed, start_ns, end_ns, profile="baseline")`` yields the samples every
simulated device of the site would have produced in ``[start_ns, end_ns)``, device after
device, each device in time order:

- OPC UA machines and process units, and MTConnect machines (their state as the
  Execution/ControllerMode code the agent's words give, :data:`connectors.simulators.mtconnect.
  MACHINE_WORDS`), all from :mod:`connectors.simulators.machine`: states, APC mode
  and the good/scrap counters on change only (every part completion, at its exact time), spindle
  power and temperature every ``analog_step_s`` (default 60 s) when they change;
- Modbus meters (:class:`connectors.simulators.meters.MeterModel`): every ``meter_step_s``;
- the MQTT quality station (:class:`connectors.simulators.quality.QualityModel`): one sample
  per point per inspection, at the inspection time.

The values are exactly those the live simulators serve at the same instants (same models,
same seed), so a baseline period generated here and a live period recorded later are
comparable. A week of the demo factory (10 devices) takes a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from config.models import Device, Point, SiteConfig
from connectors.base import Sample
from connectors.simulators.machine import STATE_CODE, MachineModel, ProfileName, model_for
from connectors.simulators.meters import MeterModel
from connectors.simulators.mtconnect import machine_state_code
from connectors.simulators.quality import QualityModel

_S = 1_000_000_000

# what each role of a quality-station point reads from an inspection
_INSPECTION_FIELDS = {
    "count_total": "inspected",
    "count_good": "passed",
    "count_scrap": "rejected",
    "count_rework": "reworked",
    "measurement": "diameter_mm",
}


def generate_history(
    site: SiteConfig,
    seed: int,
    start_ns: int,
    end_ns: int,
    profile: ProfileName = "baseline",
    *,
    analog_step_s: float = 60.0,
    meter_step_s: float = 60.0,
) -> Iterator[Sample]:
    """Samples of every simulated device of ``site`` in ``[start_ns, end_ns)``."""
    if end_ns <= start_ns:
        raise ValueError("the history period must end after it starts")
    if analog_step_s <= 0 or meter_step_s <= 0:
        raise ValueError("steps must be positive")
    if profile not in ("baseline", "current"):
        raise ValueError(f"profile must be 'baseline' or 'current', got {profile!r}")
    for device in site.devices:
        if device.opcua is not None:
            model = model_for(site, device, seed, profile)
            yield from machine_history(device, model, start_ns, end_ns, analog_step_s)
        elif device.mtconnect is not None:
            model = model_for(site, device, seed, profile)
            yield from machine_history(
                device, model, start_ns, end_ns, analog_step_s, state_code=machine_state_code
            )
        elif device.modbus is not None:
            meter = MeterModel(seed, device, site.calendar, site.site.timezone, profile)
            yield from meter_history(device, meter, start_ns, end_ns, int(meter_step_s * _S))
        elif device.mqtt is not None:
            station = QualityModel(
                seed,
                device.id,
                calendar=site.calendar,
                timezone=site.site.timezone,
                cycle_s=device.ideal_cycle_s or 30.0,
                profile=profile,
            )
            yield from quality_history(device, station, start_ns, end_ns)


# ---------------------------------------------------------------------------------- machines
def _role_of(point: Point) -> str:
    """What a machine point reports (the same mapping as the live simulator's)."""
    if point.role in ("state", "count_good", "count_scrap", "count_total", "apc_mode"):
        return point.role
    if point.role == "power_kw":
        return "power"
    name = (point.id + (point.unit or "")).lower()
    return "temperature" if "temp" in name or "°c" in name else "power"


def machine_history(
    device: Device,
    model: MachineModel,
    start_ns: int,
    end_ns: int,
    analog_step_s: float,
    *,
    state_code: Callable[[str], int] = STATE_CODE.__getitem__,
) -> Iterator[Sample]:
    """Change-only samples of one machine, computed from its episodes (no per-instant model
    queries except for the analog values). ``state_code``: the stored code of a state (the
    OPC UA machines' ``State`` variable; an MTConnect machine's Execution/ControllerMode code)."""
    roles = [(p.id, _role_of(p)) for p in device.points]
    last: dict[str, float] = {}
    dev = device.id
    step = int(analog_step_s * _S)

    def emit(ts: int, values: dict[str, float]) -> Iterator[Sample]:
        for pid, role in roles:
            if role not in values:
                continue
            v = values[role]
            if last.get(pid) != v:
                last[pid] = v
                yield Sample(dev, pid, ts, v)

    good, scrap = (0, 0) if model.process else model.counts_at(start_ns)
    resets = model.resets_between(start_ns, end_ns)
    for e in model.episodes(start_ns, end_ns):
        a = max(e.start_ns, start_ns)
        b = min(e.end_ns, end_ns)
        state = e.state
        yield from emit(
            a,
            {
                "state": float(state_code(state)),
                "apc_mode": 1.0 if e.apc else 0.0,
                "count_good": float(good),
                "count_scrap": float(scrap),
                "count_total": float(good + scrap),
            },
        )
        # part completions of this run, merged in time with the analog steps
        events: list[tuple[int, int]] = []  # (time, kind) 0 = part, 1 = analog
        if e.parts and not model.process:
            done, _ = e.done_at(a)
            for k in range(done + 1, e.parts + 1):
                c = e.completion_ns(k) + 1000
                if c >= b:
                    break
                if c > a:
                    events.append((c, k))
        analog = [(t, -1) for t in range((a // step) * step, b, step) if t >= a]
        for t, k in sorted(events + analog):
            while resets and resets[0] <= t:
                # the counters' monthly reset (nothing is complete at that instant)
                good = scrap = 0
                yield from emit(
                    resets.pop(0), {"count_good": 0.0, "count_scrap": 0.0, "count_total": 0.0}
                )
            if k >= 0:
                made_scrap = (k * e.scrap) // e.parts - ((k - 1) * e.scrap) // e.parts
                scrap += made_scrap
                good += 1 - made_scrap
                yield from emit(
                    t,
                    {
                        "count_good": float(good),
                        "count_scrap": float(scrap),
                        "count_total": float(good + scrap),
                    },
                )
            else:
                yield from emit(
                    t,
                    {
                        "power": model.power_at(t, state),
                        "temperature": model.temperature_at(t, state, e.apc),
                    },
                )
    for r in resets:
        yield from emit(r, {"count_good": 0.0, "count_scrap": 0.0, "count_total": 0.0})


# ---------------------------------------------------------------------------------- meters
def meter_history(
    device: Device, meter: MeterModel, start_ns: int, end_ns: int, step_ns: int
) -> Iterator[Sample]:
    first = -(-start_ns // step_ns) * step_ns
    for t, values in meter.samples(first, end_ns, step_ns):
        for p in device.points:
            yield Sample(device.id, p.id, t, float(values[p.id]))


# ---------------------------------------------------------------------------------- quality
def quality_history(
    device: Device, station: QualityModel, start_ns: int, end_ns: int
) -> Iterator[Sample]:
    fields = [(p.id, _INSPECTION_FIELDS.get(p.role)) for p in device.points]
    day = 86_400 * _S
    t = start_ns
    while t < end_ns:
        upto = min(end_ns, t + day)
        for item in station.results_between(t, upto):
            for pid, field in fields:
                if field is not None:
                    yield Sample(device.id, pid, item.ts_ns, float(item.field(field)))
        t = upto
