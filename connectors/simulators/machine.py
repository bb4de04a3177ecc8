"""Pure, deterministic model of a machine (CNC) or process unit (furnace) on the shop floor.

The model is a function of ``(seed, time)``: what a machine reports at any instant is computed,
never accumulated from a running simulation, so a week of history is generated offline in
milliseconds and the live OPC UA simulator, the history generator and the tests agree exactly.

Time model (ISO 22400 states, codes as in ``config.models.STATE_CODES``):

- outside the site calendar's shifts, in breaks, on holidays and in planned downtime the
  machine reports ``planned_stop`` (as a real plant's MES would);
- inside working windows it alternates ``producing`` runs with interruptions: micro-stops and
  faults (``down``), waiting for material (``idle``) and changeovers (``setup``); every shift
  begins with a setup.

Each producing run has a cycle time around ``ideal_cycle_s`` (slower some of the time); its
parts, and the scrap among them, are spread evenly over the run, so the cumulative good and
scrap counters are exact functions of time. The counters reset at local midnight on the first
of each month (as part counters zeroed at the monthly order change); consumers treat the drop as
a counter reset. Times before the model's epoch (2000-01-01) are refused. Two profiles:
``baseline`` (before the project: more downtime, longer setups, more scrap, APC rarely used)
and ``current``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import zlib
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from config.calendar import Calendar
from config.models import Device, SiteConfig

ProfileName = Literal["baseline", "current"]

STATE_CODE = {"producing": 0, "setup": 1, "idle": 2, "down": 3, "planned_stop": 4}
_S = 1_000_000_000
EPOCH_DATE = dt.date(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    run_mean_s: float  # mean producing run between interruptions
    micro_stop_s: tuple[float, float]
    fault_s: tuple[float, float]
    idle_s: tuple[float, float]
    setup_s: tuple[float, float]
    # probabilities of the interruption kinds (micro-stop, fault, idle, setup); sum to 1
    mix: tuple[float, float, float, float]
    slow_share: float  # share of runs at a slower cycle
    slow_factor: tuple[float, float]
    normal_factor: tuple[float, float]
    scrap_rate: float
    apc_share: float  # share of a process unit's running time in advanced control


PROFILES: dict[str, Profile] = {
    "baseline": Profile(
        name="baseline",
        run_mean_s=45 * 60,
        micro_stop_s=(60, 240),
        fault_s=(15 * 60, 50 * 60),
        idle_s=(5 * 60, 15 * 60),
        setup_s=(18 * 60, 35 * 60),
        mix=(0.45, 0.2, 0.2, 0.15),
        slow_share=0.35,
        slow_factor=(1.15, 1.4),
        normal_factor=(1.0, 1.1),
        scrap_rate=0.019,
        apc_share=0.3,
    ),
    "current": Profile(
        name="current",
        run_mean_s=55 * 60,
        micro_stop_s=(45, 180),
        fault_s=(10 * 60, 35 * 60),
        idle_s=(3 * 60, 12 * 60),
        setup_s=(10 * 60, 25 * 60),
        mix=(0.5, 0.12, 0.2, 0.18),
        slow_share=0.2,
        slow_factor=(1.1, 1.3),
        normal_factor=(1.0, 1.06),
        scrap_rate=0.009,
        apc_share=0.9,
    ),
}


@dataclass(frozen=True, slots=True)
class Episode:
    """One stretch of one state. For ``producing``: ``parts`` made, ``scrap`` among them."""

    start_ns: int
    end_ns: int
    state: str
    cycle_s: float = 0.0
    parts: int = 0
    scrap: int = 0
    apc: bool = False

    def done_at(self, t_ns: int) -> tuple[int, int]:
        """(parts, scrap) completed in this episode by ``t_ns``."""
        if self.parts == 0 or t_ns <= self.start_ns:
            return 0, 0
        if t_ns >= self.end_ns:
            return self.parts, self.scrap
        done = min(self.parts, int((t_ns - self.start_ns) / (self.cycle_s * _S)))
        return done, (done * self.scrap) // self.parts

    def completion_ns(self, k: int) -> int:
        """Time the ``k``-th part (1-based) of the run is complete."""
        return self.start_ns + int(k * self.cycle_s * _S)


@dataclass(frozen=True, slots=True)
class Reading:
    state: str
    good: int
    scrap: int
    power_kw: float
    apc_mode: bool
    temperature_c: float

    @property
    def state_code(self) -> int:
        return STATE_CODE[self.state]


@dataclass(slots=True)
class _Day:
    episodes: list[Episode]  # only inside working windows, sorted
    starts: list[int]
    good: int
    scrap: int


_M64 = (1 << 64) - 1


def _hash01(key: int, tick: int) -> float:
    """A uniform number in [0, 1) from (key, tick): splitmix64, fast and deterministic."""
    x = (key + (tick + 1) * 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    return (x >> 11) / float(1 << 53)


class MachineModel:
    """The deterministic model of one device. ``process=True`` for a process unit."""

    def __init__(
        self,
        device: str,
        *,
        seed: int,
        calendar: Calendar,
        timezone: str = "Asia/Shanghai",
        ideal_cycle_s: float | None = None,
        rated_power_kw: float | None = None,
        process: bool = False,
        profile: ProfileName = "current",
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
        self.device = device
        self.seed = seed
        self.calendar = calendar
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.ideal_cycle_s = ideal_cycle_s or 60.0
        self.rated_power_kw = rated_power_kw or (120.0 if process else 20.0)
        self.process = process
        self.profile = PROFILES[profile]
        self._days: dict[int, _Day] = {}
        self._noise_key = zlib.crc32(f"{seed}:{device}".encode()) * 0x100000001B3 & _M64
        self._epoch_ns = self._local_ns(EPOCH_DATE, dt.time(0, 0))

    # ----------------------------------------------------------------- calendar windows
    def _local_ns(self, day: dt.date, at: dt.time) -> int:
        local = dt.datetime.combine(day, at, tzinfo=self.tz)
        return int(local.timestamp()) * _S

    def _day_index(self, t_ns: int) -> int:
        local = dt.datetime.fromtimestamp(t_ns // _S, tz=self.tz).date()
        return (local - EPOCH_DATE).days

    def windows(self, index: int) -> list[tuple[int, int]]:
        """Working windows (ns) of the shifts starting on day ``index`` after the epoch."""
        day = EPOCH_DATE + dt.timedelta(days=index)
        cal = self.calendar
        if day in cal.holidays:
            return []
        spans: list[tuple[int, int]] = []
        if not cal.shifts:
            nxt = day + dt.timedelta(days=1)
            spans = [(self._local_ns(day, dt.time(0)), self._local_ns(nxt, dt.time(0)))]
        for shift in cal.shifts:
            if day.isoweekday() not in shift.weekdays:
                continue
            end_day = day if shift.end > shift.start else day + dt.timedelta(days=1)
            spans.append((self._local_ns(day, shift.start), self._local_ns(end_day, shift.end)))
        cuts: list[tuple[int, int]] = []
        for brk in cal.breaks:
            for d in (day, day + dt.timedelta(days=1)):
                if d.isoweekday() in brk.weekdays:
                    b_end_day = d if brk.end > brk.start else d + dt.timedelta(days=1)
                    cuts.append((self._local_ns(d, brk.start), self._local_ns(b_end_day, brk.end)))
        for pd in cal.planned_downtime:
            if pd.devices is None or self.device in pd.devices:
                start = pd.start if pd.start.tzinfo else pd.start.replace(tzinfo=self.tz)
                end = pd.end if pd.end.tzinfo else pd.end.replace(tzinfo=self.tz)
                cuts.append((int(start.timestamp()) * _S, int(end.timestamp()) * _S))
        return _subtract(sorted(spans), cuts)

    # ----------------------------------------------------------------- episode generation
    def _day(self, index: int) -> _Day:
        day = self._days.get(index)
        if day is not None:
            return day
        rng = random.Random(f"{self.seed}:{self.device}:{self.profile.name}:{index}")
        episodes: list[Episode] = []
        for a, b in self.windows(index):
            episodes.extend(self._fill(rng, a, b))
        good = sum(e.parts - e.scrap for e in episodes)
        scrap = sum(e.scrap for e in episodes)
        day = _Day(episodes, [e.start_ns for e in episodes], good, scrap)
        if len(self._days) > 4096:
            self._days.clear()
        self._days[index] = day
        return day

    def _fill(self, rng: random.Random, a: int, b: int) -> Iterator[Episode]:
        p = self.profile
        t = a
        first = True
        while t < b:
            if first:
                first = False
                kind = "setup" if not self.process else "idle"
                length = rng.uniform(*p.setup_s) if kind == "setup" else rng.uniform(300, 900)
            else:
                run = rng.expovariate(1.0 / p.run_mean_s)
                end = min(b, t + int(max(run, 60.0) * _S))
                yield from self._run(rng, t, end)
                t = end
                if t >= b:
                    break
                kind, length = self._interruption(rng)
            end = min(b, t + int(length * _S))
            yield Episode(t, end, kind)
            t = end

    def _interruption(self, rng: random.Random) -> tuple[str, float]:
        p = self.profile
        x = rng.random()
        micro, fault, idle, _setup = p.mix
        if self.process:
            # a furnace has no changeovers; its interruptions are waits and faults
            if x < micro + idle + _setup:
                return "idle", rng.uniform(*p.idle_s)
            return "down", rng.uniform(*p.fault_s)
        if x < micro:
            return "down", rng.uniform(*p.micro_stop_s)
        if x < micro + fault:
            return "down", rng.uniform(*p.fault_s)
        if x < micro + fault + idle:
            return "idle", rng.uniform(*p.idle_s)
        return "setup", rng.uniform(*p.setup_s)

    def _run(self, rng: random.Random, a: int, b: int) -> Iterator[Episode]:
        p = self.profile
        if self.process:
            # alternate APC on/off inside the run, APC on for ``apc_share`` of the time
            t = a
            on = rng.random() < p.apc_share
            while t < b:
                mean = 40 * 60 * (p.apc_share if on else 1 - p.apc_share) + 60
                end = min(b, t + int(rng.expovariate(1.0 / mean) * _S) + 60 * _S)
                yield Episode(t, end, "producing", apc=on)
                t = end
                on = not on
            return
        lo, hi = p.slow_factor if rng.random() < p.slow_share else p.normal_factor
        cycle = self.ideal_cycle_s * rng.uniform(lo, hi)
        parts = int((b - a) / (cycle * _S))
        mean = parts * p.scrap_rate
        scrap = round(mean + rng.gauss(0.0, 1.0) * math.sqrt(mean * (1 - p.scrap_rate)))
        yield Episode(a, b, "producing", cycle, parts, min(parts, max(0, scrap)))

    # ----------------------------------------------------------------- queries
    def _episode_at(self, t_ns: int) -> tuple[int, Episode | None]:
        """(day index whose windows contain t, episode) — day of the shift start."""
        idx = self._day_index(t_ns)
        for i in (idx, idx - 1):
            day = self._day(i)
            k = bisect.bisect_right(day.starts, t_ns) - 1
            if k >= 0 and day.episodes[k].end_ns > t_ns:
                return i, day.episodes[k]
        return idx, None

    def month_start_ns(self, t_ns: int) -> int:
        """Local midnight of the first day of ``t_ns``'s month (when the counters reset)."""
        local = dt.datetime.fromtimestamp(t_ns // _S, tz=self.tz).date()
        return self._local_ns(local.replace(day=1), dt.time(0))

    def resets_between(self, start_ns: int, end_ns: int) -> list[int]:
        """The counters' reset instants (local midnight on the 1st) in (start, end)."""
        out: list[int] = []
        local = dt.datetime.fromtimestamp(start_ns // _S, tz=self.tz).date().replace(day=1)
        while True:
            local = (local.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            t = self._local_ns(local, dt.time(0))
            if t >= end_ns:
                return out
            if t > start_ns:
                out.append(t)

    def counts_at(self, t_ns: int) -> tuple[int, int]:
        """Cumulative (good, scrap) since the counters' last reset (start of the month)."""
        self._check(t_ns)
        reset = self.month_start_ns(t_ns)
        first = self._day_index(reset)
        idx = self._day_index(t_ns)
        good = scrap = 0
        for i in range(first - 1, idx + 1):
            day = self._day(i)
            if first <= i <= idx - 2:
                good += day.good
                scrap += day.scrap
                continue
            for e in day.episodes:
                if e.start_ns >= t_ns:
                    break
                if e.end_ns <= reset or e.parts == 0:
                    continue
                p1, s1 = e.done_at(t_ns)
                p0, s0 = e.done_at(reset)
                good += (p1 - s1) - (p0 - s0)
                scrap += s1 - s0
        return good, scrap

    def _check(self, t_ns: int) -> None:
        if t_ns < self._epoch_ns:
            raise ValueError(f"time before the model's epoch {EPOCH_DATE}: {t_ns}")

    def at(self, t_ns: int) -> Reading:
        """What the device reports at ``t_ns``."""
        self._check(t_ns)
        _, ep = self._episode_at(t_ns)
        state = ep.state if ep is not None else "planned_stop"
        good, scrap = (0, 0) if self.process else self.counts_at(t_ns)
        apc = ep.apc if ep is not None else False
        return Reading(
            state=state,
            good=good,
            scrap=scrap,
            power_kw=self.power_at(t_ns, state),
            apc_mode=apc,
            temperature_c=self.temperature_at(t_ns, state, apc),
        )

    def change_times(self, start_ns: int, end_ns: int, tick_s: float = 10.0) -> list[int]:
        """Every instant in (start, end) at which a reading may change: state changes, part
        completions (just after), the 10-second ticks of power and temperature, and the
        counters' monthly reset. Evaluating :meth:`at` at these instants gives the exact
        change-only record of the device."""
        tick = int(tick_s * _S)
        times: set[int] = set(range((start_ns // tick + 1) * tick, end_ns, tick))
        for e in self.episodes(start_ns, end_ns):
            if start_ns < e.start_ns < end_ns:
                times.add(e.start_ns)
            if e.parts:
                done, _ = e.done_at(start_ns)
                for k in range(done + 1, e.parts + 1):
                    c = e.completion_ns(k) + 1000
                    if c >= end_ns:
                        break
                    if c > start_ns:
                        times.add(c)
        times.update(self.resets_between(start_ns, end_ns))
        return sorted(times)

    def power_at(self, t_ns: int, state: str) -> float:
        level = {"producing": 0.62, "setup": 0.12, "idle": 0.06, "down": 0.03}.get(state, 0.0)
        if level == 0.0:
            return 0.0
        tick = t_ns // (10 * _S)
        wobble = 0.08 * math.sin(tick / 7.0) + 0.05 * (_hash01(self._noise_key, tick) - 0.5)
        return round(self.rated_power_kw * level * (1.0 + wobble), 2)

    def temperature_at(self, t_ns: int, state: str, apc: bool) -> float:
        base = {"producing": 860.0, "idle": 840.0, "down": 700.0, "setup": 840.0}.get(state, 600.0)
        tick = t_ns // (10 * _S)
        spread = 2.0 if apc else 8.0
        noise = spread * (2.0 * _hash01(self._noise_key ^ 0x5A5A5A5A, tick) - 1.0)
        return round(base + noise, 1)

    def episodes(self, start_ns: int, end_ns: int) -> Iterator[Episode]:
        """Every state stretch overlapping [start, end), in order; the gaps between working
        windows come as (clipped) ``planned_stop`` episodes, working episodes whole."""
        self._check(start_ns)
        t = start_ns
        for i in range(self._day_index(start_ns) - 1, self._day_index(end_ns) + 1):
            for e in self._day(i).episodes:
                if e.end_ns <= start_ns or e.start_ns >= end_ns:
                    continue
                if e.start_ns > t:
                    yield Episode(t, e.start_ns, "planned_stop")
                yield e
                t = e.end_ns
        if t < end_ns:
            yield Episode(t, end_ns, "planned_stop")


def _subtract(
    spans: Sequence[tuple[int, int]], cuts: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        pieces = [(a, b)]
        for c, d in cuts:
            nxt: list[tuple[int, int]] = []
            for x, y in pieces:
                if d <= x or c >= y:
                    nxt.append((x, y))
                    continue
                if c > x:
                    nxt.append((x, c))
                if d < y:
                    nxt.append((d, y))
            pieces = nxt
        out.extend(p for p in pieces if p[1] > p[0])
    return sorted(out)


def is_process_unit(device: Device) -> bool:
    return any(p.role == "apc_mode" for p in device.points)


def model_for(
    site: SiteConfig, device: Device, seed: int, profile: ProfileName = "current"
) -> MachineModel:
    """The model of a machine (or process unit) of the site file."""
    return MachineModel(
        device.id,
        seed=seed,
        calendar=site.calendar,
        timezone=site.site.timezone,
        ideal_cycle_s=device.ideal_cycle_s,
        rated_power_kw=device.rated_power_kw,
        process=is_process_unit(device),
        profile=profile,
    )
