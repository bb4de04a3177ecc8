"""Pure planning of Modbus reads: points -> coalesced requests -> decoded values.

Points are grouped by (unit, table, poll interval) and nearby ones merged into one request of at
most ``max_registers`` registers (``max_bits`` bits for coils and discrete inputs), bridging gaps
of up to ``max_gap`` unused registers (``16 * max_gap`` bits: the same bytes on the wire). A
response is decoded back into one reading per point. Nothing here does I/O.
"""

from __future__ import annotations

import math
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from config.modbus import ByteOrder, ModbusConnection, Table
from config.models import DataType, Device
from connectors.base import Quality
from connectors.modbus.codec import (
    NUMERIC_TYPES,
    CodecError,
    decode_raw,
    numeric_decoder,
    register_count,
)

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})
FUNCTION_CODE: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class PlanError(ValueError):
    """A point that cannot be read as configured (the message names device and point)."""


@dataclass(frozen=True, slots=True)
class PointRef:
    """One configured point, resolved to where and how it is read."""

    device: str
    point: str
    unit: int
    table: Table
    address: int
    width: int
    datatype: DataType
    order: ByteOrder
    bit: int | None
    scale: float
    offset: float
    interval_ms: int

    @property
    def end(self) -> int:
        """First address after the point."""
        return self.address + self.width


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: function code of ``table``, ``count`` registers (or bits) from ``address``."""

    unit: int
    table: Table
    address: int
    count: int
    interval_ms: int
    points: tuple[PointRef, ...]

    @property
    def function_code(self) -> int:
        return FUNCTION_CODE[self.table]

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.device for p in self.points))


@dataclass(frozen=True, slots=True)
class Reading:
    """A decoded value of one point (NaN and a status when it could not be decoded)."""

    ref: PointRef
    value: float
    quality: Quality
    status: str = ""


def point_refs(device: Device, connection: ModbusConnection) -> list[PointRef]:
    """Resolve the points of a Modbus device; raises :class:`PlanError` on a bad combination."""
    out: list[PointRef] = []
    for i, point in enumerate(device.points):
        addr = point.modbus
        where = f"device {device.id} points[{i}] ({point.id})"
        if addr is None:
            raise PlanError(f"{where}: needs a 'modbus' address block")
        if addr.table in BIT_TABLES:
            if point.datatype != "bool":
                raise PlanError(
                    f"{where}: table {addr.table} holds single bits; use datatype bool "
                    f"(got {point.datatype})"
                )
            if addr.bit is not None:
                raise PlanError(f"{where}: 'bit' is for a bit of a register, not of a {addr.table}")
            width = 1
        else:
            if addr.bit is not None and point.datatype != "bool":
                raise PlanError(f"{where}: 'bit' needs datatype bool (got {point.datatype})")
            if point.datatype == "string" and addr.length is None:
                raise PlanError(f"{where}: a string point needs 'length' (registers)")
            if point.datatype != "string" and addr.length is not None:
                raise PlanError(f"{where}: 'length' is only for datatype string")
            try:
                width = register_count(point.datatype, addr.length)
            except CodecError as exc:
                raise PlanError(f"{where}: {exc}") from None
            limit = connection.max_registers
            if width > limit:
                raise PlanError(f"{where}: needs {width} registers, above max_registers {limit}")
        if addr.address + width - 1 > 0xFFFF:
            raise PlanError(f"{where}: address {addr.address} + {width} passes 65535")
        out.append(
            PointRef(
                device=device.id,
                point=point.id,
                unit=connection.unit if addr.unit is None else addr.unit,
                table=addr.table,
                address=addr.address,
                width=width,
                datatype=point.datatype,
                order=addr.order,
                bit=addr.bit,
                scale=point.scale,
                offset=point.offset,
                interval_ms=point.interval_ms or connection.poll_interval_ms,
            )
        )
    return out


def plan_requests(
    refs: Iterable[PointRef], *, max_registers: int = 125, max_bits: int = 2000, max_gap: int = 8
) -> list[ReadRequest]:
    """Coalesce ``refs`` into requests; sorted by (unit, table, interval, address).

    Raises :class:`PlanError` when a limit is out of the Modbus range (1..125 registers,
    1..2000 bits) or a single point does not fit one request.
    """
    if not 1 <= max_registers <= 125:
        raise PlanError(f"max_registers must be 1..125, got {max_registers}")
    if not 1 <= max_bits <= 2000:
        raise PlanError(f"max_bits must be 1..2000, got {max_bits}")
    if max_gap < 0:
        raise PlanError(f"max_gap must be >= 0, got {max_gap}")
    groups: dict[tuple[int, Table, int], list[PointRef]] = defaultdict(list)
    for ref in refs:
        groups[(ref.unit, ref.table, ref.interval_ms)].append(ref)
    out: list[ReadRequest] = []
    for (unit, table, interval), members in sorted(groups.items()):
        bits = table in BIT_TABLES
        limit = max_bits if bits else max_registers
        gap = max_gap * 16 if bits else max_gap
        out.extend(_coalesce(unit, table, interval, members, limit, gap))
    return out


def _coalesce(
    unit: int, table: Table, interval: int, refs: list[PointRef], limit: int, gap: int
) -> list[ReadRequest]:
    refs = sorted(refs, key=lambda r: (r.address, r.width, r.device, r.point))
    out: list[ReadRequest] = []
    current: list[PointRef] = []
    start = end = 0
    for ref in refs:
        if ref.width > limit:
            raise PlanError(
                f"device {ref.device} point {ref.point}: {ref.width} registers exceed the "
                f"request limit {limit}"
            )
        if current and ref.address - end <= gap and max(end, ref.end) - start <= limit:
            current.append(ref)
            end = max(end, ref.end)
            continue
        if current:
            out.append(ReadRequest(unit, table, start, end - start, interval, tuple(current)))
        current, start, end = [ref], ref.address, ref.end
    if current:
        out.append(ReadRequest(unit, table, start, end - start, interval, tuple(current)))
    return out


def split_request(request: ReadRequest) -> list[ReadRequest]:
    """One request per point (points sharing registers stay together, e.g. bits of one word).

    Used when a coalesced read is refused (exception 2, illegal data address): reading the
    points one by one confines the refusal to the points that really are out of range.
    """
    out: list[ReadRequest] = []
    current: list[PointRef] = []
    start = end = 0
    for ref in sorted(request.points, key=lambda r: (r.address, r.width)):
        if current and ref.address < end:
            current.append(ref)
            end = max(end, ref.end)
            continue
        if current:
            out.append(
                ReadRequest(
                    request.unit,
                    request.table,
                    start,
                    end - start,
                    request.interval_ms,
                    tuple(current),
                )
            )
        current, start, end = [ref], ref.address, ref.end
    if current:
        out.append(
            ReadRequest(
                request.unit,
                request.table,
                start,
                end - start,
                request.interval_ms,
                tuple(current),
            )
        )
    return out


def join(table_request: ReadRequest, groups: Sequence[ReadRequest]) -> ReadRequest:
    """One request covering ``groups`` (parts of ``table_request``, in address order)."""
    start = min(g.address for g in groups)
    end = max(g.address + g.count for g in groups)
    points = tuple(p for g in groups for p in g.points)
    return ReadRequest(
        table_request.unit,
        table_request.table,
        start,
        end - start,
        table_request.interval_ms,
        points,
    )


def halve(request: ReadRequest) -> tuple[ReadRequest, ReadRequest] | None:
    """``request`` as two requests of about half its points each (points sharing registers stay
    together); None when it cannot be divided (one point, or one group of shared registers)."""
    groups = split_request(request)
    if len(groups) < 2:
        return None
    k = len(groups) // 2
    return join(request, groups[:k]), join(request, groups[k:])


def merge_runs(request: ReadRequest, good: Sequence[ReadRequest]) -> list[ReadRequest]:
    """The requests of ``good`` (all read successfully, parts of ``request``) joined where they
    touch or overlap: registers in between were read, so the joined read is as good; parts
    separated by registers never read (a refused point, an unmapped gap) stay apart."""
    out: list[ReadRequest] = []
    run: list[ReadRequest] = []
    end = 0
    for part in sorted(good, key=lambda r: r.address):
        if run and part.address > end:
            out.append(join(request, run))
            run = []
        run.append(part)
        end = max(end, part.address + part.count) if len(run) > 1 else part.address + part.count
    if run:
        out.append(join(request, run))
    return out


def decode_response(request: ReadRequest, words: Sequence[int] | Sequence[bool]) -> list[Reading]:
    """Readings of every point of ``request`` from its response (registers or bits).

    A response shorter than asked makes the points it does not cover bad (``short_response``);
    a value that cannot be decoded is bad with the reason (``not_numeric``, ``nan``, ...).
    """
    out: list[Reading] = []
    for ref in request.points:
        lo = ref.address - request.address
        chunk = words[lo : lo + ref.width]
        if len(chunk) < ref.width:
            out.append(Reading(ref, math.nan, Quality.BAD, "short_response"))
            continue
        out.append(_decode_point(ref, chunk))
    return out


def _decode_point(ref: PointRef, chunk: Sequence[int] | Sequence[bool]) -> Reading:
    if ref.table in BIT_TABLES:
        return Reading(ref, 1.0 if chunk[0] else 0.0, Quality.GOOD)
    raw: int | float | bool | str
    try:
        if ref.datatype in NUMERIC_TYPES:
            raw = numeric_decoder(ref.datatype, ref.order)(chunk)
        else:
            raw = decode_raw([int(w) for w in chunk], ref.datatype, ref.order, bit=ref.bit)
    except (CodecError, struct.error):
        return Reading(ref, math.nan, Quality.BAD, "decode_error")
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            return Reading(ref, math.nan, Quality.BAD, "not_numeric")
    if isinstance(raw, float) and not math.isfinite(raw):
        return Reading(ref, math.nan, Quality.BAD, "nan" if math.isnan(raw) else "infinite")
    value = float(raw) * ref.scale + ref.offset
    return Reading(ref, value, Quality.GOOD)


def bad_readings(request: ReadRequest, status: str) -> list[Reading]:
    """Every point of ``request`` bad with ``status`` (exception, timeout)."""
    return [Reading(ref, math.nan, Quality.BAD, status) for ref in request.points]
