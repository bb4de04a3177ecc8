"""Simulated inline quality station publishing JSON inspection results over MQTT, and its model.

:class:`QualityModel` is a pure function of ``(seed, station, profile, time)``: the parts
inspected in any time window, each with its result (``ok`` / ``ng`` / ``rework``), the
cumulative totals after it and its measured diameter. Parts are inspected only in the working
windows of the site calendar (shifts minus breaks, holidays and planned downtime, the same
windows as the machine model), one per inspection slot of ``cycle_s`` when a part is there.
Counters count from the model epoch (2020-01-01 local time), so the live station, the history
generator and the tests agree exactly. The defect rate is drawn per seed within the profile's
range: ``baseline`` (before the project) about 2.2-3 % (rejected + reworked), ``current`` about
1-1.6 %.

``build_quality(site, seed, clock)`` gives one :class:`QualityStation` per broker of the site's
MQTT devices. It starts that broker (``connectors.simulators.broker``: a private mosquitto, or
embedded amqtt when mosquitto is missing) unless one is named, and publishes with QoS 1, for
every device, the document its points' JSON pointers describe. With the demo's pointers it is::

    {"ts": 1767225600000, "station": "qs1", "part": "qs1-00012345", "result": "ok",
     "totals": {"inspected": 812, "passed": 799, "rejected": 9, "reworked": 4},
     "measure": {"diameter_mm": 25.0031}}
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import zlib
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.base import SecretError
from config.calendar import Calendar
from config.models import Device, Point, SiteConfig
from connectors.mqtt.connector import ssl_context
from connectors.mqtt.topics import concrete_topic
from connectors.simulators.base import SimClock
from connectors.simulators.broker import Broker, BrokerKind, make_broker
from connectors.simulators.machine import EPOCH_DATE as MACHINE_EPOCH
from connectors.simulators.machine import MachineModel

log = logging.getLogger(__name__)

Result = Literal["ok", "ng", "rework"]
ProfileName = Literal["baseline", "current"]
_S = 1_000_000_000
RESULTS: tuple[Result, Result, Result] = ("ok", "ng", "rework")
NOMINAL_MM = 25.0
TOLERANCE_MM = 0.02

# (rejected rate range, reworked rate range, diameter sd of good parts in mm)
_PROFILES: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "baseline": ((0.015, 0.02), (0.007, 0.01), 0.007),
    "current": ((0.007, 0.011), (0.003, 0.005), 0.005),
}
# what each role of a point reads from an inspection
_ROLE_FIELDS = {
    "count_total": "inspected",
    "count_good": "passed",
    "count_scrap": "rejected",
    "count_rework": "reworked",
    "measurement": "diameter_mm",
}


@dataclass(frozen=True, slots=True)
class Inspection:
    """One inspected part and the station's cumulative totals after it."""

    ts_ns: int
    station: str
    part: str
    result: Result
    inspected: int
    passed: int
    rejected: int
    reworked: int
    diameter_mm: float

    def field(self, name: str) -> float:
        value: float = getattr(self, name)
        return value

    def document(self) -> dict[str, Any]:
        """The standard JSON document of this inspection (``ts`` in epoch ms)."""
        return {
            "ts": self.ts_ns // 1_000_000,
            "station": self.station,
            "part": self.part,
            "result": self.result,
            "totals": {
                "inspected": self.inspected,
                "passed": self.passed,
                "rejected": self.rejected,
                "reworked": self.reworked,
            },
            "measure": {"diameter_mm": self.diameter_mm},
        }


EPOCH_DATE = dt.date(2020, 1, 1)
"""The station's counters count from local midnight of this day (no inspections before)."""

# slots per day, per (calendar, time zone, cycle): the same for every seed and station
_SLOT_COUNTS: dict[tuple[str, int], list[int]] = {}
_U64 = np.uint64


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser, vectorised (wrapping uint64 arithmetic)."""
    x = x.copy()
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _normal(seed: int, key: int, days: npt.NDArray[np.uint64], j: int) -> npt.NDArray[np.float64]:
    """Standard normal draws, one per day, a pure function of (seed, key, day, j)."""
    with np.errstate(over="ignore"):
        base = _U64((seed * 0x9E3779B97F4A7C15 + key * 0x632BE59BD9B4E019 + j) % 2**64)
        h1 = _mix(days * _U64(0xD1B54A32D192ED03) + base)
        h2 = _mix(h1 ^ _U64(0xA0761D6478BD642F))
    u1 = ((h1 >> _U64(11)).astype(np.float64) + 0.5) / 2.0**53
    u2 = (h2 >> _U64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@dataclass(frozen=True, slots=True)
class _Day:
    ts: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int8]  # index into RESULTS
    diameter: npt.NDArray[np.float64]
    counts: tuple[int, int, int]  # ok, ng, rework


class QualityModel:
    """Deterministic inspections of one station (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        station: str = "qs1",
        *,
        calendar: Calendar | None = None,
        timezone: str = "Asia/Shanghai",
        cycle_s: float = 30.0,
        occupancy: float = 0.9,
        profile: ProfileName = "current",
    ) -> None:
        if profile not in _PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {sorted(_PROFILES)}")
        if cycle_s <= 0 or not 0 < occupancy <= 1:
            raise ValueError("cycle_s must be positive and occupancy in (0, 1]")
        self.seed = seed
        self.station = station
        self.profile = profile
        self.cycle_ns = int(cycle_s * _S)
        self.occupancy = occupancy
        # the machine model knows the calendar's working windows; reuse them
        self._calendar = MachineModel(
            station, seed=seed, calendar=calendar or Calendar(), timezone=timezone
        )
        self._machine_offset = (EPOCH_DATE - MACHINE_EPOCH).days
        self.tz = zoneinfo.ZoneInfo(timezone)
        epoch = dt.datetime.combine(EPOCH_DATE, dt.time(0, 0), tzinfo=self.tz)
        self.epoch_ns = int(epoch.timestamp()) * _S
        key = zlib.crc32(f"{station}:{profile}".encode())
        rates = np.random.default_rng([seed & 0xFFFFFFFF, key]).random(2)
        (ng_lo, ng_hi), (rw_lo, rw_hi), self.sd_mm = _PROFILES[profile]
        self.ng_rate = ng_lo + (ng_hi - ng_lo) * float(rates[0])
        self.rework_rate = rw_lo + (rw_hi - rw_lo) * float(rates[1])
        self._key = key
        self._cal_key = f"{timezone}|{(calendar or Calendar()).model_dump_json()}"
        self._days: dict[int, _Day] = {}
        self._prefix: list[tuple[int, int, int]] = [(0, 0, 0)]  # totals of days [0, i)

    @property
    def defect_rate(self) -> float:
        """Expected share of parts rejected or reworked."""
        return self.ng_rate + self.rework_rate

    def _day_index(self, t_ns: int) -> int:
        local = dt.datetime.fromtimestamp(t_ns / _S, tz=self.tz).date()
        return (local - EPOCH_DATE).days

    # ---- counts per day: cheap, vectorised, so the totals since the epoch are fast ----------
    def _slots(self, index: int) -> npt.NDArray[np.int64]:
        """Start times of the inspection slots of the working windows of day ``index``."""
        chunks: list[npt.NDArray[np.int64]] = []
        for a, b in self._calendar.windows(index + self._machine_offset):
            n = (b - a) // self.cycle_ns
            if n > 0:
                chunks.append(a + np.arange(n, dtype=np.int64) * self.cycle_ns)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)

    def _slot_counts(self, upto: int) -> list[int]:
        """Number of inspection slots of each day ``[0, upto)`` (shared by equal calendars)."""
        key = (self._cal_key, self.cycle_ns)
        counts = _SLOT_COUNTS.setdefault(key, [])
        while len(counts) < upto:
            counts.append(len(self._slots(len(counts))))
        return counts

    def _counts(self, first: int, last: int) -> npt.NDArray[np.int64]:
        """(ok, ng, rework) of days ``[first, last)``: binomial draws, normal approximation,
        from a counter-based hash of (seed, station, day) so any day is computed alone."""
        n = np.asarray(self._slot_counts(last)[first:last], dtype=np.float64)
        days = np.arange(first, last, dtype=np.uint64)
        z = [_normal(self.seed, self._key, days, j) for j in range(3)]
        occ = self.occupancy
        k = np.clip(np.rint(n * occ + np.sqrt(n * occ * (1 - occ)) * z[0]), 0, n)
        p_ng, p_rw = self.ng_rate, self.rework_rate
        ng = np.clip(np.rint(k * p_ng + np.sqrt(k * p_ng * (1 - p_ng)) * z[1]), 0, k)
        rw = np.clip(np.rint(k * p_rw + np.sqrt(k * p_rw * (1 - p_rw)) * z[2]), 0, k - ng)
        return np.stack([k - ng - rw, ng, rw], axis=1).astype(np.int64)

    def _day(self, index: int) -> _Day:
        day = self._days.get(index)
        if day is not None:
            return day
        ok, ng, rw = (int(x) for x in self._counts(index, index + 1)[0])
        parts = ok + ng + rw
        slots = self._slots(index)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self._key, index])
        taken = np.sort(rng.choice(len(slots), size=parts, replace=False))
        order = rng.permutation(parts)
        outcome = np.zeros(parts, dtype=np.int8)
        outcome[order[:ng]] = 1
        outcome[order[ng : ng + rw]] = 2
        jitter = (rng.random(parts) * 0.6 * self.cycle_ns).astype(np.int64)
        noise = rng.standard_normal(parts) * self.sd_mm
        good_d = NOMINAL_MM + np.clip(noise, -0.9 * TOLERANCE_MM, 0.9 * TOLERANCE_MM)
        sign = np.where(rng.random(parts) < 0.5, -1.0, 1.0)
        ng_d = NOMINAL_MM + sign * rng.uniform(1.25, 3.0, parts) * TOLERANCE_MM
        rw_d = NOMINAL_MM + rng.uniform(1.05, 1.75, parts) * TOLERANCE_MM  # oversize: re-machined
        diameter = np.where(outcome == 0, good_d, np.where(outcome == 1, ng_d, rw_d))
        day = _Day(
            ts=slots[taken] + jitter,
            outcome=outcome,
            diameter=np.round(diameter, 4).astype(np.float64),
            counts=(ok, ng, rw),
        )
        if len(self._days) > 256:
            self._days.clear()
        self._days[index] = day
        return day

    def _totals_before(self, index: int) -> tuple[int, int, int]:
        if index <= 0:
            return (0, 0, 0)
        have = len(self._prefix) - 1
        if have < index:
            counts = self._counts(have, index)
            base = np.asarray(self._prefix[have], dtype=np.int64)
            for row in base + np.cumsum(counts, axis=0):
                self._prefix.append((int(row[0]), int(row[1]), int(row[2])))
        return self._prefix[index]

    def results_between(self, t0_ns: int, t1_ns: int) -> list[Inspection]:
        """Inspections with ``t0_ns <= ts < t1_ns``, in time order."""
        t0_ns = max(t0_ns, self.epoch_ns)
        if t1_ns <= t0_ns:
            return []
        out: list[Inspection] = []
        first = max(0, self._day_index(t0_ns) - 1)
        last = self._day_index(t1_ns - 1)
        for index in range(first, last + 1):
            day = self._day(index)
            lo = int(np.searchsorted(day.ts, t0_ns, side="left"))
            hi = int(np.searchsorted(day.ts, t1_ns, side="left"))
            if lo >= hi:
                continue
            ok, ng, rw = self._totals_before(index)
            head = day.outcome[:lo]
            ok += int(np.count_nonzero(head == 0))
            ng += int(np.count_nonzero(head == 1))
            rw += int(np.count_nonzero(head == 2))
            for j in range(lo, hi):
                kind = int(day.outcome[j])
                if kind == 0:
                    ok += 1
                elif kind == 1:
                    ng += 1
                else:
                    rw += 1
                out.append(
                    Inspection(
                        ts_ns=int(day.ts[j]),
                        station=self.station,
                        part=f"{self.station}-{index:05d}-{j:05d}",
                        result=RESULTS[kind],
                        inspected=ok + ng + rw,
                        passed=ok,
                        rejected=ng,
                        reworked=rw,
                        diameter_mm=float(day.diameter[j]),
                    )
                )
        return out

    def totals_at(self, t_ns: int) -> tuple[int, int, int, int]:
        """(inspected, passed, rejected, reworked) counted up to ``t_ns`` (inclusive)."""
        index = self._day_index(t_ns)
        if t_ns < self.epoch_ns:
            return (0, 0, 0, 0)
        ok, ng, rw = self._totals_before(max(0, index - 1))
        for i in range(max(0, index - 1), index + 1):
            day = self._day(i)
            head = day.outcome[: int(np.searchsorted(day.ts, t_ns, side="right"))]
            ok += int(np.count_nonzero(head == 0))
            ng += int(np.count_nonzero(head == 1))
            rw += int(np.count_nonzero(head == 2))
        return (ok + ng + rw, ok, ng, rw)


# ---- what is published where --------------------------------------------------------------
def _set_at(doc: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _ts_value(ts_ns: int, fmt: str) -> Any:
    if fmt == "epoch_s":
        return ts_ns / _S
    if fmt == "epoch_ns":
        return ts_ns
    if fmt == "iso8601":
        when = dt.datetime.fromtimestamp(ts_ns // 1000 / 1_000_000, tz=dt.UTC)
        return when.isoformat()
    return ts_ns // 1_000_000


def _pointer_parts(text: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]]


@dataclass(frozen=True, slots=True)
class Publication:
    """What one device publishes to one topic for each inspection."""

    device: str
    topic: str
    points: tuple[Point, ...]

    def payload(self, item: Inspection) -> bytes:
        plain = [p for p in self.points if p.mqtt is not None and p.mqtt.pointer is None]
        if plain:
            value = item.field(_ROLE_FIELDS[plain[0].role])
            raw = (value - plain[0].offset) / plain[0].scale
            return repr(float(raw)).encode()
        doc = item.document()
        for p in self.points:
            addr = p.mqtt
            assert addr is not None
            assert addr.pointer is not None
            raw = (item.field(_ROLE_FIELDS[p.role]) - p.offset) / p.scale
            if p.datatype != "float32" and p.datatype != "float64":
                raw = round(raw)
            if addr.pointer:
                _set_at(doc, _pointer_parts(addr.pointer), raw)
            if addr.ts_pointer:
                _set_at(doc, _pointer_parts(addr.ts_pointer), _ts_value(item.ts_ns, addr.ts_format))
        return json.dumps(doc, separators=(",", ":")).encode()


def publications(device: Device) -> list[Publication]:
    """Topics and payload shapes of one MQTT device (ValueError when it cannot be served)."""
    conn = device.mqtt
    if conn is None:
        raise ValueError(f"device {device.id!r} is not an MQTT device")
    by_topic: dict[str, list[Point]] = {}
    for p in device.points:
        assert p.mqtt is not None
        if p.role not in _ROLE_FIELDS:
            raise ValueError(
                f"device {device.id!r} point {p.id!r}: the simulated quality station has no "
                f"value for role {p.role!r} (it serves {', '.join(sorted(_ROLE_FIELDS))})"
            )
        topic = concrete_topic(p.mqtt.topic, device.id, conn.topic_device_level)
        by_topic.setdefault(topic, []).append(p)
    out: list[Publication] = []
    for topic, points in by_topic.items():
        plain = [p for p in points if p.mqtt is not None and p.mqtt.pointer is None]
        if plain and len(points) > 1:
            raise ValueError(
                f"device {device.id!r}: topic {topic!r} carries a plain number for "
                f"{plain[0].id!r} and other points too; give them separate topics"
            )
        out.append(Publication(device.id, topic, tuple(points)))
    return out


class QualityStation:
    """Publishes the inspections of the MQTT devices of one broker (a :class:`Simulator`)."""

    def __init__(
        self,
        site: SiteConfig,
        devices: Sequence[Device],
        seed: int,
        clock: SimClock,
        broker: Broker,
        *,
        profile: ProfileName = "current",
        tick_s: float = 0.2,
    ) -> None:
        self.name = "quality station"
        self.site = site
        self.devices = tuple(devices)
        self.clock = clock
        self.broker = broker
        self.tick_s = tick_s
        self.models = {
            d.id: QualityModel(
                seed,
                d.id,
                calendar=site.calendar,
                timezone=site.site.timezone,
                cycle_s=d.ideal_cycle_s or 30.0,
                profile=profile,
            )
            for d in devices
        }
        self.pubs = [p for d in devices for p in publications(d)]
        self.published = 0
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_ns = 0

    def _client_for(self) -> mqtt.Client:
        conn = self.devices[0].mqtt
        assert conn is not None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-quality-{self.site.site.id}-{self.devices[0].id}"[:64],
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if conn.username is not None and self.broker.kind == "external":
            try:
                password = None if conn.password is None else conn.password.reveal()
            except SecretError as exc:
                raise RuntimeError(f"simulated quality station: {exc}") from None
            client.username_pw_set(conn.username, password)
        if conn.tls is not None and self.broker.kind == "external":
            client.tls_set_context(ssl_context(conn, self.site.resolve))
        return client

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.broker.start()
        client = self._client_for()
        try:
            await asyncio.to_thread(client.connect, self.broker.host, self.broker.port, 30)
        except OSError as exc:
            await self.broker.stop()
            raise RuntimeError(
                f"simulated quality station cannot reach {self.broker.host}:"
                f"{self.broker.port}: {exc}"
            ) from None
        client.loop_start()
        self._client = client
        self._last_ns = self.clock.now_ns()
        self._task = asyncio.create_task(self._publish_loop(), name="quality-station")

    def publish_due(self) -> int:
        """Publish every inspection up to the clock's now; returns how many messages."""
        client = self._client
        if client is None:
            return 0
        now = self.clock.now_ns()
        sent = 0
        for pub in self.pubs:
            model = self.models[pub.device]
            for item in model.results_between(self._last_ns, now):
                client.publish(pub.topic, pub.payload(item), qos=1)
                sent += 1
        self._last_ns = now
        self.published += sent
        return sent

    async def _publish_loop(self) -> None:
        while True:
            self.publish_due()
            await asyncio.sleep(self.tick_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        await self.broker.stop()

    def describe(self) -> str:
        topics = ", ".join(sorted({p.topic for p in self.pubs}))
        names = ", ".join(d.id for d in self.devices)
        return (
            f"在线检测站 MQTT quality station ({names}) publishing to "
            f"{self.broker.host}:{self.broker.port} [{topics}] (QoS 1); {self.broker.describe()}"
        )


def build_quality(
    site: SiteConfig,
    seed: int,
    clock: SimClock,
    *,
    profile: ProfileName = "current",
    broker: str | None = None,
    broker_kind: BrokerKind = "auto",
) -> list[QualityStation]:
    """One station per broker of the site's MQTT devices.

    ``broker="host:port"`` names a running broker to publish to (default: the environment
    variable ``SHOPFLOOR_MQTT_BROKER``); without one, each station starts its own broker on
    the host and port of its devices (mosquitto, else embedded amqtt; ``broker_kind``).
    """
    if broker is None:
        broker = os.environ.get("SHOPFLOOR_MQTT_BROKER") or None
    groups: dict[tuple[str, int], list[Device]] = {}
    for dev in site.devices:
        if dev.mqtt is not None:
            key = ("", 0) if broker is not None else (dev.mqtt.host, dev.mqtt.port)
            groups.setdefault(key, []).append(dev)
    stations: list[QualityStation] = []
    for (host, port), devices in groups.items():
        b = make_broker(host or "127.0.0.1", port or None, kind=broker_kind, external=broker)
        stations.append(QualityStation(site, devices, seed, clock, b, profile=profile))
    return stations


__all__ = [
    "Inspection",
    "Publication",
    "QualityModel",
    "QualityStation",
    "build_quality",
    "publications",
]
