"""Simulated power and water meters served over Modbus (pymodbus server), and their pure model.

``build_meters(site, seed, clock)`` returns one :class:`MeterServer` per (host, port) of the
site's Modbus TCP devices, with one unit per device (the device's ``unit``, or a point's own
``unit``). Every point is served at the address, table, data type, order, scale and offset the
site file gives it, so the site file and the simulator always agree.

The values come from :class:`MeterModel`, a pure function of (seed, device, time) that the
history generator can call without a server:

* load follows the site calendar (shifts busy, breaks low, nights and holidays at base load),
  piecewise constant over one-minute slots, with deterministic noise from the seed;
* ``power_kw`` = capacity x load (capacity = ``rated_power_kw`` or drawn from the seed);
  ``energy_kwh`` is its exact integral plus an initial meter reading (cumulative, never drops);
* ``water_fresh_m3`` / ``water_reused_m3``: cumulative volumes of one water demand split by a
  reuse ratio (baseline profile around 35 %, current around 61 %);
* other cumulative roles (gas, steam, counters) integrate a rate the same way; ``measurement``
  is a load-following reading; ``state``/``apc_mode``/bool points follow the shift.

The ``baseline`` profile (before the project) draws more power for the same work and reuses less
water than ``current``. Its cumulative counters are shifted down so that they never read more
than the ``current`` counters at the same or a later time (until ``REFERENCE``): a baseline
history followed by live data never steps down, which the KPI engine would take for a reset.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import zlib
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from config.calendar import Calendar
from config.models import Device, Point, SiteConfig
from connectors.modbus.codec import CodecError, encode_scaled, register_count
from connectors.simulators.base import SimClock

Profile = Literal["baseline", "current"]
Table = Literal["coil", "discrete", "holding", "input"]

SLOT_NS = 60 * 1_000_000_000
"""Load is constant over one-minute slots; energy is its exact integral."""
ORIGIN = dt.date(2024, 1, 1)
"""Meters start counting at local midnight of this day (earlier times read the initial value)."""
REFERENCE = dt.date(2027, 7, 1)
"""Until this day a ``baseline`` counter always reads at most what the ``current`` counter reads
at the same or any later time, so baseline history followed by live data never steps down (a
step down would read as a counter reset)."""

# rate of each cumulative role per unit of load, per hour (power meters: kW -> kWh)
_RATE_PER_CAPACITY: dict[str, float] = {
    "energy_kwh": 1.0,
    "gas_m3": 0.08,
    "steam_t": 0.002,
    "steam_mj": 5.0,
}
_COUNT_RATES: dict[str, float] = {
    "count_total": 100.0,
    "count_good": 97.0,
    "count_scrap": 2.0,
    "count_rework": 1.0,
}


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser, vectorised (wrapping uint64 arithmetic)."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _uniform_days(key: int, days: Sequence[int], n: int) -> npt.NDArray[np.float64]:
    """``n`` deterministic uniforms in [0, 1) for each (key, day): shape (len(days), n)."""
    with np.errstate(over="ignore"):
        day_arr = np.asarray(days, dtype=np.int64).astype(np.uint64)
        base = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15) + day_arr * np.uint64(
            0xD1B54A32D192ED03
        )
        idx = base[:, None] + np.arange(n, dtype=np.uint64)[None, :]
        bits = _mix(idx)
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _uniform(key: int, day: int, n: int) -> npt.NDArray[np.float64]:
    """``n`` deterministic uniforms in [0, 1) for (key, day)."""
    row: npt.NDArray[np.float64] = _uniform_days(key, [day], n)[0]
    return row


def _key(seed: int, *parts: str) -> int:
    return (seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) & 0xFFFFFFFFFFFF


_TOTALS: dict[tuple[object, ...], list[dict[str, float]]] = {}


@dataclass(frozen=True)
class _Day:
    start_ns: int
    load: npt.NDArray[np.float64]
    reuse: float
    rates: dict[str, npt.NDArray[np.float64]]
    cumulative: dict[str, npt.NDArray[np.float64]]  # at slot starts, n + 1 values, from 0


class MeterModel:
    """Pure, deterministic meter values of one device: ``values_at(t_ns) -> {point: value}``."""

    def __init__(
        self,
        seed: int,
        device: Device,
        calendar: Calendar | None = None,
        timezone: str = "Asia/Shanghai",
        profile: Profile = "current",
    ) -> None:
        if profile not in ("baseline", "current"):
            raise ValueError(f"profile must be 'baseline' or 'current', got {profile!r}")
        self.seed = seed
        self.device = device
        self.calendar = calendar or Calendar()
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.profile = profile
        self._key = _key(seed, device.id)
        u = _uniform(self._key, -1, 4)
        self.capacity_kw = device.rated_power_kw or float(60.0 + 80.0 * u[0])
        self.water_m3_h = float(4.0 + 4.0 * u[1])
        self._initial_hours = float(10_000.0 + 5_000.0 * u[2])  # meter reading at ORIGIN
        self._offsets: dict[str, float] | None = None
        self._roles = {p.role for p in device.points}
        # cumulative at the start of day i from ORIGIN; shared by identical models of a process
        self._totals: list[dict[str, float]] = _TOTALS.setdefault(
            (
                self._key,
                profile,
                self.capacity_kw,
                self.water_m3_h,
                tuple(sorted(self._roles)),
                timezone,
                self.calendar,
                device.id,
            ),
            [],
        )
        self._days: dict[int, _Day] = {}
        self._holidays = frozenset(self.calendar.holidays)

    # -- public ---------------------------------------------------------------------------
    def values_at(self, t_ns: int, points: Iterable[Point] | None = None) -> dict[str, float]:
        """Engineering value of every point of the device (or of ``points``) at ``t_ns``."""
        day_no, slot, frac = self._locate(t_ns)
        day = self._day(day_no)
        out: dict[str, float] = {}
        for point in self.device.points if points is None else points:
            out[point.id] = self._value(point, day, day_no, slot, frac)
        return out

    def samples(
        self, start_ns: int, end_ns: int, step_ns: int
    ) -> Iterator[tuple[int, dict[str, float]]]:
        """``(t, values_at(t))`` every ``step_ns`` from ``start_ns`` (inclusive) to ``end_ns``."""
        if step_ns <= 0:
            raise ValueError("step_ns must be positive")
        t = start_ns
        while t < end_ns:
            yield t, self.values_at(t)
            t += step_ns

    # -- model ----------------------------------------------------------------------------
    def _origin_ns(self) -> int:
        return _local_midnight_ns(ORIGIN, self.tz)

    def _locate(self, t_ns: int) -> tuple[int, int, float]:
        if t_ns < self._origin_ns():
            return 0, 0, 0.0
        local = dt.datetime.fromtimestamp(t_ns / 1e9, self.tz).date()
        day_no = (local - ORIGIN).days
        start = _local_midnight_ns(local, self.tz)
        if start > t_ns:  # float rounding right at midnight
            day_no -= 1
            start = _local_midnight_ns(ORIGIN + dt.timedelta(days=day_no), self.tz)
        slot, rest = divmod(t_ns - start, SLOT_NS)
        return day_no, int(slot), rest / SLOT_NS

    def _day(self, day_no: int) -> _Day:
        day = self._days.get(day_no)
        if day is not None:
            return day
        (day,) = self._block([day_no])
        if len(self._days) > 64:
            self._days.pop(next(iter(self._days)))
        self._days[day_no] = day
        return day

    def _block(self, day_nos: Sequence[int]) -> list[_Day]:
        """The days ``day_nos``, computed together (vectorised over days of equal length)."""
        starts: dict[int, tuple[int, int]] = {}
        by_len: dict[int, list[int]] = {}
        for d in day_nos:
            date = ORIGIN + dt.timedelta(days=d)
            start = _local_midnight_ns(date, self.tz)
            end = _local_midnight_ns(date + dt.timedelta(days=1), self.tz)
            n = max(1, (end - start) // SLOT_NS)
            starts[d] = (start, n)
            by_len.setdefault(n, []).append(d)
        out: dict[int, _Day] = {}
        hours = SLOT_NS / 3.6e12
        for n, days in by_len.items():
            levels = np.stack([self._levels(ORIGIN + dt.timedelta(days=d), n) for d in days])
            noise = _uniform_days(self._key, days, n)
            day_factor = 0.9 + 0.2 * _uniform_days(self._key ^ 0x5A5A, days, 1)
            reuse_u = _uniform_days(self._key ^ 0xA5A5, days, 1)[:, 0]
            busy = levels >= 1.0
            brk = (levels > 0.0) & ~busy
            if self.profile == "baseline":
                load = np.where(busy, (0.66 + 0.38 * noise) * day_factor, np.where(brk, 0.34, 0.15))
                reuse = 0.32 + 0.06 * reuse_u
            else:
                load = np.where(busy, (0.55 + 0.35 * noise) * day_factor, np.where(brk, 0.25, 0.08))
                reuse = 0.58 + 0.06 * reuse_u
            rates: dict[str, npt.NDArray[np.float64]] = {}
            for role in self._roles:
                if role in _RATE_PER_CAPACITY:
                    rates[role] = self.capacity_kw * _RATE_PER_CAPACITY[role] * load
                elif role in _COUNT_RATES:
                    rates[role] = _COUNT_RATES[role] * np.where(busy, 1.0, 0.0) * load
                elif role == "water_fresh_m3":
                    rates[role] = self.water_m3_h * load * (1.0 - reuse[:, None])
                elif role == "water_reused_m3":
                    rates[role] = self.water_m3_h * load * reuse[:, None]
            zeros = np.zeros((len(days), 1))
            cumulative = {
                role: np.concatenate((zeros, np.cumsum(rate * hours, axis=1)), axis=1)
                for role, rate in rates.items()
            }
            for i, d in enumerate(days):
                out[d] = _Day(
                    starts[d][0],
                    load[i],
                    float(reuse[i]),
                    {r: v[i] for r, v in rates.items()},
                    {r: v[i] for r, v in cumulative.items()},
                )
        return [out[d] for d in day_nos]

    def _levels(self, date: dt.date, n: int) -> npt.NDArray[np.float64]:
        """Per slot: 1 in a shift, 0.5 in a break inside a shift, 0 otherwise."""
        cal = self.calendar
        if not cal.shifts:
            levels = np.ones(n)
        else:
            prev = date - dt.timedelta(days=1)
            levels = _shift_levels(
                tuple(cal.shifts),
                tuple(cal.breaks),
                date.isoweekday(),
                date in self._holidays,
                prev.isoweekday(),
                prev in self._holidays,
                n,
            ).copy()
        for stop in cal.planned_downtime:
            if stop.devices is not None and self.device.id not in stop.devices:
                continue
            s = _aware_ns(stop.start, self.tz)
            e = _aware_ns(stop.end, self.tz)
            day_start = _local_midnight_ns(date, self.tz)
            lo = max(0, (s - day_start) // SLOT_NS)
            hi = min(n, -(-(e - day_start) // SLOT_NS))
            if lo < hi:
                levels[int(lo) : int(hi)] = 0.0
        return levels

    def _total_before(self, day_no: int, role: str) -> float:
        """Cumulative of ``role`` from ORIGIN to the start of day ``day_no``."""
        if not self._totals:
            self._totals.append(dict.fromkeys(self._rate_roles(), 0.0))
        while len(self._totals) <= day_no:
            first = len(self._totals) - 1  # the day whose total is added next
            chunk = range(first, min(day_no, first + 255) + 1)
            for day in self._block(list(chunk)):
                prev = self._totals[-1]
                self._totals.append({r: prev[r] + float(day.cumulative[r][-1]) for r in prev})
        return self._totals[day_no][role]

    def _rate_roles(self) -> list[str]:
        known = set(_RATE_PER_CAPACITY) | set(_COUNT_RATES) | {"water_fresh_m3", "water_reused_m3"}
        return sorted(self._roles & known)

    def _initial_of(self, role: str) -> float:
        """Reading at ORIGIN: the role's full-load rate for ``_initial_hours``."""
        if role in _COUNT_RATES:
            rate = _COUNT_RATES[role]
        elif role in _RATE_PER_CAPACITY:
            rate = self.capacity_kw * _RATE_PER_CAPACITY[role]
        else:
            rate = self.water_m3_h
        return rate * self._initial_hours

    def _offset(self, role: str) -> float:
        """What a baseline counter reads below its plain integral (0 for ``current``).

        The baseline integral grows faster than the current one; shifting it down by the most
        it ever leads (up to REFERENCE, plus one day's worth) keeps every baseline reading at or
        below the current counter at that time and later."""
        if self.profile != "baseline":
            return 0.0
        if self._offsets is None:
            ref_day = (REFERENCE - ORIGIN).days
            current = MeterModel(self.seed, self.device, self.calendar, str(self.tz.key), "current")
            roles = self._rate_roles()
            self._offsets = {}
            if roles:
                self._total_before(ref_day, roles[0])
                current._total_before(ref_day, roles[0])
            for r in roles:
                base = np.array([t[r] for t in self._totals[: ref_day + 1]])
                cur = np.array([t[r] for t in current._totals[: ref_day + 1]])
                lead = float(np.max(base - cur))
                day_max = float(np.max(np.diff(base))) if len(base) > 1 else 0.0
                self._offsets[r] = max(0.0, lead) + day_max
        return self._offsets.get(role, 0.0)

    def _value(self, point: Point, day: _Day, day_no: int, slot: int, frac: float) -> float:
        role = point.role
        n = len(day.load)
        slot = min(slot, n - 1)
        load = float(day.load[slot])
        if role in day.cumulative:
            cum = day.cumulative[role]
            within = float(cum[slot]) + float(day.rates[role][slot]) * frac * SLOT_NS / 3.6e12
            total = self._initial_of(role) + self._total_before(day_no, role) + within
            total = max(0.0, total - self._offset(role))
            return float(math.floor(total)) if role in _COUNT_RATES else total
        if role == "power_kw":
            return self.capacity_kw * load
        if role in ("state",):
            return 0.0 if load >= 0.3 else 2.0
        if role == "apc_mode" or point.datatype == "bool":
            return 1.0 if load >= 0.3 else 0.0
        # a measurement: a load-following reading around 100 (e.g. a percentage or a voltage)
        return 50.0 + 50.0 * load


@lru_cache(maxsize=256)
def _shift_levels(
    shifts: tuple[Any, ...],
    breaks: tuple[Any, ...],
    weekday: int,
    holiday: bool,
    prev_weekday: int,
    prev_holiday: bool,
    n: int,
) -> npt.NDArray[np.float64]:
    levels = np.zeros(n)
    day_min = n * SLOT_NS // 60_000_000_000

    def minute(t: dt.time) -> int:
        return t.hour * 60 + t.minute

    for shift in shifts:
        s, e = minute(shift.start), minute(shift.end)
        crosses = e <= s
        if weekday in shift.weekdays and not holiday:
            levels[s : (day_min if crosses else e)] = 1.0
        if crosses and prev_weekday in shift.weekdays and not prev_holiday:
            levels[0:e] = 1.0
    for brk in breaks:
        if weekday not in brk.weekdays:
            continue
        s, e = minute(brk.start), minute(brk.end)
        span = slice(s, e) if e > s else slice(s, day_min)
        part = levels[span]
        part[part >= 1.0] = 0.5
    levels.setflags(write=False)
    return levels


def _local_midnight_ns(date: dt.date, tz: zoneinfo.ZoneInfo) -> int:
    return _aware_ns(dt.datetime(date.year, date.month, date.day), tz)


def _aware_ns(value: dt.datetime, tz: zoneinfo.ZoneInfo) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return int(aware.timestamp()) * 1_000_000_000 + aware.microsecond * 1000


# ---------------------------------------------------------------------------------------------
# A pymodbus server for simulated units (used by the meters, the tests and the benchmark)
# ---------------------------------------------------------------------------------------------

Refresh = Callable[[Table, int, int], dict[int, int | bool]]
"""Called on each read with (table, first address, count); returns the words (or bits) to
serve, by address; addresses it leaves out keep their last value."""
Fail = Callable[[Table, int, int], int | None]
"""Called on each read; returns a Modbus exception code to answer with, or None."""


@dataclass
class UnitImage:
    """What one simulated unit serves: registers/bits by table and address.

    Addresses absent from a register table answer exception 2 (illegal data address), as a
    real device does for unmapped registers. ``hang=True`` makes the unit never answer (a dead
    unit behind a gateway), until the server stops.
    """

    holding: dict[int, int] = field(default_factory=dict)
    input: dict[int, int] = field(default_factory=dict)
    coil: dict[int, bool] = field(default_factory=dict)
    discrete: dict[int, bool] = field(default_factory=dict)
    refresh: Refresh | None = None
    fail: Fail | None = None
    hang: bool = False


_TABLE_OF_FC: dict[int, Table] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


def _reg_block(values: dict[int, int]) -> list[SimData]:
    if not values:
        return [SimData(0, count=1, datatype=DataType.INVALID)]
    out: list[SimData] = []
    addrs = sorted(values)
    start = prev = addrs[0]
    run = [values[start]]
    for a in addrs[1:]:
        if a == prev + 1:
            run.append(values[a])
        else:
            out.append(SimData(start, values=run, datatype=DataType.REGISTERS))
            start, run = a, [values[a]]
        prev = a
    out.append(SimData(start, values=run, datatype=DataType.REGISTERS))
    return out


def _bit_block(values: dict[int, bool]) -> list[SimData]:
    if not values:
        return [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    lo = min(values) // 16 * 16
    hi = (max(values) // 16 + 1) * 16
    return [
        SimData(
            lo, values=[bool(values.get(a, False)) for a in range(lo, hi)], datatype=DataType.BITS
        )
    ]


class MeterServer:
    """A pymodbus TCP (or RTU on ``serial_port``) server for simulated units.

    ``on_request(unit, function_code, address, count)`` is called for every request received
    (tests count requests with it).
    """

    def __init__(
        self,
        units: dict[int, UnitImage],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        serial_port: str | None = None,
        baudrate: int = 19200,
        name: str = "meters",
        labels: dict[int, str] | None = None,
        on_request: Callable[[int, int, int, int], None] | None = None,
    ) -> None:
        if not units:
            raise ValueError("a simulated Modbus server needs at least one unit")
        self.name = name
        self.host = host
        self.port = port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.units = units
        self.labels = labels or {}
        self.on_request = on_request
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._release: asyncio.Event | None = None

    def describe(self) -> str:
        where = (
            f"RTU on {self.serial_port}" if self.serial_port else f"TCP on {self.host}:{self.port}"
        )
        units = ", ".join(
            f"{u}={self.labels[u]}" if u in self.labels else str(u) for u in sorted(self.units)
        )
        return f"Modbus {where} ({self.name}: units {units})"

    def _device(self, unit: int, image: UnitImage, release: asyncio.Event) -> SimDevice:
        async def action(
            fc: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            table = _TABLE_OF_FC.get(fc)
            if table is None or values:
                return None
            if image.hang:
                await release.wait()
                return ExcCodes.GATEWAY_NO_RESPONSE
            if image.fail is not None and (code := image.fail(table, address, count)):
                return ExcCodes(code)
            if image.refresh is not None:
                fresh = image.refresh(table, address, count)
                if table in ("coil", "discrete"):
                    for a, bit in fresh.items():
                        i = a // 16 - start
                        if 0 <= i < len(registers):
                            mask = 1 << (a % 16)
                            registers[i] = registers[i] | mask if bit else registers[i] & ~mask
                else:
                    for a, word in fresh.items():
                        i = a - start
                        if 0 <= i < len(registers):
                            registers[i] = int(word)
            return None

        return SimDevice(
            unit,
            simdata=(
                _bit_block(image.coil),
                _bit_block(image.discrete),
                _reg_block(image.holding),
                _reg_block(image.input),
            ),
            action=action,
        )

    async def start(self) -> None:
        if self._server is not None:
            return
        self._release = asyncio.Event()
        devices = [self._device(u, img, self._release) for u, img in sorted(self.units.items())]

        def trace(sending: bool, pdu: Any) -> Any:
            if not sending and self.on_request is not None:
                self.on_request(
                    int(pdu.dev_id), int(pdu.function_code), int(pdu.address), int(pdu.count)
                )
            return pdu

        server: ModbusTcpServer | ModbusSerialServer
        if self.serial_port is not None:
            server = ModbusSerialServer(
                devices, port=self.serial_port, baudrate=self.baudrate, trace_pdu=trace
            )
        else:
            server = ModbusTcpServer(devices, address=(self.host, self.port), trace_pdu=trace)
        await server.serve_forever(background=True)
        self._server = server
        if self.serial_port is None and self.port == 0:
            transport: Any = server.transport
            self.port = int(transport.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if self._release is not None:
            self._release.set()
        if server is None:
            return
        await server.shutdown()  # type: ignore[no-untyped-call]
        # let handlers released above finish before the loop moves on
        for _ in range(3):
            await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------
# The meters of a site file
# ---------------------------------------------------------------------------------------------


def _fit(value: float, datatype: str) -> float:
    """Clamp an engineering value into what the register type can hold (after scaling)."""
    ranges = {
        "int16": (-(2**15), 2**15 - 1),
        "uint16": (0, 2**16 - 1),
        "int32": (-(2**31), 2**31 - 1),
        "uint32": (0, 2**32 - 1),
        "int64": (-(2**63), 2**63 - 1),
        "uint64": (0, 2**64 - 1),
    }
    if datatype in ranges:
        lo, hi = ranges[datatype]
        return float(min(max(round(value), lo), hi))
    return value


@dataclass(frozen=True)
class _Placed:
    point: Point
    model: MeterModel
    table: Table
    address: int
    width: int


class _UnitFeed:
    """Refresh callback of one unit: encodes the model's values at the clock's time."""

    def __init__(self, placed: list[_Placed], clock: SimClock) -> None:
        self.placed = placed
        self.clock = clock

    def __call__(self, table: Table, address: int, count: int) -> dict[int, int | bool]:
        t = self.clock.now_ns()
        out: dict[int, int | bool] = {}
        bits = table in ("coil", "discrete")
        lo = address
        hi = address + (count * 16 if bits else count)
        hit = [
            pl
            for pl in self.placed
            if pl.table == table and pl.address + pl.width > lo and pl.address < hi
        ]
        by_model: dict[int, tuple[MeterModel, list[Point]]] = {}
        for pl in hit:
            by_model.setdefault(id(pl.model), (pl.model, []))[1].append(pl.point)
        values = {
            (key, pid): v
            for key, (model, pts) in by_model.items()
            for pid, v in model.values_at(t, pts).items()
        }
        for pl in hit:
            value = values[(id(pl.model), pl.point.id)]
            if bits:
                out[pl.address] = bool(value)
                continue
            out.update(_encode_point(pl, value))
        return out


def _encode_point(pl: _Placed, value: float) -> dict[int, int]:
    p = pl.point
    assert p.modbus is not None
    if p.datatype == "bool":
        word = 1 if value else 0
        if p.modbus.bit is not None:
            word <<= p.modbus.bit
        return {pl.address: word}
    if p.datatype == "string":
        text = f"{value:.3f}"[: 2 * pl.width]
        raw = text.encode().ljust(2 * pl.width, b"\x00")
        regs = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        return dict(zip(range(pl.address, pl.address + pl.width), regs, strict=True))
    scaled_raw = _fit((value - p.offset) / p.scale, p.datatype) * p.scale + p.offset
    try:
        regs = encode_scaled(scaled_raw, p.datatype, p.modbus.order, scale=p.scale, offset=p.offset)
    except CodecError:
        regs = [0] * pl.width
    return dict(zip(range(pl.address, pl.address + pl.width), regs, strict=True))


def _placements(
    devices: Iterable[Device], models: dict[str, MeterModel]
) -> dict[int, list[_Placed]]:
    by_unit: dict[int, list[_Placed]] = {}
    for dev in devices:
        assert dev.modbus is not None
        for p in dev.points:
            assert p.modbus is not None
            unit = dev.modbus.unit if p.modbus.unit is None else p.modbus.unit
            bits = p.modbus.table in ("coil", "discrete")
            width = (
                1 if bits or p.datatype == "bool" else register_count(p.datatype, p.modbus.length)
            )
            by_unit.setdefault(unit, []).append(
                _Placed(p, models[dev.id], p.modbus.table, p.modbus.address, width)
            )
    return by_unit


def _image(placed: list[_Placed], clock: SimClock) -> UnitImage:
    feed = _UnitFeed(placed, clock)
    image = UnitImage(refresh=feed)
    for table in ("holding", "input"):
        initial = feed(table, 0, 0x10000)
        # bits of one register shared by several bool points: start from zero, OR them in
        words: dict[int, int] = {}
        for pl in placed:
            if pl.table == table:
                for a in range(pl.address, pl.address + pl.width):
                    words[a] = 0
        for a, w in initial.items():
            words[a] = int(w)
        getattr(image, table).update(words)
    for table in ("coil", "discrete"):
        getattr(image, table).update({pl.address: False for pl in placed if pl.table == table})
    shared = _shared_bit_registers(placed)
    if shared:
        image.refresh = _merge_bits(feed, shared)
    return image


def _shared_bit_registers(placed: list[_Placed]) -> set[tuple[str, int]]:
    seen: dict[tuple[str, int], int] = {}
    for pl in placed:
        if pl.point.datatype == "bool" and pl.table in ("holding", "input"):
            key = (pl.table, pl.address)
            seen[key] = seen.get(key, 0) + 1
    return {k for k, n in seen.items() if n > 1}


def _merge_bits(feed: _UnitFeed, shared: set[tuple[str, int]]) -> Refresh:
    """Several bool points on bits of one register: OR their bits into one word."""

    def refresh(table: Table, address: int, count: int) -> dict[int, int | bool]:
        out = feed(table, address, count)
        t = feed.clock.now_ns()
        for key in shared:
            if key[0] != table or not address <= key[1] < address + count:
                continue
            word = 0
            for pl in feed.placed:
                if (pl.table, pl.address) == key and pl.point.datatype == "bool":
                    assert pl.point.modbus is not None
                    if pl.model.values_at(t)[pl.point.id]:
                        word |= 1 << (pl.point.modbus.bit or 0)
            out[key[1]] = word
        return out

    return refresh


def build_meters(
    site: SiteConfig, seed: int, clock: SimClock, *, profile: Profile = "current"
) -> list[MeterServer]:
    """One simulated Modbus TCP server per (host, port) of the site's Modbus TCP devices."""
    groups: dict[tuple[str, int], list[Device]] = {}
    for dev in site.devices:
        if dev.modbus is None or dev.modbus.transport != "tcp":
            continue
        assert dev.modbus.host is not None
        groups.setdefault((dev.modbus.host, dev.modbus.port), []).append(dev)
    servers: list[MeterServer] = []
    for (host, port), devices in groups.items():
        models = {
            d.id: MeterModel(seed, d, site.calendar, site.site.timezone, profile) for d in devices
        }
        by_unit = _placements(devices, models)
        labels: dict[int, str] = {}
        for d in devices:
            assert d.modbus is not None
            labels.setdefault(d.modbus.unit, d.id)
        units = {u: _image(placed, clock) for u, placed in by_unit.items()}
        servers.append(
            MeterServer(units, host=host, port=port, name="simulated meters", labels=labels)
        )
    return servers


__all__ = [
    "MeterModel",
    "MeterServer",
    "UnitImage",
    "build_meters",
]
