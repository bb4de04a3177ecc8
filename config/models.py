"""The site file: site, devices with their points, calendar, declared figures, storage."""

from __future__ import annotations

import weakref
import zoneinfo
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import Field, GetCoreSchemaHandler, PrivateAttr, field_validator, model_validator
from pydantic_core import core_schema

from config.base import Frozen, Identifier
from config.calendar import Calendar
from config.columns import ModelColumns
from config.declared import Declared
from config.evidence import EvidenceSettings
from config.gateway import GatewaySettings
from config.kpi import KpiSettings
from config.modbus import ModbusAddress, ModbusConnection
from config.mqtt import MqttAddress, MqttConnection
from config.mtconnect import DEFAULT_STATE_MAP, MtconnectAddress, MtconnectConnection
from config.opcua import OpcUaAddress, OpcUaConnection
from config.sparkplug import SparkplugAddress, SparkplugConnection
from config.storage import Runtime, SqliteStorage, Storage
from config.textmap import check_enum

Role = Literal[
    "state",
    "count_total",
    "count_good",
    "count_scrap",
    "count_rework",
    "energy_kwh",
    "power_kw",
    "gas_m3",
    "steam_t",
    "steam_mj",
    "water_fresh_m3",
    "water_reused_m3",
    "apc_mode",
    "measurement",
]
COUNTER_ROLES = frozenset(
    {
        "count_total",
        "count_good",
        "count_scrap",
        "count_rework",
        "energy_kwh",
        "gas_m3",
        "steam_t",
        "steam_mj",
        "water_fresh_m3",
        "water_reused_m3",
    }
)

MachineState = Literal["producing", "setup", "idle", "down", "planned_stop", "offline"]
STATE_CODES: dict[str, int] = {
    "producing": 0,
    "setup": 1,
    "idle": 2,
    "down": 3,
    "planned_stop": 4,
    "offline": 5,
}

DataType = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
    "text",
]
Control = Literal["none", "nc", "cnc", "plc", "dcs", "robot"]
Protocol = Literal["modbus", "opcua", "mqtt", "mtconnect", "sparkplug"]
PROTOCOLS: tuple[Protocol, ...] = ("modbus", "opcua", "mqtt", "mtconnect", "sparkplug")
#: protocols whose connectors map a text value to its code (config.textmap)
TEXT_PROTOCOLS: tuple[Protocol, ...] = ("opcua", "mqtt", "mtconnect", "sparkplug")
Address = ModbusAddress | OpcUaAddress | MqttAddress | MtconnectAddress | SparkplugAddress


class Deadband(Frozen):
    kind: Literal["absolute", "percent"] = "absolute"
    value: float = Field(ge=0)
    range: float | None = Field(
        default=None, gt=0, description="span of the value for a percent deadband (EURange)"
    )

    @model_validator(mode="after")
    def _percent(self) -> Deadband:
        if self.kind == "percent" and self.value > 100:
            raise ValueError("a percent deadband is at most 100")
        return self


class Point(Frozen):
    id: Identifier
    name: str | None = None
    role: Role = "measurement"
    unit: str | None = None
    datatype: DataType = "float32"
    modbus: ModbusAddress | None = None
    opcua: OpcUaAddress | None = None
    mqtt: MqttAddress | None = None
    mtconnect: MtconnectAddress | None = None
    sparkplug: SparkplugAddress | None = None
    scale: float = 1.0
    offset: float = 0.0
    interval_ms: int | None = Field(default=None, ge=10, description="overrides the device's")
    deadband: Deadband | None = None
    heartbeat_s: float | None = Field(default=None, gt=0, description="overrides runtime's")
    state_map: dict[str, MachineState] | None = Field(
        default=None, description="raw value (as text, e.g. '3') -> machine state, role state"
    )
    counter_bits: int | None = Field(
        default=None, ge=8, le=64, description="width of a counter that rolls over"
    )
    enum: dict[str, int] | None = Field(
        default=None,
        description="datatype text: text -> stored code (the program / part dictionary)",
    )

    @field_validator("enum", mode="before")
    @classmethod
    def _enum(cls, value: object) -> object:
        if isinstance(value, dict):
            return check_enum(value)
        return value

    @field_validator("state_map", mode="before")
    @classmethod
    def _state_keys(cls, value: object) -> object:
        """Raw values written unquoted (``0: producing``) are the text of the number; a key or
        state YAML read as true/false (on, off, yes, no) is refused with the fix."""
        if not isinstance(value, dict):
            return value
        out: dict[object, object] = {}
        for key, state in value.items():
            if isinstance(key, bool) or isinstance(state, bool):
                raise ValueError(
                    "a raw value or state was read by YAML as true/false (unquoted on, off, "
                    "yes, no, true, false): quote it, e.g. {'0': 'producing', 'off': 'idle'}"
                )
            out[str(key) if isinstance(key, int) else key] = state
        return out

    @model_validator(mode="before")
    @classmethod
    def _mtconnect_state_map(cls, data: Any) -> Any:
        """An MTConnect EXECUTION state point without a state_map gets the reviewed default
        (config.mtconnect.DEFAULT_STATE_MAP), written into the model so that it is recorded."""
        if (
            isinstance(data, dict)
            and data.get("role") == "state"
            and data.get("state_map") is None
            and isinstance(data.get("mtconnect"), dict)
            and data["mtconnect"].get("type") == "EXECUTION"
        ):
            return {**data, "state_map": dict(DEFAULT_STATE_MAP)}
        return data

    @model_validator(mode="after")
    def _role(self) -> Point:
        if self.role == "state" and not self.state_map:
            raise ValueError("a point with role 'state' needs a state_map")
        if self.state_map and self.role != "state":
            raise ValueError("state_map is only for role 'state'")
        if self.counter_bits is not None and self.role not in COUNTER_ROLES:
            raise ValueError("counter_bits is only for cumulative counter roles")
        if self.datatype == "text" and not self.enum:
            raise ValueError(
                "a datatype 'text' point needs an enum (text -> code), e.g. "
                "enum: {'P-100': 1, 'P-200': 2}"
            )
        if self.enum is not None and self.datatype != "text":
            raise ValueError("enum is only for datatype 'text'")
        if self.datatype == "text" and self.role != "measurement":
            raise ValueError("a datatype 'text' point has role 'measurement'")
        if self.deadband is not None and self.opcua is not None and self.opcua.selects:
            raise ValueError(
                "no deadband on a part of an OPC UA structure or array (field, index, "
                "element): the server filters whole values; every change is delivered"
            )
        if self.deadband is not None and self.opcua is not None and self.opcua.follow:
            raise ValueError("no deadband on a 'follow' point (it is polled)")
        return self

    def address_of(self, protocol: Protocol) -> Address | None:
        addr: Address | None = getattr(self, protocol)
        return addr


class PointTable(Sequence[Point]):
    """A device's points: a read-only sequence of :class:`Point` kept as columns
    (:mod:`config.columns`, ~20 bytes instead of ~900 per Modbus point that differs from the
    others only by id and address). Each access builds the ``Point`` again (equal to the
    validated one); as long as a ``Point`` read is referenced elsewhere, reading the same
    index again gives that same object (a weak cache), so ``is`` works as on a tuple.
    Validation, errors and dumps are those of a ``tuple[Point, ...]``."""

    __slots__ = ("_alive", "_columns", "_forget", "_points")

    def __init__(self, points: Sequence[Point] = (), *, compact: bool = True) -> None:
        self._columns: ModelColumns[Point] | None = None
        self._points: tuple[Point, ...] | None = tuple(points)
        self._watch()
        if compact:
            self.compact()

    def compact(self) -> None:
        """Keep the points as columns (validation does it once the device's checks, which
        read every point, are done). A short table, or models that columns cannot hold,
        stay as they are."""
        if self._points is not None and len(self._points) > 1:
            self._columns = ModelColumns.of(Point, self._points)
            if self._columns is not None:
                self._points = None

    def _watch(self) -> None:
        # index -> the Point read last, while it is referenced elsewhere
        alive: dict[int, weakref.KeyedRef[int, Point]] = {}

        def forget(ref: weakref.KeyedRef[int, Point]) -> None:
            if alive.get(ref.key) is ref:
                del alive[ref.key]

        self._alive = alive
        self._forget = forget

    def __len__(self) -> int:
        return len(self._points) if self._points is not None else len(self._columns or ())

    @overload
    def __getitem__(self, index: int) -> Point: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Point, ...]: ...

    def __getitem__(self, index: int | slice) -> Point | tuple[Point, ...]:
        if self._points is not None:
            return self._points[index]
        assert self._columns is not None
        n = len(self._columns)
        if isinstance(index, slice):
            return tuple(self._row(i) for i in range(*index.indices(n)))
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("point index out of range")
        return self._row(index)

    def _row(self, i: int) -> Point:
        alive = self._alive
        ref = alive.get(i)
        p = None if ref is None else ref()
        if p is None:
            assert self._columns is not None
            p = self._columns.row(i)
            assert p is not None
            alive[i] = weakref.KeyedRef(p, self._forget, i)
        return p

    def position(self, point_id: str) -> int | None:
        """Index of the point ``point_id`` (None: not in the table), without building the
        points before it."""
        ids = self._columns.values("id") if self._columns is not None else None
        if ids is None:
            ids = [p.id for p in self]
        try:
            return list(ids).index(point_id)
        except ValueError:
            return None

    def __getstate__(self) -> tuple[ModelColumns[Point] | None, tuple[Point, ...] | None]:
        return self._columns, self._points

    def __setstate__(
        self, state: tuple[ModelColumns[Point] | None, tuple[Point, ...] | None]
    ) -> None:
        self._columns, self._points = state
        self._watch()

    def __iter__(self) -> Iterator[Point]:
        if self._points is not None:
            return iter(self._points)
        return map(self._row, range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PointTable | tuple):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        points = handler.generate_schema(tuple[Point, ...])

        def validate(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> PointTable:
            if isinstance(value, PointTable):
                return value
            return cls(inner(value), compact=False)  # Device._protocol compacts it

        return core_schema.no_info_wrap_validator_function(
            validate,
            points,
            serialization=core_schema.wrap_serializer_function_ser_schema(
                lambda value, nxt: nxt(tuple(value)), schema=points
            ),
        )


class IdealCycle(Frozen):
    """PRU per product or program (ISO 22400 PRU per product): the ideal cycle time in force
    for a count step is the one of the text held by ``point`` (a ``datatype: text`` point of
    the same device) at the step's time."""

    point: Identifier = Field(description="the device's datatype text point (program, part)")
    by: dict[str, float] = Field(min_length=1, description="text -> ideal cycle time, s/unit")

    @field_validator("by")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for text, pru in value.items():
            if not pru > 0 or pru == float("inf"):
                raise ValueError(f"ideal_cycle.by[{text!r}]: give a positive number of seconds")
        return value


class Device(Frozen):
    id: Identifier
    name: str
    line: str | None = None
    modbus: ModbusConnection | None = None
    opcua: OpcUaConnection | None = None
    mqtt: MqttConnection | None = None
    mtconnect: MtconnectConnection | None = None
    sparkplug: SparkplugConnection | None = None
    import_only: bool = Field(
        default=False,
        description="no connection: the device's data only comes from `shopfloor import meters`"
        " (no protocol block, no point address)",
    )
    key_equipment: bool = False
    production: bool = Field(
        default=True, description="a production device (数字化生产设备普及率 denominator)"
    )
    control: Control = "none"
    ideal_cycle_s: float | None = Field(default=None, gt=0, description="ISO 22400 PRU, s/unit")
    ideal_cycle: IdealCycle | None = Field(
        default=None, description="PRU by program or product (instead of ideal_cycle_s)"
    )
    rated_power_kw: float | None = Field(default=None, gt=0)
    product: str | None = None
    unit_price_wan: float | None = Field(
        default=None, ge=0, description="万元 per good unit, for measured output value"
    )
    points: PointTable = PointTable()

    @property
    def protocol(self) -> Protocol | None:
        """The device's protocol; ``None`` for an import-only device (no connection)."""
        for p in PROTOCOLS:
            if getattr(self, p) is not None:
                return p
        return None

    @model_validator(mode="after")
    def _protocol(self) -> Device:
        given = [p for p in PROTOCOLS if getattr(self, p) is not None]
        if self.import_only:
            if given:
                raise ValueError(
                    f"an import_only device has no protocol block ('{given[0]}' given)"
                )
        elif len(given) != 1:
            raise ValueError(
                "give exactly one protocol block: "
                + ", ".join(PROTOCOLS)
                + " (or import_only: true for a device whose data is only imported)"
            )
        proto = given[0] if given else None
        seen: set[str] = set()
        for i, point in enumerate(self.points):
            if point.id in seen:
                raise ValueError(f"points[{i}]: duplicate point id {point.id!r}")
            seen.add(point.id)
            if proto is None:
                addressed = [o for o in PROTOCOLS if getattr(point, o)]
                if addressed:
                    raise ValueError(
                        f"points[{i}] ({point.id}): '{addressed[0]}' block on an import_only device"
                    )
                continue
            if point.datatype == "text" and proto not in TEXT_PROTOCOLS:
                raise ValueError(
                    f"points[{i}] ({point.id}): datatype 'text' is read from "
                    + ", ".join(TEXT_PROTOCOLS)
                    + f" points, not {proto}"
                )
            if point.address_of(proto) is None:
                raise ValueError(f"points[{i}] ({point.id}): needs a '{proto}' address block")
            others = [o for o in PROTOCOLS if o != proto and getattr(point, o)]
            if others:
                raise ValueError(
                    f"points[{i}] ({point.id}): '{others[0]}' block on a {proto} device"
                )
        self._check_ideal_cycle()
        if isinstance(self.points, PointTable):
            self.points.compact()  # every point checked: keep them as columns from now on
        return self

    def _check_ideal_cycle(self) -> None:
        ic = self.ideal_cycle
        if ic is None:
            return
        if self.ideal_cycle_s is not None:
            raise ValueError("give ideal_cycle_s or ideal_cycle (by program), not both")
        ids = [p.id for p in self.points]
        if ic.point not in ids:
            raise ValueError(f"ideal_cycle.point: no point {ic.point!r} on this device")
        prog = self.points[ids.index(ic.point)]
        if prog.datatype != "text" or prog.enum is None:
            raise ValueError(f"ideal_cycle.point {ic.point!r}: needs datatype text with an enum")
        missing = [t for t in ic.by if t not in prog.enum]
        if missing:
            raise ValueError(
                f"ideal_cycle.by: {', '.join(map(repr, missing))} not in the enum of point "
                f"{ic.point!r}"
            )

    def point(self, point_id: str) -> Point:
        points = self.points
        if isinstance(points, PointTable):  # a copy may hold a plain tuple
            i = points.position(point_id)
            if i is not None:
                return points[i]
            raise KeyError(point_id)
        for p in points:
            if p.id == point_id:
                return p
        raise KeyError(point_id)


class Site(Frozen):
    id: Identifier
    name: str
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    enterprise: str | None = Field(default=None, description="企业名称 on the application")
    credit_code: str | None = Field(default=None, description="统一社会信用代码")
    address: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SiteConfig(Frozen):
    version: Literal[1] = 1
    site: Site
    devices: tuple[Device, ...] = ()
    calendar: Calendar = Calendar()
    declared: Declared = Declared()
    storage: Storage = SqliteStorage()
    runtime: Runtime = Runtime()
    kpi: KpiSettings = KpiSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    gateway: GatewaySettings = GatewaySettings()

    _source_dir: Path = PrivateAttr(default_factory=Path.cwd)

    def resolve(self, path: Path) -> Path:
        """A path of the site file: absolute as given, else relative to the file's folder."""
        return path if path.is_absolute() else self._source_dir / path

    def with_source_dir(self, folder: Path) -> SiteConfig:
        self._source_dir = folder
        return self

    @model_validator(mode="after")
    def _unique(self) -> SiteConfig:
        seen: set[str] = set()
        for i, dev in enumerate(self.devices):
            if dev.id in seen:
                raise ValueError(f"devices[{i}]: duplicate device id {dev.id!r}")
            seen.add(dev.id)
        for i, dt_ in enumerate(self.calendar.planned_downtime):
            for d in dt_.devices or ():
                if d not in seen:
                    raise ValueError(f"calendar.planned_downtime[{i}]: unknown device {d!r}")
        return self

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)
