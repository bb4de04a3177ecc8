"""The Modbus connector: one per endpoint (TCP host:port or serial line), all units on it.

Each device's points are planned into coalesced requests (:mod:`connectors.modbus.plan`) and
polled at their interval (the device's ``poll_interval_ms`` or the point's ``interval_ms``).
Requests run one at a time (a Modbus line is half-duplex, and TCP gateways in front of RS-485
lines are too), each bounded by its device's ``timeout_s``:

* an exception response makes the points of that request ``bad`` with status
  ``modbus_exception_<code>`` and counts ``Sink.error(device, status)``; a refused *coalesced*
  read (code 2, illegal data address) is split into one read per point at once, so only the
  points really out of range stay bad;
* a timeout makes the points of that request bad (``timeout``) and skips the rest of that unit
  for the cycle; a silent unit is then retried with a backoff (up to ``UNIT_BACKOFF_MAX_S``), so
  a dead unit costs at most one timeout per backoff period and never stalls the other units;
* a lost connection (or no answer from any unit for ``LINK_SILENCE_S``) raises
  :class:`ConnectorError`; the supervisor reconnects with its backoff.

Timestamps are the gateway's clock when the response arrived.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from config.modbus import ModbusConnection
from config.models import Device
from connectors.base import ConnectorError, Sample, Sink
from connectors.modbus.plan import (
    PlanError,
    Reading,
    ReadRequest,
    bad_readings,
    decode_response,
    plan_requests,
    point_refs,
    split_request,
)

UNIT_BACKOFF_MAX_S = 10.0
"""A unit that timed out is retried after 1, 2, 4 ... poll intervals, at most this long."""
LINK_SILENCE_S = 15.0
"""No response from any unit for this long (with requests timing out) = the link is dead."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a Modbus connector talks: ``("tcp", host, port)`` or ``("rtu", serial_port, 0)``."""

    transport: str
    address: str
    port: int = 0

    @classmethod
    def of(cls, conn: ModbusConnection) -> Endpoint:
        if conn.transport == "rtu":
            assert conn.serial_port is not None
            return cls("rtu", conn.serial_port, 0)
        assert conn.host is not None
        return cls("tcp", conn.host, conn.port)

    def __str__(self) -> str:
        if self.transport == "rtu":
            return f"rtu:{self.address}"
        return f"{self.address}:{self.port}"


@dataclass
class _Job:
    """Requests sharing one poll interval, polled together."""

    interval_s: float
    requests: list[ReadRequest]
    next_due: float = 0.0


@dataclass
class _UnitState:
    silent: int = 0
    retry_at: float = 0.0


@dataclass
class PollStats:
    """Counters a test or benchmark can read (requests sent, responses, registers read)."""

    requests: int = 0
    responses: int = 0
    exceptions: int = 0
    timeouts: int = 0
    registers: int = 0
    cycles: int = 0
    splits: int = 0
    by_unit: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _reraise_lost_cancellation() -> None:
    """Raise CancelledError if this task was cancelled but an inner ``wait_for`` (pymodbus uses
    one; on Python 3.11 it can return a result that raced with the cancellation) swallowed it.
    Without this a cancelled connector could keep polling and stall a clean shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _device_connection(device: Device) -> ModbusConnection:
    if device.modbus is None:
        raise PlanError(f"device {device.id} has no modbus block")
    return device.modbus


_SERIAL_FIELDS = ("baudrate", "parity", "stopbits", "bytesize")


class ModbusConnector:
    """Polls every Modbus device of one endpoint; satisfies :class:`connectors.base.Connector`."""

    def __init__(self, devices: Sequence[Device]) -> None:
        if not devices:
            raise PlanError("a Modbus connector needs at least one device")
        conns = [_device_connection(d) for d in devices]
        self.endpoint = Endpoint.of(conns[0])
        for dev, conn in zip(devices, conns, strict=True):
            if Endpoint.of(conn) != self.endpoint:
                raise PlanError(f"device {dev.id} is on {Endpoint.of(conn)}, not {self.endpoint}")
            if conn.transport == "rtu":
                for name in _SERIAL_FIELDS:
                    if getattr(conn, name) != getattr(conns[0], name):
                        raise PlanError(
                            f"device {dev.id}: {name} {getattr(conn, name)} differs from "
                            f"device {devices[0].id} on the same serial line {conn.serial_port}"
                        )
        self.name = f"modbus {self.endpoint}"
        self.devices = tuple(d.id for d in devices)
        self._conn = dict(zip(self.devices, conns, strict=True))
        self._serial = conns[0]
        by_interval: dict[int, list[ReadRequest]] = defaultdict(list)
        for dev, conn in zip(devices, conns, strict=True):
            reqs = plan_requests(
                point_refs(dev, conn),
                max_registers=conn.max_registers,
                max_bits=conn.max_bits,
                max_gap=conn.max_gap,
            )
            for req in reqs:
                by_interval[req.interval_ms].append(req)
        self._jobs = [
            _Job(ms / 1000.0, sorted(reqs, key=lambda r: (r.unit, r.table, r.address)))
            for ms, reqs in sorted(by_interval.items())
        ]
        self.stats = PollStats()

    @property
    def requests(self) -> list[ReadRequest]:
        """The current plan (after any split of refused coalesced reads)."""
        return [r for job in self._jobs for r in job.requests]

    def _client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        # our own per-request timeout (asyncio.timeout) fires first; the library's is a backstop
        backstop = max(c.timeout_s for c in self._conn.values()) + 1.0
        if self.endpoint.transport == "rtu":
            s = self._serial
            return AsyncModbusSerialClient(
                self.endpoint.address,
                framer=FramerType.RTU,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=backstop,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            self.endpoint.address,
            port=self.endpoint.port,
            timeout=backstop,
            retries=0,
            reconnect_delay=0,
        )

    async def run(self, sink: Sink) -> None:
        client = self._client()
        try:
            if not await client.connect():
                raise ConnectorError(f"cannot connect to Modbus {self.endpoint}")
            for dev in self.devices:
                sink.link(dev, True)
            await self._poll_forever(client, sink)
        finally:
            client.close()
            for dev in self.devices:
                sink.link(dev, False)

    async def _poll_forever(self, client: Any, sink: Sink) -> None:
        units: dict[int, _UnitState] = defaultdict(_UnitState)
        self._last_response = time.monotonic()
        start = time.monotonic()
        for job in self._jobs:
            job.next_due = start
        while True:
            _reraise_lost_cancellation()
            now = time.monotonic()
            for job in self._jobs:
                if job.next_due <= now:
                    await self._poll(client, sink, job, units)
                    job.next_due += job.interval_s
                    after = time.monotonic()
                    if job.next_due < after:  # overran: skip the missed slots, keep the phase
                        missed = math.ceil((after - job.next_due) / job.interval_s)
                        job.next_due += missed * job.interval_s
            wait = min(job.next_due for job in self._jobs) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _poll(self, client: Any, sink: Sink, job: _Job, units: dict[int, _UnitState]) -> None:
        self.stats.cycles += 1
        silent_now: set[int] = set()
        index = 0
        while index < len(job.requests):
            req = job.requests[index]
            index += 1
            state = units[req.unit]
            if req.unit in silent_now:
                self._emit(sink, bad_readings(req, "timeout"))
                continue
            if state.silent and time.monotonic() < state.retry_at:
                continue
            outcome = await self._read(client, req)
            if isinstance(outcome, list):
                state.silent = 0
                self._emit(sink, decode_response(req, outcome))
                continue
            if outcome == "timeout":
                silent_now.add(req.unit)
                state.silent += 1
                backoff = min(job.interval_s * 2 ** (state.silent - 1), UNIT_BACKOFF_MAX_S)
                state.retry_at = time.monotonic() + backoff
                self._fail(sink, req, "timeout")
                if time.monotonic() - self._last_response > max(LINK_SILENCE_S, 3 * job.interval_s):
                    raise ConnectorError(
                        f"no response from any unit on Modbus {self.endpoint} for "
                        f"{time.monotonic() - self._last_response:.0f} s"
                    )
                continue
            state.silent = 0
            if outcome == "modbus_exception_2" and len(req.points) > 1:
                parts = split_request(req)
                if len(parts) > 1:
                    self.stats.splits += 1
                    pos = index - 1
                    job.requests[pos : pos + 1] = parts
                    index = pos  # read the parts now, in this cycle
                    continue
            self._fail(sink, req, outcome)

    async def _read(self, client: Any, req: ReadRequest) -> list[int] | list[bool] | str:
        """Registers/bits of ``req``, or a status: ``timeout``, ``modbus_exception_<n>``."""
        conn = self._conn[req.points[0].device]
        call: Callable[..., Awaitable[Any]] = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
        }[req.function_code]
        for _attempt in range(conn.retries + 1):
            if not client.connected:
                raise ConnectorError(f"Modbus {self.endpoint}: connection lost")
            self.stats.requests += 1
            self.stats.by_unit[req.unit] += 1
            try:
                async with asyncio.timeout(conn.timeout_s):
                    response = await call(req.address, count=req.count, device_id=req.unit)
            except TimeoutError:
                self.stats.timeouts += 1
                continue
            except ConnectionException as exc:
                raise ConnectorError(f"Modbus {self.endpoint}: {exc}") from exc
            except ModbusException as exc:
                if not client.connected:
                    raise ConnectorError(f"Modbus {self.endpoint}: {exc}") from exc
                self.stats.timeouts += 1
                continue
            _reraise_lost_cancellation()
            self._last_response = time.monotonic()
            self.stats.responses += 1
            if response.isError():
                self.stats.exceptions += 1
                return f"modbus_exception_{int(response.exception_code)}"
            if req.table in ("coil", "discrete"):
                bits: list[bool] = list(response.bits)
                return bits
            registers: list[int] = list(response.registers)
            self.stats.registers += len(registers)
            return registers
        if not client.connected:
            raise ConnectorError(f"Modbus {self.endpoint}: connection lost")
        return "timeout"

    def _fail(self, sink: Sink, req: ReadRequest, status: str) -> None:
        for dev in req.devices:
            sink.error(dev, status)
        self._emit(sink, bad_readings(req, status))

    @staticmethod
    def _emit(sink: Sink, readings: list[Reading]) -> None:
        ts = time.time_ns()
        sink.put_many(
            Sample(r.ref.device, r.ref.point, ts, r.value, r.quality, r.status) for r in readings
        )


def build_connectors(devices: Sequence[Device]) -> list[ModbusConnector]:
    """One connector per endpoint of ``devices`` (the Modbus ones), in order of appearance."""
    groups: dict[Endpoint, list[Device]] = {}
    for dev in devices:
        if dev.modbus is None:
            continue
        groups.setdefault(Endpoint.of(dev.modbus), []).append(dev)
    return [ModbusConnector(devs) for devs in groups.values()]
